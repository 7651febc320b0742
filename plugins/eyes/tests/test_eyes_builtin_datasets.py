"""The built-in datasets: the embedded MPIIGaze sample and the simulator as a dataset."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import refinekit_eyes.plugin
from refinekit_eyes.embedded_sample import load_mpiigaze_sample, read_embedded_patches
from refinekit_eyes.eyes_sim import load_eyes_sim

from refinekit.errors import DataError
from refinekit.plugins.contracts import DatasetContract

SIZE = (35, 55)


def test_embedded_sample_is_1500_resized_patches() -> None:
    raw = read_embedded_patches()
    assert raw.shape == (1500, 36, 60) and raw.dtype == np.uint8
    images = load_mpiigaze_sample(None, channels=1, size=SIZE, limit=None, seed=0)
    assert images.images.shape == (1500, 1, *SIZE) and images.annotations == {}
    assert "CC BY-NC-SA" in images.source


def test_embedded_sample_refuses_paths_and_options() -> None:
    with pytest.raises(DataError, match=r"takes no path.*'mpiigaze'"):
        load_mpiigaze_sample("some/folder", channels=1, size=SIZE, limit=None, seed=0)
    with pytest.raises(DataError, match="unknown option 'skip_bad'"):
        load_mpiigaze_sample(None, channels=1, size=SIZE, limit=None, seed=0, skip_bad=True)


def test_eyes_sim_options() -> None:
    images = load_eyes_sim(None, channels=1, size=SIZE, limit=None, seed=0, count=12, pitch=[5, 5], equalize=False)
    assert images.images.shape == (12, 1, *SIZE)
    np.testing.assert_allclose(images.annotations["pitch_yaw"][:, 0], np.deg2rad(5), atol=1e-6)
    assert len(load_eyes_sim(None, channels=1, size=SIZE, limit=4, seed=0, count=12)) == 4


def test_eyes_sim_camera_size_option() -> None:
    """The working size draws there; another camera size changes the pixels, never the labels."""
    cameras = {"working size": list(SIZE), "mpiigaze": [36, 60], "larger": [70, 110]}
    drawn = {
        name: load_eyes_sim(None, channels=1, size=SIZE, limit=None, seed=0, count=4, camera_size=camera)
        for name, camera in cameras.items()
    }
    assert all(images.images.shape == (4, 1, *SIZE) for images in drawn.values())
    assert not np.array_equal(drawn["working size"].images, drawn["mpiigaze"].images)
    for images in drawn.values():
        for key in ("iris_centre", "landmarks", "gaze"):
            np.testing.assert_allclose(images.annotations[key], drawn["working size"].annotations[key], atol=1e-4)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pitchh": [0, 1]}, r"unknown option 'pitchh' \(did you mean 'pitch'\?\)"),
        ({"pitch": [10, -10]}, r"option 'pitch' must be a \[low, high\] pair .* got \[10, -10\]"),
        ({"yaw": "wide"}, r"option 'yaw' must be a \[low, high\] pair"),
        ({"count": 0}, r"option 'count' must be a positive whole number"),
        ({"equalize": "no"}, r"option 'equalize' must be true or false"),
        ({"camera_size": [36]}, r"option 'camera_size' must be \[height, width\] in whole pixels .* got \[36\]"),
        ({"camera_size": [36, 0.5]}, r"option 'camera_size' must be \[height, width\]"),
    ],
)
def test_eyes_sim_bad_options(options: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_eyes_sim(None, channels=1, size=SIZE, limit=None, seed=0, **options)


def test_eyes_sim_refuses_a_path() -> None:
    with pytest.raises(DataError, match="takes no path"):
        load_eyes_sim("x", channels=1, size=SIZE, limit=None, seed=0)


class TestEyesSimContract(DatasetContract):
    name = "eyes-sim"
    plugin = refinekit_eyes.plugin
    options: ClassVar[dict] = {"count": 16}


class TestMPIIGazeSampleContract(DatasetContract):
    name = "mpiigaze-sample"
    plugin = refinekit_eyes.plugin
