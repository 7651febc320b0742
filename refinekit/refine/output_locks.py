"""Who may write an output folder: ``refinekit refine`` claims OUTPUT (or its part of it with ``--shard``).

One writer per folder, or one per part: parts share the folder but claim their
own shards, and the part that finishes last writes the manifest.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from refinekit.data.folder_lock import (
    FolderLock,
    LockGroup,
    describe_holder,
    hold_until_return,
    try_lock,
)
from refinekit.errors import ConfigError, FolderBusyError
from refinekit.refine.outputs import PLAN, RECORDS, read_json, write_json_atomic


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
            found = read_json(plan_path)
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
