"""The dataset lock against another process (a real one: the kernel's flock is the point)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlhub_sync.errors import StateLockedError
from mlhub_sync.state.lock import DatasetLock


def test_the_lock_is_exclusive_across_processes_and_names_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from mlhub_sync.state.lock import DatasetLock;"
            f"lock = DatasetLock(Path({str(tmp_path)!r})); lock.acquire();"
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StateLockedError) as info:
            DatasetLock(tmp_path).acquire()
        assert f"pid {holder.pid}" in str(info.value)
        assert info.value.exit_code == 3
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()  # type: ignore[union-attr]
    with DatasetLock(tmp_path):  # released when the holder exits
        pass
