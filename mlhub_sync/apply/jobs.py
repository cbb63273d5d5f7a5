"""Jobs and what carrying one out means, whatever runs it.

A :class:`Job` is the plan steps that share one href (the plan is sorted by href): the href is
fetched once, the other paths get a hard link (or a copy). :meth:`JobSteps.run` turns a job
into transfer operations (``transfer/ops.py``) for any driver, and reports what happened as
events (:class:`Started`, :class:`Done`, :class:`Failed`, :class:`Fatal`; the runner adds
:class:`Received`, the bytes as they arrive) for the single journal writer. Jobs travel to
workers in small batches (:func:`batch_jobs`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from mlhub_sync.errors import FatalLocalError, MlhubSyncError, SymlinkError, TransferError
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import DEFAULT_NET, NetSettings
from mlhub_sync.net.signing import Signer
from mlhub_sync.plan.adopt import Adopt, AskHost, Evidence, HashFile, Replace, adopt
from mlhub_sync.plan.build import Step
from mlhub_sync.plan.decide import Action, Reason
from mlhub_sync.stac.checksum import hash_file
from mlhub_sync.state.db import FileRecord, PartialRecord
from mlhub_sync.transfer.curl import Cancelled
from mlhub_sync.transfer.local import copy_or_link
from mlhub_sync.transfer.ops import FetchState, Steps, TransferRequest
from mlhub_sync.transfer.rules import Transfers
from mlhub_sync.tree import Tree

log = logging.getLogger("mlhub_sync.apply.executor")


BATCH_JOBS = 16


BATCH_BYTES = 4 * 2**20


@dataclass(frozen=True)
class Job:
    """Steps that share one href."""

    href: str
    steps: tuple[Step, ...]


# -- events: what workers tell the journal writer -----------------------------------------------


@dataclass(frozen=True)
class Started:
    """A ``.part`` began (or stayed unfinished): its validator lets a later run resume it."""

    partial: PartialRecord


@dataclass(frozen=True)
class Done:
    """A path is now right on disk."""

    step: Step
    record: FileRecord
    outcome: str  # downloaded | resumed | replaced | adopted | linked
    transferred: int


@dataclass(frozen=True)
class Failed:
    """A path could not be made right (it goes to the error report)."""

    step: Step
    error: MlhubSyncError
    attempts: int


@dataclass(frozen=True)
class Fatal:
    """The run must stop (disk full, read-only, a bug)."""

    error: FatalLocalError


@dataclass(frozen=True)
class Received:
    """``nbytes`` more body bytes arrived (in files not finished yet, too): a runner sends
    these now and then, a batch at a time, so a progress bar moves while a large file does."""

    nbytes: int


WORKER_DONE = object()  # a worker's last event


Event = Started | Done | Failed | Fatal | Received | object


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


def task_ended(emit: Callable[[Event], None], error: BaseException | None) -> bool:
    """Report how a job's steps ended; True when the run must stop (a fatal error, a bug)."""
    if error is None or isinstance(error, Cancelled):
        return False
    if isinstance(error, FatalLocalError):
        emit(Fatal(error))
        return True
    log.error("internal error in a worker", exc_info=error)
    emit(Fatal(FatalLocalError(f"internal error in a worker: {error!r}")))
    return True


# Failures of one path, not of its href: the href's other paths still get their own try.
_PATH_FAILURES = frozenset({"local-write", "symlink"})


class JobSteps:
    """One worker's jobs as transfer operations; ``emit`` hears the events.

    Its :class:`~mlhub_sync.tree.Tree` (rooted at ``asset_dir``) reaches every file without
    following links and keeps the worker's folders open; :meth:`close` it at the end.
    """

    def __init__(
        self,
        asset_dir: Path,
        checksum_mode: str,
        policy: RetryPolicy,
        emit: Callable[[Event], None],
        stopped: Callable[[], bool],
        rand: Callable[[], float] = random.random,
        catalog_since_ns: int | None = None,
        net: NetSettings = DEFAULT_NET,
        signer: Signer | None = None,
    ):
        self.asset_dir, self.checksum_mode = asset_dir, checksum_mode
        # An untracked file that appeared (ctime) since the catalog was first unpacked into
        # the asset folder may be one of its members: adopted only on a checksum match.
        self.catalog_since_ns = catalog_since_ns
        self.emit, self.stopped = emit, stopped
        self.copied = 0  # bytes of file: hrefs copied (no driver saw them): see Received
        self.tree = Tree(asset_dir, create=True)
        self.transfers = Transfers(
            policy=policy,
            rand=rand,
            on_started=self.on_started,
            tree=self.tree,
            net=net,
            signer=signer,
        )

    def close(self) -> None:
        """Close the worker's open folders."""
        self.tree.close()

    def on_started(self, req: TransferRequest, validator: str | None, total: int | None) -> None:
        """A ``.part``'s start, as a :class:`Started` event (the ``on_started`` hook)."""
        rel = os.path.relpath(req.dest, self.asset_dir)
        self.emit(Started(PartialRecord(rel, req.url, validator, total)))

    def run(self, job: Job) -> Steps[None]:
        """Carry out ``job``: adopt, link or download each of its paths."""
        emit = self.emit
        primary: tuple[Path, FileRecord] | None = None
        failure: TransferError | None = None  # the href already failed in this job
        for step in job.steps:
            if self.stopped():
                return
            dest = self.asset_dir / step.desired.path
            state = FetchState()  # this step's attempts, for the report
            try:
                if step.action is Action.VERIFY:
                    try:
                        record = yield from self._verify(step, dest)
                    except OSError as exc:  # unreadable: replacing it is the fix
                        log.info("%s: cannot verify (%s); replacing it", step.desired.path, exc)
                        record = None
                    if record is not None:
                        emit(Done(step, record, "adopted", 0))
                        primary = primary or (dest, record)
                        continue
                if failure is not None:  # the same href would fail the same way: say so now
                    emit(Failed(step, failure, 0))
                    continue
                if primary is not None:
                    placed = copy_or_link(self.tree, primary[0], dest)
                    emit(Done(step, _record_for(step, placed, primary[1]), "linked", 0))
                    continue
                record, transferred, resumed = yield from self._download(step, dest, state)
                if step.desired.href.startswith("file:"):
                    self.copied += transferred
                if resumed:
                    outcome = "resumed"
                elif step.action in (Action.REPLACE, Action.VERIFY):
                    outcome = "replaced"
                else:
                    outcome = "downloaded"
                emit(Done(step, record, outcome, transferred))
                primary = (dest, record)
            except TransferError as exc:
                emit(Failed(step, exc, max(1, state.attempts)))
                if exc.error_class not in _PATH_FAILURES:
                    failure = exc

    def _download(
        self, step: Step, dest: Path, state: FetchState
    ) -> Steps[tuple[FileRecord, int, bool]]:
        d = step.desired
        request = TransferRequest(
            url=d.href,
            dest=dest,
            size=d.size,
            checksum=d.checksum,
            checksum_mode=self.checksum_mode,
            resume_validator=step.partial_validator,  # a replacement resumes its .part too
        )
        result = yield from self.transfers.fetch(request, state)
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

    def _verify(self, step: Step, dest: Path) -> Steps[FileRecord | None]:
        """Adopt the file at ``dest`` on evidence (``plan.adopt`` decides; this gathers the
        evidence it asks for), or return ``None``: it must be replaced."""
        d = step.desired
        found = self._lstat(dest)
        if found is None or not stat.S_ISREG(found.st_mode):
            return None  # gone, or a link (never followed): replaced by a download
        since = self.catalog_since_ns
        evidence = Evidence(
            found.st_size,
            from_catalog=since is not None
            and step.reason is Reason.UNTRACKED
            and found.st_ctime_ns >= since,
        )
        while True:
            verdict = adopt(
                d,
                checksum_mode=self.checksum_mode,
                reason=step.reason,
                record_md5=step.record_md5,
                evidence=evidence,
            )
            if isinstance(verdict, Adopt):
                return FileRecord(
                    d.path, d.href, found.st_size, found.st_mtime_ns, verdict.md5, d.checksum,
                    None, verdict.evidence,
                )  # fmt: skip
            if isinstance(verdict, Replace):
                log.debug("%s: replacing it: %s", d.path, verdict.why)
                return None
            if isinstance(verdict, HashFile):
                md5 = hashlib.md5()
                other = verdict.claim.new() if verdict.claim is not None else None
                if not self._hash(dest, md5, *([other] if other is not None else [])):
                    return None
                claimed = other.hexdigest() if other is not None else None
                evidence = replace(
                    evidence, hashed=True, md5=md5.hexdigest(), claimed_digest=claimed
                )
                continue
            assert isinstance(verdict, AskHost)
            try:
                size, server = yield from self.transfers.head(d.href)
            except TransferError as exc:  # e.g. presigned GET-only URLs answer 403 to HEAD
                log.info("%s: no evidence from HEAD (%s); downloading it", d.path, exc.message)
                size, server = None, None
            evidence = replace(evidence, asked_host=True, head_size=size, server_md5=server)

    def _lstat(self, dest: Path) -> os.stat_result | None:
        try:
            with self.tree.folder(dest.parent) as folder:
                return folder.lstat(dest.name)
        except (SymlinkError, FileNotFoundError, NotADirectoryError):
            return None

    def _hash(self, dest: Path, *hashers: object) -> bool:
        """Feed ``dest``'s bytes to ``hashers``; False when it is no longer a plain file of
        the tree (a link now, or gone)."""
        try:
            with (
                self.tree.folder(dest.parent) as folder,
                os.fdopen(folder.open(dest.name, os.O_RDONLY), "rb") as stream,
            ):
                hash_file(stream, *hashers)
        except (SymlinkError, FileNotFoundError):
            return False
        return True


def _record_for(step: Step, placed: os.stat_result, primary: FileRecord) -> FileRecord:
    d = step.desired
    return FileRecord(
        d.path,
        d.href,
        placed.st_size,
        placed.st_mtime_ns,
        primary.md5,
        primary.checksum,  # what the bytes were verified against, not what this entry claims
        primary.validator,
        primary.verified_by,
    )
