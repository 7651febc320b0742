"""refine_batch and load_refiner as the Python API hands them out: ranges, dtypes, layouts, no autograd graph."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from refinekit import load_refiner
from refinekit.components.refiners import SimGANResNet
from refinekit.errors import DataError
from refinekit.refine.pipeline import open_refiner, refine_batch
from tests.conftest import export_tiny_refiner

SIZE = (35, 55)


def test_load_refiner_is_inference_ready(refiner_file: Path) -> None:
    refiner = load_refiner(refiner_file)
    assert not refiner.training
    assert not any(p.requires_grad for p in refiner.parameters())
    out = refiner(torch.rand(2, 1, *SIZE) * 2 - 1)
    assert out.grad_fn is None and not out.requires_grad, "calling a loaded refiner builds no autograd graph"
    refiner.requires_grad_(True)  # fine-tuning stays possible
    assert refiner(torch.zeros(1, 1, *SIZE)).requires_grad


def test_a_loaded_refiner_called_on_uint8_says_to_use_refine_batch(refiner_file: Path) -> None:
    refiner = load_refiner(refiner_file)
    images = torch.randint(0, 256, (2, 1, *SIZE), dtype=torch.uint8)
    with pytest.raises(DataError, match=r"float images in \[-1, 1\].*torch\.uint8.*refine_batch"):
        refiner(images)
    refined = refine_batch(refiner, images)
    assert refined.dtype == torch.uint8 and refined.shape == images.shape


def test_refine_batch_reads_float_as_zero_to_one_by_default_and_refuses_contradicting_data(refiner_file: Path) -> None:
    refiner = open_refiner(refiner_file)
    uint8 = torch.randint(0, 256, (3, 1, *SIZE), dtype=torch.uint8)
    from_uint8 = refine_batch(refiner, uint8).float() / 255
    from_float = refine_batch(refiner, uint8.float() / 255)  # torchvision's ToTensor range, no value_range given
    assert (from_float - from_uint8).abs().max() < 1 / 255 + 1e-6
    from_minus_one = refine_batch(refiner, uint8.float() / 127.5 - 1, value_range=(-1.0, 1.0))
    assert ((from_minus_one + 1) / 2 - from_uint8).abs().max() < 1 / 255 + 1e-6
    with pytest.raises(DataError, match=r"\[0, 255\].*value_range=\(0\.0, 255\.0\).*would clamp"):
        refine_batch(refiner, uint8.float())
    with pytest.raises(DataError, match=r"outside value_range \(0\.0, 1\.0\) \(the default"):
        refine_batch(refiner, uint8.float() / 127.5 - 1)
    with pytest.raises(DataError, match="NaN"):
        refine_batch(refiner, torch.full((1, 1, *SIZE), float("nan")))


def test_refine_batch_names_channels_last_batches_and_unnamed_refiners_readably(refiner_file: Path) -> None:
    refiner = open_refiner(refiner_file)
    with pytest.raises(DataError, match=r"looks like \(B, H, W, C\).*permute\(0, 3, 1, 2\)"):
        refine_batch(refiner, torch.zeros(2, *SIZE, 1, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"^refiner .*refiner\.safetensors refines 1-channel images"):
        refine_batch(refiner, torch.zeros(2, 3, *SIZE, dtype=torch.uint8))
    plain = SimGANResNet(1, 8, 1)
    plain.refinekit_channels = 1
    with pytest.raises(DataError, match=r"^the SimGANResNet refiner refines 1-channel images, but"):
        refine_batch(plain, torch.zeros(2, 3, *SIZE, dtype=torch.uint8))


def test_exported_refiners_honour_the_umask_like_ordinary_files(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        path = tmp_path / "refiner.safetensors"
        export_tiny_refiner(path)
        assert os.stat(path).st_mode & 0o777 == 0o644
        os.umask(0o077)
        export_tiny_refiner(path)
        assert os.stat(path).st_mode & 0o777 == 0o600
    finally:
        os.umask(old)
