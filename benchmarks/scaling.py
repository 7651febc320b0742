"""How refinekit's throughput scales with the batch and with the image: the figure of the performance page.

Two sweeps, each through refinekit's own code paths (a training round is the
``Trainer``'s ``refiner_step`` + ``discriminator_step``; inference is
``refine_batch`` on a refiner from ``open_refiner``, uint8 in and out), on
images held in memory:

* batch size, at 35x55 grayscale with the paper's networks (``simgan-resnet``,
  ``local-patch``): inference and training rounds;
* image size, with ``timm-unet`` (resnet18 encoder, random weights) and
  ``local-patch`` on RGB images at 35x55, 64x64, 128x128 and 256x256, batch 16.

Every point is the median of ``--repeats`` timings after a warm-up; the sweeps
interleave nothing, so run it on an otherwise idle machine, and read the shape
of the curves rather than single points on a shared one. It prints a table and
draws ``docs/img/scaling.png``.

    python benchmarks/scaling.py
    python benchmarks/scaling.py --repeats 5 --out /tmp/scaling.png
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from refinekit.runtime.openmp import wait_passively

wait_passively()  # as refinekit's commands run; before torch loads libgomp

import numpy as np  # noqa: E402
import torch  # noqa: E402

from refinekit.config import build_config  # noqa: E402
from refinekit.data.image_set import ImageSet  # noqa: E402
from refinekit.refine.pipeline import open_refiner, refine_batch  # noqa: E402
from refinekit.training.loop import Trainer  # noqa: E402
from refinekit.weights.files import export_refiner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 4, 16, 64, 256, 1024)
TRAIN_BATCHES = (4, 16, 64, 256)
SIZES = ((35, 55), (64, 64), (128, 128), (256, 256))
SIZE_BATCH = 16
PAPER = {"name": "simgan-resnet", "options": {}}
UNET = {"name": "timm-unet", "options": {"encoder": "resnet18"}}


def images(count: int, channels: int, size: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, channels, *size), dtype=np.uint8)


def trainer_for(refiner: dict, channels: int, size: tuple[int, int], batch: int, out: Path) -> Trainer:
    config = build_config(
        {
            "image": {"channels": channels, "height": size[0], "width": size[1]},
            "synthetic": {"name": "image-folder"},
            "real": {"name": "image-folder"},
            "refiner": refiner,
            "discriminator": {"name": "local-patch"},
            "device": "cpu",
            "precision": "fp32",
            "batch_size": batch,
            "buffer_size": batch * 4,
        }
    )
    pool = max(batch, 64)
    return Trainer(config, ImageSet(images(pool, channels, size, 0)), ImageSet(images(pool, channels, size, 1)), out)


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up: oneDNN picks its kernels on the first call of each shape
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def training_rate(trainer: Trainer, batch: int, repeats: int) -> float:
    def round_() -> None:
        trainer.refiner_step(adversarial=True)
        trainer.discriminator_step()

    round_()  # the first round fills the history buffer
    return batch / median_seconds(round_, repeats)


def inference_rate(trainer: Trainer, batch: int, folder: Path, repeats: int) -> float:
    path = folder / "refiner.safetensors"
    c = trainer.config.image
    export_refiner(
        trainer.exported_refiner,
        path,
        trainer.config.refiner.name,
        trainer.config.refiner.options,
        c.channels,
        (c.height, c.width),
    )
    refiner = open_refiner(path)
    batch_images = torch.from_numpy(images(batch, c.channels, (c.height, c.width), 2))
    return batch / median_seconds(lambda: refine_batch(refiner, batch_images), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "scaling.png")
    args = parser.parse_args()
    print(
        f"# {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY')}, load average at start {os.getloadavg()[0]:.1f}"
    )

    by_batch: dict[str, dict[int, float]] = {"inference": {}, "training round": {}}
    by_size: dict[str, dict[str, float]] = {"inference": {}, "training round": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for batch in BATCHES:
            trainer = trainer_for(PAPER, 1, (35, 55), min(max(batch, 2), max(TRAIN_BATCHES)), folder / f"b{batch}")
            by_batch["inference"][batch] = inference_rate(trainer, batch, folder, args.repeats)
            if batch in TRAIN_BATCHES:
                by_batch["training round"][batch] = training_rate(trainer, batch, args.repeats)
            print(
                f"35x55 gray, batch {batch}: "
                + ", ".join(f"{kind} {rates[batch]:.1f} img/s" for kind, rates in by_batch.items() if batch in rates),
                flush=True,
            )
        for size in SIZES:
            label = f"{size[0]}x{size[1]}"
            trainer = trainer_for(UNET, 3, size, SIZE_BATCH, folder / label)
            by_size["inference"][label] = inference_rate(trainer, SIZE_BATCH, folder, args.repeats)
            by_size["training round"][label] = training_rate(trainer, SIZE_BATCH, args.repeats)
            print(
                f"{label} RGB timm-unet, batch {SIZE_BATCH}: "
                + ", ".join(f"{kind} {rates[label]:.1f} img/s" for kind, rates in by_size.items()),
                flush=True,
            )
    print(f"# load average at end {os.getloadavg()[0]:.1f}")
    print_tables(by_batch, by_size)
    draw(by_batch, by_size, args.out)
    print(f"wrote {args.out}")


def print_tables(by_batch: dict[str, dict[int, float]], by_size: dict[str, dict[str, float]]) -> None:
    print("\n| batch (35x55 gray, paper's networks) | inference img/s | training round img/s |")
    print("| ---: | ---: | ---: |")
    for batch, rate in by_batch["inference"].items():
        train = by_batch["training round"].get(batch)
        print(f"| {batch} | {rate:.1f} | {f'{train:.1f}' if train else '—'} |")
    print(
        f"\n| image (RGB, timm-unet resnet18, batch {SIZE_BATCH}) | inference img/s | training round img/s "
        "| inference Mpixel/s |"
    )
    print("| --- | ---: | ---: | ---: |")
    for label, rate in by_size["inference"].items():
        height, width = (int(side) for side in label.split("x"))
        print(f"| {label} | {rate:.1f} | {by_size['training round'][label]:.2f} | {rate * height * width / 1e6:.2f} |")


def draw(by_batch: dict[str, dict[int, float]], by_size: dict[str, dict[str, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    panels = [
        (left, by_batch, "batch size", "35x55 gray, the paper's refiner and D"),
        (right, by_size, "image size (RGB)", f"timm-unet (resnet18) and D, batch {SIZE_BATCH}"),
    ]
    for axis, sweep, xlabel, title in panels:
        for kind, rates in sweep.items():
            axis.plot(list(rates), list(rates.values()), marker="o", label=kind)
        axis.set(yscale="log", xlabel=xlabel, ylabel="images / s", title=title)
        axis.grid(True, which="both", alpha=0.3)
        axis.yaxis.set_major_formatter(ScalarFormatter())
        axis.yaxis.set_minor_formatter(NullFormatter())
        axis.legend()
    left.set_xscale("log")
    left.set_xticks(list(BATCHES), [str(b) for b in BATCHES])
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
