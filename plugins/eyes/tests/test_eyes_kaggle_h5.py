"""The kaggle-h5 loader: both Kaggle file layouts, detection and malformed files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import refinekit_eyes.plugin
from refinekit_eyes.gaze import unityeyes_look_vec_to_gaze
from refinekit_eyes.kaggle_h5 import is_kaggle_h5, load_kaggle_h5

from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract

FIXTURES = Path(__file__).parent / "fixtures"
GAZE, REAL = FIXTURES / "kaggle_gaze_fixture.h5", FIXTURES / "kaggle_real_gaze_fixture.h5"
SIZE = (35, 55)


def load(path, **options):
    return load_kaggle_h5(str(path), channels=1, size=SIZE, limit=None, seed=0, **options)


def test_gaze_h5_has_images_in_order_and_gaze() -> None:
    images = load(GAZE)
    with h5py.File(GAZE) as f:
        first = f["image"]["00000"][()]
        look_vec = f["look_vec"][()]
    assert images.images.shape == (10, 1, *SIZE)
    np.testing.assert_array_equal(images.images[0, 0], first)
    np.testing.assert_allclose(
        images.annotations["gaze"], unityeyes_look_vec_to_gaze(look_vec.astype(float)), atol=1e-6
    )
    assert images.annotations["pitch_yaw"].shape == (10, 2)


def test_real_gaze_h5_has_images_only() -> None:
    images = load(REAL)
    assert images.images.shape == (64, 1, *SIZE) and images.annotations == {}


def test_other_size_and_channels() -> None:
    images = load_kaggle_h5(str(REAL), channels=3, size=(36, 60), limit=4, seed=0)
    assert images.images.shape == (4, 3, 36, 60)


def test_detect(tmp_path: Path) -> None:
    assert is_kaggle_h5(str(GAZE)) and is_kaggle_h5(str(REAL))
    assert not is_kaggle_h5(str(FIXTURES / "mpiigaze_day01_layout_fixture.mat"))
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    assert not is_kaggle_h5(str(tmp_path / "other.h5"))
    assert not is_kaggle_h5(str(tmp_path))


def test_missing_path_not_h5_and_zero_bytes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "gaze.h5")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.h5 is not a readable HDF5 file"):
        load(tmp_path / "empty.h5")
    (tmp_path / "cut.h5").write_bytes(GAZE.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"cut\.h5 is not a readable HDF5 file"):
        load(tmp_path / "cut.h5")


def test_h5_without_image_group(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "no_image.h5", "w") as f:
        f["images"] = np.zeros((2, 35, 55), np.uint8)
    with pytest.raises(DataError, match=r"no_image\.h5 has no group 'image'; is this the Kaggle gaze\.h5"):
        load(tmp_path / "no_image.h5")


def _copy_with(tmp_path: Path, edit) -> Path:
    path = tmp_path / "gaze.h5"
    path.write_bytes(GAZE.read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def test_bad_image_dataset_and_skip_bad(tmp_path: Path) -> None:
    def corrupt(f: h5py.File) -> None:
        del f["image"]["00003"]
        f["image"]["00003"] = np.zeros((35, 55), np.float32)

    path = _copy_with(tmp_path, corrupt)
    with pytest.raises(DataError, match=r"gaze\.h5:image/00003 is float32, expected uint8.*--skip-bad"):
        load(path)
    with pytest.warns(UserWarning, match=r"kaggle-h5: skipped 1 of 10 files \(first: gaze\.h5:image/00003"):
        images = load(path, skip_bad=True)
    assert len(images) == 9 and len(images.annotations["gaze"]) == 9
    expected = unityeyes_look_vec_to_gaze(h5py.File(GAZE)["look_vec"][()].astype(float))
    np.testing.assert_allclose(images.annotations["gaze"][3], expected[4], atol=1e-6)  # rows stay aligned


def test_look_vec_mismatch(tmp_path: Path) -> None:
    def shorten(f: h5py.File) -> None:
        values = f["look_vec"][()]
        del f["look_vec"]
        f["look_vec"] = values[:7]

    with pytest.raises(DataError, match=r"has 'look_vec' of float32 \(7, 3\), expected numbers \(10, 3\)"):
        load(_copy_with(tmp_path, shorten))


def test_unknown_option() -> None:
    with pytest.raises(DataError, match="unknown option 'skipbad'"):
        load(GAZE, skipbad=True)


class TestKaggleH5Contract(DatasetContract):
    name = "kaggle-h5"
    plugin = refinekit_eyes.plugin

    def path(self, tmp_path: Path) -> str:
        return str(GAZE)
