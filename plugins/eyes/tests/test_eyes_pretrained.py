"""The refiner that ships with the eyes plugin: present, the file its card describes, and usable by name."""

from __future__ import annotations

import hashlib
import json

import torch
from refinekit_eyes.eyes_sim import load_eyes_sim

from refinekit.plugins.registry import Registry
from refinekit.refine.pipeline import refine_batch
from refinekit.weights.files import load_refiner
from refinekit.weights.pretrained import get_pretrained, read_card_fields


def test_eyes_simgan_ships_the_refiner_its_card_describes(eyes_registry: Registry) -> None:
    shipped = get_pretrained("eyes-simgan")
    assert shipped is not None and shipped.weights.is_file()
    card = read_card_fields(shipped.card)
    assert card["sha256"] == hashlib.sha256(shipped.weights.read_bytes()).hexdigest()
    assert card["command"].startswith("refinekit run eyes-simgan")
    config = json.loads(shipped.config.read_text())
    assert (config["image"]["height"], config["image"]["width"], config["image"]["channels"]) == (35, 55, 1)
    assert "realism" in shipped.card.read_text()


def test_the_shipped_eyes_refiner_refines_simulator_eyes_by_name(eyes_registry: Registry) -> None:
    eyes = load_eyes_sim(None, channels=1, size=(35, 55), limit=None, seed=3, count=4)
    refined = refine_batch(load_refiner("eyes-simgan"), torch.from_numpy(eyes.images))
    assert refined.shape == eyes.images.shape and refined.dtype == torch.uint8
    difference = (refined.float() - torch.from_numpy(eyes.images).float()).abs().mean()
    assert 0 < difference < 64  # refined, yet the same eyes
