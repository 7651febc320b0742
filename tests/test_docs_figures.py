"""docs/figures/make_figures.py measures what the Concepts page says, and draws every figure the page shows."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from PIL import Image

from refinekit.components.discriminators import LocalPatchDiscriminator
from refinekit.components.refiners import SimGANResNet

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_figures", ROOT / "docs" / "figures" / "make_figures.py")
figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figures)


def size(field: tuple[int, int, int, int]) -> tuple[int, int]:
    top, left, bottom, right = field
    return bottom - top + 1, right - left + 1


def test_receptive_fields_are_the_sizes_the_concepts_page_states() -> None:
    disc = LocalPatchDiscriminator(channels=1)
    assert size(figures.receptive_field(disc, (35, 55), 4, 7)) == (23, 23)  # an interior patch logit
    assert figures.receptive_field(disc, (35, 55), 0, 0) == (0, 0, 11, 11)  # cut by the image border
    assert size(figures.receptive_field(SimGANResNet(channels=1), (35, 55), 17, 27)) == (19, 19)
    text = (ROOT / "docs" / "concepts.md").read_text()
    assert "23x23-pixel patch" in text and "19x19" in text and "9x14 grid" in text


def test_layer_shapes_of_the_discriminator() -> None:
    shapes = figures.output_shapes(LocalPatchDiscriminator(channels=1), (35, 55))
    assert shapes[0] == ("conv 3x3/2, 96", (96, 18, 28)) and shapes[-1] == ("conv 1x1, 2", (2, 9, 14))


def test_every_figure_the_docs_show_is_drawn(tmp_path) -> None:
    written = figures.main(tmp_path)
    shown = set(re.findall(r"\]\(img/([\w-]+\.png)\)", (ROOT / "docs" / "concepts.md").read_text()))
    assert shown == {p.name for p in written}
    for path in written:
        with Image.open(path) as image:
            assert image.width > 500 and image.height > 100
