"""The dataset cache: decode once, memory-map after, rebuild on change, stream batches with flat memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import refinekit.data.cache as cache
from refinekit.config import DatasetConfig, ImageConfig
from refinekit.data.cache import DatasetCache, dataset_identity, load_dataset_cached, prune
from refinekit.data.image_set import BatchSampler, ImageSet, is_memory_mapped
from refinekit.data.loading import load_dataset
from refinekit.plugins.hookspecs import hookimpl
from refinekit.training.setup import prepare, resolve_config

IMAGE = ImageConfig(channels=1, height=8, width=10)


def write_folder(folder: Path, count: int, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (8, 10), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every real decode the cache asks for."""
    calls: list[str] = []

    def counting(config, image, seed, skip_bad=False):
        calls.append(str(config.path))
        return load_dataset(config, image, seed, skip_bad)

    monkeypatch.setattr(cache, "load_dataset", counting)
    return calls


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REFINEKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def entries(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def test_first_load_decodes_and_later_loads_map_the_same_images(tmp_path, cache_dir, decodes) -> None:
    folder = write_folder(tmp_path / "imgs", 5)
    config = DatasetConfig(name="image-folder", path=str(folder))
    direct = load_dataset(config, IMAGE, seed=0)
    first = load_dataset_cached(config, IMAGE, seed=0, progress=False)
    second = load_dataset_cached(config, IMAGE, seed=0, progress=False)
    assert decodes == [str(folder)]  # decoded once, though loaded twice
    for loaded in (first, second):
        assert is_memory_mapped(loaded.images)
        np.testing.assert_array_equal(loaded.images, direct.images)
        assert loaded.source == direct.source
    (entry,) = entries(cache_dir)
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["count"] == 5 and meta["shape"] == [1, 8, 10] and meta["identity"]["path"] == str(folder.resolve())


def test_annotations_are_cached_with_their_images(tmp_path, cache_dir, decodes) -> None:
    folder = write_folder(tmp_path / "imgs", 3)
    for i in range(3):
        (folder / f"{i:03d}.json").write_text(json.dumps({"gaze": [i, -i, 1.5]}))
    config = DatasetConfig(name="image-folder", path=str(folder))
    load_dataset_cached(config, IMAGE, seed=0, progress=False)
    hit = load_dataset_cached(config, IMAGE, seed=0, progress=False)
    assert len(decodes) == 1
    np.testing.assert_array_equal(hit.annotations["gaze"], [[0, 0, 1.5], [1, -1, 1.5], [2, -2, 1.5]])


def test_a_changed_input_rebuilds_the_entry_in_place(tmp_path, cache_dir, decodes) -> None:
    folder = write_folder(tmp_path / "imgs", 4)
    config = DatasetConfig(name="image-folder", path=str(folder))
    before = np.array(load_dataset_cached(config, IMAGE, seed=0, progress=False).images)
    Image.fromarray(np.full((8, 10), 7, np.uint8)).save(folder / "001.png")
    stat = (folder / "001.png").stat()
    os.utime(folder / "001.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a visibly newer file
    after = load_dataset_cached(config, IMAGE, seed=0, progress=False)
    assert len(decodes) == 2
    assert (after.images[1] == 7).all() and not np.array_equal(before, after.images)
    assert len(entries(cache_dir)) == 1  # rebuilt in place, not a second copy


def test_loader_settings_are_part_of_the_key(tmp_path, cache_dir, decodes) -> None:
    folder = write_folder(tmp_path / "imgs", 4)
    config = DatasetConfig(name="image-folder", path=str(folder))
    small = load_dataset_cached(config, IMAGE, seed=0, progress=False)
    big = load_dataset_cached(config, ImageConfig(channels=1, height=16, width=20), seed=0, progress=False)
    limited = load_dataset_cached(config.model_copy(update={"limit": 2}), IMAGE, seed=0, progress=False)
    assert small.images.shape == (4, 1, 8, 10) and big.images.shape == (4, 1, 16, 20) and len(limited) == 2
    assert len(decodes) == 3 and len(entries(cache_dir)) == 3


def test_cache_off_and_pathless_datasets_decode_every_time(tmp_path, cache_dir, decodes, tiny_domain, monkeypatch) -> None:
    generated = DatasetConfig(name="tiny")
    for _ in range(2):
        assert not is_memory_mapped(load_dataset_cached(generated, IMAGE, seed=0, progress=False).images)
    monkeypatch.setenv("REFINEKIT_CACHE", "0")
    folder = write_folder(tmp_path / "imgs", 2)
    for _ in range(2):
        load_dataset_cached(DatasetConfig(name="image-folder", path=str(folder)), IMAGE, seed=0, progress=False)
    assert decodes == ["None", "None", str(folder), str(folder)]
    assert not cache_dir.exists()


def test_a_cache_hit_repeats_the_warnings_of_the_decode(tmp_path, cache_dir, decodes) -> None:
    folder = write_folder(tmp_path / "imgs", 3)
    (folder / "broken.png").write_bytes(b"not a png")
    config = DatasetConfig(name="image-folder", path=str(folder))
    for _ in range(2):
        with pytest.warns(UserWarning, match="skipped 1 of 4 files"):
            assert len(load_dataset_cached(config, IMAGE, seed=0, skip_bad=True, progress=False)) == 3
    assert len(decodes) == 1


def test_object_annotations_are_not_cached_and_say_why(tmp_path, cache_dir, tiny_domain) -> None:
    class Objects:
        @staticmethod
        @hookimpl
        def register_datasets(register) -> None:
            def load(path, *, channels, size, limit, seed):
                return ImageSet(np.zeros((2, 1, *size), np.uint8), {"meta": np.array([{}, {}], dtype=object)}, "objects")

            register("objects", load, "object annotations")

    tiny_domain.register_plugin(Objects, "objects")
    config = DatasetConfig(name="objects", path=str(write_folder(tmp_path / "imgs", 1)))
    with pytest.warns(UserWarning, match="annotation 'meta' holds Python objects"):
        loaded = load_dataset_cached(config, IMAGE, seed=0, progress=False)
    assert len(loaded) == 2 and not is_memory_mapped(loaded.images)
    assert not cache_dir.exists() or entries(cache_dir) == []


def test_prune_drops_entries_of_deleted_inputs_and_dead_builds(tmp_path, cache_dir) -> None:
    keep, gone = write_folder(tmp_path / "keep", 2), write_folder(tmp_path / "gone", 2)
    for folder in (keep, gone):
        load_dataset_cached(DatasetConfig(name="image-folder", path=str(folder)), IMAGE, seed=0, progress=False)
    dead_build = cache_dir / ".tmp-image-folder-0123-999999999"
    dead_build.mkdir()
    for file in gone.iterdir():
        file.unlink()
    gone.rmdir()
    removed = prune(cache_dir)
    assert dead_build in removed and not dead_build.exists()
    (left,) = entries(cache_dir)
    assert json.loads((left / "meta.json").read_text())["identity"]["path"] == str(keep.resolve())


def test_an_entry_from_other_input_files_is_not_served(tmp_path, cache_dir) -> None:
    folder = write_folder(tmp_path / "imgs", 2)
    config = DatasetConfig(name="image-folder", path=str(folder))
    load_dataset_cached(config, IMAGE, seed=0, progress=False)
    entry = DatasetCache(cache_dir, dataset_identity(config, IMAGE, 0, False))
    assert entry.open("another fingerprint") is None
    assert entry.open(cache.fingerprint(folder)) is not None


# -- sampling from the map --------------------------------------------------------


def test_memory_mapped_sets_stream_on_cpu_and_give_the_same_batches(tmp_path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (50, 1, 8, 10), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    mapped = ImageSet(np.load(tmp_path / "images.npy", mmap_mode="r"))
    in_ram = ImageSet(images)
    streaming = BatchSampler(mapped, 16, torch.device("cpu"), seed=3)
    resident = BatchSampler(in_ram, 16, torch.device("cpu"), seed=3)
    assert not streaming.resident and resident.resident  # the map is never copied in whole
    for _ in range(3):
        (i1, b1), (i2, b2) = streaming.next(), resident.next()
        assert torch.equal(i1, i2) and torch.equal(b1, b2)
        assert torch.equal(b1, torch.from_numpy(images[i1.numpy()]).float() / 127.5 - 1)


def test_training_on_image_folders_samples_from_the_cache(tmp_path, cache_dir) -> None:
    synthetic, real = write_folder(tmp_path / "syn", 6, seed=1), write_folder(tmp_path / "real", 6, seed=2)
    config = resolve_config(
        "simgan",
        synthetic=str(synthetic),
        real=str(real),
        overrides=["image.height=8", "image.width=10", "batch_size=4", "buffer_size=4", "device=\"cpu\""],
    )
    trainer = prepare(config, tmp_path / "run")
    for sampler in (trainer.synthetic, trainer.real):
        assert is_memory_mapped(sampler.image_set.images) and not sampler.resident
    assert len(entries(cache_dir)) == 2
    metrics = trainer.refiner_step(adversarial=False)
    assert np.isfinite(metrics["refiner_loss"])
