"""Selection: the desired assets of one dataset, kept in the state db (``state.selection``).

Filters are pure (``filters.py``); this module applies them with as little Python per row as
possible, so a million assets select in seconds with flat memory:

1. time and spatial filters run in Python once per *item* (not per asset); admitted item
   keys go to a TEMP table;
2. one ``INSERT ... SELECT`` joins assets with the admitted items, the collection / asset-key
   allow-list and the common-asset placement, and de-duplicates identical (path, href) pairs
   (a documentation file shared by every item becomes one row);
3. a path claimed by two different hrefs is a *conflict*: the first (in catalog order) wins,
   the others are reported, and no file is ever a mix of two sources.

The asset-key list applies to item assets: collection-level assets are kept whenever their
collection is allowed, and under a time or spatial filter when at least one item of their
collection is selected.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from mlhub_sync.selection.filters import Exclusion, FilterSet, ItemFacts
from mlhub_sync.selection.layout import CommonLayout, asset_relpath
from mlhub_sync.state.db import StateDB

MAX_REPORTED_CONFLICTS = 100


@dataclass(frozen=True)
class Conflict:
    """Two different hrefs that map to one path; ``kept`` wins, ``dropped`` is not fetched."""

    path: str
    kept: str
    dropped: str
    dropped_from: str


@dataclass
class SelectionSummary:
    """What the filters kept, and what they left out (and why)."""

    catalog_assets: int = 0
    selected: int = 0
    selected_bytes: int = 0
    unknown_size: int = 0
    excluded_items: collections.Counter[Exclusion] = field(default_factory=collections.Counter)
    excluded_assets: int = 0  # catalog assets the filters left out
    conflicts: list[Conflict] = field(default_factory=list)
    conflict_count: int = 0
    rejected: int = 0


def common_layout(db: StateDB, keys: frozenset[str]) -> CommonLayout:
    """Decide common-asset placement from distinct-href counts over the *whole* catalog.

    Counting the whole catalog, not the selection, keeps paths stable when filters change.
    """
    if not keys:
        return CommonLayout()
    wide, per = db.selection.common_counts(keys)
    return CommonLayout.from_counts(keys, wide, per)


def _common_paths(db: StateDB, layout: CommonLayout) -> list[tuple[str | None, str, str]]:
    """``(collection_id or None, asset_key, path)`` for every common placement."""
    rows: list[tuple[str | None, str, str]] = []
    for key in sorted(layout.dataset_wide):
        href, media = db.selection.first_asset(key, None)
        rows.append((None, key, asset_relpath("", None, key, href, media, layout)))
    for cid, key in sorted(layout.per_collection):
        href, media = db.selection.first_asset(key, cid)
        rows.append((cid, key, asset_relpath(cid, None, key, href, media, layout)))
    return rows


def select_assets(db: StateDB, filters: FilterSet, common_keys: frozenset[str]) -> SelectionSummary:
    """(Re)build the selection for ``filters``; return what was kept and left out."""
    summary = SelectionSummary()
    selection = db.selection
    selection.reset()
    summary.catalog_assets = db.count("assets")
    summary.rejected = db.count("rejected")
    selection.place_common(_common_paths(db, common_layout(db, common_keys)))
    if filters.collections is not None:
        selection.allow(
            (cid, key) for cid, keys in filters.collections.items() for key in keys or ("*",)
        )
    by_item = filters.time is not None or filters.spatial
    if by_item:
        _admit_items(db, filters, summary)
    matched = selection.fill(by_collection=filters.collections is not None, by_item=by_item)
    for path, kept, dropped, cid, item_id in selection.drop_conflicts():
        summary.conflict_count += 1
        if len(summary.conflicts) < MAX_REPORTED_CONFLICTS:
            summary.conflicts.append(Conflict(path, kept, dropped, f"{cid}/{item_id or '-'}"))
    summary.selected, summary.selected_bytes, summary.unknown_size = selection.finish()
    # Left out by the filters: not by de-duplication (a shared href is still selected) and
    # not by a conflict (reported on its own).
    summary.excluded_assets = summary.catalog_assets - matched
    return summary


def _admit_items(db: StateDB, filters: FilterSet, summary: SelectionSummary) -> None:
    """Run the time and spatial filters once per item (not per asset)."""
    batch: list[int] = []
    for pk, cid, minx, miny, maxx, maxy, geom, start, end in db.index.item_facts(
        geometry=filters.spatial
    ):
        if not filters.admits_collection(cid):
            continue
        bbox = None if minx is None else (minx, miny, maxx, maxy)
        reason = filters.exclusion(ItemFacts(bbox, geom, start, end))
        if reason is None:
            batch.append(pk)
            if len(batch) >= 10_000:
                db.selection.admit(batch)
                batch.clear()
        else:
            summary.excluded_items[reason] += 1
    db.selection.admit(batch)
