"""Built-in components: the refinekit.plugins.contracts contracts at the paper's settings, plus the paper's numbers."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from refinekit.components.consistency import TaskConsistency
from refinekit.components.regularizers import SelfRegularizer, edge_weights
from refinekit.data.image_files import write_image
from refinekit.errors import CheckpointError, ConfigError
from refinekit.plugins.contracts import DatasetContract, DiscriminatorContract, RefinerContract, RegularizerContract
from refinekit.plugins.registry import create_discriminator, create_refiner, create_regularizer
from refinekit.runtime.chunks import batch_independent
from refinekit.training.losses import REAL, REFINED
from refinekit.weights.files import export_refiner, load_refiner

TIMM_MODEL = "test_resnet"  # timm's 0.37M-parameter test network: real timm code, milliseconds to run


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection (a weight download) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# -- contracts ------------------------------------------------------------------


class TestSimganResnetContract(RefinerContract):
    name = "simgan-resnet"  # the paper's width and depth
    size = (17, 27)  # odd sizes; the paper's 35x55 costs 4x more and tests nothing else


class TestSimganResnetRGBContract(RefinerContract):
    name = "simgan-resnet"
    options = {"features": 16, "blocks": 2}
    channels = 3
    size = (17, 23)


class TestTimmUNetContract(RefinerContract):
    name = "timm-unet"
    options = {"encoder": TIMM_MODEL, "decoder_features": 16}
    channels = 3
    size = (32, 32)

    def test_gradients_reach_every_parameter(self) -> None:
        # timm ResNets zero the last batch-norm weight of every block (zero_init_last), so
        # the branch inside a block gets exactly zero gradient until that weight moves:
        # one optimiser step first, then every parameter must receive gradient.
        refiner = self.build()
        torch.optim.SGD(refiner.parameters(), lr=0.1).zero_grad()
        refiner(self.make_input()).square().mean().backward()
        torch.optim.SGD(refiner.parameters(), lr=0.1).step()
        refiner.zero_grad()
        refiner(self.make_input()).square().mean().backward()
        missing = [n for n, p in refiner.named_parameters() if p.grad is None or not p.grad.abs().sum()]
        assert not missing, f"no gradient reaches {missing[:5]}"


class TestLocalPatchContract(DiscriminatorContract):
    name = "local-patch"


class TestGlobalContract(DiscriminatorContract):
    name = "global"


class TestMultiScaleContract(DiscriminatorContract):
    name = "multi-scale"


class TestL1Contract(RegularizerContract):
    name = "l1"


class TestFeatureIdentityContract(RegularizerContract):
    name = "feature"
    options = {"psi": "identity"}


class TestFeatureChannelMeanContract(RegularizerContract):
    name = "feature"
    options = {"psi": "channel-mean"}
    channels = 3


class TestFeatureLowPassContract(RegularizerContract):
    name = "feature"
    options = {"psi": "low-pass"}


class TestFeatureSobelContract(RegularizerContract):
    name = "feature"
    options = {"psi": "sobel"}
    channels = 3


class TestFeatureSobelEdgeLeashContract(RegularizerContract):
    name = "feature"
    options = {"psi": "sobel", "edge_weight": 2.0}
    channels = 3


class TestFeatureTimmContract(RegularizerContract):
    name = "feature"
    options = {"psi": "timm", "model": TIMM_MODEL}


class TestImageFolderContract(DatasetContract):
    name = "image-folder"
    channels = 3
    size = (12, 16)

    def path(self, tmp_path: Path) -> str:
        folder = tmp_path / "folder"
        if not folder.exists():
            folder.mkdir()
            rng = np.random.default_rng(0)
            for i in range(6):
                write_image(folder / f"{i:02d}.png", rng.integers(0, 256, (3, 24, 32), dtype=np.uint8))
                (folder / f"{i:02d}.json").write_text(json.dumps({"gaze": [i, -i], "label": i}))
        return str(folder)

    def test_sidecars_become_aligned_annotations(self, tmp_path: Path) -> None:
        images = self.load(tmp_path, limit=4)
        assert images.annotations["gaze"].tolist() == [[0, 0], [1, -1], [2, -2], [3, -3]]
        assert images.annotations["label"].tolist() == [0, 1, 2, 3]


# -- the paper's networks ----------------------------------------------------------


def test_simgan_resnet_has_the_papers_size() -> None:
    refiner = create_refiner("simgan-resnet", channels=1)
    assert sum(p.numel() for p in refiner.parameters()) == 296_129  # conv 64, 4 ResNet blocks, 1x1 conv


@pytest.mark.parametrize("size", [(35, 55), (7, 9), (1, 1), (33, 17)])
def test_simgan_resnet_keeps_any_size(size) -> None:
    refiner = create_refiner("simgan-resnet", channels=1, features=8, blocks=1)
    assert refiner(torch.zeros(1, 1, *size)).shape == (1, 1, *size)


def test_simgan_resnet_is_local() -> None:
    # No pooling or striding: nine 3x3 convolutions, so an output pixel sees at most 9 pixels each way.
    refiner = create_refiner("simgan-resnet", channels=1).eval()
    x = torch.zeros(1, 1, 35, 55, requires_grad=True)
    refiner(x)[0, 0, 17, 27].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    assert rows.min() >= 17 - 9 and rows.max() <= 17 + 9 and cols.min() >= 27 - 9 and cols.max() <= 27 + 9


@pytest.mark.parametrize(("padding", "framed"), [("zeros", True), ("replicate", False), ("reflect", False)])
def test_only_zero_padding_lets_the_refiner_paint_a_frame(padding: str, framed: bool) -> None:
    """On a flat image a refiner whose convolutions continue the edge gives a flat output, border included;
    with zero padding every layer sees where the image ends, and the border comes out different."""
    torch.manual_seed(0)
    refiner = create_refiner("simgan-resnet", channels=1, padding=padding)
    with torch.no_grad():
        out = refiner(torch.full((1, 1, 35, 55), 0.3))[0, 0]
    assert (float((out - out[17, 27]).abs().max()) > 1e-3) == framed


def test_a_residual_refiner_starts_as_the_identity_and_learns_a_change_within_the_image_range() -> None:
    torch.manual_seed(0)
    refiner = create_refiner("simgan-resnet", channels=1, features=8, blocks=1, residual=True)
    images = torch.rand(2, 1, 9, 11) * 2 - 1
    assert torch.equal(refiner(images), images)
    optimiser = torch.optim.SGD(refiner.parameters(), lr=0.5)
    for _ in range(2):  # the first step moves only the last layer, which starts at zero
        optimiser.zero_grad()
        (refiner(images) - 1.0).abs().mean().backward()  # pull everything towards white
        optimiser.step()
    with torch.no_grad():
        out = refiner(images)
    assert float((out - images).mean()) > 0 and float(out.max()) <= 1.0


def test_a_noise_refiner_starts_deterministic_and_learns_to_use_its_noise() -> None:
    torch.manual_seed(0)
    refiner = create_refiner("simgan-resnet", channels=1, features=8, blocks=2, noise=True)
    images = torch.rand(4, 1, 9, 11) * 2 - 1
    assert torch.equal(refiner(images), refiner(images))  # the noise's scales start at zero
    optimiser = torch.optim.SGD(refiner.parameters(), lr=0.5)
    optimiser.zero_grad()
    (refiner(images) - torch.randn_like(images)).pow(2).mean().backward()  # a target that differs per draw
    optimiser.step()
    assert float(refiner.noise_scales.detach().abs().sum()) > 0
    assert not torch.equal(refiner(images), refiner(images))


def test_a_noise_refiner_in_eval_mode_refines_each_image_alike_in_any_batch_and_rng_state() -> None:
    refiner = create_refiner("simgan-resnet", channels=1, features=8, blocks=2, noise=True).eval()
    with torch.no_grad():
        refiner.noise_scales.fill_(1.0)
        images = torch.rand(3, 1, 9, 11) * 2 - 1
        torch.manual_seed(1)
        alone = refiner(images[2:])
        torch.manual_seed(2)
        batched = refiner(images)
        refiner.train()
        drawn = refiner(images)
    assert torch.allclose(batched[2], alone[0], atol=1e-6)  # not bit for bit: a batch may take another kernel
    assert not torch.equal(batched[0], batched[1])  # another image, other noise: not one pattern for all
    assert not torch.equal(drawn, batched)  # training draws fresh noise


def test_a_noise_refiner_exports_and_loads_its_noise_scales(tmp_path: Path) -> None:
    refiner = create_refiner("simgan-resnet", channels=1, features=8, blocks=2, noise=True)
    with torch.no_grad():
        refiner.noise_scales.uniform_(0.5, 1.0)
    path = tmp_path / "refiner.safetensors"
    export_refiner(refiner, path, "simgan-resnet", {"features": 8, "blocks": 2, "noise": True}, 1, (9, 11))
    loaded = load_refiner(path)
    images = torch.rand(2, 1, 9, 11) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(images), refiner.eval()(images))


def test_unknown_refiner_padding_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(
        ConfigError, match=r"refiner.options.padding is 'circular'; use one of: zeros, replicate, reflect"
    ):
        create_refiner("simgan-resnet", channels=1, padding="circular")


def test_local_patch_gives_a_9x14_grid_at_35x55() -> None:
    d = create_discriminator("local-patch", channels=1)
    assert d(torch.zeros(3, 1, 35, 55)).shape == (3, 2, 9, 14)
    assert create_discriminator("global", channels=1)(torch.zeros(3, 1, 35, 55)).shape == (3, 2, 1, 1)


def test_multi_scale_stacks_one_grid_per_scale_at_the_local_grid_size() -> None:
    d = create_discriminator("multi-scale", channels=1, scales=[1, 2])
    assert d(torch.zeros(3, 1, 35, 55)).shape == (3, 2, 18, 14)


def test_multi_scale_coarse_patches_see_across_the_eye_and_local_ones_do_not() -> None:
    torch.manual_seed(0)
    d = create_discriminator("multi-scale", channels=1, scales=[1, 4]).eval()
    image = torch.zeros(1, 1, 35, 55, requires_grad=True)
    d(image)[0, :, 4, 7].sum().backward()  # the centre patch of the full-scale grid
    local_reach = image.grad[0, 0].abs() > 0
    image.grad = None
    d(image)[0, :, 9 + 4, 7].sum().backward()  # the same position of the pooled-by-4 grid
    coarse_reach = image.grad[0, 0].abs() > 0
    assert not local_reach[:, 0].any() and not local_reach[:, -1].any()  # no eye corner
    assert coarse_reach[:, :2].any() and coarse_reach[:, -2:].any()  # both image edges


@pytest.mark.parametrize("scales", [[], [0], [1, 2.5], [True]])
def test_multi_scale_refuses_scales_that_are_not_pooling_factors(scales: list) -> None:
    with pytest.raises(ConfigError, match=r"discriminator\.options\.scales must be .* got"):
        create_discriminator("multi-scale", channels=1, scales=scales)


def test_discriminator_channel_convention() -> None:
    assert (REFINED, REAL) == (0, 1)


# -- feature-space self-regularisation --------------------------------------------


def test_feature_psi_differs_by_what_it_keeps() -> None:
    synthetic = torch.zeros(1, 1, 16, 16)
    brighter = synthetic + 0.5  # same edges, other intensity
    assert float(create_regularizer("feature", psi="sobel")(brighter, synthetic)) == 0.0
    assert float(create_regularizer("feature", psi="low-pass")(brighter, synthetic)) == pytest.approx(0.5)
    noise = synthetic + 0.2 * torch.randn_like(synthetic).sign()  # fine texture, mean kept
    assert float(create_regularizer("feature", psi="low-pass")(noise, synthetic)) < 0.1
    assert float(create_regularizer("l1")(noise, synthetic)) == pytest.approx(0.2)


def test_unknown_psi_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="regularizer.options.psi: unknown feature map 'sobol'.*'sobel'"):
        create_regularizer("feature", psi="sobol")


def square(size: int = 24) -> torch.Tensor:
    """A bright square on black: edges on its rim, flat inside and outside."""
    image = torch.zeros(1, 1, size, size)
    image[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
    return image


def test_edge_weights_have_mean_one_and_peak_on_the_synthetic_edges() -> None:
    synthetic = square()
    weights = edge_weights(synthetic, strength=2.0)
    assert float(weights.mean()) == pytest.approx(1.0)
    rim, inside, outside = weights[0, 0, 6, 12], weights[0, 0, 12, 12], weights[0, 0, 1, 1]
    assert rim > 2 * max(inside, outside)
    assert torch.allclose(edge_weights(torch.zeros(1, 1, 8, 8), 2.0), torch.ones(1, 1, 8, 8))  # no edges: even


def test_a_negative_edge_weight_holds_flat_regions_harder_than_edges() -> None:
    weights = edge_weights(square(), strength=-2.0)
    assert float(weights.mean()) == pytest.approx(1.0)
    rim, inside, outside = weights[0, 0, 6, 12], weights[0, 0, 12, 12], weights[0, 0, 1, 1]
    assert min(inside, outside) > 2 * rim


def test_edge_leash_charges_a_change_on_an_edge_more_than_the_same_change_on_flat_ground() -> None:
    synthetic = square()
    on_rim, on_flat = synthetic.clone(), synthetic.clone()
    on_rim[..., 6, 10:14] += 0.5
    on_flat[..., 12, 10:14] += 0.5
    even, edges = create_regularizer("feature"), create_regularizer("feature", edge_weight=2.0)
    assert float(even(on_rim, synthetic)) == pytest.approx(float(even(on_flat, synthetic)))
    assert float(edges(on_rim, synthetic)) > 2 * float(edges(on_flat, synthetic))
    assert float(create_regularizer("feature", edge_weight=0.0)(on_rim, synthetic)) == float(even(on_rim, synthetic))


def test_edge_leash_gradient_is_the_weighted_sign_of_the_change() -> None:
    synthetic = square().requires_grad_(True)
    refined = (square() + 0.1 * torch.randn(1, 1, 24, 24, generator=torch.Generator().manual_seed(0))).requires_grad_(
        True
    )
    create_regularizer("feature", edge_weight=2.0)(refined, synthetic).backward()
    weights = edge_weights(square(), 2.0)
    expected = (refined - synthetic).sign().detach() * weights / refined.numel()
    assert torch.allclose(refined.grad, expected)
    assert torch.allclose(synthetic.grad, -expected)  # the weights themselves are constants, not differentiated


@pytest.mark.parametrize("value", ["2", True, float("nan"), float("inf"), None])
def test_edge_weight_must_be_a_finite_number(value) -> None:
    with pytest.raises(ConfigError, match=r"regularizer\.options\.edge_weight must be a finite number .* got"):
        create_regularizer("feature", edge_weight=value)


def test_edge_leash_refuses_timm_features() -> None:
    with pytest.raises(ConfigError, match=r"regularizer\.options\.edge_weight: the timm feature map has no pixel grid"):
        create_regularizer("feature", psi="timm", model=TIMM_MODEL, edge_weight=1.0)


class LeftHalfReader(torch.nn.Module):
    """A 'task network' that reads the mean of the left half of the image and nothing else; it has dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.scale * images[..., : images.shape[-1] // 2].mean(dim=(1, 2, 3))[:, None])


def test_task_consistency_charges_a_change_the_network_reads_and_not_one_it_ignores() -> None:
    consistency = TaskConsistency(LeftHalfReader(), SelfRegularizer(psi="identity"), weight=10.0)
    synthetic = torch.zeros(2, 1, 4, 8)
    left, right = synthetic.clone(), synthetic.clone()
    left[..., :4] += 0.5
    right[..., 4:] += 0.5
    leash = SelfRegularizer(psi="identity")
    assert float(consistency(right, synthetic)) == pytest.approx(float(leash(right, synthetic)))  # leash alone
    assert float(consistency(left, synthetic)) == pytest.approx(float(leash(left, synthetic)) + 10 * 0.5)


def test_task_consistency_trains_the_refined_image_and_never_the_frozen_network() -> None:
    reader = LeftHalfReader()
    consistency = TaskConsistency(reader, SelfRegularizer(psi="identity"), weight=1.0).train()
    assert not reader.training  # dropout off: the network reads the same way every step
    refined = torch.full((1, 1, 2, 4), 0.25, requires_grad=True)
    consistency(refined, torch.zeros(1, 1, 2, 4)).backward()
    assert reader.scale.grad is None and not reader.scale.requires_grad
    # d/dx of |mean(left half)| is 1/4 on each left pixel, plus the L1 leash's 1/8 on every pixel
    assert torch.allclose(refined.grad[..., :2], torch.full((1, 1, 2, 2), 1 / 4 + 1 / 8))
    assert torch.allclose(refined.grad[..., 2:], torch.full((1, 1, 2, 2), 1 / 8))


def test_task_consistency_runs_in_chunks_exactly_when_its_leash_does() -> None:
    batch_norm_leash = torch.nn.Sequential(torch.nn.BatchNorm2d(1))
    assert batch_independent(TaskConsistency(torch.nn.BatchNorm2d(1), SelfRegularizer(), 1.0))  # frozen: eval mode
    assert not batch_independent(TaskConsistency(LeftHalfReader(), batch_norm_leash, 1.0))


@pytest.mark.parametrize("value", ["10", True, -1.0, float("nan"), None])
def test_task_consistency_weight_must_be_a_number_of_at_least_zero(value) -> None:
    with pytest.raises(ConfigError, match=r"regularizer\.options\.gaze_weight must be a finite number >= 0 .* got"):
        TaskConsistency(LeftHalfReader(), SelfRegularizer(), value, name="gaze_weight")


def timm_weights(path: Path, channels: int, fill: float) -> dict[str, torch.Tensor]:
    """A full timm model's state dict (classifier head included) with every float tensor set to ``fill``."""
    import timm

    state = timm.create_model(TIMM_MODEL, pretrained=False, in_chans=channels).state_dict()
    state = {k: (torch.full_like(v, fill) if v.is_floating_point() else v) for k, v in state.items()}
    save_file(state, str(path))
    return state


def test_feature_timm_loads_local_weights_and_never_downloads(tmp_path, no_network) -> None:
    path = tmp_path / "psi.safetensors"
    timm_weights(path, channels=1, fill=0.01)
    reg = create_regularizer("feature", psi="timm", model=TIMM_MODEL, weights=str(path))
    loaded = reg.features.net.state_dict()
    assert all(torch.all(v == 0.01) for k, v in loaded.items() if v.is_floating_point() and "num_batches" not in k)
    reg.train()  # the trainer calls .train(): psi stays frozen, batch-norm statistics do not move
    assert not reg.features.training and not any(p.requires_grad for p in reg.parameters())
    before = {k: v.clone() for k, v in reg.features.net.state_dict().items()}
    reg(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32))
    assert all(torch.equal(before[k], v) for k, v in reg.features.net.state_dict().items())


def test_feature_timm_refuses_weights_of_another_network(tmp_path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(1)}, str(path))
    with pytest.raises(
        CheckpointError, match=r"other.safetensors: holds no weights for .* psi's timm model 'test_resnet'"
    ):
        create_regularizer("feature", psi="timm", model=TIMM_MODEL, weights=str(path))


def test_timm_unet_starts_from_local_weights_and_exports_without_them(tmp_path, no_network) -> None:
    path = tmp_path / "encoder.safetensors"
    timm_weights(path, channels=3, fill=0.02)
    options = {"encoder": TIMM_MODEL, "decoder_features": 8, "weights": str(path)}
    refiner = create_refiner("timm-unet", channels=3, **options).eval()
    assert torch.all(refiner.encoder.state_dict()["conv1.0.weight"] == 0.02)
    export_refiner(refiner, tmp_path / "refiner.safetensors", "timm-unet", options, 3, (32, 32))
    path.unlink()  # the starting weights are gone; the export holds everything
    loaded = load_refiner(tmp_path / "refiner.safetensors")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(refiner(x), loaded(x))
