"""The executor: a bounded pool of worker threads carrying out plan steps.

- The coordinator (the calling thread) reads steps from the plan stream, groups steps that
  share an href into one job, and feeds a queue of at most ``2 x workers`` small batches of
  jobs: memory does not grow with the number of assets.
- Each worker owns a :class:`~mlhub_sync.transfer.Transferer` (its own connection pool). A
  job's href is fetched once; the other paths of the job get a hard link (or a copy).
- Workers never touch the db. They send events back; the coordinator journals them in batched
  transactions (one writer). A partial-download record (a ``.part``'s validator: what lets a
  killed run resume it) is journaled at once; they are few, because a file under
  ``RECORD_PARTIAL_FROM`` is reported only when its transfer ends unfinished.
- A per-asset failure goes to the error report and the run goes on; a
  :class:`FatalLocalError` (disk full, read-only) stops the pool early.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlhub_sync.apply.report import ErrorReport
from mlhub_sync.errors import FatalLocalError, MlhubSyncError, TransferError
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.plan.build import Step
from mlhub_sync.plan.decide import Action, Reason
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.stac.checksum import parse_multihash
from mlhub_sync.state.db import FileRecord, PartialRecord, StateDB
from mlhub_sync.transfer.core import (
    Cancelled,
    CurlMulti,
    FetchState,
    Steps,
    Transferer,
    TransferRequest,
    copy_or_link,
    default_backend,
)

log = logging.getLogger(__name__)


JOURNAL_BATCH = 500


JOURNAL_SECONDS = 1.0


STOP_GRACE_SECONDS = 3.0


MAX_DRIVERS = 2  # libcurl driver threads (see Executor._threads)


SMALL_FILES = 1 << 20  # an average size under this runs on one driver


@dataclass(frozen=True)
class Job:
    """Steps that share one href."""

    href: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class _Started:
    partial: PartialRecord


@dataclass(frozen=True)
class _Done:
    step: Step
    record: FileRecord
    outcome: str  # downloaded | resumed | replaced | adopted | linked
    transferred: int


@dataclass(frozen=True)
class _Failed:
    step: Step
    error: MlhubSyncError
    attempts: int


@dataclass(frozen=True)
class _Fatal:
    error: FatalLocalError


_WORKER_DONE = object()


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
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Paths now correct on disk thanks to this run."""
        return self.downloaded + self.resumed + self.replaced + self.adopted + self.linked


def group_by_href(steps: Iterable[Step]) -> Iterator[Job]:
    """Consecutive steps with the same href (the plan is sorted by href) as one job."""
    current: list[Step] = []
    for step in steps:
        if current and step.desired.href != current[0].desired.href:
            yield Job(current[0].desired.href, tuple(current))
            current = []
        current.append(step)
    if current:
        yield Job(current[0].desired.href, tuple(current))


BATCH_JOBS = 16


BATCH_BYTES = 4 * 2**20


def batch_jobs(jobs: Iterable[Job]) -> Iterator[list[Job]]:
    """Jobs in batches of up to ``BATCH_JOBS`` and about ``BATCH_BYTES``: small files travel
    together, a large (or unknown-size) file travels alone so the workers share big work."""
    batch: list[Job] = []
    size = 0
    for job in jobs:
        known = job.steps[0].desired.size
        batch.append(job)
        size += known if known is not None else BATCH_BYTES
        if len(batch) >= BATCH_JOBS or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


@dataclass(frozen=True)
class ExecutorSettings:
    """How to carry out the steps of one dataset."""

    asset_dir: Path
    workers: int
    checksum_mode: str
    policy: RetryPolicy
    connect_timeout: float
    read_timeout: float


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
    ):
        self.settings = settings
        self.db = db
        self.report = report
        self.stop = stop or threading.Event()
        self.reporter = reporter
        self.stats = ApplyStats()
        # Jobs travel in small batches: one queue handoff per file costs more than fetching a
        # 16 KiB file over a kept-alive connection. Memory stays O(workers x BATCH_JOBS).
        self._jobs: queue.Queue[list[Job] | None] = queue.Queue(maxsize=2 * settings.workers)
        # Workers report through a lock-free SimpleQueue: two puts per file add up at 10k files/s.
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._files: list[FileRecord] = []
        self._partials: list[PartialRecord] = []
        self._last_flush = time.monotonic()

    # -- coordinator ----------------------------------------------------------------------------

    def run(self, steps: Iterable[Step], total_files: int, total_bytes: int | None) -> ApplyStats:
        """Carry out ``steps``; return the stats (``stats.fatal`` set if the run was stopped)."""
        started = time.monotonic()
        workers = [
            threading.Thread(target=target, name=f"mlhub-sync-{name}-{i}", daemon=True)
            for i, (target, name) in enumerate(self._threads(total_files, total_bytes))
        ]
        alive = len(workers)
        with self.reporter.stage(
            "download assets",
            total=total_files,
            unit="files",
            total_bytes=total_bytes,
            show_bytes=True,
        ) as stage:
            self._stage = stage
            for worker in workers:
                worker.start()
            try:
                for batch in batch_jobs(group_by_href(steps)):
                    alive -= self._put(batch)
                    if self.stop.is_set():
                        break
                for _ in workers:
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
                # Workers notice the stop between chunks; one blocked on a stalled socket may
                # not for a whole read timeout. Journal what finished, then leave it behind
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

    def _put(self, job: list[Job] | None) -> int:
        """Queue a job, journaling results while the queue is full; returns workers ended."""
        ended = 0
        while True:
            try:
                self._jobs.put(job, timeout=0.1)
                break
            except queue.Full:
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

    def _handle(self, event: object) -> int:
        if event is _WORKER_DONE:
            return 1
        if isinstance(event, _Started):
            self._partials.append(event.partial)
        elif isinstance(event, _Done):
            self._files.append(event.record)
            self.stats.transferred += event.transferred
            setattr(self.stats, event.outcome, getattr(self.stats, event.outcome) + 1)
            self._stage.update(1, nbytes=event.transferred)
        elif isinstance(event, _Failed):
            self.stats.failed += 1
            step = event.step
            d = step.desired
            self.report.add(
                d.collection_id, d.item_id, d.asset_key, d.href, event.error, event.attempts
            )
            log.warning("%s: %s", d.path, event.error.message)
            self._stage.update(1)
        elif isinstance(event, _Fatal):
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

    # -- workers --------------------------------------------------------------------------------

    def _threads(
        self, total_files: int, total_bytes: int | None
    ) -> list[tuple[Callable[[], None], str]]:
        """The threads that carry out jobs.

        With libcurl: driver threads, each running its share of the ``workers`` transfers at
        once on one multi handle. Small files cost Python time per file, which a second
        driver only fights over (the GIL): one driver. Big files (or unknown sizes) cost
        hashing per byte, which two drivers spread over two cores (hashlib releases the GIL).
        Measured in benchmarks/RESULTS.md. Without libcurl: one blocking thread per worker.
        """
        workers = self.settings.workers
        if default_backend() == "curl":
            small = total_bytes is not None and total_bytes < SMALL_FILES * max(1, total_files)
            cores = os.cpu_count() or 1
            drivers = 1 if small else max(1, min(MAX_DRIVERS, workers, cores))
            slots = -(-workers // drivers)
            return [(lambda: self._driver(slots), "driver") for _ in range(drivers)]
        return [(self._worker, "worker") for _ in range(workers)]

    def _transferer(self) -> Transferer:
        s = self.settings
        return Transferer(
            policy=s.policy,
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            stop=self.stop,
            rand=random.Random().random,
            on_started=self._on_started,
        )

    def _worker(self) -> None:
        transferer = self._transferer()
        try:
            while not self.stop.is_set():
                try:
                    job = self._jobs.get(timeout=0.2)
                except queue.Empty:
                    continue
                if job is None:
                    break
                for one in job:
                    transferer.drive(self._process(one, transferer))
        except BaseException as exc:
            self._task_ended(exc)
        finally:
            transferer.close()
            self._events.put(_WORKER_DONE)

    def _driver(self, slots: int) -> None:
        """Run jobs ``slots`` at a time on one libcurl multi handle until the end marker."""
        transferer = self._transferer()
        runner = CurlMulti(transferer, slots, self._task_ended)
        waiting: deque[Job] = deque()
        ended = False
        try:
            while not self.stop.is_set():
                while runner.free and (waiting or not ended):
                    if not waiting:
                        try:  # block for work only when nothing is in flight
                            batch = (
                                self._jobs.get(timeout=0.2)
                                if runner.active == 0
                                else self._jobs.get_nowait()
                            )
                        except queue.Empty:
                            break
                        if batch is None:
                            ended = True
                            break
                        waiting.extend(batch)
                    runner.submit(self._process(waiting.popleft(), transferer))
                if ended and not waiting and runner.active == 0:
                    break
                if runner.active:
                    runner.poll(0.2)
        except BaseException as exc:
            self._task_ended(exc)
        finally:
            runner.close()
            transferer.close()
            self._events.put(_WORKER_DONE)

    def _task_ended(self, exc: BaseException | None) -> None:
        """How a job's steps ended: a fatal local error stops the run; a bug is reported."""
        if exc is None or isinstance(exc, Cancelled):
            return
        if isinstance(exc, FatalLocalError):
            self._events.put(_Fatal(exc))
            self.stop.set()
            return
        log.error("internal error in a worker", exc_info=exc)
        self._events.put(_Fatal(FatalLocalError(f"internal error in a worker: {exc!r}")))
        self.stop.set()

    def _on_started(self, req: TransferRequest, validator: str | None, total: int | None) -> None:
        rel = os.path.relpath(req.dest, self.settings.asset_dir)
        self._events.put(_Started(PartialRecord(rel, req.url, validator, total)))

    def _process(self, job: Job, transferer: Transferer) -> Steps[None]:
        primary: tuple[Path, FileRecord] | None = None
        failure: TransferError | None = None  # the href already failed in this job
        for step in job.steps:
            if self.stop.is_set():
                raise Cancelled()
            dest = self.settings.asset_dir / step.desired.path
            state = FetchState()  # this step's attempts, for the report
            try:
                if step.action is Action.VERIFY:
                    try:
                        record = yield from self._verify(step, dest, transferer)
                    except OSError as exc:  # unreadable: replacing it is the fix
                        log.info("%s: cannot verify (%s); replacing it", step.desired.path, exc)
                        record = None
                    if record is not None:
                        self._events.put(_Done(step, record, "adopted", 0))
                        primary = primary or (dest, record)
                        continue
                if failure is not None:  # the same href would fail the same way: say so now
                    self._events.put(_Failed(step, failure, 0))
                    continue
                if primary is not None:
                    transferer.ensure_dir(dest.parent)
                    copy_or_link(primary[0], dest)
                    record = _record_for(step, dest, primary[1])
                    self._events.put(_Done(step, record, "linked", 0))
                    continue
                record, transferred, resumed = yield from self._download(
                    step, dest, transferer, state
                )
                outcome = (
                    "resumed"
                    if resumed
                    else "replaced"
                    if step.action in (Action.REPLACE, Action.VERIFY)
                    else "downloaded"
                )
                self._events.put(_Done(step, record, outcome, transferred))
                primary = (dest, record)
            except TransferError as exc:
                self._events.put(_Failed(step, exc, max(1, state.attempts)))
                if exc.error_class != "local-write":
                    failure = exc

    def _download(
        self, step: Step, dest: Path, transferer: Transferer, state: FetchState
    ) -> Steps[tuple[FileRecord, int, bool]]:
        d = step.desired
        request = TransferRequest(
            url=d.href,
            dest=dest,
            size=d.size,
            checksum=d.checksum,
            checksum_mode=self.settings.checksum_mode,
            resume_validator=step.partial_validator,  # a replacement resumes its .part too
        )
        result = yield from transferer.fetch_steps(request, state)
        record = FileRecord(
            d.path,
            d.href,
            result.size,
            result.mtime_ns,
            result.md5,
            d.checksum,
            result.validator,
            result.verified_by,
        )
        return record, result.transferred, result.resumed

    def _verify(self, step: Step, dest: Path, transferer: Transferer) -> Steps[FileRecord | None]:
        """Adopt the file at ``dest`` on evidence, or return ``None`` (it must be replaced)."""
        d = step.desired
        try:
            stat = os.stat(dest)
        except FileNotFoundError:
            return None
        if d.size is not None and stat.st_size != d.size:
            return None
        mode = self.settings.checksum_mode
        claim = None
        if d.checksum is not None and mode != "off":
            try:
                claim = parse_multihash(d.checksum)
            except ValueError:
                claim = None
        if claim is not None:
            md5, digest = _hash_file(dest, claim.new() if claim.name != "md5" else None)
            ok = (md5 if claim.name == "md5" else digest) == claim.digest
            return _adopted(step, stat, md5, "file:checksum") if ok else None
        if step.reason is Reason.MODIFIED_LOCALLY and step.record_md5:
            md5, _ = _hash_file(dest, None)
            return _adopted(step, stat, md5, "md5") if md5 == step.record_md5 else None
        if d.href.startswith("file:"):
            return None  # a local source is cheaper to copy than to reason about
        try:
            size, server = yield from transferer.head_steps(d.href)
        except TransferError as exc:  # e.g. presigned GET-only URLs answer 403 to HEAD
            log.info("%s: no evidence from HEAD (%s); downloading it", d.path, exc.message)
            return None
        if size is None or size != stat.st_size:
            return None
        if server is not None and mode != "off":
            md5, _ = _hash_file(dest, None)
            return _adopted(step, stat, md5, server.source) if md5 == server.md5 else None
        if mode == "required":
            return None
        md5, _ = _hash_file(dest, None)  # so `verify --deep` can notice later damage
        return _adopted(step, stat, md5, "size")


def _hash_file(path: Path, extra: object | None) -> tuple[str, str | None]:
    md5 = hashlib.md5()
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            md5.update(block)
            if extra is not None:
                extra.update(block)  # type: ignore[attr-defined]
    digest = extra.hexdigest() if extra is not None else None  # type: ignore[attr-defined]
    return md5.hexdigest(), digest


def _adopted(step: Step, stat: os.stat_result, md5: str | None, evidence: str) -> FileRecord:
    d = step.desired
    return FileRecord(
        d.path, d.href, stat.st_size, stat.st_mtime_ns, md5, d.checksum, None, evidence
    )


def _record_for(step: Step, dest: Path, primary: FileRecord) -> FileRecord:
    stat = os.stat(dest)
    d = step.desired
    return FileRecord(
        d.path,
        d.href,
        stat.st_size,
        stat.st_mtime_ns,
        primary.md5,
        primary.checksum,  # what the bytes were verified against, not what this entry claims
        primary.validator,
        primary.verified_by,
    )
