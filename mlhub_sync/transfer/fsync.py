"""Where a verified file's fsync runs: in the driver thread while it is cheap, in helper
threads once measured slow (a moving average), so one slow disk does not stall every transfer
of a driver. Owned by a driver; nothing else writes its state.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("mlhub_sync.transfer")


SLOW_SYNC_SECONDS = 0.0005  # an fsync slower than this on average moves to helper threads


SYNC_THREADS = 8


SYNC_POLL_SECONDS = 0.002  # how often a driver with fsyncs in flight looks for them


class Fsync:
    """fsync here (:meth:`here`) or in helpers (:meth:`submit`, then :meth:`collect`)."""

    def __init__(self, slow: float = SLOW_SYNC_SECONDS):
        self.slow = slow
        self.average = 0.0  # moving average of the fsyncs done here
        self.pending = 0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._done: queue.SimpleQueue[tuple[Any, OSError | None]] = queue.SimpleQueue()

    def here(self, fd: int) -> OSError | bool | None:
        """fsync ``fd`` now: ``None``, or the ``OSError`` it raised; ``False`` when fsync is
        slow here, so the caller hands it to :meth:`submit` instead."""
        if self.average >= self.slow:
            return False
        started = time.perf_counter()
        try:
            os.fsync(fd)
        except OSError as exc:
            return exc
        self.average += (time.perf_counter() - started - self.average) / 8
        if self.average >= self.slow:
            log.debug("fsync takes %.2f ms here: syncing in helper threads", 1000 * self.average)
        return None

    def submit(self, owner: Any, fd: int) -> None:
        """fsync ``fd`` in a helper thread; :meth:`collect` hands ``owner`` the outcome."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                SYNC_THREADS, thread_name_prefix="mlhub-sync-fsync"
            )
        self.pending += 1
        self._pool.submit(self._sync, owner, fd)

    def _sync(self, owner: Any, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self._done.put((owner, exc))
        else:
            self._done.put((owner, None))

    def collect(self, block: bool) -> Iterator[tuple[Any, OSError | None]]:
        """The fsyncs done in helpers so far, as ``(owner, error or None)``; ``block`` waits
        (up to a second) for the first one when some are in flight."""
        while self.pending:
            try:
                item = self._done.get(timeout=1.0) if block else self._done.get_nowait()
            except queue.Empty:
                return
            self.pending -= 1
            block = False
            yield item

    def close(self) -> None:
        """Wait for the helpers and end them."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
