"""The desired assets of one run: the TEMP table ``selection`` and its helpers.

``selection(path, href, asset_pk, size, checksum, collection_id, item_id, asset_key)`` holds
one row per desired path (a path claimed by two hrefs keeps the first, in catalog order). It
is built in one ``INSERT ... SELECT`` from ``assets`` joined with the TEMP tables the caller
filled: ``allowed`` (the collection / asset-key allow-list), ``admitted_items`` (items the time
and spatial filters admitted) and ``common_paths`` (where common assets go). TEMP tables live
with the connection, so every run builds its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

_TABLES = """
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

# The key list applies to item assets; an allowed collection keeps its own assets.
_BY_COLLECTION = (
    "EXISTS (SELECT 1 FROM temp.allowed w WHERE w.collection_id = a.collection_id "
    "AND (a.item_pk IS NULL OR w.asset_key IN ('*', a.asset_key)))"
)
# An admitted item's assets, and a collection's own assets when one of its items is admitted.
_BY_ITEM = (
    "(a.item_pk IN (SELECT item_pk FROM temp.admitted_items) OR (a.item_pk IS NULL AND "
    "a.collection_id IN (SELECT i.collection_id FROM items i "
    "JOIN temp.admitted_items t ON t.item_pk = i.item_pk)))"
)

Conflict = tuple[str, str, str, str, str | None]  # path, kept, dropped, collection, item


class SelectionTables:
    """Builds and reads ``temp.selection``."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def reset(self) -> None:
        """Start an empty selection (and empty helper tables)."""
        self._conn.executescript(_TABLES)

    def common_counts(
        self, keys: Iterable[str]
    ) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """Distinct hrefs per common key over the whole catalog, and per (collection, key)."""
        ordered = sorted(keys)
        marks = ",".join("?" * len(ordered))
        wide = {
            key: n
            for key, n in self._conn.execute(
                f"SELECT asset_key, COUNT(DISTINCT href) FROM assets "
                f"WHERE asset_key IN ({marks}) GROUP BY asset_key",
                ordered,
            )
        }
        per = {
            (cid, key): n
            for cid, key, n in self._conn.execute(
                "SELECT collection_id, asset_key, COUNT(DISTINCT href) FROM assets "
                f"WHERE asset_key IN ({marks}) GROUP BY collection_id, asset_key",
                ordered,
            )
        }
        return wide, per

    def first_asset(self, key: str, collection_id: str | None) -> tuple[str, str | None]:
        """``(href, media_type)`` of the first asset with ``key`` (in ``collection_id``)."""
        if collection_id is None:
            row = self._conn.execute(
                "SELECT href, media_type FROM assets WHERE asset_key = ? ORDER BY asset_pk LIMIT 1",
                (key,),
            ).fetchone()
        else:
            row = self._conn.execute(
                "SELECT href, media_type FROM assets WHERE asset_key = ? AND collection_id = ? "
                "ORDER BY asset_pk LIMIT 1",
                (key, collection_id),
            ).fetchone()
        return row[0], row[1]

    def place_common(self, rows: Iterable[tuple[str | None, str, str]]) -> None:
        """Where common assets go: ``(collection_id or None, asset_key, path)``."""
        self._conn.executemany("INSERT INTO temp.common_paths VALUES (?, ?, ?)", rows)

    def allow(self, pairs: Iterable[tuple[str, str]]) -> None:
        """The allow-list: ``(collection_id, asset_key or '*')``."""
        self._conn.executemany("INSERT INTO temp.allowed VALUES (?, ?)", pairs)

    def admit(self, item_pks: Iterable[int]) -> None:
        """Items the time and spatial filters admitted."""
        self._conn.executemany(
            "INSERT INTO temp.admitted_items VALUES (?)", [(pk,) for pk in item_pks]
        )

    def fill(self, *, by_collection: bool, by_item: bool) -> int:
        """Insert the desired rows; return how many catalog assets the filters matched (before
        identical (path, href) pairs collapse into one)."""
        where = " AND ".join(
            ["1"] + ([_BY_COLLECTION] if by_collection else []) + ([_BY_ITEM] if by_item else [])
        )
        self._conn.execute(
            "INSERT OR IGNORE INTO temp.selection (path, href, asset_pk, size, checksum, "
            "collection_id, item_id, asset_key) "
            "SELECT COALESCE("
            "  (SELECT c.path FROM temp.common_paths c WHERE c.asset_key = a.asset_key "
            "   AND (c.collection_id IS NULL OR c.collection_id = a.collection_id)), a.path), "
            "a.href, a.asset_pk, a.size, a.checksum, a.collection_id, a.item_id, a.asset_key "
            f"FROM assets a WHERE {where} ORDER BY a.asset_pk"
        )
        return int(self._conn.execute(f"SELECT COUNT(*) FROM assets a WHERE {where}").fetchone()[0])

    def drop_conflicts(self) -> Iterator[Conflict]:
        """Remove every row whose path another href claimed first; yield what was dropped."""
        rows = self._conn.execute(
            "SELECT s.path, s.href, s.asset_pk, s.collection_id, s.item_id FROM temp.selection s "
            "JOIN (SELECT path, MIN(asset_pk) AS first FROM temp.selection GROUP BY path "
            "      HAVING COUNT(*) > 1) d ON d.path = s.path "
            "WHERE s.asset_pk != d.first ORDER BY s.path, s.asset_pk"
        ).fetchall()
        for path, href, asset_pk, cid, item_id in rows:
            kept = self._conn.execute(
                "SELECT href FROM temp.selection WHERE path = ? ORDER BY asset_pk LIMIT 1", (path,)
            ).fetchone()[0]
            self._conn.execute(
                "DELETE FROM temp.selection WHERE path = ? AND asset_pk = ?", (path, asset_pk)
            )
            yield path, kept, href, cid, item_id

    def finish(self) -> tuple[int, int, int]:
        """Index the selection by href; ``(files, bytes, files of unknown size)``."""
        self._conn.execute("CREATE INDEX temp.selection_by_href ON selection(href, path)")
        return self.totals()

    def totals(self) -> tuple[int, int, int]:
        """``(files, bytes, files of unknown size)`` of the selection."""
        count, total, unknown = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(size IS NULL), 0) "
            "FROM temp.selection"
        ).fetchone()
        return int(count), int(total), int(unknown)

    def with_href_prefix(
        self, prefix: str, after: tuple[str, str], limit: int
    ) -> list[tuple[Any, ...]]:
        """``(path, href, size, checksum, collection_id, item_id, asset_key)`` of the next
        ``limit`` selected paths after ``(href, path)`` whose href starts with ``prefix``, by
        href and path (a range of the href index; keyset pages)."""
        start = max(after, (prefix, ""))
        return self._conn.execute(
            "SELECT path, href, size, checksum, collection_id, item_id, asset_key "
            "FROM temp.selection WHERE (href, path) > (?, ?) AND href < ? "
            "ORDER BY href, path LIMIT ?",
            (*start, prefix + "\U0010ffff", limit),
        ).fetchall()

    def drop(self, paths: Iterable[str]) -> None:
        """Leave these paths out of the selection."""
        self._conn.executemany("DELETE FROM temp.selection WHERE path = ?", [(p,) for p in paths])

    def rows(self) -> list[tuple[Any, ...]]:
        """``(path, href)`` of every desired path, by path (for inspection and tests)."""
        return [
            tuple(r)
            for r in self._conn.execute("SELECT path, href FROM temp.selection ORDER BY path")
        ]

    def not_desired_count(self) -> int:
        """Managed files (``files``) outside the selection."""
        return int(
            self._conn.execute(
                "SELECT COUNT(*) FROM files WHERE path NOT IN (SELECT path FROM temp.selection)"
            ).fetchone()[0]
        )

    def not_desired_after(self, path: str, limit: int) -> list[str]:
        """The next ``limit`` managed paths outside the selection after ``path``, by path."""
        return [
            row[0]
            for row in self._conn.execute(
                "SELECT path FROM files WHERE path > ? AND path NOT IN "
                "(SELECT path FROM temp.selection) ORDER BY path LIMIT ?",
                (path, limit),
            )
        ]
