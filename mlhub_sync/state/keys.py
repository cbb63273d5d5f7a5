"""A flat tree's listing, grouped: a scratch SQLite table of the keys a path template matched,
read back by (collection, item), and the sidecar table joined to it on the item id.

An object-store listing arrives in key order, and the keys of one item need not be adjacent
(``train_features/<chip>/B02.tif`` ... ``train_labels/<chip>.tif``), so grouping them in memory
would hold the whole listing. The scratch db lives in a file of its own (in the staging folder,
removed with it), never in the state db: it is the catalog being built, not state. Nothing in
it must survive a crash, so it is written without a journal or fsync.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = (
    "PRAGMA journal_mode = OFF",
    "PRAGMA synchronous = OFF",
    "CREATE TABLE keys (seq INTEGER PRIMARY KEY, collection TEXT NOT NULL, item TEXT NOT NULL, "
    "asset TEXT NOT NULL, key TEXT NOT NULL, url TEXT NOT NULL, size INTEGER, etag TEXT, "
    "md5 TEXT, modified TEXT, datetime TEXT, properties TEXT)",
    "CREATE TABLE sidecar (item TEXT PRIMARY KEY, geometry TEXT, datetime TEXT, properties TEXT)",
)

_INSERT_KEY = (
    "INSERT INTO keys (collection, item, asset, key, url, size, etag, md5, modified, datetime, "
    "properties) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_SIDECAR = (
    "INSERT OR IGNORE INTO sidecar (item, geometry, datetime, properties) VALUES (?, ?, ?, ?)"
)

# Every key with its item's sidecar row, grouped by (collection, item), listing order within.
_GROUPED = (
    "SELECT k.collection, k.item, k.asset, k.key, k.url, k.size, k.etag, k.md5, k.modified, "
    "k.datetime, k.properties, s.item IS NOT NULL, s.geometry, s.datetime, s.properties "
    "FROM keys k LEFT JOIN sidecar s ON s.item = k.item ORDER BY k.collection, k.item, k.seq"
)


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One matched key as it went in: its place (collection, item, asset) and what the listing
    and the template said about it."""

    collection: str
    item: str
    asset: str
    key: str
    url: str
    size: int | None
    etag: str | None = None
    md5: str | None = None
    modified: str | None = None
    datetime: str | None = None  # ISO 8601, from the template's {date:...}
    properties: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class SidecarRow:
    """What a sidecar table says about one item (geometry as GeoJSON text)."""

    item: str
    geometry: str | None
    datetime: str | None
    properties: dict[str, Any]


@dataclass(frozen=True)
class Group:
    """One pseudo-item: its keys, and its sidecar row when the table has one."""

    collection: str
    item: str
    keys: tuple[KeyRow, ...]
    sidecar: SidecarRow | None


class KeyTable:
    """The scratch db at ``path``: created fresh, or with ``fresh=False`` the one a previous
    :meth:`close` (``remove=False``) left there; :meth:`close` removes it."""

    def __init__(self, path: Path, batch: int = 5000, *, fresh: bool = True):
        self.path = path
        self.batch = batch
        if fresh:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        elif not path.is_file():
            raise FileNotFoundError(path)
        self._conn = sqlite3.connect(path, isolation_level=None)
        for statement in _SCHEMA if fresh else _SCHEMA[:2]:
            self._conn.execute(statement)
        self._keys: list[tuple[Any, ...]] = []
        self.count = 0

    def add(self, row: KeyRow) -> None:
        """Queue one matched key (written in batches)."""
        props = json.dumps(row.properties, sort_keys=True) if row.properties else None
        self._keys.append(
            (row.collection, row.item, row.asset, row.key, row.url, row.size, row.etag, row.md5,
             row.modified, row.datetime, props)
        )  # fmt: skip
        self.count += 1
        if len(self._keys) >= self.batch:
            self._flush()

    def add_sidecar(self, rows: Iterable[SidecarRow]) -> int:
        """Store the sidecar's rows (the first row of an id wins); how many were read."""
        total = 0
        pending: list[tuple[Any, ...]] = []
        for row in rows:
            pending.append((row.item, row.geometry, row.datetime, json.dumps(row.properties)))
            total += 1
            if len(pending) >= self.batch:
                self._write(_INSERT_SIDECAR, pending)
        self._write(_INSERT_SIDECAR, pending)
        return total

    def groups(self) -> Iterator[Group]:
        """Every pseudo-item, ordered by (collection, item), streamed from the table."""
        self._flush()
        current: list[KeyRow] = []
        sidecar: SidecarRow | None = None
        for row in self._conn.execute(_GROUPED):
            key = KeyRow(
                row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9],
                json.loads(row[10]) if row[10] else None,
            )  # fmt: skip
            if current and (current[0].collection, current[0].item) != (key.collection, key.item):
                yield Group(current[0].collection, current[0].item, tuple(current), sidecar)
                current = []
            if not current and row[11]:
                sidecar = SidecarRow(key.item, row[12], row[13], json.loads(row[14]))
            elif not current:
                sidecar = None
            current.append(key)
        if current:
            yield Group(current[0].collection, current[0].item, tuple(current), sidecar)

    def close(self, *, remove: bool = True) -> None:
        """Close the scratch db (its queued keys written) and remove it, unless ``remove`` is
        false: then a ``KeyTable(path, fresh=False)`` reads it again."""
        if not remove:
            self._flush()
        self._conn.close()
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> KeyTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _flush(self) -> None:
        self._write(_INSERT_KEY, self._keys)

    def _write(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(statement, rows)
        rows.clear()
