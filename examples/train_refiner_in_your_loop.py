"""Train a refiner and a task model together, in your own PyTorch loop, with refinekit.training.simgan.

``refinekit run`` owns its loop (seeding, checkpoints, Ctrl-C). When the refiner
should instead train next to the model it feeds, inside a loop you already have
(plain PyTorch here; Lightning, Fabric and Accelerate loops look the same), the
paper's algorithm is a handful of functions: pre-train R, pre-train D, then
alternate R and D steps. Here every round also trains a task model on the
batch R has just refined, with the synthetic images' exact labels.

The data is a toy domain made in memory: "synthetic" images are dark squares
with sharp edges and noise, "real" ones brighter, blurred and clean. The task
is to find the square's centre. Real labels are used only to score the task
model at the end::

    python examples/train_refiner_in_your_loop.py                    # about ten seconds on a CPU
    python examples/train_refiner_in_your_loop.py --task-weight 0.1  # R also lowers the task loss (joint training)
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import refinekit
from refinekit.training import simgan


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="Rounds of one R, one D and one task step.")
    parser.add_argument("--pretrain-steps", type=int, default=100, help="R pre-training steps (D gets a fifth).")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--images", type=int, default=512, help="Images per domain.")
    parser.add_argument("--size", type=int, default=16, help="Image height and width.")
    parser.add_argument("--features", type=int, default=8, help="Width of R and D.")
    parser.add_argument("--reg-weight", type=float, default=0.5, help="lambda of R's self-regularisation.")
    parser.add_argument("--task-weight", type=float, default=0.0, help="Weight of the task loss in R's loss (0: none).")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="Folder for refiner.safetensors and task.safetensors.")
    return parser.parse_args(argv)


def squares(count: int, size: int, g: torch.Generator, *, style: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1], each square's centre as (row, column) in [-1, 1]) in the "synthetic" or "real" style."""
    background, square, noise = (-0.7, -0.1, 0.25) if style == "synthetic" else (-0.2, 0.5, 0.05)
    images = torch.full((count, 1, size, size), background)
    centres = torch.empty(count, 2)
    for image, centre in zip(images, centres):
        side = int(torch.randint(size // 4, size // 2 + 1, (1,), generator=g))
        top, left = torch.randint(0, size - side, (2,), generator=g).tolist()
        image[:, top : top + side, left : left + side] = square
        centre.copy_(torch.tensor([top + side / 2, left + side / 2]) / size * 2 - 1)
    if style == "real":
        kernel = torch.tensor([1.0, 2.0, 1.0])
        blur = (kernel[:, None] * kernel[None] / 16)[None, None]
        images = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), blur)
    return (images + noise * torch.randn(images.shape, generator=g)).clamp(-1, 1), centres


class TaskModel(nn.Module):
    """A small CNN that regresses the square's centre: the model a refined training set is for."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Linear(width * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train R, D and the task model; return the last losses and how well each domain is matched and solved."""
    args = parse_args(argv)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(args.seed)  # batches, history buffer and augmentation: nothing global
    synthetic, labels = (t.to(device) for t in squares(args.images, args.size, g, style="synthetic"))
    real, real_labels = (t.to(device) for t in squares(args.images, args.size, g, style="real"))

    torch.manual_seed(args.seed)  # initial weights
    refiner = refinekit.create_refiner("simgan-resnet", channels=1, features=args.features, blocks=1).to(device)
    discriminator = refinekit.create_discriminator("local-patch", channels=1, widths=[args.features] * 4).to(device)
    regularizer = refinekit.create_regularizer("l1", channels=1).to(device)
    task = TaskModel().to(device)
    opt_r = torch.optim.Adam(refiner.parameters(), lr=args.lr)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr)
    opt_task = torch.optim.Adam(task.parameters(), lr=args.lr)
    buffer = simgan.HistoryBuffer(args.batch_size * 8, (1, args.size, args.size), device)
    average = copy.deepcopy(refiner).requires_grad_(False)  # the refiner to keep: its weights averaged over rounds

    def draw(pool: torch.Tensor) -> torch.Tensor:
        return torch.randint(len(pool), (args.batch_size,), generator=g).to(device)

    # Algorithm 1, steps 1 and 2: R learns to copy its input, then D learns to tell R's output from real.
    simgan.pretrain_refiner(refiner, regularizer, (synthetic[draw(synthetic)] for _ in range(args.pretrain_steps)),
                            opt_r, reg_weight=1.0)
    paired = ((synthetic[draw(synthetic)], real[draw(real)]) for _ in range(max(1, args.pretrain_steps // 5)))
    simgan.pretrain_discriminator(refiner, discriminator, paired, opt_d, buffer=buffer, generator=g)

    metrics: dict[str, float] = {}
    for step in range(args.steps):
        rows = draw(synthetic)
        x, y = synthetic[rows], labels[rows]
        if args.task_weight:  # joint training: R's loss also rewards images the task model reads well
            opt_r.zero_grad(set_to_none=True)
            refined = refiner(x)
            terms = simgan.refiner_loss(refiner, regularizer, x, refined=refined, discriminator=discriminator,
                                        reg_weight=args.reg_weight, generator=g)
            (terms["refiner_loss"] + args.task_weight * F.mse_loss(task(refined), y)).backward()
            opt_r.step()
            metrics.update({name: value.item() for name, value in terms.items()})
        else:
            metrics.update(simgan.refiner_step(refiner, regularizer, x, opt_r, discriminator=discriminator,
                                               reg_weight=args.reg_weight, generator=g))
        metrics.update(simgan.discriminator_step(refiner, discriminator, synthetic[draw(synthetic)], real[draw(real)],
                                                 opt_d, buffer=buffer, generator=g))
        simgan.update_average(average, refiner, decay=0.97)

        # The task model learns from the batch as R refines it now, with the simulator's labels.
        with torch.no_grad():
            refined = refiner(x)
        task_loss = F.mse_loss(task(refined), y)
        opt_task.zero_grad(set_to_none=True)  # also drops what the joint R step left in the task model
        task_loss.backward()
        opt_task.step()
        metrics["task_loss"] = task_loss.item()
        if step % 100 == 0:
            print(f"step {step:4d}  " + "  ".join(f"{name} {value:.3f}" for name, value in metrics.items()))

    result = {**metrics, **evaluate(average, task, synthetic, real, real_labels, args.size)}
    print(f"brightness/contrast gap to real: synthetic {result['synthetic_gap']:.3f}, "
          f"refined {result['refined_gap']:.3f}; task model on real images: off by {result['real_error_px']:.2f} px")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        save_file(average.state_dict(), str(args.out / "refiner.safetensors"))
        save_file(task.state_dict(), str(args.out / "task.safetensors"))
    return result


@torch.no_grad()
def evaluate(refiner: nn.Module, task: nn.Module, synthetic: torch.Tensor, real: torch.Tensor,
             real_labels: torch.Tensor, size: int) -> dict[str, float]:
    """How far refined and raw synthetic images are from real ones in brightness and contrast, and the task's error."""

    def statistics(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.mean(), x.std(dim=(1, 2, 3)).mean()])

    target = statistics(real)
    error = (task(real) - real_labels).abs().mean() * size / 2  # [-1, 1] coordinates back to pixels
    return {
        "synthetic_gap": float((statistics(synthetic) - target).abs().sum()),
        "refined_gap": float((statistics(refiner(synthetic)) - target).abs().sum()),
        "real_error_px": float(error),
    }


if __name__ == "__main__":
    main()
