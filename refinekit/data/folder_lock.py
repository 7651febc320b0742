"""One writer per output folder: advisory locks that name their holder and die with it.

``refinekit run --out``, ``refinekit refine OUTPUT`` and ``refinekit evaluate``'s
report folder each take a lock file in the folder before writing anything. A
second writer gets a :class:`FolderBusyError` naming the holder's PID, host and
command instead of interleaving its files with the first one's.

The locks are ``flock(2)`` locks: the kernel drops them when their process
exits, however it exits (SIGKILL included), so a lock file left behind by a dead
process is simply taken over by the next writer; no PID has to be guessed at.
A writer that finishes removes its lock file (while still holding it), so
finished folders hold only their outputs. The file's contents (JSON: pid, host,
command, since) serve only the error message. Where ``fcntl`` does not exist
(Windows) folders are not locked.

Examples:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with lock_folder(folder, "--out"):
    ...     lock_folder(folder, "--out")
    Traceback (most recent call last):
    ...
    refinekit.errors.FolderBusyError: ...
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import socket
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, TypeVar

from refinekit.errors import FolderBusyError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".refinekit.lock"
T = TypeVar("T")


class FolderLock:
    """A held lock on one lock file; :meth:`release` (or leaving a ``with`` block) lets it go."""

    def __init__(self, path: Path, fd: int | None, exclusive: bool = True) -> None:
        self.path = path
        self._fd = fd
        self._exclusive = exclusive

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self._exclusive:  # removed while still held, so the folder is left as the writer found it
                try:
                    os.unlink(self.path)
                except OSError:
                    pass
            os.close(fd)  # closing the descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


class LockGroup:
    """Several locks held and released together (a folder lock plus a part's locks)."""

    def __init__(self, locks: list[FolderLock]) -> None:
        self.locks = locks

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()

    def __enter__(self) -> "LockGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_info() -> dict[str, Any]:
    """What a lock file says about its holder: this process."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else "python",
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def describe_holder(path: Path) -> str:
    """'PID 123 on host h (refinekit run ..., since ...)' from a lock file, or a vaguer phrase."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        pid, host = int(info["pid"]), str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its lock file names no holder yet)"
    extra = ", ".join(str(info[k]) for k in ("command", "since") if info.get(k))
    return f"PID {pid} on host {host}" + (f" ({extra})" if extra else "")


def try_lock(path: Path, *, shared: bool = False, record: bool | None = None) -> FolderLock | None:
    """Take the flock on ``path`` without waiting; None if another process holds it.

    Args:
        path: the lock file; created if missing. A symlink is refused (it could point anywhere).
        shared: a shared lock (several holders) instead of an exclusive one.
        record: write this process as the holder into the file (default: for exclusive locks).
    """
    if fcntl is None:  # pragma: no cover - Windows: no advisory locks
        return FolderLock(path, None)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if path.is_symlink():
                raise FolderBusyError(
                    f"{path} is a symlink; refinekit writes its lock file there itself. Delete the link and rerun"
                ) from None
            raise FolderBusyError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        # The holder we waited on may have removed the file as it let go (see release): then this lock is on
        # a file no one else will open; lock the file now at ``path`` instead.
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    if record if record is not None else not shared:
        data = (json.dumps(holder_info()) + "\n").encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass  # a full disk must not stop a writer that holds its lock; the message just gets vaguer
    return FolderLock(path, fd, exclusive=not shared)


def lock_folder(folder: str | os.PathLike[str], option: str, *, name: str = LOCK_NAME) -> FolderLock:
    """Lock ``folder`` (created if missing) for this process alone, or raise :class:`FolderBusyError`.

    Args:
        folder: the output folder.
        option: how the user named it (``--out``, ``OUTPUT``), for the message.
        name: the lock file's name inside ``folder``.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FolderBusyError(f"{option} {folder} is a file; choose a folder") from None
    path = folder / name
    lock = try_lock(path)
    if lock is None:
        raise FolderBusyError(
            f"{option} {folder} is in use by {describe_holder(path)}, which is writing into it. Wait for it to "
            f"finish (or stop it), or choose another {option}. Two writers in one folder would mix their files."
        )
    return lock


class _Releasable(Protocol):
    def release(self) -> None: ...


_HELD: ContextVar[list[_Releasable] | None] = ContextVar("refinekit_held_locks", default=None)


def hold_until_return(lock: _Releasable) -> None:
    """Release ``lock`` when the innermost :func:`releases_locks` function returns or raises (if there is one)."""
    held = _HELD.get()
    if held is not None:
        held.append(lock)


@contextmanager
def _holding() -> Iterator[None]:
    token = _HELD.set([])
    try:
        yield
    finally:
        for lock in reversed(_HELD.get() or []):
            lock.release()
        _HELD.reset(token)


def releases_locks(function: Callable[..., T]) -> Callable[..., T]:
    """Decorate a writer: the locks it takes (via :func:`hold_until_return`) go when it returns or raises.

    Without this a lock would live as long as the frames of a traceback that
    reference it, e.g. in a caller that catches the error and retries.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with _holding():
            return function(*args, **kwargs)

    return wrapper
