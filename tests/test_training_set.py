"""Make a training set: ``refinekit refine`` on a named dataset writes images plus ``metadata.jsonl`` labels.

Both built-in simulators, a folder dataset and a run folder, refined and raw;
a generated set rendered in blocks; shards; a kill and a rerun; and reading
the set back with :class:`refinekit.TrainingSet`.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import refinekit
import refinekit.refine.training_set as training_set
from refinekit.cli.app import main
from refinekit.config import DatasetConfig, ImageConfig, config_to_json
from refinekit.data.image_files import read_image
from refinekit.data.image_set import ImageSet
from refinekit.data.loading import load_dataset
from refinekit.plugins.hookspecs import hookimpl
from refinekit.refine.output_records import verify_output
from refinekit.refine.pipeline import open_refiner, refine_batch
from tests.conftest import export_tiny_refiner


def refine_cli(*args: str) -> str:
    result = CliRunner().invoke(main, ["refine", *args, "--quiet"])
    assert result.exit_code == 0, result.output
    return result.output


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]


def images_of(out: Path, rows: list[dict]) -> np.ndarray:
    return np.stack([read_image(out / row["file_name"], 1) for row in rows])


def assert_refined_from(refined: np.ndarray, raw: np.ndarray, refiner: Path) -> None:
    """The refined images are the refiner's output on the raw ones (to one grey level: batching differs)."""
    expected = refine_batch(open_refiner(refiner), torch.from_numpy(raw)).numpy()
    assert np.abs(refined.astype(int) - expected.astype(int)).max() <= 1
    assert not np.array_equal(refined, raw), "the refiner changed the images"


@pytest.fixture
def simulators(isolated_registry):
    eyes = pytest.importorskip("refinekit_eyes.plugin")
    digits = pytest.importorskip("refinekit_digits.plugin")
    isolated_registry.register_plugin(eyes, "eyes")
    isolated_registry.register_plugin(digits, "digits")
    return isolated_registry


def test_eyes_sim_refined_and_raw_with_gaze_labels(simulators, tmp_path: Path) -> None:
    refiner = export_tiny_refiner(tmp_path / "refiner.safetensors", (35, 55))
    options = ["--dataset", "eyes-sim", "--set", "count=10", "--set", "seed=7", "--shard-size", "4"]
    text = refine_cli(str(refiner), *options, str(tmp_path / "refined"))
    assert "Refined 10 images" in text and "metadata.jsonl" in text
    refine_cli(str(refiner), *options, "--raw", str(tmp_path / "raw"))

    expected = load_dataset(
        DatasetConfig(name="eyes-sim", options={"count": 10}), ImageConfig(channels=1, height=35, width=55), 7
    )
    raw_rows, refined_rows = rows_of(tmp_path / "raw"), rows_of(tmp_path / "refined")
    assert [r["index"] for r in raw_rows] == list(range(10))
    assert raw_rows == [{**r, "file_name": r["file_name"]} for r in refined_rows], "the same labels, same order"
    for key in ("gaze", "pitch_yaw", "iris_centre", "landmarks"):
        np.testing.assert_allclose(np.array([r[key] for r in raw_rows]), expected.annotations[key], rtol=1e-6)
    raw = images_of(tmp_path / "raw", raw_rows)
    np.testing.assert_array_equal(raw, expected.images)
    assert_refined_from(images_of(tmp_path / "refined", refined_rows), raw, refiner)
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert manifest["refined"] is False and manifest["input"]["dataset"] == "eyes-sim"
    assert "count=10" in manifest["input"]["description"] and "seed=7" in manifest["input"]["description"]
    assert verify_output(tmp_path / "refined")["count"] == 10


def test_digits_fonts_loads_back_as_a_torch_dataset_with_labels(simulators, tmp_path: Path) -> None:
    refiner = export_tiny_refiner(tmp_path / "refiner.safetensors", (28, 28))
    refine_cli(str(refiner), "--dataset", "digits-fonts", "--set", "count=20", str(tmp_path / "refined"))
    refine_cli(str(refiner), "--dataset", "digits-fonts", "--set", "count=20", "--raw", str(tmp_path / "raw"))

    expected = load_dataset(
        DatasetConfig(name="digits-fonts", options={"count": 20}), ImageConfig(channels=1, height=28, width=28), 0
    )
    raw_set, refined_set = refinekit.TrainingSet(tmp_path / "raw"), refinekit.TrainingSet(tmp_path / "refined")
    assert len(raw_set) == len(refined_set) == 20
    loader = torch.utils.data.DataLoader(refined_set, batch_size=8)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 1, 28, 28) and batch["image"].dtype == torch.uint8
    assert batch["label"].tolist() == expected.annotations["label"][:8].tolist()
    assert batch["index"].tolist() == list(range(8))
    np.testing.assert_array_equal(np.stack([raw_set[i]["image"].numpy() for i in range(20)]), expected.images)
    assert_refined_from(np.stack([refined_set[i]["image"].numpy() for i in range(20)]), expected.images, refiner)
    copied = pickle.loads(pickle.dumps(refined_set))  # as DataLoader workers receive it
    assert torch.equal(copied[3]["image"], refined_set[3]["image"]) and copied[3]["label"] == refined_set[3]["label"]
    scaled = refinekit.TrainingSet(tmp_path / "refined", transform=lambda x: x.float() / 255)
    assert scaled[-1]["image"].dtype == torch.float32 and scaled[-1]["label"] == expected.annotations["label"][-1]


def test_a_folder_dataset_keeps_its_sidecar_labels(tmp_path: Path) -> None:
    refiner = export_tiny_refiner(tmp_path / "refiner.safetensors", (35, 55))
    folder = tmp_path / "in"
    (folder / "b").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"a{i}.png" for i in range(3)] + [f"b/c{i}.png" for i in range(3)]  # the listing order
    for i, name in enumerate(names):
        Image.fromarray(rng.integers(0, 256, (35, 55), dtype=np.uint8)).save(folder / name)
        (folder / name).with_suffix(".json").write_text(json.dumps({"label": i, "gaze": [0.5, i / 3, -1.0]}))
    refine_cli(str(refiner), str(folder), str(tmp_path / "refined"), "--shard-size", "4")
    refine_cli(str(refiner), str(folder), str(tmp_path / "raw"), "--raw")

    for out in ("raw", "refined"):
        rows = rows_of(tmp_path / out)
        assert [(r["index"], r["label"], r["gaze"]) for r in rows] == [(i, i, [0.5, i / 3, -1.0]) for i in range(6)]
    raw = images_of(tmp_path / "raw", rows_of(tmp_path / "raw"))
    np.testing.assert_array_equal(raw, np.stack([read_image(folder / n, 1) for n in names]))
    assert_refined_from(images_of(tmp_path / "refined", rows_of(tmp_path / "refined")), raw, refiner)
    item = refinekit.TrainingSet(tmp_path / "refined")[4]
    assert item["label"] == 4 and item["gaze"].tolist() == pytest.approx([0.5, 4 / 3, -1.0])


def test_a_run_folder_refines_the_synthetic_set_it_trained_on(tiny_domain, tmp_path: Path) -> None:
    config = refinekit.resolve_config("tiny", overrides=["seed=5", "synthetic.options.count=12"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(config_to_json(config))
    export_tiny_refiner(run / "refiner.safetensors", (config.image.height, config.image.width))

    refine_cli(str(run), str(tmp_path / "raw"), "--raw")
    trained_on = load_dataset(config.synthetic, config.image, config.seed)
    rows = rows_of(tmp_path / "raw")
    assert [r["label"] for r in rows] == trained_on.annotations["label"].tolist()
    np.testing.assert_array_equal(images_of(tmp_path / "raw", rows), trained_on.images)

    refine_cli(str(run), "--set", "count=3", "--set", "seed=1", str(tmp_path / "other"), "--raw")
    np.testing.assert_array_equal(
        images_of(tmp_path / "other", rows_of(tmp_path / "other")),
        load_dataset(DatasetConfig(name="tiny", options={"bright": 60, "count": 3}), config.image, 1).images,
    )


class Stamped:
    """A generated dataset whose every image is one grey level, and whose label says which."""

    @staticmethod
    @hookimpl
    def register_datasets(register) -> None:
        def load_stamped(path, *, channels, size, limit, seed, count=10):
            values = (np.arange(count) * 7 + seed) % 251
            images = np.broadcast_to(values[:, None, None, None], (count, channels, *size)).astype(np.uint8)
            return ImageSet(images, {"value": values.astype(np.int64)}, source=f"stamped (seed {seed})")

        register("stamped", load_stamped, "one grey level per image, labelled with it")


@pytest.fixture
def stamped(isolated_registry, monkeypatch):
    isolated_registry.register_plugin(Stamped, "stamped")
    monkeypatch.setattr(training_set, "BLOCK", 8)  # a 30-image set renders in four blocks
    yield isolated_registry
    isolated_registry.unregister_plugin("stamped")


def test_a_large_generated_set_renders_block_by_block_and_keeps_two(stamped, tmp_path: Path) -> None:
    refiner = export_tiny_refiner(tmp_path / "refiner.safetensors", (16, 16))
    source = training_set.open_dataset(refiner, refiner, "stamped", None, {"count": 30, "seed": 3})
    assert isinstance(source, training_set.GeneratedInput) and len(source) == 30
    batch = source.read(5, 20, numeric=True)
    assert batch.fields["value"].tolist() == [int(v) for v in batch.images[:, 0, 0, 0]]
    assert len(source._blocks) <= 2
    first_block = load_dataset(DatasetConfig(name="stamped", options={"count": 8}), ImageConfig(height=16, width=16), 3)
    np.testing.assert_array_equal(source.read(0, 8, numeric=False).images, first_block.images)
    assert source.block_seed(1) != source.block_seed(2) and source.block_seed(0) == 3


def test_an_interrupted_generated_export_resumes_with_labels_aligned(stamped, tmp_path: Path, monkeypatch) -> None:
    refiner = export_tiny_refiner(tmp_path / "refiner.safetensors", (16, 16))
    out = tmp_path / "out"
    args = dict(dataset="stamped", options=["count=30", "seed=3"], raw=True, shard_size=4, batch_size=2, progress=False)
    original = training_set.GeneratedInput.read

    def dies_at_input_17(self, start, stop, numeric):
        if start >= 17:
            raise KeyboardInterrupt
        return original(self, start, stop, numeric)

    monkeypatch.setattr(training_set.GeneratedInput, "read", dies_at_input_17)
    with pytest.raises(KeyboardInterrupt):
        refinekit.make_training_set(refiner, out, **args)
    assert not (out / "metadata.jsonl").exists() and (out / "records" / "shard_00003.json").exists()
    done_before = (out / "shard_00000" / "000000.png").stat().st_mtime_ns
    monkeypatch.setattr(training_set.GeneratedInput, "read", original)

    summary = refinekit.make_training_set(refiner, out, **args)
    assert summary["complete"] and summary["count"] == 30
    assert (out / "shard_00000" / "000000.png").stat().st_mtime_ns == done_before, "finished shards are kept"
    rows = rows_of(out)
    assert [r["index"] for r in rows] == list(range(30))
    assert [r["value"] for r in rows] == [int(image[0, 0, 0]) for image in images_of(out, rows)]
    assert len({r["value"] for r in rows}) > 8, "blocks have seeds of their own"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary files left"


def test_shards_write_the_labels_once_the_last_part_is_done(stamped, tmp_path: Path) -> None:
    refiner = export_tiny_refiner(tmp_path / "refiner.safetensors", (16, 16))
    common = ["--dataset", "stamped", "--set", "count=12", "--shard-size", "3", "--raw", str(tmp_path / "out")]
    text = refine_cli(str(refiner), *common, "--shard", "0/2")
    assert "Done with this part" in text and not (tmp_path / "out" / "metadata.jsonl").exists()
    refine_cli(str(refiner), *common, "--shard", "1/2")
    rows = rows_of(tmp_path / "out")
    assert [r["index"] for r in rows] == list(range(12))
    assert [r["value"] for r in rows] == [int(image[0, 0, 0]) for image in images_of(tmp_path / "out", rows)]


def test_safetensors_exports_load_back_with_their_labels(stamped, tmp_path: Path) -> None:
    refiner = export_tiny_refiner(tmp_path / "refiner.safetensors", (16, 16))
    refine_cli(str(refiner), "--dataset", "stamped", "--set", "count=10", "--shard-size", "4", "--format",
               "safetensors", "--raw", str(tmp_path / "out"))
    assert not (tmp_path / "out" / "metadata.jsonl").exists()
    loaded = refinekit.TrainingSet(tmp_path / "out")
    assert len(loaded) == 10
    for i in (0, 5, 9):
        assert loaded[i]["index"] == i and int(loaded[i]["value"]) == int(loaded[i]["image"][0, 0, 0])


def test_mistakes_are_one_paragraph_errors(stamped, tmp_path: Path) -> None:
    refiner = export_tiny_refiner(tmp_path / "refiner.safetensors", (16, 16))
    result = CliRunner().invoke(main, ["refine", str(refiner), str(tmp_path / "out")])
    assert result.exit_code == 2 and "--dataset NAME" in result.output
    refine_cli(str(refiner), "--dataset", "stamped", "--set", "count=4", str(tmp_path / "out"))
    result = CliRunner().invoke(main, ["refine", str(refiner), "--dataset", "stamped", "--set", "count=4", "--raw",
                                       str(tmp_path / "out")])
    assert result.exit_code == 2 and "holds refined images" in result.output and "--raw" in result.output
    result = CliRunner().invoke(main, ["refine", str(refiner), "--dataset", "stamped", "--set", "seed=x",
                                       str(tmp_path / "new")])
    assert result.exit_code == 2 and "whole number" in result.output
    (tmp_path / "pngs").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "pngs" / "a.png")
    result = CliRunner().invoke(main, ["refine", str(refiner), str(tmp_path / "pngs"), "--set", "limit=1",
                                       str(tmp_path / "new")])
    assert result.exit_code == 2 and "takes no options or limit" in result.output


def test_killed_export_of_a_folder_resumes_with_labels_lined_up(tmp_path: Path) -> None:
    """SIGKILL mid-run (stopped first, so the kill always lands before the end); the rerun lists every image once."""
    count, size = 240, (48, 48)
    refiner = export_tiny_refiner(tmp_path / "refiner.safetensors", size)
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(count):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, size, dtype=np.uint8)).save(folder / f"{i:03d}.png")
        (folder / f"{i:03d}.json").write_text(json.dumps({"value": i, "odd": i % 2 == 1}))
    command = [sys.executable, "-m", "refinekit", "refine", str(refiner), str(folder), str(out),
               "--shard-size", "4", "--batch-size", "2", "--workers", "1", "--quiet"]
    env = {**os.environ, "REFINEKIT_DISABLE_ENTRY_POINTS": "1"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "records" / "shard_00002.json").exists():
            assert first.poll() is None and time.monotonic() < deadline, "refine ended before shard 2"
            time.sleep(0.002)
        first.send_signal(signal.SIGSTOP)
        assert not (out / "records" / f"shard_{count // 4 - 1:05d}.json").exists(), "stopped before the end"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert not (out / "metadata.jsonl").exists()
    second = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert second.returncode == 0, second.stderr.decode()

    rows = rows_of(out)
    assert [r["index"] for r in rows] == list(range(count)), "every image exactly once, in order"
    assert [(r["value"], r["odd"]) for r in rows] == [(i, i % 2 == 1) for i in range(count)]
    inputs = np.stack([read_image(folder / f"{r['index']:03d}.png", 1) for r in rows])
    assert_refined_from(images_of(out, rows), inputs, refiner)
    assert verify_output(out)["count"] == count
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("shard_*/*.png")) == [r["file_name"] for r in rows]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no temporary files left"
