"""The image-folder dataset and image reading: sidecars, conversions, and bad files named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinekit.components.datasets import is_image_folder, load_image_folder
from refinekit.data.image_files import read_image
from refinekit.errors import DataError


def gray_png(path: Path, level: int, size: tuple[int, int] = (6, 8)) -> Path:
    Image.fromarray(np.full(size, level, np.uint8)).save(path)
    return path


def folder_with_sidecars(tmp_path: Path, count: int = 4) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(count):
        gray_png(folder / f"{i:03d}.png", 10 * i)
        (folder / f"{i:03d}.json").write_text(json.dumps({"gaze": [i, 2 * i], "id": i}))
    return folder


def load(folder: Path, **kw):
    return load_image_folder(str(folder), channels=kw.pop("channels", 1), size=kw.pop("size", (6, 8)), **kw)


# -- sidecar annotations -------------------------------------------------------------


def test_sidecars_travel_with_their_images(tmp_path) -> None:
    folder = folder_with_sidecars(tmp_path)
    images = load(folder)
    assert images.images[:, 0, 0, 0].tolist() == [0, 10, 20, 30]
    assert images.annotations["gaze"].tolist() == [[0, 0], [1, 2], [2, 4], [3, 6]]
    assert images.annotations["id"].tolist() == [0, 1, 2, 3]
    limited = load(folder, limit=2)
    assert len(limited) == 2 and limited.annotations["id"].tolist() == [0, 1]


def test_no_sidecars_no_annotations(tmp_path) -> None:
    for i in range(2):
        gray_png(tmp_path / f"{i}.png", i)
    assert load(tmp_path).annotations == {}


def test_one_missing_sidecar_is_named(tmp_path) -> None:
    folder = folder_with_sidecars(tmp_path)
    (folder / "002.json").unlink()
    with pytest.raises(DataError, match=r"002.json is missing, but other images have JSON sidecars"):
        load(folder)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"gaze": [1, 2]}, r"002.json: keys differ from 000.json \(missing \['id'\], extra \[\]\)"),
        ({"gaze": [1, 2], "id": 2, "pupil": 3}, r"002.json: keys differ from 000.json \(missing \[\], extra \['pupil'\]\)"),
        ({"gaze": [1, 2, 3], "id": 2}, r"002.json: field 'gaze' has shape \(3,\), but in 000.json it has \(2,\)"),
        ({"gaze": "left", "id": 2}, r"002.json: field 'gaze' is not numeric \('left'\)"),
        ([1, 2], r"002.json: must hold a JSON object"),
    ],
)
def test_mismatched_sidecar_is_named(tmp_path, content, message) -> None:
    folder = folder_with_sidecars(tmp_path)
    (folder / "002.json").write_text(json.dumps(content))
    with pytest.raises(DataError, match=message):
        load(folder)


def test_invalid_json_sidecar_is_named(tmp_path) -> None:
    folder = folder_with_sidecars(tmp_path)
    (folder / "001.json").write_text("{gaze: [1, 2]")
    with pytest.raises(DataError, match=r"001.json: not valid JSON .* fix or delete the sidecar"):
        load(folder)


# -- pixel conversions ---------------------------------------------------------------


def test_alpha_is_composited_over_white(tmp_path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red: background shows
    rgba[0, 1] = (0, 0, 0, 255)  # opaque black
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black over white
    rgba[1, 1] = (0, 0, 255, 255)  # opaque blue
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    gray = read_image(tmp_path / "a.png", channels=1)[0]
    assert gray[0, 0] == 255 and gray[0, 1] == 0 and 120 <= gray[1, 0] <= 135
    assert gray[1, 1] == round(0.114 * 255)
    rgb = read_image(tmp_path / "a.png", channels=3)
    assert rgb[:, 0, 0].tolist() == [255, 255, 255] and rgb[:, 1, 1].tolist() == [0, 0, 255]
    la = Image.fromarray(np.array([[[50, 0], [50, 255]]], np.uint8), "LA")
    la.save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png", channels=1)[0].tolist() == [[255, 50]]


def test_palette_images_use_their_palette_and_transparency(tmp_path) -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)  # index 0 red, 1 green
    image.putdata([0, 1])
    image.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png", channels=3)[:, 0].T.tolist() == [[255, 0, 0], [0, 255, 0]]
    image.save(tmp_path / "pt.png", transparency=0)  # index 0 transparent
    assert read_image(tmp_path / "pt.png", channels=3)[:, 0].T.tolist() == [[255, 255, 255], [0, 255, 0]]


@pytest.mark.parametrize("suffix", [".png", ".tif", ".pgm"])
def test_16_bit_images_scale_by_full_range(tmp_path, suffix) -> None:
    values = np.array([[0, 257, 32896, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / f"deep{suffix}")
    assert read_image(tmp_path / f"deep{suffix}", channels=1)[0].tolist() == [[0, 1, 128, 255]]


def test_dark_16_bit_image_stays_dark(tmp_path) -> None:
    # all pixels <= 255 in a 16-bit file: still 16-bit data, nearly black, not mid-grey
    Image.fromarray(np.full((2, 2), 200, np.uint16)).save(tmp_path / "dark.png")
    assert read_image(tmp_path / "dark.png", channels=1).max() == 1


def test_grayscale_to_rgb_and_resize(tmp_path) -> None:
    gray_png(tmp_path / "g.png", 77, size=(12, 16))
    image = read_image(tmp_path / "g.png", channels=3, size=(6, 8))
    assert image.shape == (3, 6, 8) and (image == 77).all()


# -- bad files ----------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"not an image at all", None], ids=["zero-byte", "garbage", "truncated"])
def test_unreadable_image_is_named(tmp_path, content) -> None:
    folder = folder_with_sidecars(tmp_path)
    bad = folder / "002.png"
    if content is None:  # a download cut short: half of a noisy PNG
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)).save(bad)
        content = bad.read_bytes()[: bad.stat().st_size // 2]
    bad.write_bytes(content)
    with pytest.raises(DataError, match=r"002.png: not a readable image .*Pass --skip-bad to skip unreadable files"):
        load(folder)


def test_skip_bad_skips_with_a_count_and_keeps_annotations_aligned(tmp_path) -> None:
    folder = folder_with_sidecars(tmp_path, count=5)
    (folder / "001.png").write_bytes(b"")
    (folder / "003.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"image-folder: skipped 2 of 5 files \(first: .*001.png"):
        images = load(folder, skip_bad=True)
    assert images.images[:, 0, 0, 0].tolist() == [0, 20, 40]
    assert images.annotations["id"].tolist() == [0, 2, 4]


def test_folder_problems_say_what_to_check(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist; check the path"):
        load(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="holds no images"):
        load(tmp_path)
    with pytest.raises(DataError, match="image-folder needs a path"):
        load_image_folder(None, channels=1, size=(4, 4))
    assert not is_image_folder(str(tmp_path))
    gray_png(tmp_path / "sub.png", 0)
    assert is_image_folder(str(tmp_path))


def test_all_images_bad_even_when_skipping(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped 1 of 1"), pytest.raises(DataError, match="no readable images"):
        load(tmp_path, skip_bad=True)


@pytest.mark.parametrize("text", ['{"gaze": [NaN, 1], "id": 2}', '{"gaze": [Infinity, 1], "id": 2}'])
def test_nan_or_infinite_label_is_named(tmp_path, text) -> None:
    folder = folder_with_sidecars(tmp_path)
    (folder / "002.json").write_text(text)
    with pytest.raises(DataError, match=r"002.json: field 'gaze' is NaN or infinite .*fix or delete the sidecar"):
        load(folder)


def test_sidecar_that_is_not_utf8_is_named(tmp_path) -> None:
    folder = folder_with_sidecars(tmp_path)
    (folder / "002.json").write_bytes(b'{"gaze": [1, 2], "id": "\xff"}')
    with pytest.raises(DataError, match=r"002.json: not valid JSON: it is not UTF-8 text"):
        load(folder)
