"""Progress: the only user of tqdm. Library code reports to a :class:`Reporter`; the CLI picks
bars on a terminal, periodic log lines elsewhere, or nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from types import TracebackType
from typing import IO, Any, Protocol

from tqdm import tqdm

log = logging.getLogger("mlhub_sync.progress")


class Stage(Protocol):
    """One measured step (``fetch catalog``, ``unarchive``, ``download``)."""

    def update(self, n: int = 1, *, nbytes: int = 0) -> None:
        """Count ``n`` units done (and ``nbytes`` bytes, for transfers)."""

    def close(self) -> None:
        """The stage is over."""

    def __enter__(self) -> Stage: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Reporter(Protocol):
    """Makes stages."""

    def stage(
        self,
        name: str,
        total: int | None = None,
        unit: str = "it",
        total_bytes: int | None = None,
        show_bytes: bool = False,
    ) -> Stage:
        """Start a stage named ``name`` of ``total`` units (``None``: unknown)."""
        ...


class _Base:
    def __enter__(self) -> _Base:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def update(self, n: int = 1, *, nbytes: int = 0) -> None:  # pragma: no cover - overridden
        pass

    def close(self) -> None:
        pass


class _NullStage(_Base):
    pass


class NullReporter:
    """Reports nothing (the library default)."""

    def stage(
        self,
        name: str,
        total: int | None = None,
        unit: str = "it",
        total_bytes: int | None = None,
        show_bytes: bool = False,
    ) -> Stage:
        return _NullStage()


class _TqdmStage(_Base):
    def __init__(
        self,
        name: str,
        total: int | None,
        unit: str,
        total_bytes: int | None,
        show_bytes: bool,
        out: IO[str],
    ):
        self._lock = threading.Lock()
        # A terminal that reports no size (a fresh pty, some CI runners) would get no bar at all.
        width: dict[str, Any] = {"dynamic_ncols": True} if _columns(out) > 0 else {"ncols": 80}
        common: dict[str, Any] = {"file": out, "leave": True, "mininterval": 0.2, **width}
        self._files = tqdm(total=total, desc=name, unit=unit, **common)
        self._bytes = (
            tqdm(
                total=total_bytes,
                desc="  bytes",
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                **common,
            )
            if show_bytes or total_bytes is not None
            else None
        )

    def update(self, n: int = 1, *, nbytes: int = 0) -> None:
        with self._lock:
            if n:
                self._files.update(n)
            if nbytes and self._bytes is not None:
                self._bytes.update(nbytes)

    def close(self) -> None:
        with self._lock:
            self._files.close()
            if self._bytes is not None:
                self._bytes.close()


def _columns(out: IO[str]) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


class TqdmReporter:
    """Progress bars (files, and bytes for transfers) with rate and ETA, on a terminal."""

    def __init__(self, out: IO[str] = sys.stderr):
        self.out = out

    def stage(
        self,
        name: str,
        total: int | None = None,
        unit: str = "it",
        total_bytes: int | None = None,
        show_bytes: bool = False,
    ) -> Stage:
        return _TqdmStage(name, total, unit, total_bytes, show_bytes, self.out)


class _LogStage(_Base):
    def __init__(
        self, name: str, total: int | None, unit: str, total_bytes: int | None, interval: float
    ):
        self._lock = threading.Lock()
        self.name, self.total, self.unit, self.total_bytes = name, total, unit, total_bytes
        self.interval = interval
        self.done = 0
        self.bytes = 0
        self.started = time.monotonic()
        self.last = self.started

    def update(self, n: int = 1, *, nbytes: int = 0) -> None:
        with self._lock:
            self.done += n
            self.bytes += nbytes
            now = time.monotonic()
            if now - self.last >= self.interval:
                self.last = now
                log.info("%s", self._line(now))

    def _line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        total = f"/{self.total}" if self.total is not None else ""
        text = (
            f"{self.name}: {self.done}{total} {self.unit} ({self.done / elapsed:.1f} {self.unit}/s"
        )
        if self.bytes:
            text += f", {self.bytes / elapsed / 2**20:.1f} MiB/s"
        return text + ")"

    def close(self) -> None:
        with self._lock:
            if self.done:
                log.info("%s done", self._line(time.monotonic()))


class LogReporter:
    """Plain periodic log lines (INFO), for logs and CI where bars would be noise."""

    def __init__(self, interval: float = 10.0):
        self.interval = interval

    def stage(
        self,
        name: str,
        total: int | None = None,
        unit: str = "it",
        total_bytes: int | None = None,
        show_bytes: bool = False,
    ) -> Stage:
        return _LogStage(name, total, unit, total_bytes, self.interval)


NULL_REPORTER = NullReporter()
