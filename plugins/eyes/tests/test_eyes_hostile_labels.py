"""Hostile eye datasets: empty images, dangling HDF5 links, non-finite labels, absurd coordinates.

Each gives one DataError naming the file and the member or row (or, with skip_bad, is skipped and counted).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from refinekit_eyes.kaggle_h5 import load_kaggle_h5
from refinekit_eyes.mpiigaze import load_mpiigaze
from refinekit_eyes.unityeyes import load_unityeyes

from refinekit.errors import DataError

SIZE = (35, 55)


def _kaggle(path: Path, images: dict[str, np.ndarray], look_vec: np.ndarray | None = None) -> Path:
    with h5py.File(path, "w") as f:
        group = f.create_group("image")
        for name, image in images.items():
            group[name] = image
        if look_vec is not None:
            f["look_vec"] = look_vec
    return path


def _load_kaggle(path: Path, **options):
    return load_kaggle_h5(str(path), channels=1, size=SIZE, limit=None, seed=0, **options)


def _good() -> np.ndarray:
    return np.full(SIZE, 100, np.uint8)


def test_an_image_of_height_0_is_named_not_a_traceback(tmp_path: Path) -> None:
    path = _kaggle(tmp_path / "gaze.h5", {"0": _good(), "1": np.zeros((0, 55), np.uint8)})
    with pytest.raises(DataError, match=r"gaze.h5:image/1 has shape \(0, 55\): an image of no pixels"):
        _load_kaggle(path)
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        assert len(_load_kaggle(path, skip_bad=True)) == 1


def test_a_dangling_soft_link_is_named_not_a_traceback(tmp_path: Path) -> None:
    path = _kaggle(tmp_path / "gaze.h5", {"0": _good()})
    with h5py.File(path, "a") as f:
        f["image"]["1"] = h5py.SoftLink("/nowhere")
    with pytest.raises(DataError, match=r"gaze.h5:image/1 is a link to nothing"):
        _load_kaggle(path)


@pytest.mark.parametrize("poison", [np.nan, np.inf, 0.0])
def test_a_nan_inf_or_zero_gaze_row_is_refused_naming_file_and_row(tmp_path: Path, poison: float) -> None:
    look_vec = np.tile([0.1, 0.2, -0.97], (3, 1))
    look_vec[2] = poison
    path = _kaggle(tmp_path / "gaze.h5", {str(i): _good() for i in range(3)}, look_vec)
    with pytest.raises(DataError, match=r"gaze.h5:image/2 has a (NaN or infinite|zero) 'look_vec' \(row 2"):
        _load_kaggle(path)
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        loaded = _load_kaggle(path, skip_bad=True)
    assert np.isfinite(loaded.annotations["gaze"]).all() and len(loaded) == 2


def test_nan_gaze_in_mpiigaze_is_refused_naming_the_field_and_row(tmp_path: Path) -> None:
    eye = {"image": np.zeros((2, 36, 60), np.uint8), "gaze": np.array([[0.1, 0.2, -0.9], [np.nan, 0, -1]]),
           "pose": np.zeros((2, 3))}
    path = tmp_path / "day01.mat"
    scipy.io.savemat(str(path), {"data": {"left": eye, "right": eye}, "filenames": ["a.jpg", "b.jpg"]})
    with pytest.raises(DataError, match=r"day01.mat has NaN or infinity in 'data.left.gaze' row 1"):
        load_mpiigaze(str(path), channels=1, size=SIZE, limit=None, seed=0)


def test_unityeyes_coordinates_far_outside_the_image_are_refused_not_a_memory_error(
    tmp_path: Path, make_unityeyes
) -> None:
    folder = make_unityeyes(tmp_path / "imgs", 2)
    data = json.loads((folder / "2.json").read_text())
    data["interior_margin_2d"][0] = "(1e15, 240.0, 8.0)"
    (folder / "2.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"2.json has 'interior_margin_2d' points far outside its 640x480 image"):
        load_unityeyes(str(folder), channels=1, size=SIZE, limit=None, seed=0)


def test_a_truncated_h5_is_not_claimed_by_the_digits_detector(tmp_path: Path) -> None:
    pytest.importorskip("refinekit_digits")
    from refinekit_digits.usps import is_usps_h5

    path = _kaggle(tmp_path / "x.h5", {"0": _good()})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # the signature survives, the rest is cut
    assert is_usps_h5(str(path)) is False
