"""Selection: the desired assets of one dataset, as a TEMP table ``selection`` in the state db.

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
    marks = ",".join("?" * len(keys))
    ordered = sorted(keys)
    wide = {
        key: n
        for key, n in db.execute(
            f"SELECT asset_key, COUNT(DISTINCT href) FROM assets WHERE asset_key IN ({marks}) "
            "GROUP BY asset_key",
            ordered,
        )
    }
    per = {
        (cid, key): n
        for cid, key, n in db.execute(
            "SELECT collection_id, asset_key, COUNT(DISTINCT href) FROM assets "
            f"WHERE asset_key IN ({marks}) GROUP BY collection_id, asset_key",
            ordered,
        )
    }
    return CommonLayout.from_counts(keys, wide, per)


def _common_paths(db: StateDB, layout: CommonLayout) -> list[tuple[str | None, str, str]]:
    """``(collection_id or None, asset_key, path)`` for every common placement."""
    rows: list[tuple[str | None, str, str]] = []
    for key in sorted(layout.dataset_wide):
        href, media = db.execute(
            "SELECT href, media_type FROM assets WHERE asset_key = ? ORDER BY asset_pk LIMIT 1",
            (key,),
        ).fetchone()
        rows.append((None, key, asset_relpath("", None, key, href, media, layout)))
    for cid, key in sorted(layout.per_collection):
        href, media = db.execute(
            "SELECT href, media_type FROM assets WHERE asset_key = ? AND collection_id = ? "
            "ORDER BY asset_pk LIMIT 1",
            (key, cid),
        ).fetchone()
        rows.append((cid, key, asset_relpath(cid, None, key, href, media, layout)))
    return rows


def select_assets(db: StateDB, filters: FilterSet, common_keys: frozenset[str]) -> SelectionSummary:
    """(Re)build ``temp.selection`` for ``filters``; return what was kept and left out."""
    summary = SelectionSummary()
    conn = db.conn
    conn.executescript(
        """
        DROP TABLE IF EXISTS temp.selection;
        DROP TABLE IF EXISTS temp.admitted_items;
        DROP TABLE IF EXISTS temp.allowed;
        DROP TABLE IF EXISTS temp.common_paths;
        CREATE TEMP TABLE selection (
            path TEXT NOT NULL, href TEXT NOT NULL, asset_pk INTEGER NOT NULL,
            size INTEGER, checksum TEXT, collection_id TEXT NOT NULL, item_id TEXT,
            asset_key TEXT NOT NULL,
            PRIMARY KEY (path, href)
        ) WITHOUT ROWID;
        CREATE TEMP TABLE admitted_items (item_pk INTEGER PRIMARY KEY);
        CREATE TEMP TABLE allowed (collection_id TEXT, asset_key TEXT,
                                   PRIMARY KEY (collection_id, asset_key)) WITHOUT ROWID;
        CREATE TEMP TABLE common_paths (collection_id TEXT, asset_key TEXT NOT NULL,
                                        path TEXT NOT NULL);
        """
    )
    summary.catalog_assets = db.count("assets")
    summary.rejected = db.count("rejected")
    conn.executemany(
        "INSERT INTO temp.common_paths VALUES (?, ?, ?)",
        _common_paths(db, common_layout(db, common_keys)),
    )
    where = ["1"]
    if filters.collections is not None:
        conn.executemany(
            "INSERT INTO temp.allowed VALUES (?, ?)",
            [(cid, key) for cid, keys in filters.collections.items() for key in keys or ("*",)],
        )
        # The key list applies to item assets; an allowed collection keeps its own assets.
        where.append(
            "EXISTS (SELECT 1 FROM temp.allowed w WHERE w.collection_id = a.collection_id "
            "AND (a.item_pk IS NULL OR w.asset_key IN ('*', a.asset_key)))"
        )
    if filters.time is not None or filters.spatial:
        _admit_items(db, filters, summary)
        where.append(
            "(a.item_pk IN (SELECT item_pk FROM temp.admitted_items) OR (a.item_pk IS NULL AND "
            "a.collection_id IN (SELECT i.collection_id FROM items i "
            "JOIN temp.admitted_items t ON t.item_pk = i.item_pk)))"
        )
    conn.execute(
        "INSERT OR IGNORE INTO temp.selection (path, href, asset_pk, size, checksum, "
        "collection_id, item_id, asset_key) "
        "SELECT COALESCE("
        "  (SELECT c.path FROM temp.common_paths c WHERE c.asset_key = a.asset_key "
        "   AND (c.collection_id IS NULL OR c.collection_id = a.collection_id)), a.path), "
        "a.href, a.asset_pk, a.size, a.checksum, a.collection_id, a.item_id, a.asset_key "
        f"FROM assets a WHERE {' AND '.join(where)} ORDER BY a.asset_pk"
    )
    _resolve_conflicts(db, summary)
    conn.execute("CREATE INDEX temp.selection_by_href ON selection(href, path)")
    count, total, unknown = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(size IS NULL), 0) "
        "FROM temp.selection"
    ).fetchone()
    summary.selected, summary.selected_bytes, summary.unknown_size = count, total, unknown
    # Left out by the filters: not by de-duplication (a shared href is still selected) and
    # not by a conflict (reported on its own).
    matched = conn.execute(f"SELECT COUNT(*) FROM assets a WHERE {' AND '.join(where)}")
    summary.excluded_assets = summary.catalog_assets - int(matched.fetchone()[0])
    return summary


def _admit_items(db: StateDB, filters: FilterSet, summary: SelectionSummary) -> None:
    geometry = "geometry" if filters.spatial else "NULL"
    cursor = db.conn.cursor()
    cursor.execute(
        f"SELECT item_pk, collection_id, minx, miny, maxx, maxy, {geometry}, start_ts, end_ts "
        "FROM items ORDER BY item_pk"
    )
    batch: list[tuple[int]] = []
    for pk, cid, minx, miny, maxx, maxy, geom, start, end in cursor:
        if not filters.admits_collection(cid):
            continue
        bbox = None if minx is None else (minx, miny, maxx, maxy)
        reason = filters.exclusion(ItemFacts(bbox, geom, start, end))
        if reason is None:
            batch.append((pk,))
            if len(batch) >= 10_000:
                db.conn.executemany("INSERT INTO temp.admitted_items VALUES (?)", batch)
                batch.clear()
        else:
            summary.excluded_items[reason] += 1
    db.conn.executemany("INSERT INTO temp.admitted_items VALUES (?)", batch)


def _resolve_conflicts(db: StateDB, summary: SelectionSummary) -> None:
    conn = db.conn
    rows = conn.execute(
        "SELECT s.path, s.href, s.asset_pk, s.collection_id, s.item_id FROM temp.selection s "
        "JOIN (SELECT path, MIN(asset_pk) AS first FROM temp.selection GROUP BY path "
        "      HAVING COUNT(*) > 1) d ON d.path = s.path "
        "WHERE s.asset_pk != d.first ORDER BY s.path, s.asset_pk"
    ).fetchall()
    for path, href, asset_pk, cid, item_id in rows:
        kept = conn.execute(
            "SELECT href FROM temp.selection WHERE path = ? ORDER BY asset_pk LIMIT 1", (path,)
        ).fetchone()[0]
        summary.conflict_count += 1
        if len(summary.conflicts) < MAX_REPORTED_CONFLICTS:
            summary.conflicts.append(Conflict(path, kept, href, f"{cid}/{item_id or '-'}"))
        conn.execute("DELETE FROM temp.selection WHERE path = ? AND asset_pk = ?", (path, asset_pk))
