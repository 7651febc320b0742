"""A corpus of malformed inputs, each driven through the real CLI.

Every case must end with exit code 2 and one message that names the file (or
key) and the field, and says what to do; never a raw traceback. ``--debug``
must let the original exception (and so its traceback) through instead.

Each row of :data:`CASES` is (case id, setup, expected message fragments):
``setup(tmp, kit, monkeypatch)`` builds the bad input and returns the CLI
arguments. Inputs that should be *accepted* (16-bit, RGBA, palette images...)
are checked separately, for the exact pixel values they convert to.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from refinekit.data import image_files as imageio
from refinekit.data.image_files import read_image
from refinekit.errors import RefinekitError
from refinekit.weights.files import CHECKPOINT_FORMAT, FORMAT_VERSION, REFINER_FORMAT

Setup = Callable[[Path, object, pytest.MonkeyPatch], list[str]]


@dataclass(frozen=True)
class Case:
    id: str
    setup: Setup
    fragments: tuple[str, ...]
    debug: bool = True  # False for click's own usage errors, which --debug does not change


# -- building blocks -------------------------------------------------------------
def _real(tmp: Path, kit) -> Path:
    return kit.make_folder(tmp / "real", bright=190, seed=2)


def _run(tmp: Path, kit, synthetic: Path | str, *extra: str) -> list[str]:
    """``run simgan`` with ``synthetic`` as the synthetic folder and a good real folder."""
    return kit.simgan_args(Path(synthetic), _real(tmp, kit), tmp / "out", steps=0, extra=list(extra))


def _good_run(tmp: Path, kit, *extra: str) -> list[str]:
    return _run(tmp, kit, kit.make_folder(tmp / "synthetic"), *extra)


def _folder_with(tmp: Path, kit, name: str | bytes, data: bytes) -> Path:
    """A good folder of images plus one file ``name`` holding ``data``."""
    folder = kit.make_folder(tmp / "synthetic")
    target = os.path.join(os.fsencode(folder), name if isinstance(name, bytes) else os.fsencode(name))
    with open(target, "wb") as f:
        f.write(data)
    return folder


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _good_png() -> bytes:
    return _png(np.full((16, 20), 100, dtype=np.uint8))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb, refused before decoding."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _with_sidecars(tmp: Path, kit, bad: str | bytes, good: dict | None = None) -> Path:
    """A folder whose images have JSON sidecars: all ``good`` except the last, which holds ``bad``."""
    folder = kit.make_folder(tmp / "synthetic")
    images = sorted(folder.glob("*.png"))
    for image in images[:-1]:
        image.with_suffix(".json").write_text(json.dumps(good or {"gaze": [0.1, 0.2]}))
    last = images[-1].with_suffix(".json")
    last.write_bytes(bad if isinstance(bad, bytes) else bad.encode())
    return folder


def _config_file(tmp: Path, text: str | bytes) -> Path:
    path = tmp / "settings.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _checkpoint(out: Path, metadata: dict[str, str], name: str = "checkpoint.safetensors") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    save_file({"x": torch.zeros(2)}, str(out / name), metadata=metadata)
    return out / name


def _trained(tmp: Path, kit) -> list[str]:
    """Train a one-step run in ``tmp/out``; return its arguments for resuming."""
    args = _good_run(tmp, kit, "--set", "schedule.refiner_pretrain_steps=1", "--set", "schedule.discriminator_pretrain_steps=0")
    result = kit.invoke(args)
    assert result.exit_code == 0, result.output
    return args


# -- setups: images ----------------------------------------------------------------
def zero_byte_png(tmp, kit, mp):
    return _run(tmp, kit, _folder_with(tmp, kit, "empty.png", b""))


def truncated_png(tmp, kit, mp):
    return _run(tmp, kit, _folder_with(tmp, kit, "cut.png", _good_png()[:40]))


def text_named_png(tmp, kit, mp):
    return _run(tmp, kit, _folder_with(tmp, kit, "notes.png", b"this is not an image\n"))


def truncated_jpeg(tmp, kit, mp):
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buffer, format="JPEG")
    return _run(tmp, kit, _folder_with(tmp, kit, "cut.jpg", buffer.getvalue()[: len(buffer.getvalue()) // 2]))


def float_tiff(tmp, kit, mp):
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(np.full((16, 20), 0.5, dtype=np.float32), mode="F").save(buffer, format="TIFF")
    return _run(tmp, kit, _folder_with(tmp, kit, "depth.tif", buffer.getvalue()))


def decompression_bomb(tmp, kit, mp):
    return _run(tmp, kit, _folder_with(tmp, kit, "huge.png", _png_header_only(40_000, 40_000)))


def dangling_symlink(tmp, kit, mp):
    folder = kit.make_folder(tmp / "synthetic")
    (folder / "gone.png").symlink_to(tmp / "nowhere.png")
    return _run(tmp, kit, folder)


def symlink_file_loop(tmp, kit, mp):
    folder = kit.make_folder(tmp / "synthetic")
    (folder / "loop-a.png").symlink_to(folder / "loop-b.png")
    (folder / "loop-b.png").symlink_to(folder / "loop-a.png")
    return _run(tmp, kit, folder)


def unreadable_file(tmp, kit, mp):
    """chmod 000; as root permissions do not apply, so the refusal is simulated at open()."""
    folder = _folder_with(tmp, kit, "locked.png", _good_png())
    locked = folder / "locked.png"
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # running as root
        real_open = imageio.open_regular

        def open_(path, *args, **kwargs):
            if Path(path) == locked:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        mp.setattr(imageio, "open_regular", open_)
    return _run(tmp, kit, folder)


def non_utf8_name(tmp, kit, mp):
    return _run(tmp, kit, _folder_with(tmp, kit, b"bad-\xff\xfe.png", b"garbage"))


def markup_like_name(tmp, kit, mp):
    """Brackets in a file name must not be read as console markup (or crash the error display)."""
    return _run(tmp, kit, _folder_with(tmp, kit, "[red]x[bold].png", b"garbage"))


def empty_folder(tmp, kit, mp):
    (tmp / "synthetic").mkdir()
    return _run(tmp, kit, tmp / "synthetic")


def _named_loader(tmp: Path, kit, folder: Path) -> list[str]:
    """Name the loader instead of detecting it, so image-folder itself walks ``folder``."""
    args = _run(tmp, kit, folder)
    i = args.index("--synthetic")
    del args[i : i + 2]
    return [*args, "--set", f'synthetic={{name="image-folder", path="{folder}"}}']


def folder_without_images(tmp, kit, mp):
    (tmp / "synthetic").mkdir()
    (tmp / "synthetic" / "readme.txt").write_text("no images here")
    return _named_loader(tmp, kit, tmp / "synthetic")


def only_symlink_loop(tmp, kit, mp):
    (tmp / "synthetic").mkdir()
    (tmp / "synthetic" / "again").symlink_to(tmp / "synthetic")
    return _named_loader(tmp, kit, tmp / "synthetic")


def missing_path(tmp, kit, mp):
    return _run(tmp, kit, tmp / "no-such-folder")


def file_not_folder(tmp, kit, mp):
    (tmp / "list.txt").write_text("a.png\n")
    return _run(tmp, kit, tmp / "list.txt")


def channels_mismatch_refiner(tmp, kit, mp):
    """A checkpoint of a grayscale run, resumed as an RGB run."""
    args = _trained(tmp, kit)
    return [*args, "--set", "image.channels=3", "--resume"]


# -- setups: sidecar annotations ---------------------------------------------------
def sidecar_nan(tmp, kit, mp):
    return _run(tmp, kit, _with_sidecars(tmp, kit, '{"gaze": [NaN, 0.2]}'))


def sidecar_infinity(tmp, kit, mp):
    return _run(tmp, kit, _with_sidecars(tmp, kit, '{"gaze": [Infinity, 0.2]}'))


def sidecar_not_json(tmp, kit, mp):
    return _run(tmp, kit, _with_sidecars(tmp, kit, '{"gaze": [0.1, '))


def sidecar_not_object(tmp, kit, mp):
    return _run(tmp, kit, _with_sidecars(tmp, kit, "[0.1, 0.2]"))


def sidecar_missing_key(tmp, kit, mp):
    return _run(tmp, kit, _with_sidecars(tmp, kit, '{"gace": [0.1, 0.2]}'))


def sidecar_non_numeric(tmp, kit, mp):
    return _run(tmp, kit, _with_sidecars(tmp, kit, '{"gaze": "left"}'))


def sidecar_wrong_shape(tmp, kit, mp):
    return _run(tmp, kit, _with_sidecars(tmp, kit, '{"gaze": [0.1, 0.2, 0.3]}'))


def sidecar_not_utf8(tmp, kit, mp):
    return _run(tmp, kit, _with_sidecars(tmp, kit, b'{"gaze": "\xff"}'))


def sidecar_missing(tmp, kit, mp):
    folder = _with_sidecars(tmp, kit, '{"gaze": [0.1, 0.2]}')
    sorted(folder.glob("*.json"))[0].unlink()
    return _run(tmp, kit, folder)


# -- setups: config files and --set ---------------------------------------------------
def config_unknown_key(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--config", str(_config_file(tmp, "batch_sise = 16\n"))]


def config_nested_unknown_key(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--config", str(_config_file(tmp, "[schedule]\nkg = 2\n"))]


def config_wrong_type(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--config", str(_config_file(tmp, 'reg_weight = "strong"\n'))]


def config_out_of_range(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--config", str(_config_file(tmp, "[optim]\nmomentum = 1.5\n"))]


def config_not_toml(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--config", str(_config_file(tmp, "batch_size: 16\n"))]


def config_missing(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--config", str(tmp / "nowhere.toml")]


def config_not_utf8(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--config", str(_config_file(tmp, b'seed = 1 # caf\xe9\n'))]


def set_without_equals(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", "batch_size"]


def set_bad_key(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", "schedule..k_g=2"]


def set_unknown_key(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", "schedule.kg=2"]


def set_out_of_range(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", "schedule.k_g=0"]


def set_unparsable_value(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", "batch_size=[8,"]


def set_section_to_number(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", "schedule=3"]


def set_bad_channels(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", "image.channels=2"]


def set_buffer_too_small(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", "buffer_size=2"]


def set_unknown_refiner_option(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", "refiner.options.featurs=8"]


def set_bad_refiner_option_value(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", 'refiner.options.features="wide"']


def set_unknown_refiner(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--set", 'refiner.name="simgan-resnt"']


def set_unknown_dataset_option(tmp, kit, mp):
    args = _good_run(tmp, kit)
    return [*args, "--set", f'real={{name="image-folder", path="{_real(tmp, kit)}", options={{colour=true}}}}']


def unknown_recipe(tmp, kit, mp):
    return ["run", "simgn", "--out", str(tmp / "out")]


def unknown_schedule(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--schedule", "paper"]


def negative_steps(tmp, kit, mp):
    args = _good_run(tmp, kit)
    args[args.index("--steps") + 1] = "-1"
    return args


# -- setups: checkpoints and resume ---------------------------------------------------
def resume_without_checkpoint(tmp, kit, mp):
    return [*_good_run(tmp, kit), "--resume"]


def resume_incompatible_version(tmp, kit, mp):
    _checkpoint(tmp / "out", {"format": CHECKPOINT_FORMAT, "format_version": "0"})
    return [*_good_run(tmp, kit), "--resume"]


def resume_truncated_checkpoint(tmp, kit, mp):
    args = _trained(tmp, kit)
    path = tmp / "out" / "checkpoint.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return [*args, "--resume"]


def resume_pickle_as_checkpoint(tmp, kit, mp):
    (tmp / "out").mkdir()
    torch.save({"refiner": torch.zeros(2)}, tmp / "out" / "checkpoint.safetensors")
    return [*_good_run(tmp, kit), "--resume"]


def resume_checkpoint_without_config(tmp, kit, mp):
    _checkpoint(tmp / "out", {"format": CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, "step": "1"})
    return [*_good_run(tmp, kit), "--resume"]


def resume_other_file_format(tmp, kit, mp):
    _checkpoint(tmp / "out", {"format": REFINER_FORMAT, "format_version": FORMAT_VERSION})
    return [*_good_run(tmp, kit), "--resume"]


def resume_changed_settings(tmp, kit, mp):
    args = _trained(tmp, kit)
    return [*args, "--set", "batch_size=16", "--resume"]


def start_over_existing_run(tmp, kit, mp):
    return _trained(tmp, kit)


CASES: list[Case] = [
    # images
    Case("zero-byte-png", zero_byte_png, ("empty.png", "not a readable image", "--skip-bad")),
    Case("truncated-png", truncated_png, ("cut.png", "not a readable image", "--skip-bad")),
    Case("text-named-png", text_named_png, ("notes.png", "not a readable image", "delete or replace")),
    Case("truncated-jpeg", truncated_jpeg, ("cut.jpg", "not a readable image", "--skip-bad")),
    Case("float-tiff", float_tiff, ("depth.tif", "floating-point images are not supported", "8- or 16-bit")),
    Case("decompression-bomb", decompression_bomb, ("huge.png", "1600000000 pixels", "--skip-bad")),
    # dangling-symlink and symlink-file-loop: skipped with a warning that lists them, see test_hostile_inputs.py
    Case("unreadable-file", unreadable_file, ("locked.png", "permission denied", "chmod")),
    Case("non-utf8-file-name", non_utf8_name, ("bad-", ".png", "not a readable image")),
    Case("markup-like-file-name", markup_like_name, ("[red]x[bold].png", "not a readable image")),
    Case("empty-folder", empty_folder, ("synthetic", "no dataset loader recognises", "folder of images")),
    Case("folder-without-images", folder_without_images, ("synthetic", "holds no images", "check the path")),
    Case("only-a-symlink-loop", only_symlink_loop, ("synthetic", "holds no images")),
    Case("missing-path", missing_path, ("no-such-folder", "does not exist", "check the path")),
    Case("file-instead-of-folder", file_not_folder, ("list.txt", "no dataset loader recognises")),
    Case("checkpoint-for-other-channels", channels_mismatch_refiner, ("image.channels", "differ from the checkpoint")),
    # sidecar annotations
    Case("sidecar-nan", sidecar_nan, ("003.json", "'gaze'", "NaN or infinite", "fix or delete")),
    Case("sidecar-infinity", sidecar_infinity, ("003.json", "'gaze'", "NaN or infinite")),
    Case("sidecar-not-json", sidecar_not_json, ("003.json", "not valid JSON", "fix or delete")),
    Case("sidecar-not-object", sidecar_not_object, ("003.json", "JSON object", "fix or delete")),
    Case("sidecar-missing-key", sidecar_missing_key, ("003.json", "'gaze'", "same keys")),
    Case("sidecar-non-numeric", sidecar_non_numeric, ("003.json", "'gaze'", "not numeric")),
    Case("sidecar-wrong-shape", sidecar_wrong_shape, ("003.json", "'gaze'", "shape (3,)", "(2,)")),
    Case("sidecar-not-utf8", sidecar_not_utf8, ("003.json", "not valid JSON", "UTF-8")),
    Case("sidecar-missing", sidecar_missing, ("000.json", "is missing", "add it or remove all")),
    # config files
    Case("config-unknown-key", config_unknown_key, ("settings.toml", "unknown key 'batch_sise'", "--keys")),
    Case("config-nested-unknown-key", config_nested_unknown_key, ("settings.toml", "unknown key 'schedule.kg'")),
    Case("config-wrong-type", config_wrong_type, ("settings.toml", "'reg_weight'", "'strong'")),
    Case("config-out-of-range", config_out_of_range, ("settings.toml", "'optim.momentum'", "less than 1")),
    Case("config-not-toml", config_not_toml, ("settings.toml", "not valid TOML", "line 1")),
    Case("config-missing", config_missing, ("nowhere.toml", "does not exist")),
    Case("config-not-utf8", config_not_utf8, ("settings.toml", "UTF-8")),
    # --set
    Case("set-without-equals", set_without_equals, ("'batch_size'", "KEY=VALUE")),
    Case("set-bad-key", set_bad_key, ("schedule..k_g", "KEY=VALUE")),
    Case("set-unknown-key", set_unknown_key, ("unknown key 'schedule.kg'", "--keys")),
    Case("set-out-of-range", set_out_of_range, ("'schedule.k_g'", "greater than or equal to 1", "got 0")),
    Case("set-unparsable-value", set_unparsable_value, ("'batch_size'", "valid integer", "'[8,'")),
    Case("set-section-to-number", set_section_to_number, ("'schedule'", "got 3")),
    Case("set-bad-channels", set_bad_channels, ("'image.channels'", "1 or 3", "got 2")),
    Case("set-buffer-too-small", set_buffer_too_small, ("buffer_size (2)", "batch_size/2")),
    Case("set-unknown-refiner-option", set_unknown_refiner_option, ("refiner 'simgan-resnet'", "'featurs'", "features")),
    Case("set-bad-refiner-option-value", set_bad_refiner_option_value, ("'refiner.options.features'", "'wide'", "whole number")),
    Case("set-unknown-refiner", set_unknown_refiner, ("simgan-resnt", "Did you mean 'simgan-resnet'")),
    Case("set-unknown-dataset-option", set_unknown_dataset_option, ("image-folder", "colour")),
    Case("unknown-recipe", unknown_recipe, ("simgn", "Did you mean 'simgan'")),
    Case("unknown-schedule", unknown_schedule, ("no schedule 'paper'",)),
    Case("negative-steps", negative_steps, ("--steps", "-1"), debug=False),
    # checkpoints
    Case("resume-without-checkpoint", resume_without_checkpoint, ("no checkpoint.safetensors", "without --resume")),
    Case("resume-incompatible-version", resume_incompatible_version, ("checkpoint.safetensors", "format_version '0'", "refinekit version that wrote it")),
    Case("resume-truncated-checkpoint", resume_truncated_checkpoint, ("checkpoint.safetensors", "not a readable safetensors file", "truncated")),
    Case("resume-pickle-as-checkpoint", resume_pickle_as_checkpoint, ("checkpoint.safetensors", "not a readable safetensors file")),
    Case("resume-checkpoint-without-config", resume_checkpoint_without_config, ("checkpoint.safetensors", "'config'")),
    Case("resume-other-file-format", resume_other_file_format, ("checkpoint.safetensors", "'format'", "refinekit.weights.files")),
    Case("resume-changed-settings", resume_changed_settings, ("batch_size", "differ from the checkpoint", "another --out")),
    Case("start-over-existing-run", start_over_existing_run, ("already holds a run", "--resume")),
]


def _assert_one_clear_message(result, fragments: tuple[str, ...]) -> None:
    output = result.output
    said = " ".join(output.split())
    assert isinstance(result.exception, SystemExit), f"raw exception {result.exception!r}:\n{output}"
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert said.count("Error:") == 1, output
    missing = [f for f in fragments if f not in said]
    assert not missing, f"message lacks {missing}: {said}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_message(case: Case, tmp_path, kit, monkeypatch) -> None:
    args = case.setup(tmp_path, kit, monkeypatch)
    _assert_one_clear_message(kit.invoke(args), case.fragments)
    if case.debug:  # --debug lets the typed error through, so Python prints its traceback
        debug = kit.invoke(["--debug", *args])
        assert isinstance(debug.exception, RefinekitError), debug.output


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def test_debug_prints_the_traceback_in_a_real_process(tmp_path, kit) -> None:
    # One child process (the table above checks the plain message in-process); a command that fails fast.
    args = ["--debug", "convert", str(tmp_path / "nowhere.pt"), str(tmp_path / "out.safetensors"), "--refiner", "simgan-resnet"]
    debug = kit.run_process(args)
    assert debug.returncode == 1, debug.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert "refinekit.errors.CheckpointError" in debug.stderr and "nowhere.pt does not exist" in debug.stderr


# -- inputs that are converted, not refused ------------------------------------------------
def _sixteen_bit(path: Path) -> np.ndarray:
    values = np.array([[0, 257 * 100, 65535, 257 * 30]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    return np.array([[[0, 100, 255, 30]]], dtype=np.uint8)


def _rgba(path: Path) -> np.ndarray:
    pixels = np.zeros((1, 3, 4), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0, 255)  # opaque red
    pixels[0, 1] = (0, 0, 0, 0)  # transparent: the white background shows
    pixels[0, 2] = (0, 0, 0, 128)  # half-transparent black over white
    Image.fromarray(pixels, mode="RGBA").save(path)
    return np.array([[[76, 255, 127]]], dtype=np.uint8)  # luma of red = 0.299 * 255


def _palette(path: Path) -> np.ndarray:
    image = Image.new("P", (3, 1))
    image.putpalette([0, 0, 0, 255, 255, 255, 0, 0, 255] + [0] * (256 * 3 - 9))
    image.putdata([1, 0, 2])
    image.save(path)
    return np.array([[[255, 0, 29]]], dtype=np.uint8)  # blue's luma: 0.114 * 255


def _palette_transparent(path: Path) -> np.ndarray:
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 10, 10, 10] + [0] * (256 * 3 - 6))
    image.putdata([0, 1])
    image.info["transparency"] = 0
    image.save(path, transparency=0)
    return np.array([[[255, 10]]], dtype=np.uint8)  # the transparent index shows the white background


def _gray_alpha(path: Path) -> np.ndarray:
    Image.fromarray(np.array([[[40, 255], [40, 0]]], dtype=np.uint8), mode="LA").save(path)
    return np.array([[[40, 255]]], dtype=np.uint8)


def _rgb_as_gray(path: Path) -> np.ndarray:
    Image.fromarray(np.array([[[0, 255, 0], [10, 10, 10]]], dtype=np.uint8)).save(path)
    return np.array([[[150, 10]]], dtype=np.uint8)  # 0.587 * 255 rounds to 150


CONVERTED = {
    "16-bit": _sixteen_bit,
    "rgba": _rgba,
    "palette": _palette,
    "palette-with-transparency": _palette_transparent,
    "gray-alpha": _gray_alpha,
    "rgb-where-gray-expected": _rgb_as_gray,
}


@pytest.mark.parametrize("make", CONVERTED.values(), ids=list(CONVERTED))
def test_unusual_image_modes_convert_to_the_right_gray_values(make, tmp_path) -> None:
    path = tmp_path / "image.png"
    expected = make(path)
    assert np.array_equal(read_image(path, channels=1), expected)


def test_a_folder_of_unusual_modes_and_sizes_trains(tmp_path, kit) -> None:
    folder = tmp_path / "synthetic"
    folder.mkdir()
    for name, make in CONVERTED.items():
        make(folder / f"{name}.png")
    Image.fromarray(np.full((50, 7), 90, dtype=np.uint8)).save(folder / "tall-narrow.png")  # a wrong size
    (folder / "again").symlink_to(folder)  # a symlink loop beside the images is walked once
    result = kit.invoke(_run(tmp_path, kit, folder))
    assert result.exit_code == 0, result.output
    assert f"image-folder {folder} ({len(CONVERTED) + 1} images)" in " ".join(result.output.split())


# -- the eye plugin's loaders, through the CLI (their own tests cover them in depth) ---------
EYES_FIXTURES = Path(__file__).parents[2] / "plugins" / "eyes" / "tests" / "fixtures"


@pytest.fixture
def eyes(isolated_registry):
    plugin = pytest.importorskip("refinekit_eyes.plugin")
    isolated_registry.register_plugin(plugin, "eyes")
    yield
    isolated_registry.unregister_plugin("eyes")


def _eyes_run(tmp: Path, kit, synthetic: Path | None = None, *extra: str) -> list[str]:
    args = ["run", "eyes-simgan", "--out", str(tmp / "out"), "--steps", "0", "--quiet", *extra]
    return [*args, "--synthetic", str(synthetic)] if synthetic else args


def _unityeyes_folder(tmp: Path, edit: Callable[[dict], None]) -> Path:
    folder = tmp / "unityeyes"
    folder.mkdir()
    data = json.loads((EYES_FIXTURES / "unityeyes-1.json").read_text())
    edit(data)
    (folder / "1.json").write_text(json.dumps(data))
    Image.new("RGB", (640, 480), (150, 120, 100)).save(folder / "1.jpg")
    return folder


def _drop_look_vec(data: dict) -> None:
    del data["eye_details"]["look_vec"]


def _text_look_vec(data: dict) -> None:
    data["eye_details"]["look_vec"] = "(left, up, 0, 0)"


def _rename_margin(data: dict) -> None:
    data["interior_margin"] = data.pop("interior_margin_2d")


def _nan_head_pose(data: dict) -> None:
    data["head_pose"] = "(nan, 0.0, 0.0)"


EYE_CASES = [
    ("unityeyes-missing-look-vec", _drop_look_vec, ("1.json", "'eye_details.look_vec'", "--skip-bad")),
    ("unityeyes-non-numeric-look-vec", _text_look_vec, ("1.json", "'eye_details.look_vec'", "'(left, up, 0, 0)'")),
    ("unityeyes-renamed-field", _rename_margin, ("1.json", "'interior_margin_2d'", "UnityEyes folder")),
    ("unityeyes-nan-head-pose", _nan_head_pose, ("1.json", "'head_pose'", "malformed")),
]


@pytest.mark.parametrize("edit, fragments", [c[1:] for c in EYE_CASES], ids=[c[0] for c in EYE_CASES])
def test_unityeyes_bad_annotation_through_cli(eyes, edit, fragments, tmp_path, kit) -> None:
    _assert_one_clear_message(kit.invoke(_eyes_run(tmp_path, kit, _unityeyes_folder(tmp_path, edit))), fragments)


def test_h5_with_wrong_layout_through_cli(eyes, tmp_path, kit) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "gaze.h5"
    with h5py.File(path, "w") as h5:
        h5["images"] = np.zeros((2, 35, 55), dtype=np.uint8)  # 'images', a dataset; the loader wants group 'image'
    setting = f'synthetic={{name="kaggle-h5", path="{path}"}}'
    _assert_one_clear_message(kit.invoke(_eyes_run(tmp_path, kit, None, "--set", setting)), ("gaze.h5", "'image'"))


def test_mat_with_wrong_layout_through_cli(eyes, tmp_path, kit) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    folder = tmp_path / "p00"
    folder.mkdir()
    scipy_io.savemat(folder / "day01.mat", {"images": np.zeros((2, 36, 60), dtype=np.uint8)})
    _assert_one_clear_message(kit.invoke(_eyes_run(tmp_path, kit, folder)), ("day01.mat", "'data'"))
