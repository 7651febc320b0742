"""Does a classifier trained on (refined) synthetic digits read real handwriting? The README's table.

Trains :func:`refinekit_digits.classifier.train_classifier` with one budget, the
same seeds and the same augmentation on each training set, and scores every model
on the held-out sklearn test split, which no refiner or classifier here trains on::

    python plugins/digits/benchmarks/transfer.py --refiner runs/digits/refiner.safetensors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from refinekit import load_refiner
from refinekit.data import to_float, to_uint8

from refinekit_digits.classifier import accuracy, train_classifier
from refinekit_digits.fonts import load_digits_fonts
from refinekit_digits.sklearn_digits import load_sklearn_digits

SHAPE = {"channels": 1, "size": (28, 28), "limit": None}


@torch.no_grad()
def refine(refiner_path: Path, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """``images`` pushed through the exported refiner, back as uint8."""
    refiner = load_refiner(refiner_path)
    chunks = [to_uint8(refiner(to_float(torch.from_numpy(images[i : i + batch])))) for i in range(0, len(images), batch)]
    return torch.cat(chunks).numpy()


def training_sets(refiner_path: Path | None, count: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> (images, labels). The synthetic sets use seed 0, as the recipe's run does."""
    synthetic = load_digits_fonts(None, seed=0, count=count, **SHAPE)
    elastic = load_digits_fonts(None, seed=0, count=count, elastic=1.0, **SHAPE)
    real = load_sklearn_digits(None, seed=0, split="train", **SHAPE)
    sets = {
        f"synthetic ({count})": (synthetic.images, synthetic.annotations["label"]),
        f"synthetic + elastic ({count})": (elastic.images, elastic.annotations["label"]),
    }
    if refiner_path is not None:
        sets[f"refined synthetic ({count})"] = (refine(refiner_path, synthetic.images), synthetic.annotations["label"])
    sets[f"real train split ({len(real)})"] = (real.images, real.annotations["label"])
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refiner", type=Path, default=None, help="an exported refiner.safetensors to compare")
    parser.add_argument("--steps", type=int, default=500, help="classifier training steps (batch 64)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--count", type=int, default=10000, help="synthetic images to render")
    parser.add_argument("--json", type=Path, default=None, help="also write the accuracies here")
    args = parser.parse_args()

    test = load_sklearn_digits(None, seed=0, split="test", **SHAPE)
    results: dict[str, list[float]] = {}
    for name, (images, labels) in training_sets(args.refiner, args.count).items():
        for seed in args.seeds:
            start = time.process_time()
            model = train_classifier(images, labels, steps=args.steps, seed=seed, augment=True)
            results.setdefault(name, []).append(accuracy(model, test.images, test.annotations["label"]))
            print(f"{name}, seed {seed}: {results[name][-1]:.4f} ({time.process_time() - start:.0f} s CPU)", flush=True)
    print(f"\n| training set | held-out real accuracy, mean ± std over seeds {args.seeds} |\n| --- | --- |")
    for name, values in results.items():
        print(f"| {name} | {np.mean(values):.3f} ± {np.std(values):.3f} ({', '.join(f'{v:.3f}' for v in values)}) |")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
