"""The procedural eye simulator: shapes, determinism, label consistency, and the iris following gaze."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from refinekit_eyes import simulator
from refinekit_eyes.gaze import pitch_yaw_to_vector, vector_to_pitch_yaw
from refinekit_eyes.simulator import (
    CAMERA_SIZE,
    PREVIOUS_VERSION,
    RELIEF_VERSION,
    EyeParams,
    SimulatorRanges,
    equalize_histograms,
    range_overrides,
    render,
    sample_params,
    simulate_eyes,
    value_noise,
)

from refinekit.data.image_set import resize_uint8
from refinekit.training.setup import resolve_config

SIZE = (35, 55)


def test_shapes_dtypes_and_ranges() -> None:
    images, labels = simulate_eyes(16, torch.Generator().manual_seed(0), SIZE)
    assert images.shape == (16, *SIZE) and images.dtype == torch.uint8
    assert labels["gaze"].shape == (16, 3) and labels["pitch_yaw"].shape == (16, 2)
    assert labels["iris_centre"].shape == (16, 2) and labels["landmarks"].shape == (16, 48, 2)
    assert all(v.dtype == torch.float32 for v in labels.values())
    assert int(images.min()) == 0 and int(images.max()) == 255  # equalised, like the real patches


def test_other_sizes_render() -> None:
    images, _ = simulate_eyes(2, torch.Generator().manual_seed(0), (36, 60))
    assert images.shape == (2, 36, 60)


def test_same_seed_same_images_and_chunking_does_not_matter() -> None:
    a, la = simulate_eyes(10, torch.Generator().manual_seed(7))
    b, lb = simulate_eyes(10, torch.Generator().manual_seed(7), chunk=3)
    c, _ = simulate_eyes(10, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and all(torch.equal(la[k], lb[k]) for k in la)
    assert not torch.equal(a, c)


def test_labels_are_consistent() -> None:
    _, labels = simulate_eyes(64, torch.Generator().manual_seed(1))
    gaze, pitch_yaw = labels["gaze"].double(), labels["pitch_yaw"].double()
    torch.testing.assert_close(torch.linalg.vector_norm(gaze, dim=1), torch.ones(64, dtype=torch.float64))
    torch.testing.assert_close(pitch_yaw_to_vector(pitch_yaw), gaze, atol=1e-6, rtol=0)
    torch.testing.assert_close(vector_to_pitch_yaw(gaze), pitch_yaw, atol=1e-6, rtol=0)
    ranges = SimulatorRanges()
    assert pitch_yaw[:, 0].abs().max() <= math.radians(max(map(abs, ranges.pitch))) + 1e-6
    # the iris contour is centred on the iris centre
    torch.testing.assert_close(labels["landmarks"][:, 16:].mean(1), labels["iris_centre"], atol=1e-4, rtol=0)


def test_ranges_are_honoured() -> None:
    ranges = SimulatorRanges(pitch=(10.0, 10.0), yaw=(-5.0, -5.0))
    _, labels = simulate_eyes(8, torch.Generator().manual_seed(0), ranges=ranges)
    torch.testing.assert_close(labels["pitch_yaw"], torch.deg2rad(torch.tensor([[10.0, -5.0]])).expand(8, 2))


def _steady_eye(pitch_deg: list[float], yaw_deg: list[float]) -> EyeParams:
    """One wide-open, unrotated eye whose only dark part is the iris, under the given gazes, seen sharply."""
    n = len(pitch_deg)
    base = sample_params(torch.Generator().manual_seed(0), 1)
    fixed = {f.name: getattr(base, f.name).expand(n).clone() for f in dataclasses.fields(base)}
    fixed.update(
        pitch=torch.deg2rad(torch.tensor(pitch_deg)),
        yaw=torch.deg2rad(torch.tensor(yaw_deg)),
        roll=torch.zeros(n),
        upper_height=torch.full((n,), 9.0),
        lower_height=torch.full((n,), 6.5),
        skin_tone=torch.full((n,), 0.65),
        lash_darkness=torch.full((n,), 0.2),
        brow_darkness=torch.zeros(n),
        iris_brightness=torch.full((n,), 0.08),
        lower_fold=torch.zeros(n),  # the only dark part is the iris
        wrinkles=torch.zeros(n),
        side_shadow=torch.zeros(n),
        # a clean camera: the geometry is under test, not blur, noise or saturation
        blur=torch.zeros(n),
        noise=torch.zeros(n),
        exposure=torch.ones(n),
        texture=torch.zeros(n),
    )
    return EyeParams(**fixed)


def _dark_centroid(images: torch.Tensor) -> torch.Tensor:
    """Darkness-weighted centroid (x, y) of the pixels darker than 0.25: the visible iris and pupil."""
    weight = (0.25 - images).clamp(min=0)
    ys = torch.arange(images.shape[1], dtype=torch.float32)[None, :, None]
    xs = torch.arange(images.shape[2], dtype=torch.float32)[None, None, :]
    total = weight.sum((1, 2))
    return torch.stack(((weight * xs).sum((1, 2)) / total, (weight * ys).sum((1, 2)) / total), dim=1)


def test_rendered_iris_moves_left_monotonically_as_yaw_grows() -> None:
    yaws = [-30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0]
    images, labels = render(_steady_eye([0.0] * len(yaws), yaws), SIZE)
    centroid = _dark_centroid(images)
    assert torch.all(centroid[1:, 0] < centroid[:-1, 0]), f"iris x does not fall with yaw: {centroid[:, 0]}"
    assert float(centroid[0, 0] - centroid[-1, 0]) > 8  # a visible sweep, not a sub-pixel drift
    # the measured iris agrees with the label (the lids hide little of it at pitch 0)
    assert torch.all((centroid - labels["iris_centre"]).abs() < 1.5)


def test_rendered_iris_moves_up_monotonically_as_pitch_grows() -> None:
    pitches = [-20.0, -10.0, 0.0, 10.0, 20.0]
    images, labels = render(_steady_eye(pitches, [0.0] * len(pitches)), SIZE)
    centroid = _dark_centroid(images)
    assert torch.all(centroid[1:, 1] < centroid[:-1, 1]), f"iris y does not fall with pitch: {centroid[:, 1]}"
    assert torch.all(labels["iris_centre"][1:, 1] < labels["iris_centre"][:-1, 1])
    assert torch.all(centroid[:, 0].sub(centroid[0, 0]).abs() < 0.5)  # pitch alone does not move it sideways


def test_iris_is_foreshortened_along_its_motion() -> None:
    images, _ = render(_steady_eye([0.0, 0.0], [0.0, 40.0]), SIZE)
    dark = images < 0.25
    widths = dark.any(1).sum(1)
    heights = dark.any(2).sum(1)
    assert widths[1] < widths[0]  # a turned iris is narrower ...
    assert heights[1] == heights[0]  # ... but as tall


def test_landmarks_lie_in_the_image() -> None:
    _, labels = simulate_eyes(200, torch.Generator().manual_seed(3))
    margin = labels["landmarks"][:, :16]
    assert margin[..., 0].min() > -1 and margin[..., 0].max() < SIZE[1]
    assert margin[..., 1].min() > -1 and margin[..., 1].max() < SIZE[0]


def test_equalize_histograms_flattens_the_histogram() -> None:
    ramp = torch.linspace(0.2, 0.4, 55).expand(35, 55)[None]
    out = equalize_histograms(ramp)
    assert int(out.min()) == 0 and int(out.max()) == 255
    assert np.histogram(out.numpy(), bins=4, range=(0, 256))[0].min() > 0.15 * out.numel()


def test_camera_and_texture_change_pixels_but_never_labels() -> None:
    clean = SimulatorRanges(texture=(0, 0), exposure=(1, 1), blur=(0, 0), noise=(0, 0))
    rich = SimulatorRanges(texture=(1, 1), exposure=(1.5, 1.5), blur=(1, 1), noise=(0.01, 0.01))
    a, labels_a = simulate_eyes(16, torch.Generator().manual_seed(3), SIZE, clean, equalize=False)
    b, labels_b = simulate_eyes(16, torch.Generator().manual_seed(3), SIZE, rich, equalize=False)
    assert all(torch.equal(labels_a[k], labels_b[k]) for k in labels_a)
    assert (a.float() - b.float()).abs().mean() > 5  # grey levels: a visible change


def test_blur_softens_edges() -> None:
    def edge_energy(blur: float) -> float:
        ranges = SimulatorRanges(blur=(blur, blur), noise=(0, 0), texture=(0, 0))
        # drawn at SIZE: the camera-size path's resize would soften both
        images, _ = simulate_eyes(16, torch.Generator().manual_seed(4), SIZE, ranges, equalize=False, camera_size=None)
        return float(images.float().diff(dim=2).abs().mean())

    assert edge_energy(1.0) < 0.8 * edge_energy(0.0)


def test_value_noise_is_deterministic_per_seed_and_spans_its_range() -> None:
    seeds = torch.tensor([1, 2, 1])
    noise = value_noise(seeds, SIZE, (7, 11))
    assert torch.equal(noise[0], noise[2]) and not torch.equal(noise[0], noise[1])
    assert noise.min() >= -1 and noise.max() < 1 and noise.std() > 0.2


def test_images_go_through_the_real_patches_pipeline() -> None:
    """Drawn and equalised at the camera's 36x60, then resized as the real MPIIGaze patches are; labels follow."""
    at_camera, camera_labels = simulate_eyes(6, torch.Generator().manual_seed(5), CAMERA_SIZE)
    resized, labels = simulate_eyes(6, torch.Generator().manual_seed(5), SIZE)
    assert torch.equal(resized, torch.from_numpy(resize_uint8(at_camera[:, None].numpy(), SIZE)[:, 0]))
    _, direct = simulate_eyes(6, torch.Generator().manual_seed(5), SIZE, camera_size=None)
    for key in labels:  # the same scene drawn at SIZE has the same labels
        torch.testing.assert_close(labels[key], direct[key], atol=1e-4, rtol=0)
    assert not torch.allclose(labels["landmarks"], camera_labels["landmarks"])
    torch.testing.assert_close(labels["pitch_yaw"], camera_labels["pitch_yaw"])


RELIEF = ("under_eye", "lower_fold", "lid_highlight", "brow_bone", "wrinkles")


def _with(params: EyeParams, **values: float) -> EyeParams:
    """``params`` with the named fields set to one value for every image."""
    return dataclasses.replace(params, **{name: torch.full_like(params.pitch, v) for name, v in values.items()})


def _plain(seed: int, **values: float) -> EyeParams:
    """16 unrotated, unsaturated, noiseless scenes, with ``values`` set: what one term adds shows alone."""
    scenes = sample_params(torch.Generator().manual_seed(seed), 16)
    return _with(scenes, roll=0.0, skin_tone=0.5, exposure=1.0, noise=0.0, **values)


def test_lid_relief_changes_the_skin_where_it_says_and_never_the_labels() -> None:
    scenes = _plain(6, **dict.fromkeys(RELIEF, 0.0))  # no relief: each term alone below
    flat, flat_labels = render(scenes, SIZE)

    def change(**values: float) -> tuple[float, float]:
        """Mean grey-level change in the top and the bottom quarter of the image."""
        images, labels = render(_with(scenes, **values), SIZE)
        assert all(torch.equal(labels[k], flat_labels[k]) for k in labels)
        diff = images - flat
        quarter = SIZE[0] // 4
        return float(diff[:, :quarter].mean()), float(diff[:, -quarter:].mean())

    top, bottom = change(under_eye=0.2)
    assert bottom > 0.1 and abs(top) < 0.01  # the cheek under the lower lid, not the brow
    top, bottom = change(brow_bone=0.2)
    assert top > 0.1 and abs(bottom) < 0.01
    _, bottom = change(lower_fold=0.15)
    assert bottom < 0  # a dark line under the lower lid
    images, _ = render(_with(scenes, lid_highlight=0.15), SIZE)
    assert float((images - flat).max()) > 0.05 and float((images - flat).min()) >= 0  # only brightens
    images, _ = render(_with(scenes, wrinkles=1.0), SIZE)
    assert float((images - flat).std()) > 0.005  # a texture, not a shift


@pytest.mark.parametrize("version", [PREVIOUS_VERSION, RELIEF_VERSION], ids=["previous", "relief"])
def test_older_version_ranges_keep_every_other_scene_parameter(version: dict[str, tuple[float, float]]) -> None:
    """The new parameters are drawn after the old ones, so a seed's scenes only differ in what changed."""
    now = sample_params(torch.Generator().manual_seed(9), 32)
    before = sample_params(torch.Generator().manual_seed(9), 32, SimulatorRanges(**version))
    for field in dataclasses.fields(EyeParams):
        same = torch.equal(getattr(now, field.name), getattr(before, field.name))
        assert same == (field.name not in version), field.name
    for name in version:
        assert getattr(before, name).abs().max() == 0


def test_relief_at_zero_adds_exactly_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the previous stream of parameters (above), this is what makes PREVIOUS_VERSION bit-exact."""
    scenes = _with(sample_params(torch.Generator().manual_seed(2), 8), **dict.fromkeys(RELIEF, 0.0))
    with_relief, _ = render(scenes, SIZE)
    monkeypatch.setattr(simulator, "_lid_relief", lambda *args: 0.0)
    without, _ = render(scenes, SIZE)
    assert torch.equal(with_relief, without)


def test_side_shadow_darkens_the_left_above_the_eye_most_and_never_moves_a_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenes = _plain(7, side_shadow=0.0)
    flat, flat_labels = render(scenes, SIZE)
    shaded, labels = render(_with(scenes, side_shadow=0.3), SIZE)
    assert all(torch.equal(labels[k], flat_labels[k]) for k in labels)
    diff = shaded - flat
    fifth, quarter = SIZE[1] // 5, SIZE[0] // 4
    assert float(diff.max()) <= 0  # a shadow only darkens
    assert float(diff[:, :, :fifth].mean()) < -0.1 and float(diff[:, :, -fifth:].mean()) > -0.01
    assert float(diff[:, :quarter, :fifth].mean()) < 2 * float(diff[:, -quarter:, :fifth].mean())
    monkeypatch.setattr(simulator, "_side_shadow", lambda *args: 0.0)
    without, _ = render(scenes, SIZE)
    assert torch.equal(flat, without)  # at zero it adds exactly nothing: RELIEF_VERSION is bit-exact


def test_range_overrides_select_the_ranges_in_a_runs_config() -> None:
    """The benchmarks pin the previous simulator through ``--set`` strings; these must reach the dataset's options."""
    config = resolve_config("eyes-simgan", overrides=range_overrides(PREVIOUS_VERSION))
    assert config.synthetic.name == "eyes-sim"
    assert {name: tuple(config.synthetic.options[name]) for name in PREVIOUS_VERSION} == PREVIOUS_VERSION


def test_eye_y_moves_the_whole_eye_and_its_labels_and_nothing_else() -> None:
    """``eye_y`` is drawn last, so a seed's scenes keep every other parameter; every label follows the eye."""
    default = SimulatorRanges().eye_y
    lower = SimulatorRanges(eye_y=(default[0] + 2.0, default[1] + 2.0))
    now = sample_params(torch.Generator().manual_seed(4), 16)
    moved = sample_params(torch.Generator().manual_seed(4), 16, lower)
    for field in dataclasses.fields(EyeParams):
        if field.name != "centre_y":
            assert torch.equal(getattr(now, field.name), getattr(moved, field.name)), field.name
    torch.testing.assert_close(moved.centre_y - now.centre_y, torch.full((16,), 2.0))
    _, labels = render(now, SIZE)
    _, moved_labels = render(moved, SIZE)
    step = 2.0 * SIZE[0] / simulator.REFERENCE_HEIGHT  # 2 reference pixels, in output pixels
    for key in ("iris_centre", "landmarks"):
        torch.testing.assert_close(moved_labels[key][..., 0], labels[key][..., 0])
        torch.testing.assert_close(
            moved_labels[key][..., 1] - labels[key][..., 1], torch.full_like(labels[key][..., 1], step)
        )


def test_eyeball_offset_moves_the_iris_between_the_lids_and_keeps_the_gaze() -> None:
    """The range replaces a fixed draw of -1..1, so the default keeps every scene; a shift moves only the iris."""
    default = sample_params(torch.Generator().manual_seed(4), 16)
    before_the_range = torch.tensor([0.982112, -0.844789, 0.10396, 0.528112])  # seed 4, drawn by the fixed draw
    torch.testing.assert_close(default.eyeball_offset[:4], before_the_range, atol=1e-6, rtol=0)
    higher = sample_params(torch.Generator().manual_seed(4), 16, SimulatorRanges(eyeball_offset=(-3.0, -1.0)))
    for field in dataclasses.fields(EyeParams):
        if field.name != "eyeball_offset":
            assert torch.equal(getattr(default, field.name), getattr(higher, field.name)), field.name
    torch.testing.assert_close(higher.eyeball_offset - default.eyeball_offset, torch.full((16,), -2.0))
    _, labels = render(default, SIZE)
    _, moved = render(higher, SIZE)
    margin = simulator.MARGIN_POINTS
    torch.testing.assert_close(moved["landmarks"][:, :margin], labels["landmarks"][:, :margin])  # the lids stay
    torch.testing.assert_close(moved["gaze"], labels["gaze"])
    rise = (labels["iris_centre"][:, 1] - moved["iris_centre"][:, 1]) / torch.cos(default.roll)
    torch.testing.assert_close(rise, torch.full((16,), 2.0 * SIZE[0] / simulator.REFERENCE_HEIGHT))


def test_lid_follow_lowers_the_upper_lid_looking_down_and_keeps_every_other_scene() -> None:
    """The range replaces a fixed draw of 0.5..1, so the default keeps every scene; more follow moves only the lids."""
    default = sample_params(torch.Generator().manual_seed(4), 16)
    before_the_range = torch.tensor([8.055701, 5.999640, 4.890450, 5.431174])  # seed 4, drawn by the fixed draw
    torch.testing.assert_close(default.upper_height[:4], before_the_range, atol=1e-5, rtol=0)
    closer = sample_params(torch.Generator().manual_seed(4), 16, SimulatorRanges(lid_follow=(1.0, 1.5)))
    for field in dataclasses.fields(EyeParams):
        if field.name not in ("upper_height", "lower_height"):
            assert torch.equal(getattr(default, field.name), getattr(closer, field.name)), field.name
    down, up = default.pitch < 0, default.pitch > 0
    assert down.any() and up.any()
    assert torch.all(closer.upper_height[down] < default.upper_height[down])  # the upper lid drops further
    assert torch.all(closer.upper_height[up] > default.upper_height[up])  # and rises further looking up
    _, labels = render(default, SIZE)
    _, moved = render(closer, SIZE)
    torch.testing.assert_close(moved["gaze"], labels["gaze"])
    torch.testing.assert_close(moved["iris_centre"], labels["iris_centre"])  # the eye turns as before; the lids move
