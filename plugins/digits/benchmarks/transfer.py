"""Does a classifier trained on (refined) synthetic digits read real handwriting? The README's table.

Trains :func:`refinekit_digits.classifier.train_classifier` with one budget, the
same seeds and the same augmentation on each training set, and scores every model
on the held-out test split of the real set (by default ``mnist-sample``'s 1,000
MNIST digits), which no refiner or classifier here trains on::

    python plugins/digits/benchmarks/transfer.py --refiner runs/digits/refiner.safetensors

``--real sklearn-digits`` scores on the old default, scikit-learn's 8x8 digits, instead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from refinekit_digits.classifier import accuracy, train_classifier
from refinekit_digits.fonts import load_digits_fonts
from refinekit_digits.mnist_sample import load_mnist_sample
from refinekit_digits.sklearn_digits import load_sklearn_digits

from refinekit import load_refiner
from refinekit.data.image_set import to_float, to_uint8

SHAPE = {"channels": 1, "size": (28, 28), "limit": None}
REAL_SETS = {"mnist-sample": load_mnist_sample, "sklearn-digits": load_sklearn_digits}
"""The real sets with a fixed train/test split; the refiner should have been trained on the same one's train split."""


@torch.no_grad()
def refine(refiner_path: Path, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """``images`` pushed through the exported refiner, back as uint8."""
    refiner = load_refiner(refiner_path)
    chunks = [to_uint8(refiner(to_float(torch.from_numpy(images[i : i + batch])))) for i in range(0, len(images), batch)]
    return torch.cat(chunks).numpy()


def training_sets(refiner_path: Path | None, count: int, real_set: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> (images, labels). The synthetic sets use seed 0, as the recipe's run does."""
    synthetic = load_digits_fonts(None, seed=0, count=count, **SHAPE)
    elastic = load_digits_fonts(None, seed=0, count=count, elastic=1.0, **SHAPE)
    real = REAL_SETS[real_set](None, seed=0, split="train", **SHAPE)
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
    parser.add_argument("--real", choices=sorted(REAL_SETS), default="mnist-sample", help="the real set to score on")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the accuracies here")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    test = REAL_SETS[args.real](None, seed=0, split="test", **SHAPE)
    results: dict[str, list[float]] = {}
    for name, (images, labels) in training_sets(args.refiner, args.count, args.real).items():
        for seed in args.seeds:
            start = time.process_time()
            model = train_classifier(images, labels, steps=args.steps, seed=seed, augment=True)
            results.setdefault(name, []).append(accuracy(model, test.images, test.annotations["label"]))
            print(f"{name}, seed {seed}: {results[name][-1]:.4f} ({time.process_time() - start:.0f} s CPU)", flush=True)
    print(f"\n| training set | {args.real} test accuracy ({len(test)}), mean ± std over seeds {args.seeds} |\n| --- | --- |")
    for name, values in results.items():
        print(f"| {name} | {np.mean(values):.3f} ± {np.std(values):.3f} ({', '.join(f'{v:.3f}' for v in values)}) |")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
