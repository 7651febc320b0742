"""Cache-sized chunks on a CPU: the chunk size rule, and that chunking never changes a result."""

from __future__ import annotations

import torch

from refinekit.plugins.registry import create_refiner
from refinekit.refine.pipeline import refine_batch
from refinekit.runtime.chunks import CPU_CHUNK_PIXELS, forward_in_chunks, images_per_chunk

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_chunks_are_the_largest_power_of_two_in_the_pixel_budget_on_cpu_and_the_whole_batch_elsewhere() -> None:
    for height, width in ((35, 55), (28, 28), (64, 64), (100, 7)):
        chunk = images_per_chunk(CPU, height, width, 10_000)
        assert chunk & (chunk - 1) == 0, chunk  # a power of two
        assert chunk * height * width <= CPU_CHUNK_PIXELS < 2 * chunk * height * width
    assert images_per_chunk(CPU, 35, 55, 12) == 12  # a small batch runs at once
    assert images_per_chunk(CPU, 512, 512, 8) == 1  # never zero, however large the images
    assert images_per_chunk(CUDA, 35, 55, 512) == 512


def test_forward_in_chunks_equals_the_whole_batch_forward() -> None:
    torch.manual_seed(0)
    refiner = create_refiner("simgan-resnet", channels=1, features=8, blocks=1).eval()
    x = torch.randn(10, 1, 12, 14)
    calls = []
    refiner.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    with torch.no_grad():
        whole = refiner(x)
        chunked = forward_in_chunks(refiner, x, 4)
    assert calls == [10, 4, 4, 2]
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


def test_refine_batch_chunks_a_large_batch_and_returns_what_one_image_at_a_time_gives() -> None:
    torch.manual_seed(0)
    refiner = create_refiner("simgan-resnet", channels=1, features=8, blocks=1)
    images = torch.randint(0, 256, (2 * images_per_chunk(CPU, 35, 55, 10_000) + 3, 1, 35, 55), dtype=torch.uint8)
    calls = []
    refiner.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    refined = refine_batch(refiner, images)
    assert len(calls) == 3 and sum(calls) == len(images)
    one_by_one = torch.cat([refine_batch(refiner, image[None]) for image in images[:5]])
    # uint8 rounding of float results that differ in the last bit can move a pixel by one level
    assert (refined[:5].int() - one_by_one.int()).abs().max() <= 1
