"""Units and the progress log (stderr) shared by every module."""

from __future__ import annotations

import sys
import time

KIB, MIB = 1024, 1 << 20


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
