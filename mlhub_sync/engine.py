"""The engine: one dataset's resolve -> select -> plan (-> apply), under its folder lock.

The CLI and the Python API both drive datasets through :class:`DatasetRun`, so they behave
the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

from .http import Http
from .plan import PlanSummary, build_plan
from .progress import NULL_REPORTER, Reporter
from .resolve import CatalogStatus, refresh_catalog
from .select import SelectionSummary, select_assets
from .spec import DatasetConfig
from .state import DatasetLock, StateDB


@dataclass
class DatasetPlan:
    """Everything ``plan`` knows about one dataset."""

    config: DatasetConfig
    catalog: CatalogStatus
    selection: SelectionSummary = field(default_factory=SelectionSummary)
    plan: PlanSummary = field(default_factory=PlanSummary)

    @property
    def pending(self) -> int:
        """Paths with work to do."""
        return self.plan.pending


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
        self._db: StateDB | None = None

    @property
    def db(self) -> StateDB:
        """The open state db."""
        assert self._db is not None, "use DatasetRun as a context manager"
        return self._db

    def __enter__(self) -> DatasetRun:
        self._lock.acquire()
        try:
            self._db = StateDB.open(self.config.dataset_dir)
        except BaseException:
            self._lock.release()
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
            self._lock.release()

    def plan(self) -> DatasetPlan:
        """Resolve the catalog, select assets and decide every path."""
        catalog = refresh_catalog(self.config, self.db, self.http, self.environ, self.reporter)
        result = DatasetPlan(self.config, catalog)
        if self.config.catalog_only:
            return result
        result.selection = select_assets(
            self.db, self.config.filters, self.config.common_asset_keys
        )
        result.plan = build_plan(self.db, str(self.config.asset_dir))
        return result
