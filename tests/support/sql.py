"""Reading a state db the way a person would with the sqlite3 shell: a separate read-only
connection (so tests never reach into the state layer's own connection)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def query(db_file: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` run against the committed contents of ``db_file``."""
    conn = sqlite3.connect(f"{Path(db_file).resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [tuple(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()
