"""The CLI as a real subprocess: the schema and datasets commands' output and exit code, and
progress on a real terminal (a pseudo-terminal as the process's stderr) versus a pipe. The
other CLI tests call ``mlhub_sync.cli.main`` in-process (tests/integration/test_cli.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tests.conftest import API_KEY, Hub, run_cli_process


def test_schema_command_prints_json_schema(tmp_path: Path) -> None:
    result = run_cli_process("schema", cwd=tmp_path)
    assert result.code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "mlhub-sync spec"
    assert re.search(r"draft/2020-12", schema["$schema"])


def test_schema_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    """`mlhub-sync schema | head -1`: the reader leaves first; no traceback, exit 1."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte is written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mlhub_sync", "schema"],
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 1
    assert proc.stderr == ""


def _run_on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run the CLI with stderr on a pseudo-terminal; return what the terminal received."""
    import fcntl  # noqa: PLC0415
    import pty  # noqa: PLC0415
    import struct  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import termios  # noqa: PLC0415

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLHUB_", "NO_COLOR"))}
    full_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlhub_sync", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_bars_on_a_terminal_and_plain_lines_elsewhere(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    terminal = _run_on_a_terminal(
        ["apply", str(spec)], tmp_path, {"MLHUB_API_KEY": API_KEY, "TERM": "xterm"}
    )
    assert "download assets" in terminal and "%|" in terminal  # a tqdm bar
    assert "20/20" in terminal and "bytes" in terminal
    (tmp_path / "out/tiny/tiny_source/src_0/B02.tif").unlink()
    plain = _run_on_a_terminal(
        ["apply", str(spec)], tmp_path, {"MLHUB_API_KEY": API_KEY, "TERM": "xterm", "NO_COLOR": "1"}
    )
    assert "%|" not in plain and "\x1b[" not in plain
    assert "download assets: 1/1 files" in plain
    piped = cli("apply", spec)
    assert "%|" not in piped.stderr and "\x1b[" not in piped.stderr


def test_datasets_command_lists_the_registry(tmp_path: Path) -> None:
    result = run_cli_process("datasets", "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    ids = {entry["id"] for entry in json.loads(result.stdout)["datasets"]}
    assert {"nasa_marine_debris", "sen12floods", "ref_cloud_cover_detection_challenge_v1"} <= ids
