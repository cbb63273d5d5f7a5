"""A dataset run: resolve -> select -> plan (-> apply, -> prune), under its folder lock.

The CLI and the Python API both drive datasets through :class:`DatasetRun`, so they behave
the same.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from mlhub_sync.apply.executor import ApplyStats, Executor, ExecutorSettings
from mlhub_sync.apply.prune import prune_files, prune_refusal
from mlhub_sync.apply.report import ErrorReport
from mlhub_sync.catalog.bundled import Placement, place_bundled
from mlhub_sync.catalog.refresh import (
    CatalogStatus,
    catalog_files_since,
    forget_unpacked,
    refresh_catalog,
)
from mlhub_sync.catalog.synced import write_synced_catalog
from mlhub_sync.config.access import transfer_signer
from mlhub_sync.config.resolve import DatasetConfig
from mlhub_sync.errors import (
    FilterMatchesNothingError,
    LockDriftError,
    PruneRefusedError,
    TransferError,
)
from mlhub_sync.lockcheck import check_lock
from mlhub_sync.lockfile import Drift, Key, LockFile
from mlhub_sync.net.client import Http
from mlhub_sync.plan.build import Plan, build_plan
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.selection.desired import SelectionSummary, select_assets
from mlhub_sync.selection.misses import filter_misses, listing
from mlhub_sync.state.db import DB_NAME, StateDB, state_error
from mlhub_sync.state.lock import DatasetLock

log = logging.getLogger(__name__)


@dataclass
class DatasetPlan:
    """Everything ``plan`` knows about one dataset."""

    config: DatasetConfig
    catalog: CatalogStatus
    selection: SelectionSummary = field(default_factory=SelectionSummary)
    plan: Plan = field(default_factory=Plan)
    drift: Drift | None = None  # with --locked
    bundled: Placement = field(default_factory=Placement)  # in apply: the archive's files

    @property
    def pending(self) -> int:
        """Paths with work to do (with prune on, deletions count too)."""
        return self.plan.pending + (self.plan.not_desired if self.config.prune else 0)


@dataclass
class ApplyOutcome:
    """Everything ``apply`` did for one dataset."""

    planned: DatasetPlan
    stats: ApplyStats = field(default_factory=ApplyStats)
    report: Path | None = None
    pruned: int = 0
    prune_refused: str | None = None
    left_out: int = 0  # selected assets the index refused (unusable hrefs), in the report

    @property
    def failed(self) -> int:
        """Assets that failed (they are in the report)."""
        return self.stats.failed


class DatasetRun:
    """A locked session on one dataset folder: its state db plus the run's HTTP helper."""

    def __init__(
        self,
        config: DatasetConfig,
        http: Http,
        environ: Mapping[str, str],
        reporter: Reporter = NULL_REPORTER,
    ):
        self.config = config
        self.http = http
        self.environ = environ
        self.reporter = reporter
        self._lock = DatasetLock(config.dataset_dir)
        self._asset_lock = (
            DatasetLock(config.asset_dir) if config.asset_dir != config.dataset_dir else None
        )
        self._db: StateDB | None = None

    @property
    def db(self) -> StateDB:
        """The open state db."""
        assert self._db is not None, "use DatasetRun as a context manager"
        return self._db

    def __enter__(self) -> DatasetRun:
        self._lock.acquire()
        try:
            if self._asset_lock is not None:  # a shared asset store needs its own lock
                self._asset_lock.acquire()
            self._db = StateDB.open(self.config.dataset_dir)
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._db is not None:
                self._db.close()
        finally:
            self._db = None
            self._release()
        if isinstance(exc, sqlite3.Error):  # one boundary for SQLite trouble mid-run
            raise state_error(exc, self.config.dataset_dir / DB_NAME) from exc

    def _release(self) -> None:
        if self._asset_lock is not None:
            self._asset_lock.release()
        self._lock.release()

    def select(self, *, write_catalog: bool = True) -> DatasetPlan:
        """Resolve the catalog and select assets (``temp.selection``), without deciding; then
        (``write_catalog``) rewrite the dataset folder's catalog for what is on disk now."""
        catalog = refresh_catalog(self.config, self.db, self.http, self.environ, self.reporter)
        result = DatasetPlan(self.config, catalog)
        if not self.config.catalog_only:
            self._check_collection_filter()
            result.selection = select_assets(
                self.db, self.config.filters, self.config.common_asset_keys
            )
        if write_catalog:
            self._write_catalog()
        return result

    def _write_catalog(self) -> None:
        write_synced_catalog(self.db, self.config, selected=not self.config.catalog_only)

    def _check_collection_filter(self) -> None:
        """Warn about each filter entry the catalog lacks; stop when none matches."""
        wanted = self.config.filters.collections
        if not wanted:
            return
        catalog = self.db.index.keys_by_collection()
        found = filter_misses(wanted, catalog)
        if found.matches_nothing:
            raise FilterMatchesNothingError(
                "collection_filter matches no asset of the catalog: "
                + "; ".join(miss.describe() for miss in found.misses),
                subject=f"dataset {self.config.id}",
                hint=f"use the catalog's ids and keys ({listing(catalog)})",
            )
        for miss in found.misses:
            log.warning("%s: collection_filter: %s", self.config.id, miss.describe())

    def plan(
        self, if_exists: str = "resume", lock: tuple[LockFile, Key] | None = None
    ) -> DatasetPlan:
        """Resolve the catalog, select assets and decide every path.

        With ``lock``, the selection is compared with the lock first (``result.drift``); when
        it matches, assets without a catalog checksum are verified against the lock's.
        """
        return self._plan(if_exists, lock, applying=False)

    def _plan(
        self,
        if_exists: str,
        lock: tuple[LockFile, Key] | None,
        *,
        applying: bool,
        again: bool = False,
    ) -> DatasetPlan:
        # Applying, the catalog is rewritten once, after the files are there; and the files an
        # archive bundles are placed first, so the plan keeps them instead of fetching them.
        result = self.select(write_catalog=not applying)
        if self.config.catalog_only:
            return result
        if lock is not None:
            result.drift = check_lock(self.db, *lock, self.config.spec_dir)
            if not result.drift.drifted:
                self.db.pins.fill_checksums()
        if applying and not (result.drift is not None and result.drift.drifted):
            result.bundled = place_bundled(self.db, self.config)
            if result.bundled.missing and not again:  # a bundled file was pruned: unpack
                forget_unpacked(self.db)  # the catalog again, once, and place it from there
                return self._plan(if_exists, lock, applying=True, again=True)
        result.plan = build_plan(self.db, str(self.config.asset_dir), if_exists)
        return result

    def apply(
        self,
        *,
        stop: threading.Event | None = None,
        force: bool = False,
        prune: bool | None = None,
        if_exists: str = "resume",
        lock: tuple[LockFile, Key] | None = None,
        on_planned: Callable[[DatasetPlan], None] | None = None,
    ) -> ApplyOutcome:
        """Plan, then carry the plan out; prune afterwards when asked and nothing failed; then
        rewrite the dataset folder's catalog for the files now on disk. ``on_planned`` hears
        the plan before any transfer starts (the CLI prints it there)."""
        planned = self._plan(if_exists, lock, applying=True)
        if planned.drift is not None and planned.drift.drifted:
            raise LockDriftError(
                f"--locked: {planned.drift.describe()}"
                + "".join(f"\n    {line}" for line in planned.drift.samples or []),
                subject=str(lock[0].path) if lock else None,
                hint="review the change, then update the lock with `mlhub-sync lock SPEC`",
            )
        outcome = ApplyOutcome(planned)
        if on_planned is not None:
            on_planned(planned)
        if self.config.catalog_only:
            self._write_catalog()
            return outcome
        cfg = self.config
        signer = transfer_signer(cfg.source, self.http, self.environ)  # adds its secrets
        report = ErrorReport(cfg.dataset_dir, cfg.id, secrets=self.http.secrets)
        settings = ExecutorSettings(
            asset_dir=cfg.asset_dir,
            workers=cfg.workers,
            checksum_mode=cfg.checksum,
            policy=cfg.retry,
            net=cfg.net,
            catalog_since_ns=catalog_files_since(self.db),
            signer=signer,
        )
        executor = Executor(settings, self.db, report, stop=stop, reporter=self.reporter)
        plan = planned.plan
        try:
            outcome.stats = executor.run(plan.steps(), plan.pending, plan.pending_bytes)
            outcome.left_out = self._report_left_out(report)
            self._report_bundled(planned.bundled, outcome.stats, report)
        finally:
            outcome.report = report.close()
        stats = outcome.stats
        if (cfg.prune if prune is None else prune) and plan.not_desired:
            outcome.prune_refused = prune_refusal(
                run_had_errors=bool(stats.failed or stats.fatal or stats.interrupted),
                invalid_documents=planned.catalog.invalid_documents,
            )
            if outcome.prune_refused is None:
                try:
                    outcome.pruned = prune_files(self.db, cfg.asset_dir, cfg.max_delete, force)
                except PruneRefusedError as exc:
                    outcome.prune_refused = str(exc)
        self._write_catalog()
        return outcome

    @staticmethod
    def _report_bundled(placed: Placement, stats: ApplyStats, report: ErrorReport) -> None:
        """Count the archive's files placed before the plan ran, and report the failures."""
        stats.adopted += placed.verified
        stats.linked += placed.linked
        stats.failed += len(placed.failures)
        for failure in placed.failures:
            report.add(
                failure.collection_id,
                failure.item_id,
                failure.asset_key,
                failure.href,
                failure.error,
                1,
            )

    def _report_left_out(self, report: ErrorReport) -> int:
        """Put the assets the index refused (bad scheme, local file outside the catalog...)
        and the filters would select into the report: never fetched, never silently dropped."""
        count = 0
        for collection_id, item_id, key, href, reason in self.db.index.rejected():
            if not self.config.filters.admits_asset(collection_id, key):
                continue
            report.add(
                collection_id,
                item_id,
                key,
                href,
                TransferError(reason, retryable=False, error_class="unusable-href"),
                0,
            )
            count += 1
        return count
