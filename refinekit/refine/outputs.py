"""What ``refinekit refine`` writes: shards committed atomically, done-records, and the manifest.

Layout of an output folder::

    OUTPUT/
      manifest.json              everything below, with sha256 checksums; rebuilt from the records
      records/plan.json          what this folder is a refinement of (refiner, input, shard size, format)
      records/shard_00000.json   shard 0's done-record: written last, so its presence means "complete"
      shard_00000/000000.png     --format png: one PNG per image, named by input index,
      shard_00000/000000.json      plus the image's annotations as a JSON sidecar (when it has any)
      shard_00000.safetensors    --format safetensors: uint8 images, input index, annotation tensors

A shard is written under a temporary name, renamed into place, and only then
gets its done-record. Whatever instant a run is killed at, a shard either has
a record and complete files, or it is redone from scratch by the next run;
nothing is missing or duplicated. Records and safetensors shards are fsynced;
single PNGs are not (an fsync costs milliseconds per image), so after a power
loss a rerun redoes any shard whose files are missing or changed in size, and
:func:`verify_output` checks every checksum. Every path read from a record or
manifest is checked to lie inside OUTPUT before it is used.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from threading import Lock
from typing import Any, Callable, TypeVar

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from refinekit.errors import ConfigError, DataError, DiskFullError
from refinekit.moved import forward_attributes
from refinekit.refine.inputs import InputBatch

T = TypeVar("T")
OUTPUT_FORMAT = "refinekit.refined"
SHARD_FORMAT = "refinekit.refined-shard"
FORMAT_VERSION = "1"
FORMATS = ("png", "safetensors")
RECORDS = "records"
PLAN = "plan.json"
MANIFEST = "manifest.json"


def shard_name(shard: int) -> str:
    return f"shard_{shard:05d}"


def image_stem(index: int, count: int) -> str:
    """A PNG's name is its input index, zero-padded so names sort in input order."""
    return f"{index:0{max(6, len(str(max(count - 1, 0))))}d}"


def safe_name(name: Any, root: Path, where: Path) -> str:
    """Check a relative file name read from a record or manifest: it must not be able to leave ``root``.

    Such names are untrusted (the files can be edited): only plain relative
    POSIX paths without empty, ``.`` or ``..`` parts pass. Symlinks are checked
    where the names are used (:func:`resolve_inside`, :func:`read_record`).
    """
    problem = None
    if not isinstance(name, str) or not name:
        problem = "is not a file name"
    elif PurePosixPath(name).is_absolute() or "\\" in name or "\0" in name or (len(name) > 1 and name[1] == ":"):
        problem = "is not a relative POSIX path"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        problem = "has empty, '.' or '..' parts"
    if problem is not None:
        raise outside_error(name, problem, root, where)
    return name


def resolve_inside(root: Path, name: Any, where: Path) -> Path:
    """``root / name`` after :func:`safe_name`, refusing it if symlinks lead it outside ``root``."""
    path = root / safe_name(name, root, where)
    if not path.resolve().is_relative_to(root.resolve()):
        raise outside_error(name, "resolves (through a symlink) outside the folder", root, where)
    return path


def outside_error(name: Any, problem: str, root: Path, where: Path) -> DataError:
    return DataError(
        f"{where}: the entry {name!r} {problem}; refinekit only reads and writes inside {root}. "
        "The file was edited or damaged: delete it and rerun the same 'refinekit refine' to redo that part."
    )


FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})


def reports_full_disk(function: Callable[..., T]) -> Callable[..., T]:
    """Turn a full disk (or quota) while ``function`` writes into a :class:`DiskFullError` that says what to do."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return function(*args, **kwargs)
        except OSError as exc:
            if exc.errno not in FULL_DISK:
                raise
            where = exc.filename or next((a for a in args if isinstance(a, Path)), None)
            where = where or getattr(args[0] if args else None, "output", "OUTPUT")
            raise DiskFullError(
                f"no space left on the device while writing {where}; finished shards are kept. Free some space, "
                "then rerun the same command to finish the rest"
            ) from None

    return wrapper


@reports_full_disk
def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON so that ``path`` is either absent/old or complete, never half-written."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); delete it and rerun to redo that part") from None


@dataclass
class _Part:
    """What a shard keeps of one written batch until its commit: for PNG, names only, not pixels."""

    indices: list[int]
    sources: list[str]
    keys: list[str]
    files: list[dict[str, Any]]
    refined: np.ndarray | None = None  # safetensors only, like fields
    fields: dict[str, np.ndarray] = field(default_factory=dict)


class ShardWriter:
    """Collects one shard's refined images under a temporary name; :meth:`commit` makes it final.

    :meth:`write` may be called from several threads at once (zlib releases
    the GIL); batches may arrive out of order. A PNG shard holds no pixels in
    memory after they are written; a safetensors shard is assembled in memory
    (``shard_size`` x C x H x W bytes), as the file is written in one piece.
    """

    def __init__(self, output: Path, shard: int, fmt: str, count: int, start: int, stop: int) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.output, self.shard, self.fmt, self.count = output, shard, fmt, count
        self.start, self.stop = start, stop
        self.name = shard_name(shard)
        self.tmp = output / f".{self.name}.tmp-{os.getpid()}"
        self._lock = Lock()
        self._parts: list[_Part] = []
        if fmt == "png":
            self.tmp.mkdir()

    @reports_full_disk
    def write(self, batch: InputBatch, refined: np.ndarray) -> None:
        """Add refined uint8 (n, C, H, W) images for ``batch``'s inputs."""
        part = _Part(batch.indices.tolist(), batch.sources, _annotation_keys(batch), [])
        if self.fmt == "png":
            for row, index in enumerate(part.indices):
                stem = image_stem(index, self.count)
                part.files.append(self._put(f"{stem}.png", _encode_png(refined[row])))
                sidecar = _sidecar(batch, row)
                if sidecar is not None:
                    part.files.append(self._put(f"{stem}.json", sidecar))
        elif part.indices:
            part.refined, part.fields = refined, batch.fields
        with self._lock:
            self._parts.append(part)

    def _put(self, name: str, data: bytes) -> dict[str, Any]:
        (self.tmp / name).write_bytes(data)
        return {"name": f"{self.name}/{name}", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}

    @reports_full_disk
    def commit(self, skipped: list[dict[str, Any]]) -> dict[str, Any]:
        """Move the shard into place, then write its done-record (last, atomically)."""
        parts = sorted(self._parts, key=lambda p: p.indices[0] if p.indices else -1)
        if self.fmt == "png":
            files = [f for part in parts for f in part.files]
            os.replace(self.tmp, self.output / self.name)
        else:
            files = [self._write_safetensors([p for p in parts if p.indices])]
        indices = [i for part in parts for i in part.indices]
        record = {
            "shard": self.shard,
            "start": self.start,
            "stop": self.stop,
            "count": len(indices),
            "indices": indices,
            "sources": [s for part in parts for s in part.sources],
            "annotations": sorted({k for part in parts for k in part.keys}),
            "files": files,
            "skipped": sorted(skipped, key=lambda s: int(s["index"])),
        }
        write_json_atomic(self.output / RECORDS / f"{self.name}.json", record)
        return record

    def _write_safetensors(self, parts: list[_Part]) -> dict[str, Any]:
        final = self.output / f"{self.name}.safetensors"
        images = np.concatenate([p.refined for p in parts]) if parts else np.empty((0,), np.uint8)
        tensors: dict[str, torch.Tensor] = {
            "images": torch.from_numpy(images),
            "index": torch.tensor([i for p in parts for i in p.indices], dtype=torch.int64),
        }
        for key in sorted({k for p in parts for k in p.fields}):
            try:
                column = np.concatenate([np.asarray(p.fields[key]) for p in parts])
                tensors[f"annotation.{key}"] = torch.from_numpy(np.ascontiguousarray(column))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(
                    f"annotation '{key}' cannot be stored as a tensor in {final.name} ({exc}); "
                    "every image needs it as numbers of one shape. Use --format png, which writes JSON sidecars."
                ) from None
        metadata = {
            "format": SHARD_FORMAT,
            "format_version": FORMAT_VERSION,
            "shard": str(self.shard),
            "sources": json.dumps([s for p in parts for s in p.sources]),
        }
        data = safetensors_bytes(tensors, metadata)
        tmp = self.tmp.with_name(self.tmp.name + ".safetensors")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        return {"name": final.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _encode_png(image: np.ndarray) -> bytes:
    """uint8 (C, H, W), C in {1, 3}, as an 8-bit grayscale or RGB PNG.

    Written directly (IHDR, one zlib IDAT with filter 0, IEND): about 5x faster
    than going through Pillow for small images, and encoding competes with the
    refiner for the same CPU cores. zlib level 1: lossless all the same, a few
    percent larger than level 6.
    """
    channels, height, width = image.shape
    if channels not in (1, 3):
        raise DataError(f"cannot write a {channels}-channel image as PNG; use --format safetensors")
    rows = np.zeros((height, 1 + width * channels), dtype=np.uint8)  # a leading 0 per row: filter "none"
    rows[:, 1:] = image.transpose(1, 2, 0).reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return b"".join(
        (b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header), _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)),
         _png_chunk(b"IEND", b""))
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _sidecar(batch: InputBatch, row: int) -> bytes | None:
    """The image's annotations: its input sidecar byte for byte, or its dataset row as JSON."""
    if batch.sidecars is not None:
        return batch.sidecars[row]
    if batch.fields:
        return json.dumps({k: v[row].tolist() for k, v in batch.fields.items()}).encode()
    return None


def _annotation_keys(batch: InputBatch) -> list[str]:
    if batch.fields:
        return list(batch.fields)
    keys: set[str] = set()
    for raw in batch.sidecars or ():
        if raw is not None:
            try:
                keys.update(json.loads(raw))
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
                pass  # copied unchanged all the same; the image-folder loader reports bad sidecars
    return sorted(keys)


# 0.x's refinekit.refine_outputs also held what the split moved to these two modules.
__getattr__, _ = forward_attributes(__name__, "refinekit.refine.output_locks", "refinekit.refine.output_records")
