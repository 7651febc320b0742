"""Figures a run writes: sample grids and loss curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from refinekit.data.image_files import write_image
from refinekit.data.image_set import to_uint8


def sample_grid(synthetic: torch.Tensor, refined: torch.Tensor, real: torch.Tensor) -> np.ndarray:
    """Rows of synthetic | refined | |refined - synthetic| (x4, for visibility) | real, as uint8 (C, H, W)."""
    n = min(len(synthetic), len(real))
    difference = ((refined[:n] - synthetic[:n]).abs() * 4 - 1).clamp(-1, 1)
    columns = [synthetic[:n], refined[:n], difference, real[:n]]
    pad = 2
    _, c, h, w = synthetic.shape
    grid = np.full((c, n * (h + pad) + pad, 4 * (w + pad) + pad), 255, dtype=np.uint8)
    for col, images in enumerate(columns):
        tiles = to_uint8(images.cpu()).numpy()
        for row in range(n):
            y, x = pad + row * (h + pad), pad + col * (w + pad)
            grid[:, y : y + h, x : x + w] = tiles[row]
    return grid


COLUMN_TITLES = (("synthetic", "synth"), ("refined", "refined"), ("|difference| x4", "|diff|"), ("real", "real"))
"""Each column's title, and a shorter one for narrow images."""


def titled(grid: np.ndarray, column_width: int, pad: int) -> np.ndarray:
    """``grid`` (C, H, W) with a white band on top naming each column (a shorter title where the full one is too wide)."""
    from PIL import Image, ImageDraw, ImageFont

    height = 18
    band = Image.new("L", (grid.shape[2], height), 255)
    draw = ImageDraw.Draw(band)
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    for col, titles in enumerate(COLUMN_TITLES):
        left = pad + col * (column_width + pad)
        title = next((t for t in titles if draw.textlength(t, font=font) <= column_width), titles[-1])
        x = left + max((column_width - draw.textlength(title, font=font)) / 2, 0)
        draw.text((x, 3), title, fill=0, font=font)
    header = np.broadcast_to(np.asarray(band, dtype=np.uint8), (grid.shape[0], height, grid.shape[2]))
    return np.concatenate([header, grid], axis=1)


def save_sample_grid(path: Path, synthetic: torch.Tensor, refined: torch.Tensor, real: torch.Tensor, scale: int = 3) -> None:
    """Write :func:`sample_grid` as a PNG, upscaled ``scale`` times so small images are visible, its columns titled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = sample_grid(synthetic, refined, real)
    width = synthetic.shape[-1]
    write_image(path, titled(grid.repeat(scale, axis=1).repeat(scale, axis=2), width * scale, 2 * scale))


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The lines of a metrics.jsonl file (skipping a line cut short by a crash)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def loss_series(rows: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of ``key``, with a NaN wherever rows without it come between: the line breaks there.

    A phase that does not log ``key`` (e.g. ``refiner_reg`` during D pre-training) is
    left as a gap, not bridged by a straight line that no step ever logged.

    Examples:
        >>> loss_series([{"step": 1, "a": 1.0}, {"step": 2}, {"step": 3, "a": 2.0}], "a")
        ([1, 2, 3], [1.0, nan, 2.0])
    """
    steps: list[float] = []
    values: list[float] = []
    gap = False
    for row in rows:
        if key not in row:
            gap = bool(steps)
            continue
        if gap:
            steps.append(row["step"] - 1)
            values.append(float("nan"))
            gap = False
        steps.append(row["step"])
        values.append(row[key])
    return steps, values


def plot_losses(metrics_path: Path, out: Path) -> None:
    """Plot every loss and D accuracy in metrics.jsonl against the step."""
    rows = read_metrics(metrics_path)
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in rows for k in r if k.endswith("loss") or k.startswith("refiner_") or k.startswith("d_acc")})
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key in keys:
        axis = ax_acc if key.startswith("d_acc") else ax_loss
        steps, values = loss_series(rows, key)
        (line,) = axis.plot(steps, values, label=key)
        # A point with a gap (or the end) on both sides draws no line: mark it, or a short phase vanishes.
        alone = [
            i for i, v in enumerate(values)
            if not math.isnan(v)
            and (i == 0 or math.isnan(values[i - 1]))
            and (i == len(values) - 1 or math.isnan(values[i + 1]))
        ]
        if alone:
            axis.plot([steps[i] for i in alone], [values[i] for i in alone], ".", color=line.get_color())
    ax_loss.set(xlabel="step", ylabel="loss", title="losses")
    ax_acc.set(xlabel="step", ylabel="share of patches", title="discriminator accuracy", ylim=(0, 1))
    for axis in (ax_loss, ax_acc):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
