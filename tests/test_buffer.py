"""The image history buffer (paper section 2.3): D keeps seeing old refined images."""

from __future__ import annotations

import pytest
import torch

from refinekit.data.image_set import to_float, to_uint8
from refinekit.training.history_buffer import HistoryBuffer

SHAPE = (1, 3, 4)


def constant_images(levels: list[int]) -> torch.Tensor:
    """One float image per uint8 level, each filled with that level (so a stored image tells its origin)."""
    return to_float(torch.tensor(levels, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, *SHAPE).contiguous())


def levels_of(images: torch.Tensor) -> list[int]:
    """The level of each image, stored (uint8) or sampled (float in [-1, 1])."""
    if images.is_floating_point():
        images = to_uint8(images)
    return [int(v) for v in images.reshape(len(images), -1)[:, 0]]


def test_fills_empty_slots_first_then_replaces_random_slots() -> None:
    g = torch.Generator().manual_seed(0)
    buf = HistoryBuffer(6, SHAPE, torch.device("cpu"))
    buf.push(constant_images([1, 2, 3, 4]), g)
    assert len(buf) == 4 and levels_of(buf.images[:4]) == [1, 2, 3, 4]
    buf.push(constant_images([5, 6, 7]), g)  # two free slots, then one random replacement
    assert len(buf) == 6 and levels_of(buf.images)[4] == 5
    assert sorted(levels_of(buf.images)).count(7) == 1 and 6 in levels_of(buf.images)
    before = levels_of(buf.images)
    buf.push(constant_images([8, 9]), g)
    after = levels_of(buf.images)
    changed = [i for i in range(6) if before[i] != after[i]]
    assert len(changed) == 2 and sorted(after[i] for i in changed) == [8, 9]


def test_samples_include_images_pushed_many_steps_ago() -> None:
    g = torch.Generator().manual_seed(0)
    buf = HistoryBuffer(64, SHAPE, torch.device("cpu"))  # B = 8 batches of 8
    for step in range(30):
        buf.push(constant_images([step] * 8), g)
    ages = [29 - level for level in levels_of(buf.sample(32, g))]
    # random replacement keeps an image for 8 pushes on average; a FIFO or the current batch would give ages < 8
    assert max(ages) >= 10 and sum(a >= 5 for a in ages) >= 8
    assert len(set(ages)) > 5


def test_stores_uint8_and_gives_back_exactly_what_8_bit_images_hold() -> None:
    g = torch.Generator().manual_seed(0)
    buf = HistoryBuffer(4, SHAPE, torch.device("cpu"))
    assert buf.images.dtype == torch.uint8 and buf.images.shape == (4, *SHAPE)
    images = constant_images([0, 17, 128, 255])
    buf.push(images, g)
    assert torch.equal(to_float(buf.images), images)
    out = buf.sample(4, g)
    assert out.dtype == torch.float32 and out.min() >= -1 and out.max() <= 1


def test_sampling_more_than_stored_draws_with_replacement_and_empty_refuses() -> None:
    g = torch.Generator().manual_seed(0)
    buf = HistoryBuffer(8, SHAPE, torch.device("cpu"))
    with pytest.raises(RuntimeError, match="history buffer is empty"):
        buf.sample(2, g)
    buf.push(constant_images([3, 4]), g)
    out = buf.sample(5, g)
    assert out.shape == (5, *SHAPE) and set(levels_of(out)) <= {3, 4}
    assert sorted(levels_of(buf.sample(2, g))) == [3, 4]  # without replacement


def test_state_round_trip_continues_identically() -> None:
    g = torch.Generator().manual_seed(0)
    buf = HistoryBuffer(10, SHAPE, torch.device("cpu"))
    for step in range(4):
        buf.push(constant_images([10 * step + i for i in range(4)]), g)
    state, rng = buf.state(), g.get_state()
    assert state["images"].dtype == torch.uint8 and int(state["size"]) == 10

    restored = HistoryBuffer(10, SHAPE, torch.device("cpu"))
    restored.load_state(state)
    g2 = torch.Generator()
    g2.set_state(rng)
    buf.push(constant_images([200, 201]), g)
    restored.push(constant_images([200, 201]), g2)
    assert torch.equal(buf.images, restored.images) and torch.equal(buf.sample(6, g), restored.sample(6, g2))


def test_partly_filled_state_round_trip_and_capacity_check() -> None:
    g = torch.Generator().manual_seed(0)
    buf = HistoryBuffer(10, SHAPE, torch.device("cpu"))
    buf.push(constant_images([1, 2, 3]), g)
    restored = HistoryBuffer(10, SHAPE, torch.device("cpu"))
    restored.load_state(buf.state())
    assert len(restored) == 3 and torch.equal(restored.images, buf.images)
    with pytest.raises(ValueError, match="checkpoint buffer holds 3 images but buffer_size is 2"):
        HistoryBuffer(2, SHAPE, torch.device("cpu")).load_state(buf.state())
