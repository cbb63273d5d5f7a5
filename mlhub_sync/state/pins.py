"""What a lock file is compared with: the selection joined with the file records, and the
lock's own assets in the TEMP table ``lock_assets(path, href, size, checksum, source)``.

Drift is counted in SQL, so a lock of millions of assets is checked with flat memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# path, href, size, catalog checksum, our md5, the recorded file's href, its evidence
PinRow = tuple[str, str, int | None, str | None, str | None, str | None, str | None]

_BATCH = 5000


class LockPins:
    """The SQL side of ``mlhub-sync lock`` and ``--locked``."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def selected(self) -> Iterator[PinRow]:
        """Every selected path with what we recorded about its file, by path."""
        yield from self._conn.cursor().execute(
            "SELECT s.path, s.href, s.size, s.checksum, f.md5, f.href, f.verified_by "
            "FROM temp.selection s LEFT JOIN files f ON f.path = s.path ORDER BY s.path"
        )

    def load(self, assets: Iterable[tuple[Any, ...]]) -> None:
        """Put the lock's assets ``(path, href, size, checksum, source)`` in ``lock_assets``."""
        self._conn.executescript(
            "DROP TABLE IF EXISTS temp.lock_assets;"
            "CREATE TEMP TABLE lock_assets (path TEXT PRIMARY KEY, href TEXT, size INTEGER,"
            " checksum TEXT, source TEXT) WITHOUT ROWID;"
        )
        insert = "INSERT OR REPLACE INTO temp.lock_assets VALUES (?,?,?,?,?)"
        batch: list[tuple[Any, ...]] = []
        for asset in assets:
            batch.append(asset)
            if len(batch) >= _BATCH:
                self._conn.executemany(insert, batch)
                batch.clear()
        self._conn.executemany(insert, batch)

    def drift(
        self, lock_href: Callable[[str | None], str], samples: int = 5
    ) -> tuple[int, int, int, list[str]]:
        """``(added, removed, changed, examples)`` of the selection against ``lock_assets``.

        ``lock_href`` turns a selected href into the form the lock records it in; a locked
        checksum counts only when it came from the catalog (ours are not pinned).
        """
        conn = self._conn
        conn.create_function("lock_href", 1, lock_href, deterministic=True)
        added = "FROM temp.selection WHERE path NOT IN (SELECT path FROM temp.lock_assets)"
        removed = "FROM temp.lock_assets WHERE path NOT IN (SELECT path FROM temp.selection)"
        changed = (
            "FROM temp.selection s JOIN temp.lock_assets l ON l.path = s.path "
            "WHERE lock_href(s.href) != l.href OR COALESCE(s.size, -1) != COALESCE(l.size, -1) "
            "OR COALESCE(s.checksum, '') != "
            "COALESCE(CASE WHEN l.source = 'catalog' THEN l.checksum END, '')"
        )

        def count(where: str) -> int:
            return int(conn.execute(f"SELECT COUNT(*) {where}").fetchone()[0])

        def first(column: str, where: str, mark: str) -> list[str]:
            sql = f"SELECT {column} {where} ORDER BY {column} LIMIT {int(samples)}"
            return [f"{mark} {row[0]}" for row in conn.execute(sql)]

        examples = (
            first("path", added, "+") + first("path", removed, "-") + first("s.path", changed, "~")
        )
        return count(added), count(removed), count(changed), examples

    def fill_checksums(self) -> None:
        """Selected assets without a catalog checksum take the lock's (verified against it)."""
        self._conn.execute(
            "UPDATE temp.selection SET checksum = (SELECT l.checksum FROM "
            "temp.lock_assets l WHERE l.path = selection.path) WHERE checksum IS NULL"
        )
