"""The unityeyes loader: crop and landmarks on the genuine fixture, and every malformed input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import refinekit_eyes.plugin
from refinekit_eyes.unityeyes import is_unityeyes_folder, load_unityeyes

from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract

FIXTURE = Path(__file__).parent / "fixtures" / "unityeyes-1.json"
SIZE = (35, 55)


def load(path, **options):
    return load_unityeyes(str(path), channels=1, size=SIZE, limit=None, seed=0, **options)


def test_fixture_crops_to_the_eye_with_landmarks_inside(unityeyes_folder: Path) -> None:
    images = load(unityeyes_folder)
    assert images.images.shape == (3, 1, *SIZE) and images.images.dtype == np.uint8
    ann = images.annotations
    assert ann["landmarks"].shape == (3, 48, 2) and ann["caruncle"].shape == (3, 7, 2)
    # every point lands in the crop (this fixture's iris, looking up, stays inside too)
    for key in ("landmarks", "iris_centre", "caruncle"):
        points = ann[key].reshape(3, -1, 2)
        assert (points[..., 0] > -0.5).all() and (points[..., 0] < SIZE[1] - 0.5).all(), key
        assert (points[..., 1] > -0.5).all() and (points[..., 1] < SIZE[0] - 0.5).all(), key
    # the drawn iris (black) sits where the labels say: darkest region ~ iris_centre
    patch = images.images[0, 0].astype(float)
    ys, xs = np.nonzero(patch < 60)
    np.testing.assert_allclose([xs.mean(), ys.mean()], ann["iris_centre"][0], atol=1.0)
    # eye corners span 1/1.5 of the width (the documented crop), centred on the margin's box
    corners = ann["landmarks"][0, [0, 8], 0]
    margin_x = ann["landmarks"][0, :16, 0]
    assert margin_x.max() - margin_x.min() == pytest.approx(SIZE[1] / 1.5, abs=1.0)
    assert (margin_x.max() + margin_x.min()) / 2 == pytest.approx(SIZE[1] / 2 - 0.5, abs=0.7)
    assert corners[0] < corners[1]


def test_gaze_is_converted_to_the_camera_convention(unityeyes_folder: Path) -> None:
    ann = load(unityeyes_folder).annotations
    expected = np.array([0.3404, -0.3879, -0.8566]) / np.linalg.norm([0.3404, 0.3879, 0.8566])
    np.testing.assert_allclose(ann["gaze"][0], expected, atol=1e-6)
    pitch = ann["pitch_yaw"][0, 0]
    assert pitch > 0  # the iris is drawn above the eyelid centre: looking up
    iris_y = ann["iris_centre"][0, 1]
    margin_y = ann["landmarks"][0, :16, 1].mean()
    assert iris_y < margin_y
    np.testing.assert_allclose(ann["head_pose_unity"][0], [355.077, 203.8451, 0.0], atol=1e-3)


def test_crop_scale_option_zooms(unityeyes_folder: Path) -> None:
    wide = load(unityeyes_folder, crop_scale=2.0).annotations["landmarks"][0, :16, 0]
    assert wide.max() - wide.min() == pytest.approx(SIZE[1] / 2.0, abs=1.0)


def test_rgb_and_limit(unityeyes_folder: Path) -> None:
    images = load_unityeyes(str(unityeyes_folder), channels=3, size=SIZE, limit=2, seed=1)
    assert images.images.shape == (2, 3, *SIZE)


def test_detect(unityeyes_folder: Path, tmp_path: Path) -> None:
    assert is_unityeyes_folder(str(unityeyes_folder))
    assert not is_unityeyes_folder(str(unityeyes_folder / "1.json"))
    (tmp_path / "other").mkdir()
    shutil.copy(FIXTURE, tmp_path / "other" / "a.json")  # no a.jpg beside it
    assert not is_unityeyes_folder(str(tmp_path / "other"))


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no N\.json files"):
        load(tmp_path / "empty")
    with pytest.raises(DataError, match="needs a path"):
        load_unityeyes(None, channels=1, size=SIZE, limit=None, seed=0)


def _edit_json(folder: Path, name: str, edit) -> None:
    data = json.loads((folder / name).read_text())
    edit(data)
    (folder / name).write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["eye_details"].pop("look_vec"), r"2\.json has no 'eye_details\.look_vec'"),
        (lambda d: d.update(interior_margin=d.pop("interior_margin_2d")), r"2\.json has no 'interior_margin_2d'"),
        (lambda d: d["iris_2d"].__setitem__(3, "(a, b, c)"), r"2\.json has a malformed 'iris_2d' value '\(a, b, c\)'"),
        (lambda d: d.update(head_pose=42), r"2\.json has a malformed 'head_pose'"),
        (lambda d: d["iris_2d"].pop(), r"2\.json has 31 'iris_2d' points, but other files have 32"),
    ],
)
def test_bad_json_fields_name_file_and_field(unityeyes_folder: Path, edit, message: str) -> None:
    _edit_json(unityeyes_folder, "2.json", edit)
    with pytest.raises(DataError, match=message) as info:
        load(unityeyes_folder)
    assert "--skip-bad" in str(info.value) and "UnityEyes folder" in str(info.value)


def test_invalid_json(unityeyes_folder: Path) -> None:
    (unityeyes_folder / "2.json").write_text("{ not json")
    with pytest.raises(DataError, match=r"2\.json is not valid JSON"):
        load(unityeyes_folder)


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0 truncated jpeg", b"plain text, not an image"])
def test_bad_images(unityeyes_folder: Path, content: bytes) -> None:
    (unityeyes_folder / "3.jpg").write_bytes(content)
    with pytest.raises(DataError, match=r"3\.json has an unreadable image 3\.jpg"):
        load(unityeyes_folder)


def test_truncated_real_jpeg(unityeyes_folder: Path) -> None:
    data = (unityeyes_folder / "3.jpg").read_bytes()
    (unityeyes_folder / "3.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"3\.jpg"):
        load(unityeyes_folder)


def test_missing_image(unityeyes_folder: Path) -> None:
    (unityeyes_folder / "3.jpg").unlink()
    with pytest.raises(DataError, match=r"3\.json has no image beside it \(expected 3\.jpg\)"):
        load(unityeyes_folder)


def test_skip_bad_counts_and_warns(unityeyes_folder: Path) -> None:
    _edit_json(unityeyes_folder, "2.json", lambda d: d["eye_details"].pop("look_vec"))
    with pytest.warns(
        UserWarning, match=r"unityeyes: skipped 1 of 3 files \(first: 2\.json: has no 'eye_details\.look_vec'\)"
    ):
        images = load(unityeyes_folder, skip_bad=True)
    assert len(images) == 2


def test_skip_bad_with_nothing_left(unityeyes_folder: Path) -> None:
    for name in ("1.json", "2.json", "3.json"):
        (unityeyes_folder / name).write_text("[]")
    with pytest.raises(DataError, match="no readable samples"):
        load(unityeyes_folder, skip_bad=True)


def test_unknown_and_wrong_options(unityeyes_folder: Path) -> None:
    with pytest.raises(DataError, match=r"unknown option 'crop_scal' \(did you mean 'crop_scale'\?\)"):
        load(unityeyes_folder, crop_scal=2)
    with pytest.raises(DataError, match="'skip_bad' must be true or false"):
        load(unityeyes_folder, skip_bad="yes")
    with pytest.raises(DataError, match="'crop_scale' must be a positive number"):
        load(unityeyes_folder, crop_scale=0)


class TestUnityEyesContract(DatasetContract):
    name = "unityeyes"
    plugin = refinekit_eyes.plugin

    @pytest.fixture(autouse=True)
    def _folder(self, make_unityeyes, tmp_path: Path) -> None:
        make_unityeyes(tmp_path / "imgs", count=5)

    def path(self, tmp_path: Path) -> str:
        return str(tmp_path / "imgs")
