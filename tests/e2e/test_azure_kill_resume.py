"""SIGKILL in the middle of an `apply` from an Azure container (Azurite), then run again: the
tree completes byte for byte, and the second run fetches fewer blobs than the first would."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.support.azurite import Azurite, Blob, Container, azurite
from tests.support.sql import query

FILES = 400
PREFIX = "/devstoreaccount1/mlhub/many/"


def data(i: int) -> bytes:
    return hashlib.sha256(b"%d" % i).digest() * 128  # 4 KiB


def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)  # polling a condition with a deadline, not a fixed wait


def asset_gets(service: Azurite) -> int:
    assert service.access_log is not None
    return service.access_log.read_text(errors="replace").count(f'"GET {PREFIX}')


def journaled(db: Path) -> int:
    try:
        return int(query(db, "SELECT COUNT(*) FROM files")[0][0])
    except Exception:  # not created yet, or locked for a moment
        return 0


def test_sigkill_mid_run_then_rerun_completes_with_fewer_blob_requests(tmp_path: Path) -> None:
    blobs = {f"many/{i:04d}/B02.tif": Blob(data(i)) for i in range(FILES)}
    with azurite(tmp_path / "ws", [Container("mlhub", True, blobs)]) as service:
        spec = tmp_path / "spec.yaml"
        source = {
            "type": "azure", "account": "devstoreaccount1", "container": "mlhub",
            "endpoint": service.endpoint, "prefix": "many/", "template": "{item}/{asset}.tif",
        }  # fmt: skip
        spec.write_text(
            yaml.safe_dump(
                {
                    "defaults": {"output_dir": "./out", "workers": 2},
                    "datasets": [{"id": "many", "source": source}],
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
        argv = [sys.executable, "-m", "mlhub_sync", "apply", str(spec), "-q"]
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE)
        db = tmp_path / "out/many/mlhub_stac_assets.db"
        assert service.pid is not None
        try:
            wait_for(lambda: asset_gets(service) >= 40, 60, "the first downloads")
            os.kill(service.pid, signal.SIGSTOP)  # the run can finish nothing more
            wait_for(lambda: journaled(db) > 0, 30, "files journaled")
        finally:
            proc.send_signal(signal.SIGKILL)
            _out, err = proc.communicate(timeout=30)
            os.kill(service.pid, signal.SIGCONT)
        assert proc.returncode == -signal.SIGKILL, err
        first = asset_gets(service)
        assert first < FILES

        rerun = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert rerun.returncode == 0, rerun.stderr
        out = tmp_path / "out/many/many"
        for i in range(FILES):
            assert (out / f"{i:04d}/B02.tif").read_bytes() == data(i), i
        assert not list(out.rglob("*.part"))
        assert 0 < asset_gets(service) - first < FILES  # what the killed run kept is kept
