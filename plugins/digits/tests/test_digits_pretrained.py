"""The refiner that ships with the digits plugin: present, the file its card describes, and usable by name."""

from __future__ import annotations

import hashlib
import json

import torch
from refinekit_digits.fonts import load_digits_fonts

from refinekit.plugins.registry import Registry
from refinekit.refine.pipeline import refine_batch
from refinekit.weights.files import load_refiner
from refinekit.weights.pretrained import get_pretrained, read_card_fields


def test_digits_simgan_ships_the_refiner_its_card_describes(registry: Registry) -> None:
    shipped = get_pretrained("digits-simgan")
    assert shipped is not None and shipped.weights.is_file()
    card = read_card_fields(shipped.card)
    assert card["sha256"] == hashlib.sha256(shipped.weights.read_bytes()).hexdigest()
    assert card["command"].startswith("refinekit run digits-simgan")
    config = json.loads(shipped.config.read_text())
    assert (config["image"]["height"], config["image"]["width"], config["image"]["channels"]) == (28, 28, 1)
    assert "test accuracy" in shipped.card.read_text()


def test_the_shipped_digits_refiner_refines_font_digits_by_name(registry: Registry) -> None:
    digits = load_digits_fonts(None, channels=1, size=(28, 28), limit=None, seed=3, count=8)
    refined = refine_batch(load_refiner("digits-simgan"), torch.from_numpy(digits.images))
    assert refined.shape == digits.images.shape and refined.dtype == torch.uint8
    difference = (refined.float() - torch.from_numpy(digits.images).float()).abs().mean()
    assert 0 < difference < 64  # refined, yet the same digits
