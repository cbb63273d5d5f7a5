"""The catalog index tables: ``items``, ``assets`` and ``rejected`` (see ``schema``).

Written by the indexer in batches inside the refresh's transaction; read by the selection
(items for the time and spatial filters) and by the report of refused assets.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

ItemRow = tuple[Any, ...]  # item_pk, collection_id, item_id, minx, miny, maxx, maxy, geometry,
# start_ts, end_ts
AssetRow = tuple[Any, ...]  # item_pk, collection_id, item_id, asset_key, href, media_type,
# size, checksum, path
RejectedRow = tuple[Any, ...]  # collection_id, item_id, asset_key, href, reason


class IndexTables:
    """The index of one dataset's catalog."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def clear(self) -> None:
        """Forget the index (inside the caller's transaction)."""
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
            " start_ts, end_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
