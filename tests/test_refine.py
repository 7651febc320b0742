"""``refinekit refine``: outputs, annotations, formats, resuming, parts, path safety and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors import safe_open

from refinekit.cli.app import main
from refinekit.data.image_files import read_image
from refinekit.data.image_set import ImageSet
from refinekit.errors import CheckpointError, ConfigError, DataError
from refinekit.plugins.hookspecs import hookimpl
from refinekit.refine.output_records import verify_output
from refinekit.refine.pipeline import open_refiner, parse_shard, refine_batch, refine_to_folder

SIZE = (35, 55)


def make_folder(folder: Path, count: int, size: tuple[int, int] = SIZE, sidecars: bool = True) -> list[Path]:
    """``count`` noise PNGs, every other one in a subfolder, each with a JSON sidecar."""
    rng = np.random.default_rng(1)
    files = []
    for i in range(count):
        where = folder / ("sub" if i % 2 else "")
        where.mkdir(parents=True, exist_ok=True)
        file = where / f"im{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(file)
        if sidecars:
            file.with_suffix(".json").write_text(json.dumps({"gaze": [0.25, -1.5, i / 7], "label": i}))
        files.append(file)
    return files


def listing_order(files: list[Path], folder: Path) -> list[Path]:
    """The documented input order: each folder's files sorted, then its subfolders."""
    return sorted(files, key=lambda f: (f.parent != folder, str(f)))


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["refine", *args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_png_outputs_are_the_refined_inputs_with_sidecars_copied(refiner_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    files = listing_order(make_folder(folder, 11), folder)
    out = tmp_path / "out"
    code, text = run_cli(str(refiner_file), str(folder), str(out), "--shard-size", "4", "--batch-size", "3", "--quiet")
    assert code == 0, text
    assert "Refined 11 images" in text
    manifest = manifest_of(out)
    assert manifest["count"] == 11 and manifest["complete"] and manifest["shard_count"] == 3
    assert [r["count"] for r in manifest["shards"]] == [4, 4, 3]
    assert manifest["image"] == {**manifest["image"], "channels": 1, "height": 35, "width": 55}
    assert manifest["refiner"]["sha256"] == __import__("hashlib").sha256(refiner_file.read_bytes()).hexdigest()
    refiner = open_refiner(refiner_file)
    for index, file in enumerate(files):
        shard = f"shard_{index // 4:05d}"
        written = read_image(out / shard / f"{index:06d}.png", 1)
        expected = refine_batch(refiner, torch.from_numpy(read_image(file, 1))[None])[0].numpy()
        np.testing.assert_array_equal(written, expected)
        # annotations travel unchanged: the sidecar is byte-for-byte the input's
        assert (out / shard / f"{index:06d}.json").read_bytes() == file.with_suffix(".json").read_bytes()
        record = manifest["shards"][index // 4]
        assert record["sources"][index % 4] == file.relative_to(folder).as_posix()
    assert verify_output(out) == {"count": 11, "skipped": 0, "files": 22}


def test_outputs_are_at_the_refiner_working_size(refiner_file: Path, tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 3, size=(70, 110))
    with pytest.warns(UserWarning, match=r"3 images .* resized \(--resize stretch\).*x' = x \* 0\.5 \+ 0"):
        manifest = refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out", progress=False, resize="stretch")
    assert manifest["count"] == 3
    assert Image.open(tmp_path / "out" / "shard_00000" / "000000.png").size == (55, 35)


def test_safetensors_shards_hold_images_index_and_annotation_tensors(refiner_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    files = listing_order(make_folder(folder, 7), folder)
    out = tmp_path / "out"
    manifest = refine_to_folder(refiner_file, folder, out, shard_size=5, fmt="safetensors", progress=False)
    assert manifest["count"] == 7 and [s["count"] for s in manifest["shards"]] == [5, 2]
    with safe_open(str(out / "shard_00001.safetensors"), "pt") as f:
        assert f.get_tensor("index").tolist() == [5, 6]
        assert f.get_tensor("images").dtype == torch.uint8 and f.get_tensor("images").shape == (2, 1, 35, 55)
        labels = f.get_tensor("annotation.label").tolist()
        gaze = f.get_tensor("annotation.gaze").numpy()
        assert json.loads(f.metadata()["sources"]) == [p.relative_to(folder).as_posix() for p in files[5:]]
    sidecars = [json.loads(p.with_suffix(".json").read_text()) for p in files[5:]]
    assert labels == [s["label"] for s in sidecars]
    np.testing.assert_array_equal(gaze, [s["gaze"] for s in sidecars])
    assert verify_output(out)["files"] == 2


class ArrayDomain:
    """A dataset loader returning a memory-mapped ImageSet with annotations, and a 3-channel one."""

    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        def load_mapped(path, *, channels, size, limit, seed):
            images = np.load(Path(path) / "images.npy", mmap_mode="r")
            gaze = np.load(Path(path) / "gaze.npy")
            return ImageSet(images, {"gaze": gaze, "subject": np.arange(len(images)) % 3}, source=f"mapped {path}")

        def load_rgb(path, *, channels, size, limit, seed):
            return ImageSet(np.zeros((4, 3, *size), np.uint8), source="rgb")

        register("mapped", load_mapped, "a memory-mapped test set", detect=lambda p: (Path(p) / "images.npy").exists())
        register("rgb", load_rgb, "three-channel images whatever is asked")


@pytest.fixture
def array_domain(isolated_registry):
    isolated_registry.register_plugin(ArrayDomain, "array-domain")
    yield isolated_registry
    isolated_registry.unregister_plugin("array-domain")


@pytest.mark.parametrize("fmt", ["png", "safetensors"])
def test_loader_input_is_streamed_from_its_arrays_with_annotations(refiner_file, tmp_path, array_domain, fmt) -> None:
    data = tmp_path / "mapped"
    data.mkdir()
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (9, 1, 20, 30), dtype=np.uint8)  # not the working size: resized to it
    gaze = rng.normal(size=(9, 3)).astype(np.float32)
    np.save(data / "images.npy", images)
    np.save(data / "gaze.npy", gaze)
    out = tmp_path / "out"
    manifest = refine_to_folder(
        refiner_file, data, out, shard_size=4, batch_size=3, fmt=fmt, progress=False, resize="stretch"
    )
    assert manifest["input"]["dataset"] == "mapped" and manifest["count"] == 9
    if fmt == "png":
        sidecar = json.loads((out / "shard_00002" / "000008.json").read_text())
        assert np.float32(sidecar["gaze"]).tolist() == gaze[8].tolist() and sidecar["subject"] == 8 % 3
        assert Image.open(out / "shard_00000" / "000000.png").size == (55, 35)
    else:
        with safe_open(str(out / "shard_00001.safetensors"), "pt") as f:
            np.testing.assert_array_equal(f.get_tensor("annotation.gaze").numpy(), gaze[4:8])
            assert f.get_tensor("images").shape == (4, 1, 35, 55)
    verify_output(out)


def test_channel_mismatch_names_the_refiner_and_both_counts(refiner_file, tmp_path, array_domain) -> None:
    with pytest.raises(DataError, match=r"refiner .*refiner\.safetensors refines 1-channel .* 3-channel"):
        refine_to_folder(refiner_file, tmp_path, tmp_path / "out", dataset="rgb", progress=False)
    make_folder(tmp_path / "in", 1)
    code, text = run_cli(str(refiner_file), str(tmp_path / "in"), str(tmp_path / "out"), "--channels", "3")
    assert code == 2
    assert "refiner.safetensors refines 1-channel images, but 3-channel input" in " ".join(text.split())


def test_rerun_keeps_done_shards_and_redoes_unfinished_ones(refiner_file: Path, tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 10, sidecars=False)
    out = tmp_path / "out"
    refine_to_folder(refiner_file, tmp_path / "in", out, shard_size=4, progress=False)
    reference = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")}
    # What a run killed mid-way leaves: shard 1 renamed into place but without its record, shard 2 half-written.
    (out / "records" / "shard_00001.json").unlink()
    (out / "records" / "shard_00002.json").unlink()
    (out / "shard_00001" / "000004.png").unlink()
    (out / "shard_00002").rename(out / ".shard_00002.tmp-99999")
    (out / "manifest.json").unlink()
    kept = out / "shard_00000" / "000000.png"
    before = (kept.stat().st_ino, kept.stat().st_mtime_ns)
    manifest = refine_to_folder(refiner_file, tmp_path / "in", out, shard_size=4, progress=False)
    assert manifest["count"] == 10
    assert (kept.stat().st_ino, kept.stat().st_mtime_ns) == before  # done shard untouched
    assert not list(out.glob(".shard_*"))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")} == reference
    assert verify_output(out)["count"] == 10


def test_rerun_with_other_settings_or_into_a_foreign_folder_is_refused(refiner_file: Path, tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 3, sidecars=False)
    refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out", shard_size=2, progress=False)
    with pytest.raises(ConfigError, match="shard_size: was 2, now 3"):
        refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out", shard_size=3, progress=False)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty and holds no refinekit refine records"):
        refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "foreign", progress=False)


def test_parts_write_only_their_shards_and_the_last_one_writes_the_manifest(refiner_file, tmp_path, monkeypatch):
    make_folder(tmp_path / "in", 9, sidecars=False)
    out = tmp_path / "out"
    first = refine_to_folder(refiner_file, tmp_path / "in", out, shard_size=2, shard=(0, 2), progress=False)
    assert not first["complete"] and first["manifest"] is None and not (out / "manifest.json").exists()
    assert sorted(p.name for p in out.glob("shard_*")) == ["shard_00000", "shard_00002", "shard_00004"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")  # torchrun's way of saying --shard 1/2
    second = refine_to_folder(refiner_file, tmp_path / "in", out, shard_size=2, progress=False)
    assert second["complete"] and second["count"] == 9
    manifest = manifest_of(out)
    assert sorted(i for r in manifest["shards"] for i in r["indices"]) == list(range(9))
    assert verify_output(out) == {"count": 9, "skipped": 0, "files": 9}


def test_cli_reports_an_unfinished_part(refiner_file: Path, tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 4, sidecars=False)
    options = ["--shard-size", "1", "--shard", "1/3", "--quiet"]
    code, text = run_cli(str(refiner_file), str(tmp_path / "in"), str(tmp_path / "o"), *options)
    assert code == 0, text
    assert "1 of 4 shards" in text and "writes manifest.json" in text


@pytest.mark.parametrize(
    "evil", ["../../etc/passwd", "/etc/passwd", "shard_00000/../../x.png", "shard_00001/000002.png"]
)
def test_a_tampered_record_can_not_reach_outside_output(refiner_file: Path, tmp_path: Path, evil: str) -> None:
    make_folder(tmp_path / "in", 4, sidecars=False)
    out = tmp_path / "out"
    refine_to_folder(refiner_file, tmp_path / "in", out, shard_size=2, progress=False)
    victim = tmp_path / "x.png"
    victim.write_bytes(b"not yours")
    record_path = out / "records" / "shard_00000.json"
    record = json.loads(record_path.read_text())
    record["files"][0]["name"] = evil
    record_path.write_text(json.dumps(record))
    with pytest.raises(DataError, match="delete it and rerun|not a file of shard_00000"):
        refine_to_folder(refiner_file, tmp_path / "in", out, shard_size=2, progress=False)
    assert victim.read_bytes() == b"not yours"


def test_a_tampered_manifest_or_a_symlink_can_not_make_verify_read_outside(refiner_file: Path, tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 2, sidecars=False)
    out = tmp_path / "out"
    refine_to_folder(refiner_file, tmp_path / "in", out, progress=False)
    pristine = (out / "manifest.json").read_text()
    manifest = json.loads(pristine)
    manifest["shards"][0]["files"][0]["name"] = "../in/im000.png"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"'\.\./in/im000\.png' has empty, '\.' or '\.\.' parts"):
        verify_output(out)
    (out / "manifest.json").write_text(pristine)
    target = out / "shard_00000" / "000000.png"
    target.unlink()
    target.symlink_to(tmp_path / "in" / "im000.png")
    with pytest.raises(DataError, match="is a symlink"):
        verify_output(out)
    (out / "shard_00000").rename(tmp_path / "elsewhere")
    (out / "shard_00000").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DataError, match="resolves \\(through a symlink\\) outside"):
        verify_output(out)


def test_unreadable_inputs_stop_the_run_or_are_skipped_and_listed(refiner_file: Path, tmp_path: Path) -> None:
    make_folder(tmp_path / "in", 5, sidecars=False)
    (tmp_path / "in" / "im002.png").write_bytes(b"\x89PNG broken")
    code, text = run_cli(str(refiner_file), str(tmp_path / "in"), str(tmp_path / "a"), "--quiet")
    assert code == 2 and "im002.png" in text and "--skip-bad" in text
    assert not list((tmp_path / "a").glob(".shard_*")), "a failed run leaves no temporary files"
    with pytest.warns(UserWarning, match="skipped 1 unreadable inputs"):
        manifest = refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "b", skip_bad=True, progress=False)
    assert manifest["count"] == 4 and manifest["skipped"] == 1
    record = manifest_of(tmp_path / "b")["shards"][0]
    assert [s["source"] for s in record["skipped"]] == ["im002.png"] and 1 not in record["indices"]
    assert verify_output(tmp_path / "b") == {"count": 4, "skipped": 1, "files": 4}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MISSING"], "does not exist"),
        (["EMPTY"], "is an empty folder"),
        (["--shard", "3/2"], "I must be in 0..N-1"),
        (["--shard", "x"], "expected I/N"),
    ],
)
def test_input_and_option_errors_exit_2_with_a_message(refiner_file, tmp_path, args, message) -> None:
    make_folder(tmp_path / "in", 1, sidecars=False)
    (tmp_path / "empty").mkdir()
    source = {"MISSING": str(tmp_path / "nope"), "EMPTY": str(tmp_path / "empty")}.get(args[0], str(tmp_path / "in"))
    options = [] if args[0] in ("MISSING", "EMPTY") else args
    code, text = run_cli(str(refiner_file), source, str(tmp_path / "out"), *options)
    assert code == 2
    assert message in " ".join(text.split())


def test_pickle_refiners_are_refused_with_conversion_advice(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(CheckpointError, match="refinekit convert"):
        refine_to_folder(tmp_path / "refiner.pt", tmp_path / "in", tmp_path / "out", progress=False)


def test_parse_shard() -> None:
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) is None
    for bad in ("3/2", "x", "1/0", "-1/2", "1"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)


def test_refine_batch_keeps_dtype_shape_device_and_makes_a_trainable_tensor(refiner_file: Path) -> None:
    refiner = open_refiner(refiner_file)
    floats = torch.rand(2, 1, 35, 55)
    out = refine_batch(refiner, floats, value_range=(0.0, 1.0))
    assert out.dtype == torch.float32 and out.shape == floats.shape and 0 <= out.min() and out.max() <= 1
    conv = torch.nn.Conv2d(1, 1, 3)
    conv(out).sum().backward()  # not an inference tensor: autograd accepts it
    assert conv.weight.grad is not None
    assert refine_batch(refiner, torch.zeros(1, 1, 35, 55, dtype=torch.uint8)).dtype == torch.uint8
    with pytest.raises(DataError, match="refines 1-channel images, but .* has 3 channels"):
        refine_batch(refiner, torch.zeros(1, 3, 35, 55))


def test_progress_bar_shows_images_per_second(refiner_file: Path, tmp_path: Path, capsys) -> None:
    make_folder(tmp_path / "in", 3, sidecars=False)
    refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out", progress=True)
    shown = capsys.readouterr().err
    assert "3/3" in shown and "img/s" in shown
    refine_to_folder(refiner_file, tmp_path / "in", tmp_path / "out2", progress=False)
    assert capsys.readouterr().err == ""
