"""Train the gaze network that the ``gaze-consistency`` regulariser holds refiners to, and write its card.

Usage: python plugins/eyes/benchmarks/train_gaze_leash.py [--steps 3000] [--threads 2]

It trains on simulator eyes of its own seed (no training run, and not the
evaluation's gaze estimator, uses it) with the task loop every gaze model in
refinekit uses, and prints its angular error on fresh simulator eyes.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np
import torch
from refinekit_eyes.gaze_leash import LEASH_WEIGHTS, GazeLeashNet
from refinekit_eyes.task import GazeTask
from safetensors.torch import save_file
from torch import nn

from refinekit.config import DatasetConfig, ImageConfig
from refinekit.data.loading import load_dataset
from refinekit.evaluation.task_model import predict, train_task_model

IMAGE = ImageConfig(channels=1, height=35, width=55)
TRAIN_SEED = 20_000  # simulator eyes no run or evaluation draws
TEST_SEED = 30_000
COUNT = 20_000


class LeashTask(GazeTask):
    """The gaze task with the leash's own, smaller network and a longer budget for it."""

    steps = 3000
    lr = 1e-3

    def make_model(self, channels: int, size: tuple[int, int]) -> nn.Module:
        return GazeLeashNet(channels=channels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=LeashTask.steps)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = LeashTask()
    train = load_dataset(DatasetConfig(name="eyes-sim", options={"count": COUNT}), IMAGE, TRAIN_SEED)
    started = time.perf_counter()
    model = train_task_model(task, train.images, task.targets(train.annotations), TRAIN_SEED, steps=args.steps)
    minutes = (time.perf_counter() - started) / 60
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, LEASH_WEIGHTS)
    write_card(task, model, args.steps, minutes)


def write_card(task: LeashTask, model: nn.Module, steps: int, minutes: float) -> None:
    """The card beside the weights: their digest, the command, and the error on fresh simulator eyes."""
    test = load_dataset(DatasetConfig(name="eyes-sim", options={"count": 2000}), IMAGE, TEST_SEED)
    errors = task.compare(predict(task, model, test.images), task.targets(test.annotations))[task.metric]
    digest = hashlib.sha256(LEASH_WEIGHTS.read_bytes()).hexdigest()
    weights = sum(p.numel() for p in model.parameters())
    error = float(np.mean(errors))
    LEASH_WEIGHTS.with_suffix(".md").write_text(f"""---
sha256: {digest}
command: python plugins/eyes/benchmarks/train_gaze_leash.py --steps {steps}
angular_error_deg: {error:.2f}
---
# gaze-leash: the gaze network of the `gaze-consistency` regulariser

`GazeLeashNet` ({weights:,} weights), trained on simulated eyes only, to hold refiners to the gaze they read.

- Data: {COUNT:,} `eyes-sim` eyes of seed {TRAIN_SEED} at 35x55 (the simulator's default ranges).
- Training: refinekit's task loop, Adam at {task.lr:g} with cosine decay, batch {task.batch_size}, {steps} steps,
  seed {TRAIN_SEED}; {minutes:.1f} min on {torch.get_num_threads()} CPU threads.
- Angular error on 2,000 fresh `eyes-sim` eyes (seed {TEST_SEED}): {error:.2f} deg mean,
  {np.median(errors):.2f} deg median.

## Licence
Apache-2.0, as the code. Trained on simulator output only: no third-party data.
""")
    print(f"wrote {LEASH_WEIGHTS} ({weights:,} weights, {minutes:.1f} min): error {error:.2f} deg mean")


if __name__ == "__main__":
    main()
