"""The engine: one dataset's resolve -> select -> plan (-> apply), under its folder lock.

The CLI and the Python API both drive datasets through :class:`DatasetRun`, so they behave
the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from mlhub_sync.apply.executor import ApplyStats, Executor, ExecutorSettings
from mlhub_sync.apply.report import ErrorReport
from mlhub_sync.catalog.refresh import CatalogStatus, refresh_catalog
from mlhub_sync.config.resolve import DatasetConfig
from mlhub_sync.errors import LockDriftError, PruneRefusedError, TransferError
from mlhub_sync.lockfile import Asset, Drift, Key, LockFile, selection_digest
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.plan.build import PlanSummary, build_plan, iter_steps
from mlhub_sync.plan.decide import Action
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.selection.desired import SelectionSummary, select_assets
from mlhub_sync.stac.checksum import md5_multihash
from mlhub_sync.stac.href import href_identity
from mlhub_sync.state.db import DB_NAME, StateDB, state_error
from mlhub_sync.state.lock import DatasetLock

log = logging.getLogger(__name__)


@dataclass
class DatasetPlan:
    """Everything ``plan`` knows about one dataset."""

    config: DatasetConfig
    catalog: CatalogStatus
    selection: SelectionSummary = field(default_factory=SelectionSummary)
    plan: PlanSummary = field(default_factory=PlanSummary)
    drift: Drift | None = None  # with --locked

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

    def select(self) -> DatasetPlan:
        """Resolve the catalog and select assets (``temp.selection``), without deciding."""
        catalog = refresh_catalog(self.config, self.db, self.http, self.environ, self.reporter)
        result = DatasetPlan(self.config, catalog)
        if not self.config.catalog_only:
            result.selection = select_assets(
                self.db, self.config.filters, self.config.common_asset_keys
            )
        return result

    def plan(
        self, if_exists: str = "resume", lock: tuple[LockFile, Key] | None = None
    ) -> DatasetPlan:
        """Resolve the catalog, select assets and decide every path.

        With ``lock``, the selection is compared with the lock first (``result.drift``); when
        it matches, assets without a catalog checksum are verified against the lock's.
        """
        result = self.select()
        if self.config.catalog_only:
            return result
        if lock is not None:
            result.drift = self.check_lock(*lock)
            if not result.drift.drifted:
                self.db.execute(
                    "UPDATE temp.selection SET checksum = (SELECT l.checksum FROM "
                    "temp.lock_assets l WHERE l.path = selection.path) WHERE checksum IS NULL"
                )
        result.plan = build_plan(self.db, str(self.config.asset_dir), if_exists)
        return result

    # -- lock files -----------------------------------------------------------------------------

    def lock_assets(self) -> Iterator[Asset]:
        """The selected assets as a lock lists them (needs :meth:`select` first)."""
        cursor = self.db.conn.cursor()
        cursor.execute(
            "SELECT s.path, s.href, s.size, s.checksum, f.md5, f.href, f.verified_by "
            "FROM temp.selection s LEFT JOIN files f ON f.path = s.path ORDER BY s.path"
        )
        for path, href, size, checksum, md5, file_href, verified_by in cursor:
            identity = _lock_href(href, self.config.spec_dir)
            if checksum is not None:
                yield path, identity, size, checksum, "catalog"
            elif (
                md5
                and verified_by != "corrupt"
                and _lock_href(file_href, self.config.spec_dir) == identity
            ):
                yield path, identity, size, md5_multihash(md5), "download"
            else:
                yield path, identity, size, None, None

    def lock_header(self, key: Key) -> dict[str, Any]:
        """The dataset's lock header (catalog pins, counts, selection digest)."""
        count, total, unknown = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(size IS NULL), 0) "
            "FROM temp.selection"
        ).fetchone()
        return {
            "id": key[0],
            "output_dir": key[1],
            "catalog": {
                "sha256": self.db.get_meta("indexed_digest"),
                "etag": self.db.get_meta("archive_etag"),
            },
            "selection": {
                "assets": count,
                "bytes": total,
                "unknown_size": unknown,
                "digest": selection_digest(self.lock_assets()),
            },
        }

    def check_lock(self, lock: LockFile, key: Key) -> Drift:
        """Compare the current catalog and selection with the lock (flat memory: SQL)."""
        locked = lock.datasets.get(key)
        if locked is None:
            return Drift(missing_from_lock=True)
        conn = self.db.conn
        conn.executescript(
            "DROP TABLE IF EXISTS temp.lock_assets;"
            "CREATE TEMP TABLE lock_assets (path TEXT PRIMARY KEY, href TEXT, size INTEGER,"
            " checksum TEXT, source TEXT) WITHOUT ROWID;"
        )
        batch: list[Asset] = []
        for asset in lock.assets(key):
            batch.append(asset)
            if len(batch) >= 5000:
                conn.executemany(
                    "INSERT OR REPLACE INTO temp.lock_assets VALUES (?,?,?,?,?)", batch
                )
                batch.clear()
        conn.executemany("INSERT OR REPLACE INTO temp.lock_assets VALUES (?,?,?,?,?)", batch)
        drift = Drift(
            catalog_changed=locked.archive_sha256 is not None
            and locked.archive_sha256 != self.db.get_meta("indexed_digest")
        )
        if selection_digest(self.lock_assets()) == locked.digest:
            return drift
        base = self.config.spec_dir
        conn.create_function("lock_href", 1, lambda h: _lock_href(h, base), deterministic=True)
        drift.added = conn.execute(
            "SELECT COUNT(*) FROM temp.selection s WHERE s.path NOT IN "
            "(SELECT path FROM temp.lock_assets)"
        ).fetchone()[0]
        drift.removed = conn.execute(
            "SELECT COUNT(*) FROM temp.lock_assets l WHERE l.path NOT IN "
            "(SELECT path FROM temp.selection)"
        ).fetchone()[0]
        changed = (
            "FROM temp.selection s JOIN temp.lock_assets l ON l.path = s.path "
            "WHERE lock_href(s.href) != l.href OR COALESCE(s.size, -1) != COALESCE(l.size, -1) "
            "OR COALESCE(s.checksum, '') != "
            "COALESCE(CASE WHEN l.source = 'catalog' THEN l.checksum END, '')"
        )
        drift.changed = conn.execute(f"SELECT COUNT(*) {changed}").fetchone()[0]
        drift.samples = (
            [
                f"+ {row[0]}"
                for row in conn.execute(
                    "SELECT path FROM temp.selection WHERE path NOT IN "
                    "(SELECT path FROM temp.lock_assets) ORDER BY path LIMIT 5"
                )
            ]
            + [
                f"- {row[0]}"
                for row in conn.execute(
                    "SELECT path FROM temp.lock_assets WHERE path NOT IN "
                    "(SELECT path FROM temp.selection) ORDER BY path LIMIT 5"
                )
            ]
            + [
                f"~ {row[0]}"
                for row in conn.execute(f"SELECT s.path {changed} ORDER BY s.path LIMIT 5")
            ]
        )
        return drift

    def apply(
        self,
        *,
        stop: threading.Event | None = None,
        force: bool = False,
        prune: bool | None = None,
        if_exists: str = "resume",
        lock: tuple[LockFile, Key] | None = None,
    ) -> ApplyOutcome:
        """Plan, then carry the plan out; prune afterwards when asked and nothing failed."""
        planned = self.plan(if_exists, lock)
        if planned.drift is not None and planned.drift.drifted:
            raise LockDriftError(
                f"--locked: {planned.drift.describe()}"
                + "".join(f"\n    {line}" for line in planned.drift.samples or []),
                subject=str(lock[0].path) if lock else None,
                hint="review the change, then update the lock with `mlhub-sync lock SPEC`",
            )
        outcome = ApplyOutcome(planned)
        if self.config.catalog_only:
            return outcome
        cfg = self.config
        report = ErrorReport(cfg.dataset_dir, cfg.id, secrets=self.http.secrets)
        settings = ExecutorSettings(
            asset_dir=cfg.asset_dir,
            workers=cfg.workers,
            checksum_mode=cfg.checksum,
            policy=cfg.retry,
            connect_timeout=cfg.timeout.connect,
            read_timeout=cfg.timeout.read,
        )
        executor = Executor(settings, self.db, report, stop=stop, reporter=self.reporter)
        pending = [planned.plan.tally(a) for a in Action if a is not Action.KEEP]
        total_bytes = sum(t.bytes for t in pending) if not any(t.unknown for t in pending) else None
        try:
            outcome.stats = executor.run(iter_steps(self.db), planned.plan.pending, total_bytes)
            outcome.left_out = self._report_left_out(report)
        finally:
            outcome.report = report.close()
        stats = outcome.stats
        if (cfg.prune if prune is None else prune) and planned.plan.not_desired:
            if stats.failed or stats.fatal or stats.interrupted:
                outcome.prune_refused = "not pruning after a run with errors"
            elif planned.catalog.invalid_documents:
                outcome.prune_refused = (
                    f"not pruning: {planned.catalog.invalid_documents} catalog documents could "
                    "not be read, so the selection may be incomplete"
                )
            else:
                try:
                    outcome.pruned = self._prune(cfg.max_delete, force)
                except PruneRefusedError as exc:
                    outcome.prune_refused = str(exc)
        return outcome

    def _report_left_out(self, report: ErrorReport) -> int:
        """Put the assets the index refused (bad scheme, local file outside the catalog...)
        and the filters would select into the report: never fetched, never silently dropped."""
        count = 0
        cursor = self.db.conn.cursor()
        cursor.execute(
            "SELECT collection_id, item_id, asset_key, href, reason FROM rejected "
            "ORDER BY collection_id, item_id, asset_key"
        )
        for collection_id, item_id, key, href, reason in cursor:
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

    def _prune(self, max_delete: int, force: bool) -> int:
        """Delete managed files the selection no longer wants (never untracked files)."""
        count = self.planned_not_desired()
        if count > max_delete and not force:
            raise PruneRefusedError(
                f"prune would delete {count} files, more than max_delete ({max_delete})",
                hint="raise max_delete in the spec, or pass --force",
            )
        base = self.config.asset_dir
        deleted = 0
        last = ""
        while True:
            paths = [
                row[0]
                for row in self.db.execute(
                    "SELECT path FROM files WHERE path > ? AND path NOT IN "
                    "(SELECT path FROM temp.selection) ORDER BY path LIMIT 1000",
                    (last,),
                )
            ]
            if not paths:
                return deleted
            last = paths[-1]
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(base / path)
                deleted += 1
                log.info("pruned %s", path)
            with self.db.transaction():
                self.db.delete_files(paths)

    def planned_not_desired(self) -> int:
        """Managed files outside the current selection."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM files WHERE path NOT IN (SELECT path FROM temp.selection)"
            ).fetchone()[0]
        )


def _lock_href(href: str | None, base: Path) -> str:
    """An href as a lock records it: no rotating signatures, no secrets, and a local file as a
    path relative to the spec's folder (so a repository checked out anywhere locks alike)."""
    if not href:
        return ""
    if href.startswith("file:"):
        local = url2pathname(urlsplit(href).path)
        return "file:" + Path(os.path.relpath(local, base)).as_posix()
    return redact_url(href_identity(href))
