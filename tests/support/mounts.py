"""A small tmpfs mounted for one test (disk full, read-only output), unmounted after it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tmpfs(mount: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a ``size`` tmpfs at ``mount`` (created) for the ``with`` block."""
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
