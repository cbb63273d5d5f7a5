"""``status``: the selection against the disk and the state db, with no network, no lock and
no writes (a dataset never synced here says so instead of failing)."""

from __future__ import annotations

from dataclasses import dataclass

from mlhub_sync.catalog.refresh import CatalogStatus
from mlhub_sync.config.resolve import DatasetConfig
from mlhub_sync.errors import ForeignStateError, NotSyncedError
from mlhub_sync.plan.build import build_plan
from mlhub_sync.selection.desired import select_assets
from mlhub_sync.session import DatasetPlan
from mlhub_sync.state.db import StateDB


@dataclass
class DatasetStatus:
    """``status``: the selection against disk and state, from the state db alone."""

    planned: DatasetPlan
    synced: bool
    last_sync: float | None = None
    report_rows: int = 0
    why: str | None = None  # not synced, and the db there is another tool's: what to do


def dataset_status(config: DatasetConfig) -> DatasetStatus:
    """What is on disk vs desired, with no network and no lock (reads only)."""
    try:
        db = StateDB.open(config.dataset_dir, create=False)
    except NotSyncedError as exc:
        why = str(exc) if isinstance(exc, ForeignStateError) else None
        return DatasetStatus(
            DatasetPlan(config, CatalogStatus(False, 0, 0, 0)), synced=False, why=why
        )
    with db:
        catalog = CatalogStatus(False, db.count("items"), db.count("assets"), db.count("rejected"))
        planned = DatasetPlan(config, catalog)
        if not config.catalog_only:
            planned.selection = select_assets(db, config.filters, config.common_asset_keys)
            planned.plan = build_plan(db, str(config.asset_dir))
        last = db.last_sync()
    report = config.dataset_dir / "mlhub_errors.csv"
    rows = 0
    if report.exists():
        with report.open(encoding="utf-8") as f:
            rows = max(0, sum(1 for _ in f) - 1)
    return DatasetStatus(planned, synced=True, last_sync=last, report_rows=rows)
