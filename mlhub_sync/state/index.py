"""The catalog index tables: ``items``, ``assets`` and ``rejected`` (see ``schema``).

Written by the indexer in batches inside the refresh's transaction; read by the selection
(items for the time and spatial filters) and by the report of refused assets. A re-index
keeps the previous items' digests until it is done, so it can say which items the new
catalog added, changed and removed (:meth:`IndexTables.changes`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

ItemRow = tuple[Any, ...]  # item_pk, collection_id, item_id, minx, miny, maxx, maxy, geometry,
# start_ts, end_ts, digest
AssetRow = tuple[Any, ...]  # item_pk, collection_id, item_id, asset_key, href, media_type,
# size, checksum, path
RejectedRow = tuple[Any, ...]  # collection_id, item_id, asset_key, href, reason


@dataclass(frozen=True)
class ItemChanges:
    """How a re-indexed catalog's items differ from the previous index's, by
    ``(collection, item id)``: counts, and the first few ``(collection, item id)`` of each."""

    added: int
    changed: int
    removed: int
    samples: dict[str, tuple[tuple[str, str], ...]]  # "added" / "changed" / "removed"

    @property
    def any(self) -> bool:
        """Whether anything differs."""
        return bool(self.added or self.changed or self.removed)


_CHANGES = """
SELECT collection_id, item_id,
       MAX(side = 'new') AS is_new, MAX(side = 'old') AS was,
       COUNT(DISTINCT digest) AS digests, COUNT(digest) = COUNT(*) AS all_known
FROM (SELECT collection_id, item_id, digest, 'new' AS side FROM items
      UNION ALL SELECT collection_id, item_id, digest, 'old' FROM temp.prior_items)
GROUP BY collection_id, item_id
HAVING NOT (is_new AND was AND (digests <= 1 OR NOT all_known))
"""


class IndexTables:
    """The index of one dataset's catalog."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def clear(self) -> None:
        """Forget the index (inside the caller's transaction), keeping its items' digests for
        :meth:`changes`."""
        self._conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS prior_items (collection_id TEXT, item_id TEXT, "
            "digest TEXT)"
        )
        self._conn.execute("DELETE FROM temp.prior_items")
        self._conn.execute(
            "INSERT INTO temp.prior_items SELECT collection_id, item_id, digest FROM items"
        )
        self._conn.execute("DELETE FROM items")
        self._conn.execute("DELETE FROM assets")
        self._conn.execute("DELETE FROM rejected")

    def next_item_pk(self) -> int:
        """The first free item key."""
        return 1 + int(
            self._conn.execute("SELECT COALESCE(MAX(item_pk), 0) FROM items").fetchone()[0]
        )

    def insert(
        self, items: Sequence[ItemRow], assets: Sequence[AssetRow], rejected: Sequence[RejectedRow]
    ) -> None:
        """Add a batch of rows."""
        self._conn.executemany(
            "INSERT INTO items(item_pk, collection_id, item_id, minx, miny, maxx, maxy, geometry,"
            " start_ts, end_ts, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            items,
        )
        self._conn.executemany(
            "INSERT INTO assets(item_pk, collection_id, item_id, asset_key, href, media_type, "
            "size, checksum, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            assets,
        )
        self._conn.executemany(
            "INSERT INTO rejected(collection_id, item_id, asset_key, href, reason) "
            "VALUES (?, ?, ?, ?, ?)",
            rejected,
        )

    def changes(self, sample: int = 10) -> ItemChanges | None:
        """What the items indexed since :meth:`clear` added, changed and removed; ``None``
        when there was no index before (everything is new: nothing to compare). An item is
        changed when its digest differs; one without a digest (indexed by an older version)
        is not counted as changed."""
        if self._conn.execute("SELECT 1 FROM temp.prior_items LIMIT 1").fetchone() is None:
            return None
        counts = {"added": 0, "changed": 0, "removed": 0}
        samples: dict[str, list[tuple[str, str]]] = {kind: [] for kind in counts}
        for collection_id, item_id, is_new, was, digests, all_known in self._conn.execute(_CHANGES):
            if is_new and not was:
                kind = "added"
            elif was and not is_new:
                kind = "removed"
            elif digests > 1 and all_known:
                kind = "changed"
            else:
                continue
            counts[kind] += 1
            if len(samples[kind]) < sample:
                samples[kind].append((collection_id, item_id))
        return ItemChanges(
            counts["added"],
            counts["changed"],
            counts["removed"],
            {kind: tuple(found) for kind, found in samples.items()},
        )

    def item_facts(self, *, geometry: bool) -> Iterator[ItemRow]:
        """``(item_pk, collection_id, minx, miny, maxx, maxy, geometry, start_ts, end_ts)`` of
        every item in catalog order (``geometry`` is ``None`` unless asked for: it is big)."""
        column = "geometry" if geometry else "NULL"
        yield from self._conn.cursor().execute(
            f"SELECT item_pk, collection_id, minx, miny, maxx, maxy, {column}, start_ts, end_ts "
            "FROM items ORDER BY item_pk"
        )

    def keys_by_collection(self) -> dict[str, set[str]]:
        """Every collection id that has assets, with the asset keys found in it."""
        found: dict[str, set[str]] = {}
        for collection, key in self._conn.execute(
            "SELECT DISTINCT collection_id, asset_key FROM assets"
        ):
            found.setdefault(collection, set()).add(key)
        for (collection,) in self._conn.execute("SELECT DISTINCT collection_id FROM items"):
            found.setdefault(collection, set())  # a collection whose items have no assets
        return found

    def rejected(self) -> Iterator[RejectedRow]:
        """The assets the index refused, by collection, item and key."""
        yield from self._conn.cursor().execute(
            "SELECT collection_id, item_id, asset_key, href, reason FROM rejected "
            "ORDER BY collection_id, item_id, asset_key"
        )

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        """Every row of ``items`` or ``assets`` in key order (for inspection and tests)."""
        key = {"items": "item_pk", "assets": "asset_pk"}[table]
        return [tuple(r) for r in self._conn.execute(f"SELECT * FROM {table} ORDER BY {key}")]
