"""SIGKILL in the middle of `apply`, then run again: a complete, byte-identical tree, and fewer
bytes on the wire than a fresh run."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import run_cli
from tests.support.mlhub_dataset import build_many, serve_mlhub
from tests.support.server import Fault, TestServer


def _spec(path: Path, root_url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {
                    "output_dir": "./out",
                    "workers": 2,
                    "source": {"type": "mlhub", "root_url": root_url},
                    "retry": {"max_retries": 3, "backoff": 0.01, "max_backoff": 0.05},
                    "timeout": {"connect": 5, "read": 60},
                },
                "datasets": [{"id": "many"}],
            }
        )
    )
    return path


def _apply_again(spec: Path, cwd: Path, env: dict[str, str]) -> None:
    """The next, normal run: it must complete (it needs no process of its own: in-process)."""
    rerun = run_cli("apply", spec, cwd=cwd, env=env)
    assert rerun.code == 0, rerun.stderr


def _wait_for(condition: object, deadline: float) -> None:
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the run to reach the stalled asset")
        time.sleep(0.02)  # polling a condition with a deadline, not a fixed wait


def test_sigkill_mid_run_then_rerun_completes_with_fewer_bytes(tmp_path: Path) -> None:
    root = tmp_path / "served"
    with TestServer(root) as server:
        data = build_many(root, server.url, items=60, size=48 * 1024)
        root_url = serve_mlhub(server, data)
        spec = _spec(tmp_path / "spec.yaml", root_url)
        # The last href (in the plan's href order) stalls: the run cannot finish on its own.
        last = max(a.blob for a in data.assets)
        server.add_fault(f"/blobs/{last}", Fault("stall", seconds=30))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlhub_sync", "apply", str(spec), "-q"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for(lambda: server.count(f"/blobs/{last}") >= 1, time.monotonic() + 60)
            # give the single-writer journal its batch interval to commit finished files
            db = tmp_path / "out/many/mlhub_stac_assets.db"
            _wait_for(lambda: _journaled(db) >= len(data.assets) // 2, time.monotonic() + 30)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.stderr is not None
            proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        fresh_bytes = sum(a.size for a in data.assets)
        server.clear_log()
        _apply_again(spec, tmp_path, env)
        out = tmp_path / "out/many"
        for asset in data.assets:
            got = hashlib.md5((out / asset.expected_path).read_bytes()).hexdigest()
            assert got == asset.md5, asset.expected_path
        assert not list(out.rglob("*.part"))
        sent = sum(r.body_bytes for r in server.requests if r.path.startswith("/blobs/many/"))
        assert 0 < sent < fresh_bytes / 2


def _journaled(db: Path) -> int:
    import sqlite3  # noqa: PLC0415

    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_sigterm_keeps_parts_and_exits_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "served"
    with TestServer(root) as server:
        data = build_many(root, server.url, items=4, size=16 * 1024)
        root_url = serve_mlhub(server, data)
        spec = _spec(tmp_path / "spec.yaml", root_url)
        last = max(a.blob for a in data.assets)
        server.add_fault(f"/blobs/{last}", Fault("stall", seconds=30))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlhub_sync", "apply", str(spec)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        db = tmp_path / "out/many/mlhub_stac_assets.db"
        # everything but the stalled asset is done and journaled (batches commit every second)
        _wait_for(lambda: _journaled(db) == len(data.assets) - 1, time.monotonic() + 60)
        _wait_for(lambda: server.count(f"/blobs/{last}") >= 1, time.monotonic() + 60)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "interrupted" in err
        assert _journaled(db) == len(data.assets) - 1
        server.clear_log()
        _apply_again(spec, tmp_path, env)
        assert [r.path for r in server.requests if r.path.startswith("/blobs/many/")] == [
            f"/blobs/{last}"
        ]


def _partial_rows(db: Path) -> list[tuple[str, str | None]]:
    import sqlite3  # noqa: PLC0415

    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
    try:
        return [(str(p), v) for p, v in conn.execute("SELECT path, validator FROM partials")]
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def test_sigkill_during_a_big_file_resumes_it_with_range(tmp_path: Path) -> None:
    """A big file's validator is journaled as soon as its body starts, so a SIGKILL at any
    moment after that leaves a .part the next run continues instead of restarting."""
    root = tmp_path / "served"
    size = 3 * 2**20
    with TestServer(root) as server:
        data = build_many(root, server.url, items=1, size=size)
        root_url = serve_mlhub(server, data)
        spec = _spec(tmp_path / "spec.yaml", root_url)
        big = max(data.assets, key=lambda a: a.blob)
        sent_before_stall = 2**20 + 12345
        server.add_fault(
            f"/blobs/{big.blob}", Fault("stall", seconds=60, after_bytes=sent_before_stall)
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlhub_sync", "apply", str(spec), "-q"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out = tmp_path / "out/many"
        part = out / f"{big.expected_path}.part"
        try:
            _wait_for(
                lambda: part.exists() and part.stat().st_size == sent_before_stall,
                time.monotonic() + 60,
            )
            db = out / "mlhub_stac_assets.db"
            _wait_for(
                lambda: any(p == big.expected_path for p, _ in _partial_rows(db)),
                time.monotonic() + 30,
            )
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        server.clear_log()
        _apply_again(spec, tmp_path, env)
        gets = [r for r in server.requests if r.path == f"/blobs/{big.blob}"]
        assert len(gets) == 1
        assert gets[0].headers["range"] == f"bytes={sent_before_stall}-"
        assert gets[0].status == 206
        assert gets[0].body_bytes == big.size - sent_before_stall
        got = hashlib.md5((out / big.expected_path).read_bytes()).hexdigest()
        assert got == big.md5
        assert not list(out.rglob("*.part"))
