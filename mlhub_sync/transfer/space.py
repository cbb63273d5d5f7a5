"""Free space: a run stops before the disk is full, not when a write meets ENOSPC.

A full disk breaks more than the file being written: the state db cannot journal what was
done, and other programs on the machine fail too. So a body starts only when the disk keeps a
reserve (:func:`reserve`: 1% of the filesystem, at most 256 MiB) after the bytes it announced,
and a body of unknown size stops once the reserve is reached (``Sink.write`` looks every
:data:`CHECK_EVERY` bytes). Either is a :class:`FatalLocalError`: the run stops, keeping
everything verified so far.

Measuring is one ``statvfs`` per :data:`REMEASURE_SECONDS` at most (not one per file: a
transfer of 20,000 small files must not pay a syscall each); bodies started in between are
subtracted from the last measurement. A write that still meets ENOSPC (another program filled
the disk) stops the run the same way (``sink.local_error``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from mlhub_sync.errors import FatalLocalError
from mlhub_sync.net.settings import human_size

MAX_RESERVE = 256 * 2**20


REMEASURE_SECONDS = 1.0


CHECK_EVERY = 64 * 2**20  # body bytes between two checks during a body of unknown size


HINT = "free disk space (or point output_dir at a bigger disk), then run apply again"


def reserve(stat: os.statvfs_result) -> int:
    """Bytes kept free on a filesystem: 1% of it, at most :data:`MAX_RESERVE`."""
    return min(MAX_RESERVE, stat.f_blocks * stat.f_frsize // 100)


def available(stat: os.statvfs_result) -> int:
    """Bytes an unprivileged writer may still use."""
    return stat.f_bavail * stat.f_frsize


def nearly_full(where: str, free: int, needed: int, kept: int) -> FatalLocalError:
    """The error that stops a run before the disk is full."""
    what = f"{human_size(needed)} more are needed, " if needed else ""
    return FatalLocalError(
        f"stopping before the disk is full: {human_size(free)} free, {what}"
        f"{human_size(kept)} are kept free",
        subject=str(where),
        hint=HINT,
    )


class FreeSpace:
    """The free space of the output's filesystem, as one worker's bodies claim it."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        statvfs: Callable[[int | Path], os.statvfs_result] = os.statvfs,
    ):
        self.clock, self.statvfs = clock, statvfs
        self._measured_at = -REMEASURE_SECONDS
        self._free = 0
        self._reserve = 0

    def claim(self, folder: int | Path, nbytes: int, where: str | None = None) -> None:
        """A body of ``nbytes`` is about to be written in ``folder`` (an open folder's fd, or
        a path; ``where`` names it in the error): raise the :class:`FatalLocalError` when the
        disk would keep less than its reserve."""
        fresh = self.clock() - self._measured_at >= REMEASURE_SECONDS
        if fresh:
            self._measure(folder)
        if self._free - nbytes < self._reserve and not fresh:
            self._measure(folder)  # the estimate says no: make sure with a fresh look
        if self._free - nbytes < self._reserve:
            shown = where if where is not None else str(folder)
            raise nearly_full(shown, max(0, self._free), nbytes, self._reserve)
        self._free -= nbytes

    def _measure(self, folder: int | Path) -> None:
        try:
            stat = self.statvfs(folder)
        except OSError:
            self._free, self._reserve = 1 << 62, 0  # cannot tell: the writes will say
        else:
            self._free, self._reserve = available(stat), reserve(stat)
        self._measured_at = self.clock()
