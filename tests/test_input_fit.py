"""``refinekit refine`` changes no image's colour or shape unless asked, and says what happened to annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinekit.errors import DataError
from refinekit.refine.input_fit import coordinate_map, fit_to_size, match_channels
from refinekit.refine.pipeline import refine_to_folder

SIZE = (35, 55)


def save(path: Path, array: np.ndarray, sidecar: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    if sidecar is not None:
        path.with_suffix(".json").write_text(json.dumps(sidecar))


def test_a_mixed_size_folder_is_refused_even_when_the_first_image_fits(refiner_file: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    save(tmp_path / "in" / "a.png", rng.integers(0, 256, SIZE, dtype=np.uint8))
    save(tmp_path / "in" / "b.png", rng.integers(0, 256, (480, 640), dtype=np.uint8), {"pupil": [320, 240]})
    with pytest.raises(DataError, match=r"b\.png is 480x640 \(HxW\) but the refiner works at 35x55; pass --resize"):
        refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out", progress=False)
    # --skip-bad skips unreadable files, not images of another size
    with pytest.raises(DataError, match="pass --resize"):
        refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out2", progress=False, skip_bad=True)


@pytest.mark.parametrize("mode", ["stretch", "pad", "crop"])
def test_resizing_on_request_names_the_map_for_sidecar_coordinates(refiner_file: Path, tmp_path: Path, mode: str) -> None:
    rng = np.random.default_rng(0)
    save(tmp_path / "in" / "a.png", rng.integers(0, 256, SIZE, dtype=np.uint8))
    save(tmp_path / "in" / "b.png", rng.integers(0, 256, (480, 640), dtype=np.uint8), {"pupil": [320, 240]})
    expected = coordinate_map((480, 640), SIZE, mode).describe().replace("*", r"\*").replace("+", r"\+")
    with pytest.warns(UserWarning, match=rf"1 images .* resized \(--resize {mode}\).*b\.png \(480x640\).*{expected}"):
        manifest = refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out", progress=False, resize=mode)
    assert manifest["count"] == 2
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk["image"]["resize"] == mode and "not rescaled" in on_disk["image"]["note"]
    assert Image.open(tmp_path / "out" / "shard_00000" / "000001.png").size == (55, 35)


def test_colour_images_are_not_turned_gray_unless_asked(refiner_file: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    save(tmp_path / "in" / "colour.png", rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"colour\.png is a colour image .* pass --convert-channels"):
        refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out", progress=False)
    manifest = refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out2", progress=False, convert_channels=True)
    assert manifest["count"] == 1
    gray_as_rgb = np.repeat(rng.integers(0, 256, (*SIZE, 1), dtype=np.uint8), 3, axis=2)
    save(tmp_path / "gray" / "g.png", gray_as_rgb)  # stored as RGB, but gray: passes as it is
    assert refine_to_folder(refiner_file, tmp_path / "gray", tmp_path / "out3", progress=False)["count"] == 1


def test_fit_to_size_keeps_the_aspect_ratio_and_points_follow_the_map() -> None:
    image = np.zeros((1, 100, 100), np.uint8)
    image[:, 40:60, 40:60] = 255  # a white square in the middle, corner at (40, 40)
    for mode in ("pad", "crop", "stretch"):
        fitted = fit_to_size(image, SIZE, mode, "square.png")
        assert fitted.shape == (1, *SIZE)
        m = coordinate_map((100, 100), SIZE, mode)
        x, y = round(50 * m.scale_x + m.offset_x), round(50 * m.scale_y + m.offset_y)
        assert fitted[0, y, x] == 255, f"{mode}: the centre maps onto the white square"
        width = (fitted[0, y] > 127).sum()
        height = (fitted[0, :, x] > 127).sum()
        if mode != "stretch":
            assert abs(width - height) <= 1, f"{mode} keeps the square square"
    assert match_channels(np.zeros((1, 4, 4), np.uint8), 3, True, "g.png").shape == (3, 4, 4)
    with pytest.raises(DataError, match="gray image .* 3-channel"):
        match_channels(np.zeros((1, 4, 4), np.uint8), 3, False, "g.png")


def test_the_cli_refuses_then_resizes_and_converts_on_request(refiner_file: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from refinekit.cli.app import main

    rng = np.random.default_rng(0)
    save(tmp_path / "in" / "a.png", rng.integers(0, 256, (70, 70, 3), dtype=np.uint8), {"pupil": [35, 35]})
    runner = CliRunner()
    base = ["refine", str(refiner_file), str(tmp_path / "in")]
    refused = runner.invoke(main, [*base, str(tmp_path / "o1"), "--quiet"])
    assert refused.exit_code == 2 and "colour image" in refused.output and "--convert-channels" in refused.output
    refused = runner.invoke(main, [*base, str(tmp_path / "o2"), "--quiet", "--convert-channels"])
    assert refused.exit_code == 2 and "70x70 (HxW)" in refused.output and "--resize" in refused.output
    done = runner.invoke(main, [*base, str(tmp_path / "o3"), "--quiet", "--convert-channels", "--resize", "pad"])
    assert done.exit_code == 0, done.output
    assert "x' = x * 0.5 + 10, y' = y * 0.5 + 0" in " ".join(done.output.split())
    assert Image.open(tmp_path / "o3" / "shard_00000" / "000000.png").size == (55, 35)


def test_refine_into_a_log_prints_plain_progress_lines(refiner_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("REFINEKIT_PROGRESS_SECONDS", "0")
    rng = np.random.default_rng(0)
    for i in range(5):
        save(tmp_path / "in" / f"{i}.png", rng.integers(0, 256, SIZE, dtype=np.uint8))
    refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out", batch_size=2, progress=True)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("refine ")]
    assert [line.split()[1] for line in lines] == ["2/5", "4/5", "5/5"]
    assert "img/s" in lines[-1] and "ETA 0:00" in lines[-1] and "\x1b" not in "".join(lines)
