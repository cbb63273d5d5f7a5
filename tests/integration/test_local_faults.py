"""Local faults that must stop a run early with a clear message, damaging nothing: a state db
that is not SQLite (the disk-full and locked-db cases need processes of their own and a mount:
tests/e2e/test_local_faults.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_a_corrupted_state_db_is_set_aside_and_the_run_completes(
    tmp_path: Path, hub: Any, cli: Any
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("apply", spec, "-q").code == 0
    db = tmp_path / "out/tiny/mlhub_stac_assets.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"garbage, not SQLite" * 500)
    hub.server.clear_log()
    result = cli("apply", spec)
    assert result.code == 0, result.stderr
    assert "unreadable" in result.stderr and "moved it to" in result.stderr
    assert hub.server.count("/blobs/tiny/", method="GET") == 0  # intact files adopted
    assert list(db.parent.glob("mlhub_stac_assets.db.corrupt-*"))
