"""Files refinekit reads are untrusted: each hostile input has one expected, clean outcome.

Every case names what was wrong and where, exits 2 through the CLI, and writes nothing outside its folder.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from refinekit.cli.app import main
from refinekit.errors import ConfigError, DataError
from refinekit.refine.pipeline import refine_to_folder

SIZE = (35, 55)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, SIZE, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def refine_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["refine", *args, "--quiet"])
    return result.exit_code, result.output


def test_output_records_as_a_symlink_is_refused_and_nothing_is_written_through_it(refiner_file, images, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "records").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="'records' is a symlink"):
        refine_to_folder(refiner_file, images, out, progress=False)
    code, text = refine_cli(str(refiner_file), str(images), str(out))
    assert code == 2 and "symlink" in text and "Traceback" not in text
    assert not any(elsewhere.iterdir())


def _rewrite(path: Path, *, metadata: dict[str, str] | None = None, tensor_fill: float | None = None) -> None:
    """Change a refinekit safetensors file's metadata or poison its first float tensor, as an attacker could."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(path))
    if tensor_fill is not None:
        key = next(k for k, v in tensors.items() if v.is_floating_point())
        tensors[key] = tensors[key].clone()
        tensors[key].view(-1)[0] = tensor_fill
    meta.update(metadata or {})
    meta = {k: v for k, v in meta.items() if v is not None}
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("image_size", "[40000, 40000]"),
        ("image_size", "[0, 0]"),
        ("image_size", "[-5, 7]"),
        ("image_size", '"35x55"'),
        ("image_size", "[35]"),
        ("image_size", "[35.5, 55]"),
        ("image_size", "[true, 55]"),
        ("image_size", "not json"),
        ("image_size", None),
        ("channels", "0"),
        ("channels", "99"),
        ("channels", "three"),
        ("options", "[1, 2]"),
        ("options", '{"features": 1000000000, "blocks": 1}'),
        ("options", "{"),
        ("component", ""),
    ],
)
def test_refiner_metadata_out_of_bounds_is_refused_naming_file_and_key(refiner_file, images, tmp_path, key, value):
    from refinekit.errors import CheckpointError
    from refinekit.weights.files import load_refiner

    _rewrite(refiner_file, metadata={key: value})
    with pytest.raises(CheckpointError, match=f"{refiner_file}: metadata '{key}' is"):
        load_refiner(refiner_file)
    code, text = refine_cli(str(refiner_file), str(images), str(tmp_path / "out"))
    assert code == 2 and f"metadata '{key}'" in text and "Traceback" not in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("poison", [float("nan"), float("inf"), float("-inf")])
def test_refiner_weights_holding_nan_or_inf_are_refused_at_load(refiner_file, images, tmp_path, poison):
    _rewrite(refiner_file, tensor_fill=poison)
    code, text = refine_cli(str(refiner_file), str(images), str(tmp_path / "out"))
    assert code == 2 and "NaN or infinite" in text and str(refiner_file) in text, text
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.parametrize(("key", "value"), [("step", "-3"), ("step", "x"), ("skipped_steps", "-1"), ("step", "1e9")])
def test_a_checkpoint_with_a_bad_step_is_refused_and_keeps_the_metrics(tiny_domain, tmp_path, key, value):
    from refinekit.errors import CheckpointError
    from refinekit.training.setup import train

    out = tmp_path / "run"
    train("tiny", out)
    metrics = (out / "metrics.jsonl").read_text()
    _rewrite(out / "checkpoint.safetensors", metadata={key: value})
    with pytest.raises(CheckpointError, match=f"metadata '{key}' is '{value}', expected a whole number >= 0"):
        train("tiny", out, resume=True)
    assert (out / "metrics.jsonl").read_text() == metrics


def test_a_refine_that_wrote_no_image_writes_no_manifest_and_exits_2(refiner_file, images, tmp_path) -> None:
    for file in images.iterdir():
        file.write_bytes(b"not a png")
    out = tmp_path / "out"
    code, text = refine_cli(str(refiner_file), str(images), str(out), "--skip-bad")
    assert code == 2 and "none of the 4 inputs could be read" in text and "no manifest" in text, text
    assert not (out / "manifest.json").exists()
    rng = np.random.default_rng(0)
    for file in images.iterdir():  # repaired: the same command now refines them all
        Image.fromarray(rng.integers(0, 256, SIZE, dtype=np.uint8)).save(file, format="PNG")
    code, text = refine_cli(str(refiner_file), str(images), str(out), "--skip-bad")
    assert code == 0 and "Refined 4 images" in text, text


@pytest.mark.parametrize("follow", ["replace", "skip-bad"])
def test_the_advice_for_an_unreadable_input_works_when_followed(refiner_file, images, tmp_path, follow) -> None:
    out = tmp_path / "out"
    bad = images / "2.png"
    bad.write_bytes(b"\x89PNG truncated")
    code, text = refine_cli(str(refiner_file), str(images), str(out), "--shard-size", "1")
    assert code == 2 and str(bad) in text and "replace it" in text and "--skip-bad" in text, text
    assert "delete" not in text
    if follow == "replace":
        Image.fromarray(np.zeros(SIZE, np.uint8)).save(bad, format="PNG")
        code, text = refine_cli(str(refiner_file), str(images), str(out), "--shard-size", "1")
        assert code == 0 and "Refined 4 images" in text, text
    else:
        code, text = refine_cli(str(refiner_file), str(images), str(out), "--shard-size", "1", "--skip-bad")
        assert code == 0 and "Refined 3 images" in text, text


# -- walking input folders: regular files only, everything skipped is listed ----------------------------
def _hostile_folder(images: Path, tmp_path: Path) -> None:
    os.mkfifo(images / "x.png")  # opening it for reading would wait forever for a writer
    (images / "gone.png").symlink_to(tmp_path / "nothing-here.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(images / "s.png"))
    sock.close()
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(images / "..png", format="PNG")  # a name with no stem is an image


def test_refine_never_opens_a_fifo_and_lists_what_it_skipped(refiner_file, images, tmp_path) -> None:
    _hostile_folder(images, tmp_path)
    out = tmp_path / "out"
    with pytest.warns(UserWarning) as caught:
        manifest = refine_to_folder(refiner_file, images, out, progress=False)
    message = " ".join(str(w.message) for w in caught)
    assert "skipped 3 entries" in message
    assert "x.png is a named pipe (FIFO)" in message and "gone.png is a symlink to nothing" in message
    assert "s.png is a socket" in message
    assert manifest["complete"] and manifest["count"] == 5  # 4 images and ..png


def test_training_reads_the_folder_the_same_way(images, tmp_path) -> None:
    from refinekit.components.datasets import load_image_folder

    _hostile_folder(images, tmp_path)
    with pytest.warns(UserWarning, match="skipped 3 entries"):
        loaded = load_image_folder(str(images), channels=1, size=SIZE, limit=None, seed=0)
    assert len(loaded) == 5


def test_a_fifo_given_as_the_input_itself_is_refused(refiner_file, tmp_path) -> None:
    os.mkfifo(tmp_path / "x.h5")
    code, text = refine_cli(str(refiner_file), str(tmp_path / "x.h5"), str(tmp_path / "out"))
    assert code == 2 and "named pipe" in text, text


def test_an_image_swapped_for_a_fifo_after_listing_is_refused_not_waited_on(tmp_path) -> None:
    from refinekit.data.image_files import read_image

    os.mkfifo(tmp_path / "late.png")
    with pytest.raises(DataError, match="late.png: not a readable image .*not a regular file"):
        read_image(tmp_path / "late.png", 1)


def test_an_unlistable_subfolder_is_named_in_the_warning(refiner_file, images, tmp_path) -> None:
    locked = images / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user who can read any folder")
        with pytest.warns(UserWarning, match="locked is a folder that cannot be listed"):
            refine_to_folder(refiner_file, images, tmp_path / "out", progress=False)
    finally:
        locked.chmod(0o755)


def test_one_walker_serves_every_reader() -> None:
    import inspect

    from refinekit.data import cache
    from refinekit.data import image_files as imageio
    from refinekit.refine import inputs as refine_inputs

    for module in (cache, imageio, refine_inputs):
        assert "os.walk(" not in inspect.getsource(module), module.__name__


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_symlinks_to_no_file_are_skipped_with_a_warning_naming_them(images, tmp_path, kind) -> None:
    from refinekit.components.datasets import load_image_folder

    if kind == "dangling":
        (images / "gone.png").symlink_to(tmp_path / "nowhere.png")
        expected = "gone.png is a symlink to nothing"
    else:
        (images / "loop-a.png").symlink_to(images / "loop-b.png")
        (images / "loop-b.png").symlink_to(images / "loop-a.png")
        expected = r"loop-a.png cannot be read \(Too many levels of symbolic links\)"
    with pytest.warns(UserWarning, match=expected):
        loaded = load_image_folder(str(images), channels=1, size=SIZE, limit=None, seed=0)
    assert len(loaded) == 4


# -- bounds in the configuration ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("optim.betas=[2,3]", "'optim.betas.0'"),
        ("optim.betas=[0.5,-0.1]", "'optim.betas.1'"),
        ("buffer_size=1e11", "'buffer_size'"),
        ("buffer_size=9000000", "buffer_size (9000000) images"),  # in bounds as a count, not as memory at 64x64
        ("batch_size=10000000", "'batch_size'"),
        ("refiner.options.features=0", "'refiner.options.features'"),
        ("refiner.options.features=-3", "'refiner.options.features'"),
        ("refiner.options.blocks=1e9", "'refiner.options.blocks'"),
        ("discriminator.options.features=true", "'discriminator.options.features'"),
        ("image.height=60000", "'image.height'"),
        ("image.width=60000", "'image.width'"),
    ],
)
def test_out_of_bounds_settings_are_refused_naming_the_key(tmp_path, setting, named) -> None:
    args = ["run", "simgan", "--out", str(tmp_path / "run"), "--quiet", "--set", "image.height=64",
            "--set", "image.width=64", "--set", setting]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and named in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "run").exists()


# -- a full disk ------------------------------------------------------------------------------------
def test_a_full_disk_during_refine_exits_2_and_keeps_finished_shards(refiner_file, images, tmp_path, monkeypatch):
    import errno

    from refinekit.refine.outputs import ShardWriter

    out = tmp_path / "out"
    real_put = ShardWriter._put

    def put(self, name, data):
        if self.shard >= 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_put(self, name, data)

    monkeypatch.setattr(ShardWriter, "_put", put)
    code, text = refine_cli(str(refiner_file), str(images), str(out), "--shard-size", "2")
    said = " ".join(text.split())
    assert code == 2 and "no space left on the device" in said and "finished shards are kept" in said, text
    assert "Traceback" not in text and (out / "records" / "shard_00000.json").exists()
    assert not list(out.glob(".shard_*"))  # the half-written shard was cleared
    monkeypatch.setattr(ShardWriter, "_put", real_put)  # space freed: the same command finishes
    code, text = refine_cli(str(refiner_file), str(images), str(out), "--shard-size", "2")
    assert code == 0 and "Refined 4 images" in text, text


def test_a_full_disk_when_a_run_starts_exits_2_with_advice(tiny_domain, tmp_path, monkeypatch) -> None:
    import errno

    real_write = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == "config.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    result = CliRunner().invoke(main, ["run", "tiny", "--out", str(tmp_path / "run"), "--quiet"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "no space left on the device" in said and "free some space" in said, said
    assert "Traceback" not in result.output
