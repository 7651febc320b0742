"""Train a gaze estimator on simulated eyes that a trained refiner makes look real, batch by batch.

This is the point of SimGAN (paper, section 4.1): the simulator's gaze labels
are exact and free; refining the images closes the gap to real eyes; the labels
stay as they are. Here the refiner sits inside an ordinary PyTorch training
loop: a DataLoader yields simulated eyes and their gaze, ``RefinedBatches``
refines each collated batch in one refiner call (the gaze passes through
untouched), and the estimator trains on the refined batch.

Train the refiner first, then this::

    refinekit run eyes-simgan                      # writes runs/eyes-simgan/refiner.safetensors
    python examples/train_gaze_with_refiner.py --refiner runs/eyes-simgan/refiner.safetensors

Needs the eyes plugin (``pip install -e plugins/eyes``): it provides the
simulator dataset ``eyes-sim`` and the paper's ``GazeEstimator``.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Sequence

import torch
from refinekit_eyes.gaze import angular_error_degrees
from refinekit_eyes.gaze_estimator import GazeEstimator
from safetensors.torch import save_file
from torch.utils.data import DataLoader, TensorDataset

from refinekit import RefinedBatches
from refinekit.config import DatasetConfig, ImageConfig
from refinekit.data.image_set import to_float
from refinekit.data.loading import load_dataset
from refinekit.refine.pipeline import open_refiner, refine_batch
from refinekit.runtime.precision import resolve_device


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refiner", type=Path, default=Path("runs/eyes-simgan/refiner.safetensors"))
    parser.add_argument("--steps", type=int, default=3000, help="Optimiser steps of the gaze estimator.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=50_000, help="Simulated eyes to draw batches from.")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=1000, help="Hidden FC width (paper: 1000).")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/gaze-estimator.safetensors"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train, save the estimator's weights to ``--out``, and return the final loss and held-out error."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    refiner = open_refiner(args.refiner, device)
    channels, size = refiner.refinekit_channels, tuple(refiner.refinekit_image_size)

    # The simulator renders at the size the refiner was trained at; its labels are exact.
    eyes = load_dataset(
        DatasetConfig(name="eyes-sim", limit=args.images, options={"count": args.images}),
        ImageConfig(channels=channels, height=size[0], width=size[1]),
        seed=args.seed,
    )
    gaze = torch.from_numpy(eyes.annotations["gaze"]).float()
    images = torch.from_numpy(eyes.images)
    held_out = min(len(images) // 5, 1000)  # never trained on: measures the fit honestly
    train = TensorDataset(images[held_out:], gaze[held_out:])
    loader = DataLoader(train, batch_size=min(args.batch_size, len(train)), shuffle=True, drop_last=True)

    model = GazeEstimator(channels=channels, image_size=size, hidden=args.hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss = torch.tensor(float("nan"))
    forever = itertools.chain.from_iterable(itertools.repeat(loader))
    # uint8 in, uint8 out: same shape, the gaze of each tuple untouched.
    for step, (refined, target) in zip(range(args.steps), RefinedBatches(forever, refiner)):
        prediction = model(to_float(refined.to(device)))
        loss = ((prediction - target.to(device)) ** 2).sum(dim=1).mean()  # the paper's Euclidean loss on unit vectors
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step:5d}  loss {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        refined = refine_batch(refiner, images[:held_out].to(device))
        error = angular_error_degrees(model(to_float(refined)).cpu(), gaze[:held_out])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(args.out))
    result = {"loss": loss.item(), "held_out_error_deg": float(error.mean()), "held_out_images": float(held_out)}
    print(f"held-out refined eyes: mean angular error {result['held_out_error_deg']:.2f} deg; weights: {args.out}")
    return result


if __name__ == "__main__":
    main()
