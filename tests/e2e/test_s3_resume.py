"""SIGKILL in the middle of an `apply` from an S3 prefix (moto behind the Source-Cooperative-style
front), then run again: a complete, byte-identical tree, and the files finished before the kill
never asked for again."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import run_cli
from tests.support.moto_s3 import content, source_coop

KEYS = {f"scenes/s{i:03}/band.tif": 8192 for i in range(40)}


def _journaled(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def _wait_for(condition: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.02)  # polling a condition with a deadline, not a fixed wait


def test_sigkill_mid_apply_then_rerun_completes_without_fetching_finished_files(
    tmp_path: Path,
) -> None:
    with source_coop(tmp_path / "moto", {"radiantearth": KEYS}) as (_moto, front):
        last = f"/radiantearth/{max(KEYS)}"  # the last href in the plan's order
        front.add_fault(last, "stall")
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            yaml.safe_dump(
                {
                    "defaults": {"output_dir": "./out", "workers": 2,
                                 "retry": {"max_retries": 2, "backoff": 0.01}},
                    "datasets": [{"id": "scenes", "source": {
                        "type": "s3", "bucket": "radiantearth", "endpoint": front.url,
                        "prefix": "scenes/", "layout": "mirror"}}],
                }
            )
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlhub_sync", "apply", str(spec), "-q"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        db = tmp_path / "out/scenes/mlhub_stac_assets.db"
        try:
            assert front.stalled.wait(60), "the run never reached the stalled key"
            _wait_for(lambda: _journaled(db) >= len(KEYS) // 2, 30)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        done = _journaled(db)
        front.clear()
        rerun = run_cli("apply", spec, cwd=tmp_path, env=env)
        assert rerun.code == 0, rerun.stderr
        out = tmp_path / "out/scenes"
        for key, size in KEYS.items():
            assert (out / key.removeprefix("scenes/")).read_bytes() == content(key, size), key
        assert not list(out.rglob("*.part"))
        fetched = front.count("/radiantearth/scenes/")
        assert 0 < fetched <= len(KEYS) - done  # what was journaled is not fetched again
