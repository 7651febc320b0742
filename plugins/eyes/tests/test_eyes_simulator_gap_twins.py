"""``simulator_gap.py --twins``: the distance from each eye to its nearest reference eye, in grey levels."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

GAP_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "simulator_gap.py"

gap = SimpleNamespace(**runpy.run_path(str(GAP_SCRIPT)))


def _report(capsys: pytest.CaptureFixture[str]) -> tuple[list[float], float]:
    line = capsys.readouterr().out
    quantiles = [float(value) for value in line.split("10/50/90%:")[1].split("within")[0].split()]
    return quantiles, float(line.rsplit(":", 1)[1].strip().rstrip("%"))


def test_an_eye_that_is_in_the_reference_set_is_its_own_twin(capsys: pytest.CaptureFixture[str]) -> None:
    reference = np.random.default_rng(0).integers(0, 256, (6, 1, 5, 7), dtype=np.uint8)
    gap.print_twins("copies", reference[:3], reference)
    quantiles, within = _report(capsys)
    assert quantiles == [0.0, 0.0, 0.0]
    assert within == 100.0


def test_the_distance_is_the_root_mean_square_grey_difference_to_the_nearest_eye(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reference = np.stack([np.full((1, 5, 7), level, np.uint8) for level in (0, 100, 200)])
    images = np.stack([np.full((1, 5, 7), level, np.uint8) for level in (130, 160)])  # 30 and 40 from the nearest
    gap.print_twins("offsets", images, reference)
    quantiles, within = _report(capsys)
    assert quantiles == pytest.approx([31.0, 35.0, 39.0], abs=0.05)  # torch.quantile interpolates between 30 and 40
    assert within == 0.0  # both farther than TWIN_DISTANCE (20)
