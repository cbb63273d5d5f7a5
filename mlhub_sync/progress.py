"""Progress: the only user of tqdm. Library code reports to a :class:`Reporter`; the CLI picks
bars on a terminal, periodic log lines elsewhere, or nothing.

Bytes are shown in binary units everywhere (``1.5 MiB``, ``12.0 MiB/s``), as the summaries
print them: tqdm's own scaling would write ``kB`` for 1000 bytes. A stage whose unit is
``"B"`` (a catalog archive's fetch) counts bytes, and shows them the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
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

    def heartbeat(self, label: str) -> contextlib.AbstractContextManager[None]:
        """Report at least every few seconds while the block runs, even when nothing moves
        (a reporter that draws bars or says nothing may do nothing)."""
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


def binary_size(n: float) -> str:
    """``1536`` -> ``1.5 KiB``: bytes in binary units."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class _ByteBar(tqdm):  # type: ignore[type-arg]
    """A tqdm bar of bytes in binary units: ``1.5 MiB/4.0 MiB [00:02<00:03, 750.0 KiB/s]``.

    tqdm's ``unit_scale`` writes SI prefixes (``kB``) and scales its rate by 1000 whatever
    ``unit_divisor`` says, so the fields are made here (``format_dict``) for ``bar_format``."""

    KNOWN = (
        "{desc}: {percentage:3.0f}%|{bar}| {n_bin}/{total_bin} [{elapsed}<{remaining}, {rate_bin}]"
    )
    UNKNOWN = "{desc}: {n_bin} [{elapsed}, {rate_bin}]"

    def __init__(self, *, total: int | None, **kwargs: Any):
        super().__init__(
            total=total, unit="B", bar_format=self.KNOWN if total else self.UNKNOWN, **kwargs
        )

    @property
    def format_dict(self) -> MutableMapping[str, Any]:
        """tqdm's fields, and the byte counts and rate in binary units."""
        if self.disable and not hasattr(self, "unit"):  # tqdm's stand-in before it is set up
            return super().format_dict
        fields = dict(super().format_dict)
        n, total, rate, elapsed = fields["n"], fields["total"], fields["rate"], fields["elapsed"]
        if rate is None and elapsed:
            rate = (n - fields["initial"]) / elapsed
        fields["n_bin"] = binary_size(n)
        fields["total_bin"] = binary_size(total) if total is not None else "?"
        fields["rate_bin"] = f"{binary_size(rate)}/s" if rate else "? B/s"
        return fields


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

    def heartbeat(self, label: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


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
        # A terminal that reports no size (a fresh pty, some CI runners) would get no bar at
        # all: tqdm reads its height as -1 rows and hides every bar below it.
        shape = {"ncols": 80, "nrows": 24}
        width: dict[str, Any] = {"dynamic_ncols": True} if _columns(out) > 0 else shape
        common: dict[str, Any] = {"file": out, "leave": True, "mininterval": 0.2, **width}
        if unit == "B":  # a stage of bytes: one bar of them
            self._files: tqdm[Any] = _ByteBar(total=total, desc=name, **common)
            self._bytes: tqdm[Any] | None = None
            return
        self._files = tqdm(total=total, desc=name, unit=unit, **common)
        self._bytes = (
            _ByteBar(total=total_bytes, desc="  bytes", **common)
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

    def heartbeat(self, label: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # a bar on a terminal shows its own rate and age


class _LogStage(_Base):
    def __init__(
        self,
        reporter: LogReporter,
        name: str,
        total: int | None,
        unit: str,
        total_bytes: int | None,
    ):
        self._lock = threading.Lock()
        self.reporter = reporter
        self.name, self.total, self.unit, self.total_bytes = name, total, unit, total_bytes
        self.interval = reporter.interval
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
                self.reporter.line(self.line(now))

    def line(self, now: float) -> str:
        """Where the stage is, as one line: ``download assets: 0/2 files, 20.0 MiB/48.0 MiB
        (0.0 files/s, 4.0 MiB/s)``; a stage of bytes: ``fetch: 1.0 MiB/4.0 MiB (2.0 MiB/s)``."""
        elapsed = max(now - self.started, 1e-9)
        if self.unit == "B":
            total = f"/{binary_size(self.total)}" if self.total is not None else ""
            rate = binary_size(self.done / elapsed)
            return f"{self.name}: {binary_size(self.done)}{total} ({rate}/s)"
        total = f"/{self.total}" if self.total is not None else ""
        text = f"{self.name}: {self.done}{total} {self.unit}"
        if self.bytes:
            of = f"/{binary_size(self.total_bytes)}" if self.total_bytes is not None else ""
            text += f", {binary_size(self.bytes)}{of}"
        text += f" ({self.done / elapsed:.1f} {self.unit}/s"
        if self.bytes:
            text += f", {binary_size(self.bytes / elapsed)}/s"
        return text + ")"

    def close(self) -> None:
        with self._lock:
            if self.done:
                self.reporter.line(f"{self.line(time.monotonic())} done")
        self.reporter.release(self)


class LogReporter:
    """Plain periodic log lines (INFO), for logs and CI where bars would be noise.

    Nothing is silent: while a stage is open or a :meth:`heartbeat` runs, a line comes at
    least every ``interval`` seconds (one is due after :data:`HEARTBEAT_SHARE` of it), even
    when nothing finishes: the open stage's counts, or that the run is still working.
    """

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self._lock = threading.Condition()
        self._stages: list[_LogStage] = []
        self._scopes: list[tuple[str, float]] = []  # heartbeat labels, and since when
        self._last = time.monotonic()
        self._beating = False

    def stage(
        self,
        name: str,
        total: int | None = None,
        unit: str = "it",
        total_bytes: int | None = None,
        show_bytes: bool = False,
    ) -> Stage:
        stage = _LogStage(self, name, total, unit, total_bytes)
        with self._lock:
            self._stages.append(stage)
            self._start()
        return stage

    @contextlib.contextmanager
    def heartbeat(self, label: str) -> Iterator[None]:
        """Lines at least every ``interval`` seconds while the block runs (a whole command)."""
        scope = (label, time.monotonic())
        with self._lock:
            self._scopes.append(scope)
            self._start()
        try:
            yield
        finally:
            with self._lock:
                self._scopes.remove(scope)
                self._lock.notify_all()

    def line(self, text: str) -> None:
        """Log one progress line."""
        with self._lock:
            self._last = time.monotonic()
            log.info("%s", text)

    def release(self, stage: _LogStage) -> None:
        """A stage closed."""
        with self._lock:
            if stage in self._stages:
                self._stages.remove(stage)
            self._lock.notify_all()

    def _start(self) -> None:
        if not self._beating:
            self._beating = True
            threading.Thread(target=self._beat, name="mlhub-sync-progress", daemon=True).start()

    def _beat(self) -> None:
        """The heartbeat thread: runs while a stage or a heartbeat scope is open."""
        due = self.interval * HEARTBEAT_SHARE
        while True:
            with self._lock:
                if not (self._stages or self._scopes):
                    self._beating = False
                    return
                now = time.monotonic()
                if now - self._last < due:
                    self._lock.wait(self._last + due - now)
                    continue
                if self._stages:
                    text = self._stages[-1].line(now)
                else:
                    label, since = self._scopes[-1]
                    text = f"{label}: still working ({now - since:.0f} s)"
                self._last = now
                # under the lock: once a heartbeat scope has ended, no line of it comes late
                log.info("%s", text)


HEARTBEAT_SHARE = 0.8


NULL_REPORTER = NullReporter()
