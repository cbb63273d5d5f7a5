"""The dataset folder lock: an exclusive ``flock`` that the kernel releases on any death."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from mlhub_sync.errors import FatalLocalError, StateLockedError, SymlinkError
from mlhub_sync.tree import opened

LOCK_NAME = ".mlhub-sync.lock"


class DatasetLock:
    """An exclusive ``flock`` on ``{dataset_dir}/.mlhub-sync.lock`` for one run.

    The kernel releases it when the process dies, even by SIGKILL, so a crash never leaves a
    stale lock. The file holds the holder's pid and host, for the message the next one shows.
    It is opened with ``O_NOFOLLOW`` (``tree.py``): a link in its place is refused
    (:class:`SymlinkError`), never truncated through; replacing it could race another
    mlhub-sync taking the lock.
    """

    def __init__(self, dataset_dir: Path):
        self.path = dataset_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StateLockedError` naming the holder."""
        try:
            with opened(self.path.parent, create=True) as folder:
                fd = folder.open(LOCK_NAME, os.O_RDWR | os.O_CREAT)
        except SymlinkError as exc:
            raise SymlinkError(str(self.path), "lock file") from exc
        except OSError as exc:
            raise FatalLocalError(
                f"cannot write to the output folder: {exc.strerror or exc}",
                subject=str(self.path.parent),
                hint="check that output_dir is a folder you can write to, on a writable disk",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown pid"
            os.close(fd)
            raise StateLockedError(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Release the lock (the file stays; its content is stale but harmless)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DatasetLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
