"""The executor: plan steps in, results to the single journal writer.

- The coordinator (the calling thread) reads steps from the plan stream, groups steps that
  share an href into one job, and hands a :class:`~mlhub_sync.apply.runner.Runner` small
  batches of jobs through a bounded queue: memory does not grow with the number of assets.
- Where the jobs run is the runner's business (by default :class:`CurlThreads`: libcurl
  driver threads in this process). Workers never touch the db: they send events back, and the
  coordinator journals them in batched transactions (one writer). A partial-download record
  (a ``.part``'s validator: what lets a killed run resume it) is journaled at once; they are
  few, because a small file reports its start only when its transfer ends unfinished.
- Progress: a finished path moves the file count; the byte count moves as bytes arrive
  (the runner's :class:`~mlhub_sync.apply.jobs.Received` batches), so a large file does too.
- A per-asset failure goes to the error report and the run goes on; a
  :class:`FatalLocalError` (disk full, read-only) stops the run early.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mlhub_sync.apply.jobs import (
    WORKER_DONE,
    Done,
    Event,
    Failed,
    Fatal,
    Job,
    Received,
    Started,
    batch_jobs,
    group_by_href,
)
from mlhub_sync.apply.report import ErrorReport
from mlhub_sync.apply.runner import CurlThreads, ExecutorSettings, Runner
from mlhub_sync.errors import FatalLocalError
from mlhub_sync.plan.build import Step
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.state.db import FileRecord, PartialRecord, StateDB

__all__ = ["ApplyStats", "Executor", "ExecutorSettings", "Job", "batch_jobs", "group_by_href"]

log = logging.getLogger(__name__)


JOURNAL_BATCH = 500


JOURNAL_SECONDS = 1.0


STOP_GRACE_SECONDS = 3.0


@dataclass
class ApplyStats:
    """What a run did."""

    downloaded: int = 0
    resumed: int = 0
    replaced: int = 0
    adopted: int = 0
    linked: int = 0
    failed: int = 0
    transferred: int = 0
    seconds: float = 0.0
    fatal: FatalLocalError | None = None
    interrupted: bool = False

    @property
    def done(self) -> int:
        """Paths now correct on disk thanks to this run."""
        return self.downloaded + self.resumed + self.replaced + self.adopted + self.linked


class Executor:
    """Runs one dataset's plan steps; see the module docstring."""

    def __init__(
        self,
        settings: ExecutorSettings,
        db: StateDB,
        report: ErrorReport,
        *,
        stop: threading.Event | None = None,
        reporter: Reporter = NULL_REPORTER,
        runner: Runner | None = None,
    ):
        self.settings = settings
        self.db = db
        self.report = report
        self.stop = stop or threading.Event()
        self.reporter = reporter
        self.runner = runner or CurlThreads(settings)
        self.stats = ApplyStats()
        # Workers report through a lock-free SimpleQueue: two puts per file add up at 10k files/s.
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._files: list[FileRecord] = []
        self._partials: list[PartialRecord] = []
        self._last_flush = time.monotonic()

    def run(self, steps: Iterable[Step], total_files: int, total_bytes: int | None) -> ApplyStats:
        """Carry out ``steps``; return the stats (``stats.fatal`` set if the run was stopped)."""
        started = time.monotonic()
        with self.reporter.stage(
            "download assets",
            total=total_files,
            unit="files",
            total_bytes=total_bytes,
            show_bytes=True,
        ) as stage:
            self._stage = stage
            workers = alive = self.runner.start(
                self._events.put, self.stop, total_files, total_bytes
            )
            try:
                for batch in batch_jobs(group_by_href(steps)):
                    alive -= self._put(batch)
                    if self.stop.is_set():
                        break
                for _ in range(workers):
                    if self.stop.is_set():
                        break  # workers end on their own once stopped
                    alive -= self._put(None)
                deadline: float | None = None
                while alive:
                    if self.stop.is_set():
                        deadline = deadline or time.monotonic() + STOP_GRACE_SECONDS
                        if time.monotonic() > deadline:
                            break
                    alive -= self._drain(block=True)
            except BaseException:
                self.stop.set()
                self.stats.interrupted = True
                # Workers notice the stop between operations; one blocked on a stalled socket
                # may not for a whole read timeout. Journal what finished, then leave it behind
                # (workers are daemon threads; its .part stays for the next run).
                deadline = time.monotonic() + STOP_GRACE_SECONDS
                while alive and time.monotonic() < deadline:
                    alive -= self._drain(block=True)
                raise
            finally:
                self._drain(block=False)
                self._flush()
        self.stats.seconds = time.monotonic() - started
        if self.stop.is_set() and self.stats.fatal is None:
            self.stats.interrupted = True  # stopped from outside (a signal, watch shutting down)
        return self.stats

    def _put(self, batch: list[Job] | None) -> int:
        """Queue a batch, journaling results while the queue is full; returns workers ended."""
        ended = 0
        while not self.runner.put(batch, timeout=0.1):
            ended += self._drain(block=False)
            if self.stop.is_set():
                break  # stopped workers end on their own: no job or end marker needed
        return ended + self._drain(block=False)

    def _drain(self, block: bool) -> int:
        """Handle pending events; return how many workers have ended."""
        ended = 0
        while True:
            try:
                event = self._events.get(timeout=0.1) if block else self._events.get_nowait()
            except queue.Empty:
                break
            block = False
            ended += self._handle(event)
        if (
            self._partials  # a .part's validator is what lets a killed run resume it: now
            or len(self._files) >= JOURNAL_BATCH
            or time.monotonic() - self._last_flush >= JOURNAL_SECONDS
        ):
            self._flush()
        return ended

    def _handle(self, event: Event) -> int:
        if event is WORKER_DONE:
            return 1
        if isinstance(event, Done):
            self._files.append(event.record)
            self.stats.transferred += event.transferred
            setattr(self.stats, event.outcome, getattr(self.stats, event.outcome) + 1)
            self._stage.update(1)
        elif isinstance(event, Received):
            self._stage.update(0, nbytes=event.nbytes)
        elif isinstance(event, Started):
            self._partials.append(event.partial)
        elif isinstance(event, Failed):
            self.stats.failed += 1
            d = event.step.desired
            self.report.add(
                d.collection_id, d.item_id, d.asset_key, d.href, event.error, event.attempts
            )
            log.warning("%s: %s", d.path, event.error.message)
            self._stage.update(1)
        elif isinstance(event, Fatal):
            if self.stats.fatal is None:
                self.stats.fatal = event.error
            self.stop.set()
        return 0

    def _flush(self) -> None:
        if self._files or self._partials:
            with self.db.transaction():
                self.db.put_partials(self._partials)
                self.db.put_files(self._files)
            self._files.clear()
            self._partials.clear()
        self._last_flush = time.monotonic()
