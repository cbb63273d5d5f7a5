"""The state db and the folder lock, on real SQLite files and real processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mlhub_sync.errors import StateError, SymlinkError
from mlhub_sync.state.db import StateDB
from mlhub_sync.state.schema import DB_NAME, SCHEMA_VERSION, FileRecord
from tests.support.sql import query


def test_a_new_db_is_versioned_and_in_wal_mode(tmp_path: Path) -> None:
    with StateDB.open(tmp_path / "ds") as db:
        assert db.schema_version() == SCHEMA_VERSION
    db_file = tmp_path / "ds" / DB_NAME
    assert query(db_file, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(db_file, "PRAGMA journal_mode") == [("wal",)]
    assert {r[0] for r in query(db_file, "SELECT name FROM sqlite_master WHERE type='table'")} >= {
        "meta",
        "items",
        "assets",
        "rejected",
        "files",
        "partials",
    }


def test_records_survive_reopening(tmp_path: Path) -> None:
    record = FileRecord("c/i/a.tif", "https://h/a.tif", 3, 42, "md5", None, '"e"', "s3-etag")
    with StateDB.open(tmp_path) as db, db.transaction():
        db.put_files([record])
        db.set_meta({"k": "v"})
    with StateDB.open(tmp_path) as db:
        assert db.file("c/i/a.tif") == record
        assert db.get_meta("k") == "v"


def test_a_failed_transaction_rolls_back(tmp_path: Path) -> None:
    with StateDB.open(tmp_path) as db:
        with pytest.raises(RuntimeError), db.transaction():
            db.set_meta({"k": "v"})
            raise RuntimeError("boom")
        assert db.get_meta("k") is None


def test_a_file_that_is_not_sqlite_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database" * 100)
    with StateDB.open(tmp_path) as db:
        assert db.count("files") == 0
    aside = list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")


def test_a_db_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StateError) as info:
        StateDB.open(tmp_path)
    assert info.value.exit_code == 3
    assert "newer" in str(info.value) and "upgrade" in str(info.value)
    assert path.read_bytes() == before


def test_status_does_not_create_a_db(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="not been synced"):
        StateDB.open(tmp_path / "missing", create=False)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
@pytest.mark.parametrize("create", [True, False], ids=["apply", "status"])
def test_a_state_db_file_that_is_a_symlink_is_refused_before_sqlite_opens_it(
    tmp_path: Path, suffix: str, create: bool
) -> None:
    canary = tmp_path / "outside.bin"
    canary.write_bytes(b"")  # empty: SQLite would take it for a new db and write it
    dataset = tmp_path / "ds"
    if not create:
        StateDB.open(dataset).close()
    (dataset / f"{DB_NAME}{suffix}").unlink(missing_ok=True)
    dataset.mkdir(exist_ok=True)
    (dataset / f"{DB_NAME}{suffix}").symlink_to(canary)
    with pytest.raises(SymlinkError) as caught:
        StateDB.open(dataset, create=create).close()
    assert caught.value.subject == str(dataset / f"{DB_NAME}{suffix}")
    assert canary.read_bytes() == b""
