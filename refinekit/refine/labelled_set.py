"""An export's labels file, and the export read back as a PyTorch ``Dataset``.

The labels file is ``OUTPUT/metadata.jsonl``: one JSON object per image, in
input order, ``{"file_name": "shard_00000/000000.png", "index": 0, ...labels}``.
It is the metadata file of Hugging Face ``datasets``' ``imagefolder`` loader
(``load_dataset("imagefolder", data_dir=OUTPUT)``), a JSON-lines table pandas
and polars read in one call, and what :class:`TrainingSet` (a PyTorch
``Dataset``) reads. JSON lines, not CSV, because labels are vectors and nested
records (gaze, landmarks), which CSV cannot hold without a private encoding.
It is written from the shards' done-records after the last shard, atomically,
so it lists each written image exactly once whatever was killed on the way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from refinekit.errors import DataError

METADATA = "metadata.jsonl"
RESERVED = ("file_name", "index")


# -- the labels file -------------------------------------------------------------
def write_metadata(output: str | os.PathLike[str]) -> Path:
    """Write ``OUTPUT/metadata.jsonl`` from a finished PNG export's done-records; return its path.

    Streamed one shard at a time (memory stays flat), atomically (a killed
    write leaves the old file or none), from the same records as the
    manifest, so each written image is listed exactly once, in input order.

    Raises:
        DataError: the export is unfinished, not PNG, or an annotation is named ``file_name`` or ``index``.
    """
    from refinekit.refine.output_records import check_record
    from refinekit.refine.outputs import RECORDS, image_stem, shard_name

    out = Path(output)
    manifest = _read_manifest_header(out)
    count, size = manifest["input"]["count"], manifest["shard_size"]
    if manifest.get("output_format") != "png":
        raise DataError(f"{out}: labels files are written for --format png; safetensors shards hold their labels")
    path = out / METADATA
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for shard, start in enumerate(range(0, count, size)):
                where = out / RECORDS / f"{shard_name(shard)}.json"
                record = json.loads(where.read_text(encoding="utf-8"))
                check_record(out, record, where, shard, start, min(start + size, count))
                names = {entry["name"] for entry in record["files"]}
                for index in record["indices"]:
                    stem = f"{shard_name(shard)}/{image_stem(index, count)}"
                    labels = _labels(out, f"{stem}.json") if f"{stem}.json" in names else {}
                    f.write(json.dumps({"file_name": f"{stem}.png", "index": index, **labels}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _read_manifest_header(out: Path) -> dict[str, Any]:
    where = out / "manifest.json"
    if not where.is_file():
        raise DataError(f"{out} has no manifest.json: the export is unfinished; rerun the same command to finish it")
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
        manifest["input"]["count"], manifest["shard_size"], manifest["image"]["channels"]
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{where}: not a refinekit manifest; was {out} written by 'refinekit refine'?") from None
    return manifest


def _labels(out: Path, name: str) -> dict[str, Any]:
    raw = (out / name).read_bytes()
    try:
        labels = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{out / name}: the annotations are not valid JSON ({exc}); fix or delete the input's sidecar"
        ) from None
    if not isinstance(labels, dict):
        return {"annotation": labels}
    clash = [k for k in RESERVED if k in labels]
    if clash:
        raise DataError(
            f"{out / name}: annotation '{clash[0]}' has a name {METADATA} keeps for itself ({', '.join(RESERVED)}); "
            "rename it in the input's annotations"
        )
    return labels


# -- reading it back -------------------------------------------------------------
class TrainingSet(Dataset):
    """A finished export as a PyTorch ``Dataset``: items ``{"image": uint8 (C, H, W), "index": i, **labels}``.

    Numeric labels come back as tensors (int64, or float32 for decimals, so a
    ``DataLoader`` stacks them), others as they are in ``metadata.jsonl``. Only line offsets are kept in
    memory, so a million-image set costs 8 MB; ``safetensors`` exports are
    read from their shards.

    Args:
        folder: an output folder of ``refinekit refine`` or :func:`make_training_set`.
        transform: applied to each image tensor, e.g. ``lambda x: x.float() / 255``.

    Examples:
        >>> train_set = TrainingSet("data/digits-refined")  # doctest: +SKIP
        >>> loader = torch.utils.data.DataLoader(train_set, batch_size=64, shuffle=True)  # doctest: +SKIP
        >>> batch = next(iter(loader)); batch["image"].shape, batch["label"].shape  # doctest: +SKIP
        (torch.Size([64, 1, 28, 28]), torch.Size([64]))
    """

    def __init__(self, folder: str | os.PathLike[str], transform: Callable[[torch.Tensor], Any] | None = None) -> None:
        self.folder = Path(folder)
        self.transform = transform
        manifest = _read_manifest_header(self.folder)
        self.channels: int = manifest["image"]["channels"]
        self.format: str = manifest.get("output_format", "png")
        if self.format == "png":
            self._offsets = _line_offsets(self.folder / METADATA)
        else:
            counts = [record["count"] for record in manifest["shards"]]
            self._shards = [record["shard"] for record in manifest["shards"]]
            self._ends = np.cumsum(counts)

    def __len__(self) -> int:
        if self.format == "png":
            return len(self._offsets) - 1
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images")
        index %= len(self)
        item = self._png_item(index) if self.format == "png" else self._shard_item(index)
        if self.transform is not None:
            item["image"] = self.transform(item["image"])
        return item

    def rows(self) -> Iterator[dict[str, Any]]:
        """The ``metadata.jsonl`` rows in order, without decoding any image."""
        with open(self.folder / METADATA, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)

    def _png_item(self, index: int) -> dict[str, Any]:
        from refinekit.data.image_files import read_image
        from refinekit.refine.outputs import safe_name

        with open(self.folder / METADATA, "rb") as f:
            f.seek(int(self._offsets[index]))
            row = json.loads(f.read(int(self._offsets[index + 1] - self._offsets[index])))
        name = safe_name(row.pop("file_name"), self.folder, self.folder / METADATA)
        image = torch.from_numpy(read_image(self.folder / name, self.channels))
        return {"image": image, **{k: _as_tensor(v) for k, v in row.items()}}

    def _shard_item(self, index: int) -> dict[str, Any]:
        from safetensors import safe_open

        from refinekit.refine.outputs import shard_name

        position = int(np.searchsorted(self._ends, index, side="right"))
        row = index - (int(self._ends[position - 1]) if position else 0)
        with safe_open(str(self.folder / f"{shard_name(self._shards[position])}.safetensors"), "pt") as f:
            item = {"image": f.get_slice("images")[row], "index": int(f.get_slice("index")[row])}
            for key in f.keys():
                if key.startswith("annotation."):
                    item[key.removeprefix("annotation.")] = f.get_slice(key)[row]
        return item


def _line_offsets(path: Path) -> np.ndarray:
    """Byte offset of each line's start, plus the end of the file: rows are read by seeking."""
    if not path.is_file():
        raise DataError(
            f"{path.parent} has no {METADATA}: the export is unfinished, or it was written by a refinekit "
            "older than 'make a training set'; rerun the same 'refinekit refine' command to write it"
        )
    offsets, position = [0], 0
    with open(path, "rb") as f:
        for line in f:
            position += len(line)
            offsets.append(position)
    return np.asarray(offsets, dtype=np.int64)


def _as_tensor(value: Any) -> Any:
    """Numbers and (nested) lists of numbers as tensors; anything else unchanged."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, dict)):
        return value
    try:
        return torch.tensor(value)
    except (TypeError, ValueError, RuntimeError):
        return value
