"""A run stops before the disk is full (issue 11, section 2): a body starts only when the disk
keeps its reserve after the bytes it announced. Real: the output is a 2 MiB tmpfs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import _cli_environ
from tests.support.mlhub_dataset import write_asset_catalog
from tests.support.mounts import tmpfs
from tests.support.server import TestServer


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small", size="2m") as mount:
        yield mount


def test_a_body_that_would_fill_the_disk_is_not_started(tmp_path: Path, small_fs: Path) -> None:
    served = tmp_path / "served"
    (served / "blobs").mkdir(parents=True)
    (served / "blobs" / "big.bin").write_bytes(bytes(4 * 2**20))  # twice the disk
    with TestServer(served) as server:
        write_asset_catalog(
            tmp_path / "cat.tar.gz", "ds", {"big": {"href": server.url + "/blobs/big.bin"}}
        )
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "defaults": {
                        "output_dir": str(small_fs),
                        "source": {"type": "archive", "path": str(tmp_path / "cat.tar.gz")},
                    },
                    "datasets": [{"id": "ds"}],
                }
            )
        )
        result = subprocess.run(
            [sys.executable, "-m", "mlhub_sync", "apply", str(spec)],
            cwd=tmp_path,
            env=_cli_environ(tmp_path, {}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        [get] = [r for r in server.requests if r.path == "/blobs/big.bin"]
    assert result.returncode == 1
    assert "stopping before the disk is full: " in result.stderr, result.stderr
    assert "4 MiB more are needed" in result.stderr
    assert "hint: free disk space" in result.stderr and "Traceback" not in result.stderr
    assert get.body_bytes < 4 * 2**20  # the body was abandoned, not written
    assert not list((small_fs / "ds").rglob("data.bin*"))  # no part: nothing was written
