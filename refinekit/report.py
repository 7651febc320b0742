"""Figures a run writes: sample grids and loss curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from refinekit.data import to_uint8
from refinekit.imageio import write_image


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


def save_sample_grid(path: Path, synthetic: torch.Tensor, refined: torch.Tensor, real: torch.Tensor, scale: int = 3) -> None:
    """Write :func:`sample_grid` as a PNG, upscaled ``scale`` times so small images are visible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = sample_grid(synthetic, refined, real)
    write_image(path, grid.repeat(scale, axis=1).repeat(scale, axis=2))


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
        points = [(r["step"], r[key]) for r in rows if key in r]
        axis = ax_acc if key.startswith("d_acc") else ax_loss
        axis.plot(*zip(*points), label=key)
    ax_loss.set(xlabel="step", ylabel="loss", title="losses")
    ax_acc.set(xlabel="step", ylabel="share of patches", title="discriminator accuracy", ylim=(0, 1))
    for axis in (ax_loss, ax_acc):
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
