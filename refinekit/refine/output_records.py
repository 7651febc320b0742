"""Done-records and the manifest of an output folder: what is finished, checked, and listed with checksums."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import warnings
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from refinekit.errors import DataError
from refinekit.refine.outputs import (
    MANIFEST,
    RECORDS,
    outside_error,
    read_json,
    reports_full_disk,
    resolve_inside,
    safe_name,
    shard_name,
)


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
    record = read_json(path)
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
                {
                    "shard": shard,
                    "count": record["count"],
                    "skipped": len(record.get("skipped", [])),
                    "record": f"{RECORDS}/{shard_name(shard)}.json",
                }
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
            listed = read_json(path).get("skipped") or [{}]
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
            record = read_json(where)
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
    manifest = read_json(where)
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
                raise outside_error(entry["name"], "is a symlink (refinekit never writes one)", output, where)
            if not path.is_file():
                raise DataError(f"{where}: {entry['name']} is missing")
            if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                raise DataError(f"{where}: {entry['name']} does not match its sha256; it was changed or damaged")
            files += 1
        written += record["count"]
    if written != manifest.get("count"):
        raise DataError(f"{where}: 'count' is {manifest.get('count')} but the shards hold {written} images")
    return {"count": written, "skipped": count - written, "files": files}
