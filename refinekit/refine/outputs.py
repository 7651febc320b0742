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
import shutil
import stat
import struct
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from threading import Lock
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from refinekit.data.folder_lock import (
    FolderLock,
    LockGroup,
    describe_holder,
    hold_until_return,
    try_lock,
)
from refinekit.errors import ConfigError, DataError, DiskFullError, FolderBusyError
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
        raise _outside(name, problem, root, where)
    return name


def resolve_inside(root: Path, name: Any, where: Path) -> Path:
    """``root / name`` after :func:`safe_name`, refusing it if symlinks lead it outside ``root``."""
    path = root / safe_name(name, root, where)
    if not path.resolve().is_relative_to(root.resolve()):
        raise _outside(name, "resolves (through a symlink) outside the folder", root, where)
    return path


def _outside(name: Any, problem: str, root: Path, where: Path) -> DataError:
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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); delete it and rerun to redo that part") from None


# -- the plan: what an output folder is a refinement of ---------------------------
def claim_output(output: Path, plan: dict[str, Any], part: tuple[int, int] | None = None) -> LockGroup:
    """Start or continue ``output``; refuse a folder that holds something else or that another process writes.

    Returns the locks this process holds on ``output`` (release them when done):
    see :func:`lock_output`. Parts started at once (``--shard i/n``) write the
    same plan, atomically, so a race between them is harmless.
    """
    records = output / RECORDS
    if output.is_symlink() and not output.is_dir():
        raise ConfigError(f"OUTPUT {output} is a symlink to no folder; choose a folder")
    if output.exists() and not output.is_dir():
        raise ConfigError(f"OUTPUT {output} is a file; choose a folder")
    if records.is_symlink():
        raise ConfigError(
            f"OUTPUT {output}: '{RECORDS}' is a symlink (to {os.readlink(records)}); refinekit creates that folder "
            f"itself and writes only inside OUTPUT. Delete the link, or choose a new OUTPUT folder"
        )
    if output.exists() and any(output.iterdir()) and not records.is_dir():
        raise ConfigError(
            f"OUTPUT {output} is not empty and holds no refinekit refine records; choose a new or empty folder "
            "so that no existing file is overwritten"
        )
    records.mkdir(parents=True, exist_ok=True)
    locks = lock_output(output, part)
    hold_until_return(locks)
    try:
        plan_path = records / PLAN
        if plan_path.exists():
            found = _read_json(plan_path)
            changed = sorted(k for k in plan if not isinstance(found, dict) or found.get(k) != plan[k])
            if changed:
                details = "; ".join(
                    f"{k}: was {found.get(k) if isinstance(found, dict) else None!r}, now {plan[k]!r}" for k in changed
                )
                raise ConfigError(
                    f"{output} holds a refinement made with other settings ({details}). Rerun with the same "
                    "refiner, input, --shard-size and --format to finish it, or choose a new OUTPUT folder."
                )
            return locks
        write_json_atomic(plan_path, plan)
    except BaseException:
        locks.release()
        raise
    return locks


def lock_output(output: Path, part: tuple[int, int] | None) -> LockGroup:
    """The locks of one writer of ``output``: the whole folder, or one part of it (``--shard i/n``).

    A writer of the whole folder holds ``records/.lock`` exclusively. Parts hold
    it shared, so parts of one split run side by side, and each also holds:

    - ``records/.part-I-of-N.lock`` exclusively: one writer per part;
    - ``records/.parts-N.lock`` shared: parts of a split into N. A part of a
      split into another M is refused, because its shards would overlap.

    Every shard belongs to exactly one part, so nothing a part writes is
    written by another; what they share (plan, manifest) is written atomically
    with identical content.
    """
    records = output / RECORDS
    folder_lock = records / ".lock"
    if part is None or part[1] <= 1:
        lock = try_lock(folder_lock)
        if lock is None:
            raise FolderBusyError(
                f"OUTPUT {output} is being written by {_holders(records)}. Wait for it to finish (or stop it), or "
                "choose another OUTPUT. Two writers in one folder would redo or delete each other's shards."
            )
        return LockGroup([lock])
    index, count = part
    shared = try_lock(folder_lock, shared=True)
    if shared is None:
        raise FolderBusyError(
            f"OUTPUT {output} is being written as a whole (without --shard) by {describe_holder(folder_lock)}. "
            f"Wait for it to finish, or stop it before starting parts with --shard I/N."
        )
    held = [shared]
    try:
        with try_lock(records / ".setup.lock", record=False) or _wait_lock(records / ".setup.lock"):
            mine = records / f".part-{index}-of-{count}.lock"
            lock = try_lock(mine)
            if lock is None:
                raise FolderBusyError(
                    f"part {index}/{count} of OUTPUT {output} is already being written by {describe_holder(mine)}; "
                    f"start each --shard I/{count} once"
                )
            held.append(lock)
            split = try_lock(records / f".parts-{count}.lock", shared=True)
            if split is None:  # pragma: no cover - only taken exclusively below, under .setup.lock
                raise FolderBusyError(f"OUTPUT {output}: could not join the split into {count} parts; rerun")
            held.append(split)
            for other in sorted(records.glob(".parts-*.lock")):
                if other.name == f".parts-{count}.lock":
                    continue
                probe = try_lock(other, record=False)
                if probe is None:
                    other_count = other.name[len(".parts-") : -len(".lock")]
                    raise FolderBusyError(
                        f"OUTPUT {output} is being written in {other_count} parts (--shard I/{other_count}), whose "
                        f"shards overlap those of --shard {index}/{count}; use --shard I/{other_count} too, or wait "
                        "for them to finish"
                    )
                probe.release()
    except BaseException:
        for lock in reversed(held):
            lock.release()
        raise
    return LockGroup(held)


def _wait_lock(path: Path) -> FolderLock:
    """Wait (briefly: it guards only the start-up checks of parts) for an exclusive lock on ``path``."""
    while True:
        lock = try_lock(path, record=False)
        if lock is not None:
            return lock
        time.sleep(0.01)


def _holders(records: Path) -> str:
    """Who holds ``records/.lock``: a whole-folder writer, or the parts writing now."""
    parts = []
    for path in sorted(records.glob(".part-*-of-*.lock")):
        probe = try_lock(path, record=False)
        if probe is None:
            name = path.name[len(".part-") : -len(".lock")].replace("-of-", "/")
            parts.append(f"part {name}: {describe_holder(path)}")
        else:
            probe.release()
    return "; ".join(parts) if parts else describe_holder(records / ".lock")


# -- writing one shard ---------------------------------------------------------
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


# -- reading done-records --------------------------------------------------------
def clear_unfinished(output: Path, shard: int) -> None:
    """Remove what a killed run left of ``shard`` (temporary files, outputs without a record).

    The paths are built from the shard number, never read from a file.
    """
    name = shard_name(shard)
    leftovers = [*output.glob(f".{name}.tmp-*"), output / name, output / f"{name}.safetensors"]
    for path in leftovers:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)


def read_record(output: Path, shard: int, start: int, stop: int) -> dict[str, Any] | None:
    """Shard ``shard``'s done-record, checked against the plan and the files; None if not done.

    A record whose files are missing or have changed size means the shard is
    redone (with a warning); one that names paths outside ``output`` or does
    not fit the plan is an error, because it was edited or damaged.
    """
    path = output / RECORDS / f"{shard_name(shard)}.json"
    if not path.exists():
        return None
    record = _read_json(path)
    check_record(output, record, path, shard, start, stop)
    for entry, file in _record_files(output, record, path):
        try:
            info = os.lstat(file)
        except FileNotFoundError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode) or info.st_size != entry["bytes"]:
            warnings.warn(f"{path}: {entry['name']} is missing or changed; redoing shard {shard}", stacklevel=2)
            path.unlink()
            return None
    return record


def _record_files(output: Path, record: dict[str, Any], where: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """(entry, path) for each file of a checked record; the shard folder must really lie inside ``output``.

    :func:`check_record` allows only ``shard_NNNNN.safetensors`` and
    ``shard_NNNNN/FILE``, so resolving the shard folder once (not each of its
    thousands of files) is enough; callers ``lstat`` the files themselves,
    which does not follow a symlink.
    """
    folder = shard_name(record["shard"])
    if any("/" in entry["name"] for entry in record["files"]) and (output / folder).exists():
        resolve_inside(output, folder, where)
    for entry in record["files"]:
        yield entry, output / entry["name"]


def check_record(output: Path, record: Any, where: Path, shard: int, start: int, stop: int) -> None:
    """Raise DataError unless ``record`` is a well-formed done-record of ``shard`` covering ``start:stop``."""
    if not isinstance(record, dict) or not {"shard", "start", "stop", "count", "indices", "files"} <= set(record):
        raise DataError(f"{where}: not a refinekit done-record; delete it and rerun to redo that shard")
    if (record["shard"], record["start"], record["stop"]) != (shard, start, stop):
        raise DataError(
            f"{where}: records shard {record['shard']} = inputs {record['start']}:{record['stop']}, but the plan "
            f"says shard {shard} = inputs {start}:{stop}; delete the record and rerun to redo that shard"
        )
    indices = record["indices"]
    skipped = [s.get("index") for s in record.get("skipped", []) if isinstance(s, dict)]
    if sorted([*indices, *skipped]) != list(range(start, stop)) or record["count"] != len(indices):
        raise DataError(
            f"{where}: its indices do not cover inputs {start}:{stop} exactly once; delete it and rerun to redo it"
        )
    name = shard_name(shard)
    for entry in record["files"]:
        if not isinstance(entry, dict) or not {"name", "sha256", "bytes"} <= set(entry):
            raise DataError(f"{where}: malformed file entry {entry!r}; delete it and rerun to redo that shard")
        file_name = safe_name(entry["name"], output, where)
        if PurePosixPath(file_name).parent.as_posix() != name and file_name != f"{name}.safetensors":
            raise DataError(
                f"{where}: entry {file_name!r} is not a file of {name}; delete the record and rerun to redo it"
            )


# -- the manifest ----------------------------------------------------------------
def build_manifest(output: Path, header: dict[str, Any], spans: list[tuple[int, int]]) -> dict[str, Any]:
    """Write ``manifest.json`` from the done-records if every shard is done; return its summary.

    Whichever part finishes last sees every record and writes the manifest;
    parts finishing together write identical content, atomically. The file is
    streamed one record at a time, so memory stays flat at any dataset size.
    The returned dict is the manifest without the per-file lists.
    """
    summaries: list[dict[str, Any]] = []
    for shard, (start, stop) in enumerate(spans):
        record = read_record(output, shard, start, stop)
        if record is not None:
            summaries.append(
                {"shard": shard, "count": record["count"], "skipped": len(record.get("skipped", [])),
                 "record": f"{RECORDS}/{shard_name(shard)}.json"}
            )
    complete = len(summaries) == len(spans)
    totals = {
        "complete": complete,
        "count": sum(s["count"] for s in summaries),
        "skipped": sum(s["skipped"] for s in summaries),
        "shards_done": len(summaries),
    }
    if complete and totals["count"] == 0:
        _refuse_empty(output, spans, totals["skipped"])
    if complete:
        _stream_manifest(output, {**header, **totals}, spans)
    return {**header, **totals, "shards": summaries, "manifest": str(output / MANIFEST) if complete else None}


def _refuse_empty(output: Path, spans: list[tuple[int, int]], skipped: int) -> None:
    """Every input was skipped: no manifest, and no done-records, so that a rerun tries the inputs again."""
    reason = "no input"
    for shard in range(len(spans)):
        path = output / RECORDS / f"{shard_name(shard)}.json"
        if reason == "no input":
            listed = _read_json(path).get("skipped") or [{}]
            reason = str(listed[0].get("reason", reason)) if isinstance(listed[0], dict) else reason
        path.unlink(missing_ok=True)
    raise DataError(
        f"none of the {skipped} inputs could be read, so {output} holds no image and no manifest was written "
        f"(first: {reason}). Replace the unreadable files and rerun the same command."
    )


@reports_full_disk
def _stream_manifest(output: Path, header: dict[str, Any], spans: list[tuple[int, int]]) -> None:
    """Write the manifest record by record (already checked, files included, by :func:`build_manifest`)."""
    path = output / MANIFEST
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header, indent=1)[:-2] + ',\n "shards": [\n')
        for shard, (start, stop) in enumerate(spans):
            where = output / RECORDS / f"{shard_name(shard)}.json"
            record = _read_json(where)
            check_record(output, record, where, shard, start, stop)
            f.write(("" if shard == 0 else ",\n") + json.dumps(record))
        f.write("\n ]\n}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def verify_output(output: str | os.PathLike[str]) -> dict[str, int]:
    """Check a finished output folder against its manifest: checksums, and each input exactly once.

    Every name in the manifest is checked before it is opened, so an edited
    manifest cannot make this read outside ``output``.

    Returns:
        ``{"count": images, "skipped": inputs skipped, "files": files checked}``.

    Raises:
        DataError: naming the first file or index that does not match.
    """
    output = Path(output)
    where = output / MANIFEST
    if not where.exists():
        raise DataError(f"{output} has no {MANIFEST}: the refinement is unfinished; rerun the same command")
    manifest = _read_json(where)
    try:
        count, size, shards = manifest["input"]["count"], manifest["shard_size"], manifest["shards"]
    except (KeyError, TypeError):
        raise DataError(f"{where}: not a refinekit manifest (no input.count, shard_size or shards)") from None
    if [r.get("shard") if isinstance(r, dict) else None for r in shards] != list(range(-(-count // size))):
        raise DataError(f"{where}: does not list shards 0..{-(-count // size) - 1} once each, in order")
    files = written = 0
    for shard, record in enumerate(shards):
        check_record(output, record, where, shard, shard * size, min(shard * size + size, count))
        for entry, path in _record_files(output, record, where):
            if path.is_symlink():
                raise _outside(entry["name"], "is a symlink (refinekit never writes one)", output, where)
            if not path.is_file():
                raise DataError(f"{where}: {entry['name']} is missing")
            if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                raise DataError(f"{where}: {entry['name']} does not match its sha256; it was changed or damaged")
            files += 1
        written += record["count"]
    if written != manifest.get("count"):
        raise DataError(f"{where}: 'count' is {manifest.get('count')} but the shards hold {written} images")
    return {"count": written, "skipped": count - written, "files": files}
