"""One writer per output: an exclusive lock file held while a command writes.

Every command that writes a run, a file or a results folder (``bsnn train``, ``convert``,
``simulate``, ``export-nir``, ``import-nir``, :func:`bsnn_bindsnet.training.fit.fit` and the
experiments) first takes :func:`acquire` on its output. The lock is ``fcntl.flock`` on the file
``.<name>.lock`` beside the output (``runs/.r.lock`` for ``--out runs/r``), found from the
resolved path, so ``r``, ``./r``, ``r/``, an absolute path and a symlink all name one lock.
A second writer is refused at once, naming the holder (its command and process id) as the
lock file records it; nothing it would have written is touched.

The lock file is removed when the lock is released (at the latest when the process exits). A
killed process leaves it behind, but the kernel drops the lock with the process, so the next
writer takes it over. Locks are reentrant
within a process (``bsnn train`` takes the lock before importing torch, then ``fit`` takes it
again). Under ``torchrun`` only rank 0 writes, so only rank 0 locks.

Imports nothing heavy: the CLI locks before torch is imported.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["OutputLock", "OutputLocked", "acquire", "held", "lock_file", "locked"]


class OutputLocked(FileExistsError):
    """Another process holds the lock on the output (the message names it)."""


def lock_file(target: str | os.PathLike) -> Path:
    """The lock file of ``target`` (a file or a folder, existing or not): ``.<name>.lock``
    beside it, after resolving ``..``, ``.`` and symlinks."""
    resolved = Path(os.path.abspath(target)).resolve()
    return resolved.parent / f".{resolved.name}.lock"


class OutputLock:
    """A held lock; :meth:`release` it (or use :func:`locked`). Reentrant: each
    :func:`acquire` of the same output in this process adds one :meth:`release`."""

    def __init__(self, target: Path, path: Path, fd: int | None, created: list[Path]) -> None:
        self.target, self.path, self._fd, self._created = target, path, fd, created
        self.count, self.pid = 1, os.getpid()

    @property
    def active(self) -> bool:
        """Whether this process still holds the lock (a forked child does not)."""
        return self.count > 0 and self.pid == os.getpid()

    def release(self) -> None:
        """Drop one hold; the last one removes the lock file (and the empty folders that
        taking the lock created) and unlocks."""
        if not self.active:
            return
        self.count -= 1
        if self.count or self._fd is None:
            return
        _HELD.pop(self.path, None)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still locked: a waiting process then sees a new inode
        os.close(self._fd)
        self._fd = None
        for folder in self._created:  # deepest first
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if the run left it empty

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_HELD: dict[Path, OutputLock] = {}


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


def _describe(command: str) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"{command} (pid {os.getpid()}, started {started})"


def _make_parent(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the created ones, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        f.mkdir(exist_ok=True)
    return missing


def acquire(target: str | os.PathLike, *, command: str = "") -> OutputLock:
    """Take the exclusive lock on the output ``target``.

    Args:
        target: The file or folder the caller is about to write.
        command: What writes it, recorded for a refused second writer (default: the
            program's command line).

    Raises:
        OutputLocked: another process holds it (a ``FileExistsError`` naming the holder).
    """
    path = lock_file(target)
    own = _HELD.get(path)
    if own is not None and own.active:
        own.count += 1
        return own
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 writes and locks
        return OutputLock(Path(target), path, None, [])
    created = _make_parent(path.parent)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLocked(f"{target} is being written by {_holder(path)}; wait until it "
                               f"finishes or choose another output (lock file {path})") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder released and removed it between our open and our lock
    os.ftruncate(fd, 0)
    command = command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    os.write(fd, (_describe(command) + "\n").encode())
    lock = OutputLock(Path(target), path, fd, created)
    _HELD[path] = lock
    return lock


@atexit.register
def _release_all() -> None:
    """At exit, remove the lock files this process still holds (the kernel drops the locks)."""
    for lock in list(_HELD.values()):
        if lock.active:
            lock.count = 1
            lock.release()


def held(target: str | os.PathLike) -> bool:
    """Whether this process holds the lock on ``target``."""
    own = _HELD.get(lock_file(target))
    return own is not None and own.active


@contextlib.contextmanager
def locked(target: str | os.PathLike, *, command: str = "") -> Iterator[OutputLock]:
    """``with locked(out): ...`` holds :func:`acquire` for the block."""
    lock = acquire(target, command=command)
    try:
        yield lock
    finally:
        lock.release()
