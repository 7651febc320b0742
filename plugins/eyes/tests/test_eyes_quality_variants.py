"""Every variant of ``benchmarks/quality.py`` is a valid eyes-simgan configuration that differs from the default.

A typo in an override would otherwise surface only after the variant's first
training run, minutes into a comparison.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

QUALITY_SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "quality.py"

quality = SimpleNamespace(**runpy.run_path(str(QUALITY_SCRIPT)))


@pytest.mark.parametrize("variant", [*quality.SHIPPED_VARIANTS, *quality.VARIANTS])
def test_variant_resolves_to_a_config(variant: str) -> None:
    config = quality.config_of(variant, seed=0, extra=[])
    assert config.seed == 0
    if variant != "default":
        assert config != quality.config_of("default", seed=0, extra=[]), f"{variant} changes nothing"


def test_unknown_variant_names_the_known_ones() -> None:
    with pytest.raises(SystemExit, match="unknown variant 'no-such'; known: default, "):
        quality.overrides_of("no-such")
