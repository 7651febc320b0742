"""The one walk over a folder tree that every reader of image folders uses.

Image folders are untrusted: they may hold named pipes (opening one for reading
waits forever for a writer), sockets, devices, symlinks to nothing, symlink
loops and folders that cannot be listed. :func:`walk_folder` never opens a
file: it lists regular files (symlinks to regular files included) and reports
every other entry, with the reason, so callers can warn about what they skip.

The order is stable and documented: a folder's files sorted by name, then its
subfolders, each sorted by name and walked the same way (``os.walk`` top-down
with sorted names). Symlinked folders are followed; one reached a second time
(a loop, or two links to one folder) is not walked again.

Examples:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = (root / "b.png").write_bytes(b""), (root / "a.png").write_bytes(b"")
    >>> os.mkfifo(root / "pipe.png")
    >>> [(f.prefix, f.files) for f in walk_folder(root)]
    [('', ['a.png', 'b.png'])]
    >>> next(iter(walk_folder(root))).others
    [('pipe.png', 'is a named pipe (FIFO), not a file')]
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator


@dataclass
class Folder:
    """One folder of the walk.

    Args:
        prefix: its path relative to the root, POSIX, ending in ``/`` ('' for the root).
        files: names of its regular files (and symlinks to them), sorted.
        others: (relative path, why) of entries that are neither regular files nor folders; never opened.
    """

    prefix: str
    files: list[str] = field(default_factory=list)
    others: list[tuple[str, str]] = field(default_factory=list)


def walk_folder(root: str | os.PathLike[str]) -> Iterator[Folder]:
    """Every folder under ``root`` (``root`` first), in the documented order; see the module docstring.

    A folder that cannot be listed is yielded with no files and one entry in
    ``others`` naming it (prefix '' and name '.' for the root itself).
    """
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    while stack:
        path, prefix = stack.pop()
        folder = Folder(prefix)
        try:
            info = os.stat(path)
            if (info.st_dev, info.st_ino) in seen:  # a symlink loop, or a folder linked twice: walk it once
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(path) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            folder.others.append((prefix.rstrip("/") or ".", f"is a folder that cannot be listed ({_reason(exc)})"))
            yield folder
            continue
        subfolders = []
        for entry in entries:
            try:
                if entry.is_dir():  # follows symlinks, as os.walk(followlinks=True) does
                    subfolders.append(entry)
                elif entry.is_file():  # d_type for plain entries: no stat per file
                    folder.files.append(entry.name)
                else:
                    folder.others.append((prefix + entry.name, _kind(entry)))
            except OSError as exc:
                folder.others.append((prefix + entry.name, f"cannot be read ({_reason(exc)})"))
        yield folder
        for entry in reversed(subfolders):  # a stack: pushed last, walked first
            stack.append((entry.path, f"{prefix}{entry.name}/"))


def _kind(entry: os.DirEntry[str]) -> str:
    """Why an entry that is neither a regular file nor a folder is skipped."""
    try:
        mode = os.stat(entry.path).st_mode  # stat never opens: safe on a FIFO
    except FileNotFoundError:
        return "is a symlink to nothing (dangling)"
    except OSError as exc:
        return f"cannot be read ({_reason(exc)})"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    return "is not a regular file"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def refuse_special(path: str | os.PathLike[str], what: str) -> None:
    """Raise DataError if ``path`` exists but is neither a folder nor a regular file (a FIFO would hang a reader)."""
    from refinekit.errors import DataError

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing: the caller says so in its own words
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise DataError(f"{what} {path} is {kind}, not a file or folder; refinekit does not read it. Pass a file or folder")


def has_suffix(name: str, suffixes: Iterable[str]) -> bool:
    """True if ``name`` ends in one of ``suffixes`` (case-insensitive), even with no stem (``..png``)."""
    lower = name.lower()
    return any(lower.endswith(suffix) for suffix in suffixes)


def describe_skipped(root: Path, skipped: list[tuple[str, str]], limit: int = 10) -> str:
    """A warning listing the entries a reader skipped: ``root: skipped 3 entries: a.png is a FIFO; ...``."""
    listed = "; ".join(f"{name} {why}" for name, why in skipped[:limit])
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return (
        f"{root}: skipped {len(skipped)} "
        f"{'entry that is not a readable file' if len(skipped) == 1 else 'entries that are not readable files'}: "
        f"{listed}{more}. They were not opened; replace them with image files or move them out of the folder."
    )
