"""The run's up-front time estimate: it counts only the steps left."""

from __future__ import annotations

import pytest

from refinekit.api import prepare, resolve_config
from refinekit.progress import _duration, estimate_seconds

SMALL = ["refiner.options.features=8", "refiner.options.blocks=1", "discriminator.options.widths=[8, 8, 8, 8]"]


@pytest.fixture
def trainer(tiny_domain, tmp_path):
    return prepare(resolve_config("tiny", overrides=SMALL), tmp_path)


def test_the_estimate_counts_only_the_steps_left(trainer) -> None:
    assert estimate_seconds(trainer) > 0
    trainer.step = trainer.total_steps
    assert estimate_seconds(trainer) == 0


def test_long_estimates_are_said_in_hours() -> None:
    assert _duration(6.6 * 60) == "6.6 min"
    assert _duration(119 * 60) == "119.0 min"
    assert _duration(160.5 * 3600) == "160.5 h"
