"""The figures a run writes: sample grids with column titles, loss curves that do not bridge phases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from refinekit.training.run_figures import loss_series, plot_losses, sample_grid, save_sample_grid


@pytest.mark.parametrize("size", [(35, 55), (16, 20), (28, 28)])
def test_the_sample_grid_names_its_columns(tmp_path: Path, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    synthetic, refined, real = (torch.rand(3, 1, *size) * 2 - 1 for _ in range(3))
    path = tmp_path / "grid.png"
    save_sample_grid(path, synthetic, refined, real, scale=3)
    image = np.asarray(Image.open(path))
    grid = sample_grid(synthetic, refined, real)[0].repeat(3, axis=0).repeat(3, axis=1)
    band = image.shape[0] - grid.shape[0]
    assert band > 8, "a title band sits above the grid"
    np.testing.assert_array_equal(image[band:], grid)
    header = image[:band]
    column, pad = size[1] * 3, 6
    for col in range(4):
        left = pad + col * (column + pad)
        ink = (header[:, left : left + column] < 128).sum()
        assert ink > 10, f"column {col} has a title"
    assert (header[:, :pad] == 255).all(), "titles stay inside their columns"


def test_loss_lines_break_across_phases_that_did_not_log_them() -> None:
    rows = (
        [{"step": s, "phase": "refiner-pretrain", "refiner_reg": 1.0} for s in range(1, 4)]
        + [{"step": s, "phase": "discriminator-pretrain", "discriminator_loss": 0.7} for s in range(4, 7)]
        + [{"step": s, "phase": "adversarial", "refiner_reg": 0.5, "discriminator_loss": 0.6} for s in range(7, 9)]
    )
    steps, values = loss_series(rows, "refiner_reg")
    assert steps[:3] == [1, 2, 3] and steps[-2:] == [7, 8]
    assert sum(math.isnan(v) for v in values) == 1 and math.isnan(values[3]), "one break, where D pre-trained"
    steps, values = loss_series(rows, "discriminator_loss")
    assert steps == [4, 5, 6, 7, 8] and not any(math.isnan(v) for v in values), "no break where it logged throughout"


def test_plot_losses_draws_the_gap(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{"step": 1, "refiner_reg": 1.0}, {"step": 2, "discriminator_loss": 0.5}, {"step": 3, "refiner_reg": 2.0}]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in rows))
    drawn = []
    original = plt.Axes.plot
    try:
        def spy(self, x, y, *style, **kw):
            drawn.append((kw.get("label"), list(y)))
            return original(self, x, y, *style, **kw)

        plt.Axes.plot = spy
        plot_losses(metrics, tmp_path / "losses.png")
    finally:
        plt.Axes.plot = original
    assert (tmp_path / "losses.png").exists()
    reg = dict(drawn)["refiner_reg"]
    assert reg[0] == 1.0 and math.isnan(reg[1]) and reg[2] == 2.0
    assert [1.0, 2.0] in [values for label, values in drawn if label is None], "points between gaps are marked"
