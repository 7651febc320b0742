"""Train and run a :class:`Task`'s model with one fixed loop, so every training set gets the same treatment."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from refinekit.data.image_set import to_float
from refinekit.evaluation.task import Task


def train_task_model(
    task: Task,
    images: np.ndarray,
    targets: torch.Tensor,
    seed: int,
    device: torch.device | str = "cpu",
    steps: int | None = None,
) -> nn.Module:
    """A task model trained on uint8 (N, C, H, W) ``images`` with ``targets``, in eval mode.

    Weights, batch order and augmentation are seeded by ``seed`` alone, and the
    global RNG is left as it was, so the same call gives the same model.

    Args:
        task: supplies the model, loss, augmentation and budget.
        images: the training images.
        targets: ``task.targets(...)`` of those images.
        seed: the training seed.
        device: where to train.
        steps: override ``task.steps`` (tests); reports always use the task's budget.
    """
    steps = task.steps if steps is None else steps
    device = torch.device(device)
    data = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    targets = targets.to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = task.make_model(int(images.shape[1]), (int(images.shape[2]), int(images.shape[3]))).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=task.lr)
        batches = torch.Generator().manual_seed(seed)
        model.train()
        for step in range(steps):
            # cosine decay: the last steps average out batch noise, so a fixed budget gives stable numbers
            for group in optimizer.param_groups:
                group["lr"] = task.lr * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
            index = torch.randint(len(data), (task.batch_size,), generator=batches).to(device)
            with torch.no_grad():
                batch = task.augment(to_float(data[index]))
            loss = task.loss(model(batch), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def predict(task: Task, model: nn.Module, images: np.ndarray, batch_size: int = 512) -> torch.Tensor:
    """``task.decode`` of the model's outputs for uint8 ``images``, on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        batch = to_float(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device))
        out.append(task.decode(model(batch)).cpu())
    return torch.cat(out)
