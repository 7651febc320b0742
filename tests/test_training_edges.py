"""Training at the edges: chunking only for batch-independent networks; each network's batch-norm statistics its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from refinekit.components.discriminators import LocalPatchDiscriminator
from refinekit.plugins.hookspecs import hookimpl
from refinekit.runtime.chunks import batch_independent, images_per_chunk
from refinekit.training.setup import prepare, resolve_config

# 64x64 images: a CPU chunk is 8 images, half the batch of 16, so chunking would apply
BIG = ["image.height=64", "image.width=64", "batch_size=16", "buffer_size=16", "device='cpu'"]
UNET = 'refiner={name="timm-unet", options={encoder="resnet10t", decoder_features=8}}'


class BatchNormDiscriminator(LocalPatchDiscriminator):
    def __init__(self, channels: int = 1) -> None:
        super().__init__(channels)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x):
        return super().forward(self.norm(x))


class BatchNormParts:
    @staticmethod
    @hookimpl
    def register_discriminators(register) -> None:
        register("bn-patch", BatchNormDiscriminator, "local-patch behind a batch norm")


@pytest.fixture
def bn_domain(tiny_domain):
    tiny_domain.register_plugin(BatchNormParts, "bn-parts")
    yield
    tiny_domain.unregister_plugin("bn-parts")


def _trainer(out: Path, *overrides: str, refiner: str = UNET):
    return prepare(resolve_config("tiny", overrides=[*BIG, refiner, *overrides]), out)


def _buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.named_buffers()}


def test_timm_unet_is_not_chunked_and_its_update_is_the_whole_batchs(tiny_domain, tmp_path: Path) -> None:
    assert images_per_chunk(torch.device("cpu"), 64, 64, 16) == 8
    default = _trainer(tmp_path / "a")
    assert not batch_independent(default.refiner) and default.micro_batch == 16
    with pytest.warns(UserWarning, match="micro_batch=4 is ignored: the refiner use"):
        asked = _trainer(tmp_path / "b", "micro_batch=4")
    assert asked.micro_batch == 16
    for trainer in (default, asked):
        trainer.refiner_step(adversarial=False)
    for (name, a), b in zip(default.refiner.state_dict().items(), asked.refiner.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_batch_independent_refiner_is_still_chunked(tiny_domain, tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "a", refiner='refiner={name="simgan-resnet", options={features=8, blocks=1}}')
    assert batch_independent(trainer.refiner) and trainer.micro_batch == 8


def test_the_other_networks_batch_norm_statistics_do_not_move(bn_domain, tmp_path: Path) -> None:
    trainer = _trainer(tmp_path / "a", "discriminator.name=bn-patch")
    d_before = _buffers(trainer.discriminator)
    trainer.refiner_step(adversarial=True)  # runs D, in training mode, on refined images
    assert all(torch.equal(d_before[k], v) for k, v in trainer.discriminator.named_buffers())
    r_before = _buffers(trainer.refiner)
    trainer.discriminator_step()  # runs R, in training mode, on synthetic images
    assert all(torch.equal(r_before[k], v) for k, v in trainer.refiner.named_buffers())
    # each still learns its own statistics in its own step
    trainer.refiner_step(adversarial=True)
    assert any(not torch.equal(r_before[k], v) for k, v in trainer.refiner.named_buffers())
    d_before = _buffers(trainer.discriminator)
    trainer.discriminator_step()
    assert any(not torch.equal(d_before[k], v) for k, v in trainer.discriminator.named_buffers())


def test_the_stated_torch_minimum_covers_the_apis_the_trainer_uses() -> None:
    """torch 2.4 added fused Adam and SGD on CPU; 2.3 added torch.amp.GradScaler for any device."""
    import re
    import tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    (torch_pin,) = [d for d in dependencies if re.match(r"torch\b", d)]
    minimum = tuple(int(p) for p in re.search(r">=\s*([\d.]+)", torch_pin).group(1).split("."))
    assert minimum >= (2, 4), torch_pin
    weight = nn.Parameter(torch.zeros(2))
    torch.optim.Adam([weight], fused=True).step()
    torch.optim.SGD([weight], lr=0.1, fused=True).step()
    torch.amp.GradScaler("cpu")
