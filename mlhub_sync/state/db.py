"""The state db: ``{output_dir}/{dataset_id}/mlhub_stac_assets.db`` (SQLite, WAL).

It holds the catalog index (so filters and plans run without re-reading JSON) and what we
know about the files on disk (so a re-run needs one ``stat`` per file and no request).
Deleting it is safe: the index is rebuilt from the archive, and files found on disk are adopted
only on evidence (see ``plan.py``).

Schema (version 1, in ``PRAGMA user_version``)::

    meta(key PRIMARY KEY, value)
        archive_sha256, archive_size, archive_etag, archive_last_modified, archive_url:
            the catalog archive as last fetched (validators for the conditional GET);
        indexed_digest: the archive sha256 (or crawl digest) the index was built from;
        rejected_assets: how many assets the index left out (bad href...).
    items(item_pk PRIMARY KEY, collection_id, item_id, minx, miny, maxx, maxy,
          geometry (GeoJSON text), start_ts, end_ts (epoch seconds; NULL = no time))
    assets(asset_pk PRIMARY KEY, item_pk (NULL for collection-level), collection_id,
           item_id, asset_key, href, media_type, size (file:size), checksum (file:checksum),
           path (its layout path when it is not a common asset; see layout.py))
    rejected(collection_id, item_id, asset_key, href, reason)
        assets the index refused (unsupported scheme...), for the plan and the report.
    files(path PRIMARY KEY, href, size, mtime_ns, md5, checksum, validator, verified_by,
          synced_at)
        a file we wrote or verified: ``path`` is relative to the dataset's asset folder;
        ``checksum`` is the catalog's file:checksum it was verified against (if any);
        ``verified_by`` names the evidence (``file:checksum``, ``content-md5``,
        ``x-ms-blob-content-md5``, ``s3-etag``, ``size``, ``none``).
    partials(path PRIMARY KEY, href, validator, total_size, updated_at)
        a download in progress in ``{path}.part``: the validator makes the resume safe.

Only one thread writes (the coordinator); transactions are explicit and batched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from mlhub_sync.errors import FatalLocalError, NotSyncedError, StateError

log = logging.getLogger(__name__)


DB_NAME = "mlhub_stac_assets.db"


SCHEMA_VERSION = 1


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    item_pk INTEGER PRIMARY KEY,
    collection_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    minx REAL, miny REAL, maxx REAL, maxy REAL,
    geometry TEXT,
    start_ts REAL, end_ts REAL
);
CREATE TABLE IF NOT EXISTS assets (
    asset_pk INTEGER PRIMARY KEY,
    item_pk INTEGER,
    collection_id TEXT NOT NULL,
    item_id TEXT,
    asset_key TEXT NOT NULL,
    href TEXT NOT NULL,
    media_type TEXT,
    size INTEGER,
    checksum TEXT,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    collection_id TEXT NOT NULL,
    item_id TEXT,
    asset_key TEXT NOT NULL,
    href TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    href TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    md5 TEXT,
    checksum TEXT,
    validator TEXT,
    verified_by TEXT NOT NULL,
    synced_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partials (
    path TEXT PRIMARY KEY,
    href TEXT NOT NULL,
    validator TEXT,
    total_size INTEGER,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class FileRecord:
    """A row of ``files``: a file on disk we vouch for."""

    path: str
    href: str
    size: int
    mtime_ns: int
    md5: str | None
    checksum: str | None
    validator: str | None
    verified_by: str


@dataclass(frozen=True)
class PartialRecord:
    """A row of ``partials``: enough to resume ``{path}.part`` safely."""

    path: str
    href: str
    validator: str | None
    total_size: int | None


class StateDB:
    """One dataset's state db. Open with :meth:`open`; use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, dataset_dir: Path, *, create: bool = True) -> StateDB:
        """Open (creating when ``create``) the db of ``dataset_dir``.

        A file that is not a SQLite db is moved aside (``.corrupt-<time>``) with a warning and
        a new db is started: the state is a cache of facts we can re-establish. A db written by
        a newer mlhub-sync raises :class:`StateError` instead of being touched.
        """
        path = dataset_dir / DB_NAME
        if create:
            try:
                dataset_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(
                    f"cannot create the dataset folder: {exc.strerror or exc}",
                    subject=str(dataset_dir),
                ) from exc
        if not create and not path.exists():
            raise NotSyncedError(
                "no state db: this dataset has not been synced here yet",
                subject=str(path),
                hint="run `mlhub-sync apply` (or `plan`) first",
            )
        try:
            return cls._connect(path, writable=create)
        except sqlite3.DatabaseError as exc:
            corrupt = any(word in str(exc) for word in ("not a database", "malformed"))
            if not create or not corrupt:
                raise state_error(exc, path) from exc
            aside = path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}")
            log.warning(
                "state db %s is unreadable (%s); moved it to %s and starting a new one",
                path,
                exc,
                aside.name,
            )
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{path}{suffix}", f"{aside}{suffix}")
            try:
                return cls._connect(path, writable=True)
            except sqlite3.DatabaseError as again:
                raise state_error(again, path) from again

    @classmethod
    def _connect(cls, path: Path, *, writable: bool) -> StateDB:
        """Connect; a writable connection also sets the db up (WAL, schema)."""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"the state db has schema version {version}, newer than this mlhub-sync "
                    f"understands ({SCHEMA_VERSION})",
                    subject=str(path),
                    hint="upgrade mlhub-sync, or delete the db (it is safe: it will be rebuilt)",
                )
            conn.execute("PRAGMA temp_store=FILE")
            if not writable:  # status and verify only read: no setup, no schema
                if version < SCHEMA_VERSION:
                    raise NotSyncedError(
                        "the state db is empty: this dataset has not been synced here yet",
                        subject=str(path),
                        hint="run `mlhub-sync apply` first",
                    )
                return cls(conn, path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            if version < SCHEMA_VERSION:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite)."""
        self.conn.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error).

        SQLite failures (disk full, read-only, I/O errors) surface as the project's errors.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise state_error(exc, self.path) from exc
        try:
            yield self.conn
        except BaseException as exc:
            with contextlib.suppress(sqlite3.DatabaseError):
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise state_error(exc, self.path) from exc
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(sqlite3.DatabaseError):
                self.conn.execute("ROLLBACK")
            raise state_error(exc, self.path) from exc

    # -- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A meta value, or ``None``."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, values: dict[str, str | None]) -> None:
        """Set (or, for ``None``, delete) meta values, in the current transaction if any."""
        for key, value in values.items():
            if value is None:
                self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self.conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    # -- the catalog index ----------------------------------------------------------------------

    def clear_index(self) -> None:
        """Forget the catalog index (inside the caller's transaction)."""
        self.conn.execute("DELETE FROM items")
        self.conn.execute("DELETE FROM assets")
        self.conn.execute("DELETE FROM rejected")

    def count(self, table: str) -> int:
        """Rows in one of our tables."""
        assert table in {"items", "assets", "rejected", "files", "partials"}
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -- files and partials ---------------------------------------------------------------------

    def file(self, path: str) -> FileRecord | None:
        """The record of ``path``, if any."""
        row = self.conn.execute(
            "SELECT path, href, size, mtime_ns, md5, checksum, validator, verified_by "
            "FROM files WHERE path = ?",
            (path,),
        ).fetchone()
        return None if row is None else FileRecord(*row)

    def iter_files(self) -> Iterator[FileRecord]:
        """Every file record, by path."""
        cursor = self.conn.execute(
            "SELECT path, href, size, mtime_ns, md5, checksum, validator, verified_by "
            "FROM files ORDER BY path"
        )
        for row in cursor:
            yield FileRecord(*row)

    def put_files(self, records: Iterable[FileRecord]) -> None:
        """Insert or replace file records; a completed file also ends its partial record."""
        now = time.time()
        rows = [
            (r.path, r.href, r.size, r.mtime_ns, r.md5, r.checksum, r.validator, r.verified_by, now)
            for r in records
        ]
        self.conn.executemany(
            "INSERT OR REPLACE INTO files(path, href, size, mtime_ns, md5, checksum, validator, "
            "verified_by, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.conn.executemany("DELETE FROM partials WHERE path = ?", [(r[0],) for r in rows])

    def delete_files(self, paths: Sequence[str]) -> None:
        """Forget file records."""
        self.conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])

    def partial(self, path: str) -> PartialRecord | None:
        """The resume record of ``path``, if any."""
        row = self.conn.execute(
            "SELECT path, href, validator, total_size FROM partials WHERE path = ?", (path,)
        ).fetchone()
        return None if row is None else PartialRecord(*row)

    def put_partials(self, records: Iterable[PartialRecord]) -> None:
        """Insert or replace resume records."""
        now = time.time()
        self.conn.executemany(
            "INSERT OR REPLACE INTO partials(path, href, validator, total_size, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(r.path, r.href, r.validator, r.total_size, now) for r in records],
        )

    def delete_partials(self, paths: Sequence[str]) -> None:
        """Forget resume records."""
        self.conn.executemany("DELETE FROM partials WHERE path = ?", [(p,) for p in paths])

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement (for the query modules: selection, plan, status)."""
        return self.conn.execute(sql, params)


def state_error(exc: sqlite3.Error, path: Path) -> StateError | FatalLocalError:
    text = str(exc)
    if "full" in text or "readonly" in text or "disk I/O" in text:
        return FatalLocalError(
            f"cannot write the state db: {text}",
            subject=str(path),
            hint="free disk space or make the output folder writable, then run again",
        )
    if "locked" in text:
        return StateError(
            "the state db is locked by another process",
            subject=str(path),
            hint="wait for the other mlhub-sync to finish",
        )
    return StateError(
        f"cannot use the state db: {exc}",
        subject=str(path),
        hint="check the folder is writable; deleting the db is safe (it will be rebuilt)",
    )
