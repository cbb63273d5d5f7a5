"""The plan's storage: the selection read against the records, and the TEMP table
``plan_steps`` of the steps with work to do.

``plan_steps(path, href, size, checksum, collection_id, item_id, asset_key, action, reason,
record_md5, partial_validator, part_size)`` is read back page by page in ``(href, path)`` order,
so the paths of a shared href come together and no statement stays open while the journal
commits on the same connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

COLUMNS = (
    "path, href, size, checksum, collection_id, item_id, asset_key, action, reason, "
    "record_md5, partial_validator, part_size"
)
StepRow = tuple[Any, ...]  # in COLUMNS order
# selection (path, href, size, checksum, collection_id, item_id, asset_key), then the file
# record (path, href, size, mtime_ns, md5, checksum, validator, verified_by; NULLs without
# one), then the partial record (path, href, validator, total_size)
DesiredRow = tuple[Any, ...]


class PlanTables:
    """Reads the selection against ``files``/``partials``; stores and pages the steps."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def desired(self) -> Iterator[DesiredRow]:
        """Every selected path with its file and partial records (see :data:`DesiredRow`)."""
        yield from self._conn.cursor().execute(
            "SELECT s.path, s.href, s.size, s.checksum, s.collection_id, s.item_id, s.asset_key, "
            "f.path, f.href, f.size, f.mtime_ns, f.md5, f.checksum, f.validator, f.verified_by, "
            "p.path, p.href, p.validator, p.total_size "
            "FROM temp.selection s LEFT JOIN files f ON f.path = s.path "
            "LEFT JOIN partials p ON p.path = s.path"
        )

    def reset(self) -> None:
        """Start an empty ``plan_steps``."""
        self._conn.executescript(
            "DROP TABLE IF EXISTS temp.plan_steps;"
            "CREATE TEMP TABLE plan_steps (path TEXT PRIMARY KEY, href TEXT NOT NULL,"
            " size INTEGER, checksum TEXT, collection_id TEXT NOT NULL, item_id TEXT,"
            " asset_key TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL,"
            " record_md5 TEXT, partial_validator TEXT, part_size INTEGER) WITHOUT ROWID;"
        )

    def add(self, rows: Sequence[StepRow]) -> None:
        """Store a batch of steps."""
        self._conn.executemany(
            f"INSERT INTO temp.plan_steps ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def finish(self) -> None:
        """Index the stored steps for reading back in href order."""
        self._conn.execute("CREATE INDEX temp.plan_by_href ON plan_steps(href, path)")

    def steps_after(self, href: str, path: str, limit: int) -> list[StepRow]:
        """The next ``limit`` steps after ``(href, path)``, in ``(href, path)`` order."""
        return self._conn.execute(
            f"SELECT {COLUMNS} FROM temp.plan_steps WHERE (href, path) > (?, ?) "
            "ORDER BY href, path LIMIT ?",
            (href, path, limit),
        ).fetchall()
