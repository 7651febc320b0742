"""Eye-plugin test fixtures: the plugin registered in a fresh registry, and small on-disk datasets."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import refinekit_eyes.plugin
from PIL import Image, ImageDraw

from refinekit.plugins.registry import Registry, get_registry, reset_registry

FIXTURES = Path(__file__).parent / "fixtures"
UNITYEYES_JSON = FIXTURES / "unityeyes-1.json"
MPIIGAZE_MAT = FIXTURES / "mpiigaze_day01_layout_fixture.mat"
KAGGLE_GAZE = FIXTURES / "kaggle_gaze_fixture.h5"
KAGGLE_REAL = FIXTURES / "kaggle_real_gaze_fixture.h5"
SIZE = (35, 55)


@pytest.fixture
def eyes_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """A registry with the built-ins and this plugin, whether or not refinekit-eyes is installed."""
    monkeypatch.setenv("REFINEKIT_DISABLE_ENTRY_POINTS", "1")
    monkeypatch.delenv("REFINEKIT_LOAD_PLUGINS", raising=False)
    reset_registry()
    registry = get_registry()
    registry.register_plugin(refinekit_eyes.plugin, "eyes")
    yield registry
    reset_registry()


def unityeyes_image(path: Path, json_path: Path = UNITYEYES_JSON) -> None:
    """A 640x480 JPEG for a UnityEyes JSON: grey skin, the eye opening white, the iris contour black.

    The annotation's image was never published; drawing its own polygons makes the
    crop checkable (the dark iris must land where the iris landmarks say).
    """
    data = json.loads(json_path.read_text())

    def points(field: str) -> list[tuple[float, float]]:
        return [(float(p.strip("()").split(",")[0]), 480 - float(p.strip("()").split(",")[1])) for p in data[field]]

    image = Image.new("RGB", (640, 480), (150, 120, 100))
    draw = ImageDraw.Draw(image)
    draw.polygon(points("interior_margin_2d"), fill=(235, 235, 235))
    draw.polygon(points("iris_2d"), fill=(10, 10, 10))
    image.save(path, quality=95)


def _make_unityeyes_folder(folder: Path, count: int = 3) -> Path:
    """``count`` copies of the fixture pair named 1.json/1.jpg, 2.json/2.jpg, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    unityeyes_image(folder / "1.jpg")
    shutil.copy(UNITYEYES_JSON, folder / "1.json")
    for index in range(2, count + 1):
        shutil.copy(folder / "1.jpg", folder / f"{index}.jpg")
        shutil.copy(UNITYEYES_JSON, folder / f"{index}.json")
    return folder


@pytest.fixture
def make_unityeyes():
    """Factory: ``make_unityeyes(folder, count)`` writes ``count`` copies of the fixture pair."""
    return _make_unityeyes_folder


@pytest.fixture
def unityeyes_folder(tmp_path: Path) -> Path:
    return _make_unityeyes_folder(tmp_path / "imgs")


@pytest.fixture
def make_mpiigaze_tree():
    """Factory: ``make_mpiigaze_tree(root, people, days)`` writes a Data/Normalized tree."""
    return _mpiigaze_tree


def _mpiigaze_tree(root: Path, people: tuple[str, ...] = ("p00", "p01"), days: tuple[str, ...] = ("day01",)) -> Path:
    """A Data/Normalized tree of copies of the layout fixture."""
    normalized = root / "Data" / "Normalized"
    for person in people:
        (normalized / person).mkdir(parents=True)
        for day in days:
            shutil.copy(MPIIGAZE_MAT, normalized / person / f"{day}.mat")
    return normalized
