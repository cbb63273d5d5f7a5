"""The state db's connection: opening (and setting aside an unreadable db), transactions,
``meta``, and the ``files``/``partials`` records. The other tables have their own modules
(``index``, ``documents``, ``selection``, ``plan``, ``pins``), reached through
:class:`StateDB`'s properties; the schema is documented in ``schema``.

Only one thread writes (the coordinator); transactions are explicit and batched. No connection
leaves this package: callers say what they want, and the SQL stays here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from mlhub_sync.errors import (
    FatalLocalError,
    ForeignStateError,
    NotSyncedError,
    StateError,
    SymlinkError,
)
from mlhub_sync.state.documents import DocumentTables
from mlhub_sync.state.index import IndexTables
from mlhub_sync.state.pins import LockPins
from mlhub_sync.state.plan import PlanTables
from mlhub_sync.state.schema import DB_NAME, SCHEMA, SCHEMA_VERSION, FileRecord, PartialRecord
from mlhub_sync.state.selection import SelectionTables
from mlhub_sync.tree import is_link, opened

__all__ = ["DB_NAME", "FileRecord", "PartialRecord", "StateDB", "state_error"]

log = logging.getLogger(__name__)


class StateDB:
    """One dataset's state db. Open with :meth:`open`; use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn = conn
        self.path = path
        self.index = IndexTables(conn)
        self.selection = SelectionTables(conn)
        self.plan = PlanTables(conn)
        self.pins = LockPins(conn)
        self.documents = DocumentTables(conn)

    @classmethod
    def open(cls, dataset_dir: Path, *, create: bool = True) -> StateDB:
        """Open (creating when ``create``) the db of ``dataset_dir``.

        A file that is not a SQLite db is moved aside (``.corrupt-<time>``) with a warning and
        a new db is started: the state is a cache of facts we can re-establish. So is the
        db radiant-mlhub 0.5 leaves under the same name (``.radiant-mlhub-<time>``): the
        files it downloaded are then adopted on evidence, as after a deleted db. A db written by
        a newer mlhub-sync raises :class:`StateError` instead of being touched. A db (or its
        ``-wal``, ``-shm``, ``-journal``) that is a symbolic link raises :class:`SymlinkError`:
        SQLite opens by path and would write through it (:func:`refuse_links`).
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
        refuse_links(dataset_dir)
        if not create and not path.exists():
            raise NotSyncedError(
                "no state db: this dataset has not been synced here yet",
                subject=str(path),
                hint="run `mlhub-sync apply` (or `plan`) first",
            )
        if path.exists() and written_by_radiant_mlhub(path):
            if not create:
                raise ForeignStateError(
                    "the state db was written by radiant-mlhub (the original client), not by "
                    "mlhub-sync",
                    subject=str(path),
                    hint="run `mlhub-sync apply` (or `plan`): it sets that db aside and adopts "
                    "the files already downloaded",
                )
            aside = path.with_name(f"{DB_NAME}.radiant-mlhub-{int(time.time())}")
            _move_aside(path, aside)
            log.warning(
                "%s was written by radiant-mlhub; moved it to %s (mlhub-sync does not read it) "
                "and taking the folder over: files already here are adopted on evidence "
                "(a checksum, or the server's size and MD5), the rest downloaded",
                path,
                aside.name,
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
            _move_aside(path, aside)
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
            # Every table is CREATE ... IF NOT EXISTS: a db of this version made before a
            # table was added (documents, links) gets it; older versions ignore it.
            conn.executescript(SCHEMA)
            if version == 1:  # version 2 added items.digest (the index is rebuilt anyway)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(items)")}
                if "digest" not in columns:
                    conn.execute("ALTER TABLE items ADD COLUMN digest TEXT")
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite)."""
        self._conn.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error).

        SQLite failures (disk full, read-only, I/O errors) surface as the project's errors.
        """
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise state_error(exc, self.path) from exc
        try:
            yield
        except BaseException as exc:
            with contextlib.suppress(sqlite3.DatabaseError):
                self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise state_error(exc, self.path) from exc
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(sqlite3.DatabaseError):
                self._conn.execute("ROLLBACK")
            raise state_error(exc, self.path) from exc

    # -- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A meta value, or ``None``."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, values: dict[str, str | None]) -> None:
        """Set (or, for ``None``, delete) meta values, in the current transaction if any."""
        for key, value in values.items():
            if value is None:
                self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                self._conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def count(self, table: str) -> int:
        """Rows in one of our tables."""
        assert table in {"items", "assets", "rejected", "files", "partials"}
        return int(self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def schema_version(self) -> int:
        """``PRAGMA user_version``: the schema this db was set up with."""
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # -- files and partials ---------------------------------------------------------------------

    def file(self, path: str) -> FileRecord | None:
        """The record of ``path``, if any."""
        row = self._conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?",
            (path,),
        ).fetchone()
        return None if row is None else FileRecord(*row)

    def files_after(self, path: str, limit: int = 1000) -> list[FileRecord]:
        """The next ``limit`` file records after ``path``, by path (keyset pagination: no
        statement stays open while the caller commits on the same connection)."""
        rows = self._conn.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE path > ? ORDER BY path LIMIT ?",
            (path, limit),
        ).fetchall()
        return [FileRecord(*row) for row in rows]

    def put_files(self, records: Iterable[FileRecord]) -> None:
        """Insert or replace file records; a completed file also ends its partial record."""
        now = time.time()
        rows = [
            (r.path, r.href, r.size, r.mtime_ns, r.md5, r.checksum, r.validator, r.verified_by, now)
            for r in records
        ]
        self._conn.executemany(
            "INSERT OR REPLACE INTO files(path, href, size, mtime_ns, md5, checksum, validator, "
            "verified_by, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._conn.executemany("DELETE FROM partials WHERE path = ?", [(r[0],) for r in rows])

    def set_mtimes(self, mtimes: Iterable[tuple[str, int]]) -> None:
        """Record new mtimes ``(path, mtime_ns)`` of files found intact after a touch."""
        self._conn.executemany(
            "UPDATE files SET mtime_ns = ? WHERE path = ?", [(m, p) for p, m in mtimes]
        )

    def mark_corrupt(self, paths: Iterable[str]) -> None:
        """Mark files whose content no longer matches their record (the plan replaces them)."""
        self._conn.executemany(
            "UPDATE files SET verified_by = 'corrupt' WHERE path = ?", [(p,) for p in paths]
        )

    def delete_files(self, paths: Sequence[str]) -> None:
        """Forget file records."""
        self._conn.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])

    def last_sync(self) -> float | None:
        """When a file was last recorded (epoch seconds), or ``None``."""
        value = self._conn.execute("SELECT MAX(synced_at) FROM files").fetchone()[0]
        return None if value is None else float(value)

    def put_partials(self, records: Iterable[PartialRecord]) -> None:
        """Insert or replace resume records."""
        now = time.time()
        self._conn.executemany(
            "INSERT OR REPLACE INTO partials(path, href, validator, total_size, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(r.path, r.href, r.validator, r.total_size, now) for r in records],
        )


_FILE_COLUMNS = "path, href, size, mtime_ns, md5, checksum, validator, verified_by"


DB_FILES = ("", "-wal", "-shm", "-journal")  # the db and the files SQLite keeps beside it


def written_by_radiant_mlhub(path: Path) -> bool:
    """True when ``path`` is the asset list of radiant-mlhub 0.5's downloader: it has the same
    name as ours, no schema version and one table, ``assets``, with an ``asset_save_path``
    column (ours never has one). Read-only: the file is not changed."""
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != 0:
            return False
        columns = {row[1] for row in conn.execute("PRAGMA table_info(assets)")}
        return "asset_save_path" in columns and "asset_pk" not in columns
    except sqlite3.Error:
        return False  # unreadable: the corrupt-db path deals with it
    finally:
        conn.close()


def _move_aside(path: Path, aside: Path) -> None:
    """Rename a db and its side files to ``aside`` (+ the same suffixes)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")


def refuse_links(dataset_dir: Path) -> None:
    """Raise :class:`SymlinkError` when the state db or a file SQLite keeps beside it is a
    symbolic link (SQLite opens them by path, following links).

    What this leaves: a link planted between this check and SQLite's own open (or one of the
    side files SQLite creates later in the run) is followed; Python's ``sqlite3`` cannot ask
    for ``SQLITE_OPEN_NOFOLLOW``. Only someone writing into the dataset folder during the run
    can use that window, while the run holds the folder lock.
    """
    with contextlib.suppress(FileNotFoundError), opened(dataset_dir) as folder:
        for suffix in DB_FILES:
            if is_link(folder.lstat(DB_NAME + suffix)):
                raise SymlinkError(str(dataset_dir / f"{DB_NAME}{suffix}"), "state db file")


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
