"""Local faults that must stop a run early with a clear message, damaging nothing.

Disk full is real: the output goes to a 1 MiB tmpfs the test mounts (CI and these machines
run as root, as the issue notes).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.mlhub_dataset import build_many, serve_mlhub
from tests.support.mounts import tmpfs
from tests.support.server import TestServer


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small") as mount:
        yield mount


def test_disk_full_stops_the_run_early_and_damages_nothing(tmp_path: Path, small_fs: Path) -> None:
    root = tmp_path / "served"
    with TestServer(root) as server:
        data = build_many(root, server.url, items=40, size=48 * 1024, checksum=True)
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "defaults": {
                        "output_dir": str(small_fs),
                        "workers": 2,
                        "source": {"type": "mlhub", "root_url": serve_mlhub(server, data)},
                    },
                    "datasets": [{"id": "many"}],
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
        result = subprocess.run(
            [sys.executable, "-m", "mlhub_sync", "apply", str(spec)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1
        # whichever meets the full disk first says so: the free-space check before a body,
        # a write of an asset, or the state db
        assert (
            "stopping before the disk is full" in result.stderr
            or "No space left on device" in result.stderr
            or "database or disk is full" in result.stderr
        ), result.stderr
        assert "hint: free disk space" in result.stderr
        assert "Traceback" not in result.stderr
        requested = server.count("/blobs/many/")
        assert requested < len(data.assets) / 2  # it stopped early, not after trying them all
    out = small_fs / "many"
    for asset in data.assets:
        path = out / asset.expected_path
        if path.exists():  # whatever has a final name is complete and correct
            assert hashlib.md5(path.read_bytes()).hexdigest() == asset.md5


def test_a_state_db_locked_by_another_process_exits_3(tmp_path: Path, hub: Any, cli: Any) -> None:
    import sqlite3  # noqa: PLC0415

    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("apply", spec, "-q").code == 0
    (tmp_path / "out/tiny/tiny_source/src_0/B02.tif").unlink()  # work that must be journaled
    holder = sqlite3.connect(tmp_path / "out/tiny/mlhub_stac_assets.db", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # e.g. someone poking at it with the sqlite3 shell
        result = cli("apply", spec)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.code == 3
    assert "locked by another process" in result.stderr and "Traceback" not in result.stderr
    assert cli("apply", spec, "-q").code == 0  # and the next normal run completes
    assert (tmp_path / "out/tiny/tiny_source/src_0/B02.tif").is_file()
