"""Every variant of ``benchmarks/quality.py`` is a valid eyes-simgan configuration that differs from the default.

A typo in an override would otherwise surface only after the variant's first
training run, minutes into a comparison.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from refinekit_eyes.recipe import CALIBRATED_RANGES, UNCALIBRATED_RANGES

QUALITY_SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "quality.py"

quality = SimpleNamespace(**runpy.run_path(str(QUALITY_SCRIPT)))
ROWS_BEFORE_CALIBRATION: dict[str, list[str]] = {
    **quality.VARIANTS,
    **quality.BEFORE_GAZE_LEASH,
    **quality.ON_GAZE_LEASH_DEFAULT,
    **quality.ON_FULL_WIDTH_DEFAULT,
    **quality.BEFORE_CALIBRATION,
}


@pytest.mark.parametrize("variant", [*quality.SHIPPED_VARIANTS, *quality.VARIANTS])
def test_variant_resolves_to_a_config(variant: str) -> None:
    config = quality.config_of(variant, seed=0, extra=[])
    assert config.seed == 0
    if variant != "default":
        assert config != quality.config_of("default", seed=0, extra=[]), f"{variant} changes nothing"


def test_unknown_variant_names_the_known_ones() -> None:
    with pytest.raises(SystemExit, match="unknown variant 'no-such'; known: default, "):
        quality.overrides_of("no-such")


@pytest.mark.parametrize("variant", ROWS_BEFORE_CALIBRATION)
def test_rows_measured_before_the_calibration_keep_the_simulators_own_geometry(variant: str) -> None:
    """The recipe's calibrated ranges must not reach a row measured before them, except where the row sets one."""
    options = quality.config_of(variant, seed=0, extra=[]).synthetic.options
    pinned = [override for override in quality.overrides_of(variant) if override not in quality.UNCALIBRATED]
    set_by_row = {override.split("=")[0] for override in pinned}  # e.g. the earlier simulators' brow_bone 0
    for name, own in UNCALIBRATED_RANGES.items():
        if f"synthetic.options.{name}" not in set_by_row:
            assert tuple(options[name]) == own, f"{variant} draws {name} {options[name]}, not the {own} it measured"


def test_the_default_row_draws_the_calibrated_geometry() -> None:
    options = quality.config_of("default", seed=0, extra=[]).synthetic.options
    assert {name: list(options[name]) for name in CALIBRATED_RANGES} == CALIBRATED_RANGES
