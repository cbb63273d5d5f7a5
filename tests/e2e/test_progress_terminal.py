"""What `apply` shows, as a person sees it (issue 12, C10 and C11): on a terminal (a real pty)
and in a log, the plan's summary comes once, before the transfers, and the result after them;
byte bars count in binary units; Ctrl-C says what was kept for the next run."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Hub
from tests.support.mlhub_dataset import build_many, serve_mlhub
from tests.support.server import Fault, TestServer


def _environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLHUB_", "NO_COLOR"))}
    return {**env, "MLHUB_HOME": "/nonexistent", **extra}


def run_on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on one pseudo-terminal; what it showed there."""
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhub_sync", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    shown = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's last writer has gone
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        code = proc.wait(timeout=30)
    return code, shown.decode(errors="replace").replace("\r\n", "\n")


def test_on_a_terminal_the_plan_comes_before_the_bars_and_the_result_after(
    tmp_path: Path, hub: Hub
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    env = _environ(MLHUB_API_KEY=hub.api_key, TERM="xterm")
    code, shown = run_on_a_terminal(["apply", str(spec)], tmp_path, env)
    assert code == 0, shown
    plan = shown.index("tiny: download 19 (12.0 KiB + 13 of unknown size)")
    bars = shown.index("download assets:")
    result = shown.index("tiny: 19 downloaded, 1 adopted; 0 up to date")
    assert plan < bars < result, shown
    assert shown.count("tiny: download 19") == 1  # once: no near-duplicate after the bars
    assert "download assets: 100%" in shown  # a terminal that reports no size has bars too
    assert re.search(r"bytes: 31\.0 KiB \[[0-9:]+, [0-9.]+ (KiB|MiB)/s\]", shown), shown
    assert not re.search(r"\d(kB|MB|GB)\b|\dB/s", shown), shown  # binary units only


def test_in_a_log_the_plan_comes_before_the_transfers_and_the_result_after(
    tmp_path: Path, hub: Hub
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "mlhub_sync", "apply", str(spec)],
        cwd=tmp_path,
        env=_environ(MLHUB_API_KEY=hub.api_key),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one log, as `apply ... >log 2>&1` writes it
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    plan = [i for i, line in enumerate(lines) if line.startswith("tiny: download 19 ")]
    transfers = [i for i, line in enumerate(lines) if line.startswith("download assets: ")]
    result = [i for i, line in enumerate(lines) if line.startswith("tiny: 19 downloaded")]
    assert len(plan) == 1 and len(result) == 1 and transfers, lines
    assert plan[0] < transfers[0] <= transfers[-1] < result[0], lines


def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the run to reach the stalled assets")
        time.sleep(0.02)  # polling a condition with a deadline, not a fixed wait


def test_ctrl_c_says_how_many_partial_files_were_kept(tmp_path: Path) -> None:
    root = tmp_path / "served"
    with TestServer(root) as server:
        data = build_many(root, server.url, items=3, size=16 * 1024)
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            f"defaults: {{output_dir: ./out, source: {{type: mlhub, root_url: "
            f"'{serve_mlhub(server, data)}'}}}}\ndatasets: [{{id: many}}]\n"
        )
        stalled = sorted(data.assets, key=lambda a: a.blob)[-2:]  # two bodies begun, then silent
        for asset in stalled:
            server.add_fault(f"/blobs/{asset.blob}", Fault("stall", seconds=30, after_bytes=1000))
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlhub_sync", "apply", str(spec)],
            cwd=tmp_path,
            env=_environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        parts = [tmp_path / "out/many" / f"{a.expected_path}.part" for a in stalled]
        _wait_for(lambda: all(p.exists() and p.stat().st_size == 1000 for p in parts), 60)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == (
        f"mlhub-sync: interrupted: 2 partial files kept; run `mlhub-sync apply {spec}` again "
        "to resume"
    )
