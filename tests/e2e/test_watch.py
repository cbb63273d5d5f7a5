"""`mlhub-sync watch` as a real subprocess: it converges after every kind of change, survives a
broken spec, and stops cleanly."""

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

from tests.conftest import API_KEY, Hub, run_cli


def eventually(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until true (with a deadline; not a fixed wait)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.05)


def tree_ok(root: Path, hub: Hub, keys: set[str] | None = None) -> bool:
    for asset in hub.data.unique_assets().values():
        if keys is not None and asset.key not in keys:
            continue
        path = root / asset.expected_path
        if not path.is_file() or hashlib.md5(path.read_bytes()).hexdigest() != asset.md5:
            return False
    return True


def test_watch_converges_after_each_change_and_survives_a_broken_spec(
    tmp_path: Path, hub: Hub
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
    env["MLHUB_API_KEY"] = API_KEY
    out, err = (tmp_path / "watch.out").open("w"), (tmp_path / "watch.err").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhub_sync", "watch", str(spec), "--debounce", "0.2"],
        cwd=tmp_path,
        env=env,
        stdout=out,
        stderr=err,
    )
    root = tmp_path / "out/tiny"
    try:
        eventually(lambda: tree_ok(root, hub), "the first apply")
        victim = root / "tiny_source/src_2/B03.tif"
        victim.unlink()
        eventually(lambda: tree_ok(root, hub), "a deleted file restored")
        victim.write_bytes(b"\0" * victim.stat().st_size)
        eventually(lambda: tree_ok(root, hub), "a corrupted file replaced")

        config = yaml.safe_load(spec.read_text())
        config["datasets"].append(
            {
                "id": "tiny",
                "output_dir": "./labels",
                "collection_filter": {"tiny_labels": ["labels"]},
            }
        )
        spec.write_text(yaml.safe_dump(config))
        eventually(
            lambda: tree_ok(tmp_path / "labels/tiny", hub, {"labels"}),
            "a dataset added to the spec synced",
        )

        spec.write_text(spec.read_text() + "\n  - {id: [unclosed\n")
        eventually(
            lambda: "keeping the last good one" in (tmp_path / "watch.err").read_text(),
            "the broken spec reported",
        )
        assert proc.poll() is None  # still running

        config["datasets"].append(
            {
                "id": "tiny",
                "output_dir": "./third",
                "collection_filter": {"tiny_labels": ["labels"]},
            }
        )
        spec.write_text(yaml.safe_dump(config))
        eventually(
            lambda: tree_ok(tmp_path / "third/tiny", hub, {"labels"}), "the fixed spec applied"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        out.close()
        err.close()
    assert code == 0
    assert "watch stopped" in (tmp_path / "watch.err").read_text()
    applies = (tmp_path / "watch.out").read_text().count("tiny:")
    assert applies <= 16  # a handful of triggers, no feedback loop on our own writes
    assert not list(tmp_path.rglob("*.part"))


def test_sigint_during_a_stalled_transfer_exits_0_and_keeps_state(tmp_path: Path, hub: Hub) -> None:
    from tests.support.server import Fault  # noqa: PLC0415

    hub.server.add_fault("/blobs/tiny/src/src_5/B03.tif", Fault("stall", seconds=30))
    spec = hub.spec(tmp_path / "spec.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
    env["MLHUB_API_KEY"] = API_KEY
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhub_sync", "watch", str(spec), "-q"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(
            lambda: hub.server.count("/blobs/tiny/src/src_5/B03.tif") >= 1, "the stalled request"
        )
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0
    result = run_cli("apply", spec, cwd=tmp_path, env=env)  # the next run needs no process
    assert result.code == 0, result.stderr
    assert tree_ok(tmp_path / "out/tiny", hub)


def test_refresh_interval_picks_up_upstream_changes(tmp_path: Path, hub: Hub) -> None:
    import shutil  # noqa: PLC0415

    from tests.support.mlhub_dataset import build_tiny  # noqa: PLC0415

    spec = hub.spec(tmp_path / "spec.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
    env["MLHUB_API_KEY"] = API_KEY
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhub_sync", "watch", str(spec), "-q", "--refresh-interval", "0.5"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    root = tmp_path / "out/tiny"
    try:
        eventually(lambda: tree_ok(root, hub), "the first apply")
        hub.server.clear_log()
        eventually(
            lambda: hub.server.count("/blobs/archives/tiny.tar.gz", status=304) >= 2,
            "two periodic conditional refreshes",
        )
        assert hub.server.count("/blobs/tiny/") == 0  # nothing changed: no asset request
        shutil.rmtree(hub.data.root / "blobs" / "tiny")  # upstream publishes new files
        hub.data = build_tiny(hub.data.root, hub.server.url, size=3000)
        # assets whose catalog entry changed (file:size or file:checksum) are replaced
        eventually(lambda: tree_ok(root, hub, {"B02", "labels"}), "the new catalog applied")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
