"""A folder radiant-mlhub 0.5 wrote: its ``mlhub_stac_assets.db`` (same name, its own table) is
set aside with one warning line, and the files it downloaded are adopted on evidence, as
after a deleted db; nothing it left is lost."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

from mlhub_sync.errors import ExitCode
from tests.conftest import Hub

# radiant-mlhub 0.5's CatalogDownloader._init_db, column for column.
ORIGINAL_TABLE = """
CREATE TABLE assets (
    collection_id TEXT, item_id TEXT, asset_key TEXT, asset_url TEXT, asset_save_path TEXT,
    filtered BOOLEAN, common_asset BOOLEAN, bbox_json TEXT, geometry_json TEXT,
    single_datetime TEXT, start_datetime TEXT, end_datetime TEXT
)
"""


def folder_left_by_radiant_mlhub(hub: Hub, dataset_dir: Path, downloaded: int) -> list[str]:
    """The original's db, and ``downloaded`` of the assets at their paths; returns those."""
    dataset_dir.mkdir(parents=True)
    conn = sqlite3.connect(dataset_dir / "mlhub_stac_assets.db")
    conn.execute(ORIGINAL_TABLE)
    placed = sorted(hub.data.unique_assets())[:downloaded]
    for path in placed:
        asset = hub.data.unique_assets()[path]
        conn.execute(
            "INSERT INTO assets (collection_id, item_id, asset_key, asset_save_path, filtered) "
            "VALUES (?, ?, ?, ?, 0)",
            (asset.collection_id, asset.item_id, asset.key, path),
        )
        (dataset_dir / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(hub.data.blob_path(asset), dataset_dir / path)
    conn.commit()
    conn.close()
    (dataset_dir / "err_report.csv").write_text("")
    return placed


def test_apply_takes_over_a_folder_radiant_mlhub_wrote(tmp_path: Path, hub: Hub, cli: Any) -> None:
    dataset_dir = tmp_path / "out" / "tiny"
    placed = folder_left_by_radiant_mlhub(hub, dataset_dir, downloaded=5)
    spec = hub.spec(tmp_path / "spec.yaml")
    result = cli("apply", spec, "--json")
    assert result.code == ExitCode.OK, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "radiant-mlhub" in line]
    assert len(warnings) == 1
    assert "adopted on evidence" in warnings[0]
    stats = result.json()["datasets"][0]["result"]
    total = len(hub.data.unique_assets())
    assert stats["adopted"] == len(placed)
    assert stats["downloaded"] + stats["linked"] == total - len(placed)
    assert stats["failed"] == 0
    for path in placed:  # what the original downloaded is not fetched again
        blob = hub.data.unique_assets()[path].blob
        assert hub.server.count(f"/blobs/{blob}", method="GET") == 0
    aside = list(dataset_dir.glob("mlhub_stac_assets.db.radiant-mlhub-*"))
    assert len(aside) == 1  # kept, not deleted
    rows = sqlite3.connect(aside[0]).execute("SELECT COUNT(*) FROM assets").fetchone()[0]
    assert rows == len(placed)
    assert (dataset_dir / "err_report.csv").exists()
    again = cli("apply", spec)  # taken over once: the next run says nothing of it
    assert again.code == ExitCode.OK
    assert "radiant-mlhub" not in again.stderr


def test_status_in_such_a_folder_says_what_to_do(tmp_path: Path, hub: Hub, cli: Any) -> None:
    folder_left_by_radiant_mlhub(hub, tmp_path / "out" / "tiny", downloaded=1)
    result = cli("status", hub.spec(tmp_path / "spec.yaml"))
    assert result.code == ExitCode.OK
    assert "not synced yet by mlhub-sync" in result.stdout
    assert "written by radiant-mlhub" in result.stdout
    assert "run `mlhub-sync apply`" in result.stdout
    assert (tmp_path / "out" / "tiny" / "mlhub_stac_assets.db").exists()  # status changes nothing
