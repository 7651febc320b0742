"""Make a training set: any registered dataset, simulators included, refined (or raw) and written with its labels.

This is ``refinekit refine`` with the dataset named instead of read from a
path. The pipeline, folder layout, shards, resuming and manifest are those of
:func:`refinekit.refine.pipeline.refine_to_folder`; this module chooses the input and,
once every shard is done, writes the labels file (:mod:`refinekit.refine.labelled_set`).

Generated datasets stream too: a loader with a ``count`` option is asked for
at most :data:`BLOCK` images at a time. Block 0 is rendered with the given
seed, so a set of up to ``BLOCK`` images is exactly the one training loads
with the same options; later blocks get seeds derived from (seed, block). A
dataset read from a path goes through the training cache (decoded once,
memory-mapped); an image folder is listed and decoded a batch at a time.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections import OrderedDict
from pathlib import Path
from threading import Lock
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from refinekit.config import DatasetConfig, ImageConfig, build_config, deep_merge, parse_set
from refinekit.errors import ConfigError
from refinekit.refine.inputs import FOLDER_DATASET, ArrayInput, FolderInput, InputBatch
from refinekit.refine.labelled_set import TrainingSet, write_metadata

__all__ = ["BLOCK", "TrainingSet", "make_training_set", "write_metadata"]

BLOCK = 32768
"""Most images a generated dataset renders at once (about 63 MB of 35x55 eyes, plus the renderer's working memory)."""
DATASET_KEYS = ("seed", "limit", "path")  # --set keys that are not loader options


def make_training_set(
    refiner: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    input_path: str | os.PathLike[str] | None = None,
    options: Mapping[str, Any] | Sequence[str] = (),
    raw: bool = False,
    batch_size: int = 256,
    shard_size: int = 4096,
    shard: tuple[int, int] | None = None,
    fmt: str = "png",
    device: str = "auto",
    precision: str = "fp32",
    skip_bad: bool = False,
    progress: bool = True,
    channels: int | None = None,
    workers: int | None = None,
    resize: str = "refuse",
    convert_channels: bool = False,
) -> dict[str, Any]:
    """Refine a registered dataset (or a path) and write it with its labels; resumable, shardable, streaming.

    Rerunning the same call after a kill finishes the work, writing each image
    exactly once. With ``shard=(i, n)`` this process does part i of n; the part
    that finishes last writes ``manifest.json`` and ``metadata.jsonl``.

    Args:
        refiner: an exported ``refiner.safetensors``, a run folder or a pretrained refiner's name. Its
            working size and channels are the output's. A run folder (or pretrained name) also supplies
            the dataset: by default the synthetic dataset the run trained on, with the run's seed.
        output: the output folder (new, empty, or an unfinished export with the same settings).
        dataset: a registered dataset name, e.g. ``eyes-sim``, ``digits-fonts`` or ``image-folder``.
            Default: the run's synthetic dataset, or the loader detected for ``input_path``.
        input_path: a file or folder to read; None for generated datasets.
        options: the dataset's options, as ``key=value`` strings (``--set``) or a dict: loader options such
            as ``count``, plus ``seed``, ``limit`` and ``path``.
        raw: write the unrefined images (resized to the refiner's working size), to compare with.
        batch_size: images per refiner call.
        shard_size: images per output shard: the unit of resuming and of ``shard``.
        shard: ``(i, n)``: write only part i of n (default: all, or RANK/WORLD_SIZE under ``torchrun``).
        fmt: ``png`` (image files plus ``metadata.jsonl``) or ``safetensors`` (one file per shard).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``.
        skip_bad: skip unreadable input files (listed in the manifest) instead of stopping.
        progress: show a progress bar.
        channels: the channels the input must have; must be the refiner's.
        workers: threads decoding and writing images (default: the CPU count, at most 4).
        resize: for image files not at the working size: ``refuse``, ``stretch``, ``pad`` or ``crop``
            (see :func:`refinekit.refine.pipeline.refine_to_folder`).
        convert_channels: convert image files of the other colour kind instead of refusing them.

    Returns:
        The manifest summary (``count``, ``complete``, ``shards``, ...) plus ``metadata``: the
        labels file once every shard is done (``fmt="png"``), else None.

    Examples:
        >>> refinekit.make_training_set("runs/digits", "data/digits", options={"count": 60000})  # doctest: +SKIP
        >>> train_set = refinekit.TrainingSet("data/digits")  # doctest: +SKIP
    """
    from refinekit.refine.pipeline import refine_to_folder
    from refinekit.weights.pretrained import resolve_refiner

    refiner_path = resolve_refiner(refiner)
    overrides = _options_dict(options)
    _refuse_mixing(Path(output), raw)  # before rendering anything
    source = None
    if input_path is None or overrides:
        source = open_dataset(
            refiner, refiner_path, dataset, input_path, overrides, skip_bad, progress, resize, convert_channels
        )
    summary = refine_to_folder(
        refiner_path, input_path, output, batch_size=batch_size, shard_size=shard_size, shard=shard, fmt=fmt,
        dataset=dataset, device=device, precision=precision, skip_bad=skip_bad, progress=progress,
        channels=channels, workers=workers, source=source, raw=raw, resize=resize, convert_channels=convert_channels,
    )
    summary["metadata"] = None
    if summary["complete"] and fmt == "png":
        summary["metadata"] = str(write_metadata(output))
    return summary


# -- choosing the input ----------------------------------------------------------
def open_dataset(
    refiner: str | os.PathLike[str],
    refiner_path: Path,
    dataset: str | None,
    input_path: str | os.PathLike[str] | None,
    overrides: dict[str, Any],
    skip_bad: bool = False,
    progress: bool = True,
    resize: str = "refuse",
    convert_channels: bool = False,
) -> Any:
    """The input to refine: a streamed image folder, a cached dataset, or a generated one rendered in blocks."""
    from refinekit.data.cache import load_dataset_cached
    from refinekit.data.loading import detect_dataset
    from refinekit.plugins.registry import get_dataset
    from refinekit.weights.files import load_refiner

    model = load_refiner(refiner_path, "cpu")
    image = ImageConfig(
        channels=model.refinekit_channels, height=model.refinekit_image_size[0], width=model.refinekit_image_size[1]
    )
    run = _run_config(refiner)
    if input_path is not None:
        name = dataset or detect_dataset(str(input_path), (FOLDER_DATASET,), name_option="--dataset NAME")
        base: dict[str, Any] = {"name": name, "path": str(input_path)}
        seed = 0
    elif run is not None and dataset in (None, run.synthetic.name):
        base, seed = run.synthetic.model_dump(mode="json"), run.seed
    elif dataset is not None:
        base, seed = {"name": dataset}, 0
    else:
        raise ConfigError(
            f"{refiner} is a refiner file, so it does not say which dataset to refine; name one with "
            "--dataset NAME ('refinekit plugins' or refinekit.list_datasets() lists them), give an INPUT path, "
            "or pass the run folder the refiner came from"
        )
    for key, value in overrides.items():
        if key == "seed":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"--set seed={value!r}: the seed must be a whole number")
            seed = value
        elif key in ("limit", "path"):
            base[key] = value
        else:
            base = deep_merge(base, {"options": {key: value}})
    try:
        config = DatasetConfig.model_validate(base)
    except ValueError as exc:
        raise ConfigError(f"dataset '{base.get('name')}' with --set {overrides}: {exc}") from None
    entry = get_dataset(config.name)
    if config.name == FOLDER_DATASET and config.path is not None:
        if config.options or config.limit is not None:
            given = {**config.options, **({"limit": config.limit} if config.limit is not None else {})}
            raise ConfigError(
                f"image-folder refines every image file under {config.path} and takes no options or limit, got "
                f"{given}; drop those --set options, or copy the images you want into a folder of their own"
            )
        return FolderInput(
            Path(config.path), image.channels, (image.height, image.width), skip_bad, resize, convert_channels
        )
    identity = {"dataset": config.model_dump(mode="json"), "seed": seed, "image": image.model_dump(mode="json")}
    count = _generated_count(entry.factory, config)
    if count is not None and count > BLOCK:
        return GeneratedInput(config, image, seed, count, identity)
    images = load_dataset_cached(config, image, seed, skip_bad, progress)
    return DatasetInput(images, config.name, (image.height, image.width), identity)


def _run_config(refiner: str | os.PathLike[str]) -> Any:
    """The training config of a run folder or pretrained refiner, or None for a bare refiner file."""
    from refinekit.weights.pretrained import get_pretrained

    path = Path(refiner)
    if path.is_dir():
        config_file = path / "config.json"
    else:
        shipped = None if path.exists() else get_pretrained(str(refiner))
        config_file = shipped.config if shipped is not None else None
    if config_file is None or not config_file.is_file():
        return None
    try:
        data = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_file} is not valid JSON ({exc}); is it a run folder written by 'refinekit run'?") from None
    return build_config(data, origin=str(config_file))


def _generated_count(factory: Callable[..., Any], config: DatasetConfig) -> int | None:
    """How many images a generated dataset will make, when its loader takes ``count``; else None."""
    if config.path is not None:
        return None
    try:
        parameter = inspect.signature(factory).parameters.get("count")
    except (TypeError, ValueError):
        return None
    if parameter is None:
        return None
    count = config.options.get("count", parameter.default)
    if isinstance(count, bool) or not isinstance(count, int):
        return None  # the loader reports it
    return count if config.limit is None else min(count, config.limit)


def _options_dict(options: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` strings (values parsed as in training's ``--set``) or a dict, as one dict."""
    if isinstance(options, Mapping):
        return dict(options)
    merged: dict[str, Any] = {}
    for expression in options:
        merged = deep_merge(merged, parse_set(expression))
    return merged


def _fingerprint(identity: dict[str, Any], inner: str = "") -> str:
    return hashlib.sha256((json.dumps(identity, sort_keys=True) + inner).encode()).hexdigest()[:16]


def _describe(config: DatasetConfig, seed: int, what: str) -> str:
    settings = {**config.options, **({"limit": config.limit} if config.limit else {}), "seed": seed}
    return f"{config.name} ({', '.join(f'{k}={v}' for k, v in settings.items())}): {what}"


class DatasetInput(ArrayInput):
    """A loaded (or memory-mapped) dataset, sliced a batch at a time; its fingerprint covers its options."""

    def __init__(self, images: Any, dataset: str, size: tuple[int, int], identity: dict[str, Any]) -> None:
        super().__init__(images, dataset, size)
        self.identity = identity
        config = DatasetConfig.model_validate(identity["dataset"])
        self.description = _describe(config, identity["seed"], images.source or dataset)

    def fingerprint(self) -> str:
        return _fingerprint(self.identity, super().fingerprint())


class GeneratedInput:
    """A generated dataset of more than :data:`BLOCK` images, rendered a block at a time when read.

    Block b holds inputs ``b*BLOCK`` to ``(b+1)*BLOCK``; it is rendered with
    ``count`` set to its size and a seed derived from (seed, b), so any shard
    can be redone alone after a kill. The two most recent blocks are kept, as
    reads run a little ahead across a block boundary.
    """

    def __init__(
        self, config: DatasetConfig, image: ImageConfig, seed: int, count: int, identity: dict[str, Any]
    ) -> None:
        self.config, self.image, self.seed, self.count, self.identity = config, image, seed, count, identity
        self.dataset = config.name
        self.description = _describe(config, seed, f"{count} images rendered in blocks of {BLOCK}")
        self._blocks: OrderedDict[int, Any] = OrderedDict()
        self._lock = Lock()

    def __len__(self) -> int:
        return self.count

    def fingerprint(self) -> str:
        return _fingerprint(self.identity)

    def block_seed(self, block: int) -> int:
        """Block 0 uses the seed itself, so the first BLOCK images are the set training renders."""
        if block == 0:
            return self.seed
        return int.from_bytes(hashlib.sha256(f"{self.seed}/{block}".encode()).digest()[:6], "big")

    def _block(self, block: int) -> Any:
        from refinekit.data.loading import load_dataset

        with self._lock:  # one render at a time; threads wanting the same block wait for it
            if block not in self._blocks:
                size = min(BLOCK, self.count - block * BLOCK)
                options = {**self.config.options, "count": size}
                config = self.config.model_copy(update={"options": options, "limit": None})
                self._blocks[block] = load_dataset(config, self.image, self.block_seed(block))
                while len(self._blocks) > 2:
                    self._blocks.popitem(last=False)
            return self._blocks[block]

    def read(self, start: int, stop: int, numeric: bool) -> InputBatch:
        images, fields = [], []
        for block in range(start // BLOCK, (stop - 1) // BLOCK + 1):
            rendered = self._block(block)
            low, high = max(start, block * BLOCK) - block * BLOCK, min(stop, (block + 1) * BLOCK) - block * BLOCK
            images.append(np.asarray(rendered.images[low:high]))
            fields.append({k: np.asarray(v)[low:high] for k, v in rendered.annotations.items()})
        return InputBatch(
            indices=np.arange(start, stop, dtype=np.int64),
            images=np.ascontiguousarray(np.concatenate(images)),
            sources=[f"{self.dataset}[{i}]" for i in range(start, stop)],
            fields={k: np.concatenate([f[k] for f in fields]) for k in fields[0]},
        )


def _refuse_mixing(output: Path, raw: bool) -> None:
    """A raw export and a refined one never share a folder (the plan says which one a folder holds)."""
    plan = output / "records" / "plan.json"
    try:
        found_raw = json.loads(plan.read_text()).get("refiner_sha256") is None
    except (OSError, ValueError, AttributeError):
        return  # a new folder, or one refine_to_folder will report on
    if found_raw != raw:
        held, asked = ("unrefined (--raw)", "refined") if found_raw else ("refined", "unrefined (--raw)")
        raise ConfigError(
            f"{output} holds {held} images, and this command asks for {asked} ones; "
            "choose another OUTPUT folder, or rerun with the same --raw setting to finish it"
        )
