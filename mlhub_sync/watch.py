"""``mlhub-sync watch``: keep the output in sync with the spec, continuously.

- The spec file is watched: an edit (an editor's burst of saves is one change, debounced)
  re-plans and applies. An edit that does not validate is reported and the last good spec
  stays in force; the watcher does not die.
- Every dataset's folders are watched: a managed file deleted or modified by someone else is
  restored by the next apply (which re-verifies modified files and replaces only wrong ones).
- ``--refresh-interval`` re-applies periodically, to pick up upstream catalog changes (a
  conditional GET when nothing changed).
- SIGINT/SIGTERM stop cleanly: transfers in flight keep their ``.part`` for the next run,
  the journal is flushed, and the exit status is 0.

Our own writes must not trigger loops: ``.part`` files, the state db, the lock, staging
folders and the error report are ignored, and so is everything but deletions while an apply is
running (deletions then trigger one more apply, which is cheap when nothing is missing).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from mlhub_sync.apply.report import REPORT_NAME
from mlhub_sync.catalog.install import STAGING_PREFIX
from mlhub_sync.config.resolve import DatasetConfig, LoadedSpec, load_spec
from mlhub_sync.errors import MlhubSyncError
from mlhub_sync.net.client import Http
from mlhub_sync.progress import Reporter
from mlhub_sync.session import ApplyOutcome, DatasetRun
from mlhub_sync.state.db import DB_NAME
from mlhub_sync.state.lock import LOCK_NAME

log = logging.getLogger(__name__)


# watchdog warns when a watched folder is renamed inside a recursive watch, which our catalog
# install does on purpose (staging folders move into place); the watch itself stays correct.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"watchdog\.observers\.inotify")


_OWN_SUFFIXES = (".part", "-journal", "-wal", "-shm")


def is_own_file(path: str) -> bool:
    """True for files mlhub-sync writes as bookkeeping (never a reason to re-apply)."""
    name = os.path.basename(path)
    return (
        name.endswith(_OWN_SUFFIXES)
        or name.startswith((DB_NAME, LOCK_NAME, REPORT_NAME))
        or f"/{STAGING_PREFIX}" in path
    )


@dataclass(frozen=True)
class Change:
    """What a burst of events amounted to."""

    spec: bool  # the spec changed (else only managed files did): reload it first


class _Handler(FileSystemEventHandler):
    def __init__(self, spec_path: Path, events: queue.Queue[str], applying: threading.Event):
        self.spec_path = str(spec_path)
        self.events = events
        self.applying = applying

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [os.fsdecode(event.src_path)]
        if getattr(event, "dest_path", ""):
            paths.append(os.fsdecode(event.dest_path))  # editors save by renaming over the file
        if self.spec_path in paths:
            self.events.put("spec")
            return
        if event.is_directory or all(is_own_file(p) for p in paths):
            return
        if self.applying.is_set() and event.event_type != "deleted":
            return  # our own writes
        self.events.put("outputs")


class Watcher:
    """Runs apply whenever the spec or the managed tree changes. See the module docstring."""

    def __init__(
        self,
        spec_path: Path,
        environ: Mapping[str, str],
        reporter: Reporter,
        http_for: Callable[[DatasetConfig], Http],
        *,
        dataset_ids: tuple[str, ...] = (),
        debounce: float = 1.0,
        refresh_interval: float | None = None,
        on_result: Callable[[list[ApplyOutcome], list[str]], None] | None = None,
        polling: bool = False,
    ):
        self.spec_path = spec_path.resolve()
        self.environ = environ
        self.reporter = reporter
        self.http_for = http_for
        self.dataset_ids = dataset_ids
        self.debounce = debounce
        self.refresh_interval = refresh_interval
        self.on_result = on_result
        self.stop = threading.Event()
        self._events: queue.Queue[str] = queue.Queue()
        self._applying = threading.Event()
        self._observer: BaseObserver = PollingObserver() if polling else Observer()
        self._watched: set[Path] = set()
        self._handler = _Handler(self.spec_path, self._events, self._applying)

    def run(self, loaded: LoadedSpec) -> None:
        """Apply, then keep applying on changes until :attr:`stop` is set."""
        self._observer.schedule(self._handler, str(self.spec_path.parent), recursive=False)
        self._observer.start()
        try:
            self._apply(loaded)
            while not self.stop.is_set():
                change = self._next_change()
                if change is None:
                    if self.stop.is_set():
                        break
                    log.info("periodic refresh")
                elif change.spec:
                    try:
                        loaded = load_spec(self.spec_path, self.environ)
                    except MlhubSyncError as exc:
                        log.error(
                            "the spec has errors; keeping the last good one in force:\n%s", exc
                        )
                        continue
                    log.info("the spec changed; applying it")
                else:
                    log.info("managed files changed; restoring them")
                self._apply(loaded)
        finally:
            self._observer.stop()
            self._observer.join(timeout=10)

    def _datasets(self, loaded: LoadedSpec) -> list[DatasetConfig]:
        if not self.dataset_ids:
            return list(loaded.datasets)
        return [d for d in loaded.datasets if d.id in self.dataset_ids]

    def _watch_outputs(self, datasets: list[DatasetConfig]) -> None:
        for config in datasets:
            for folder in {config.dataset_dir, config.asset_dir}:
                if folder in self._watched:
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                try:
                    self._observer.schedule(self._handler, str(folder), recursive=True)
                except OSError as exc:  # e.g. the inotify watch limit on a huge tree
                    log.warning(
                        "cannot watch %s (%s); deleted files there are restored only "
                        "on the next spec change or refresh",
                        folder,
                        exc,
                    )
                self._watched.add(folder)

    def _apply(self, loaded: LoadedSpec) -> None:
        datasets = self._datasets(loaded)
        self._watch_outputs(datasets)
        outcomes: list[ApplyOutcome] = []
        errors: list[str] = []
        self._applying.set()
        try:
            for config in datasets:
                if self.stop.is_set():
                    break
                try:
                    with DatasetRun(
                        config, self.http_for(config), self.environ, self.reporter
                    ) as run:
                        outcomes.append(run.apply(stop=self.stop))
                except MlhubSyncError as exc:
                    errors.append(f"{config.label}: {exc}")
                    log.error("%s: %s", config.label, exc)
        finally:
            self._applying.clear()
        if self.on_result is not None:
            self.on_result(outcomes, errors)

    def _next_change(self) -> Change | None:
        """Wait for events, then for a quiet spell of ``debounce`` seconds; None on timeout."""
        deadline = (time.monotonic() + self.refresh_interval) if self.refresh_interval else None
        first: str | None = None
        while first is None and not self.stop.is_set():
            timeout = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            try:
                first = self._events.get(timeout=timeout)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
        if first is None:
            return None
        kinds = {first}
        while not self.stop.is_set():
            try:
                kinds.add(self._events.get(timeout=self.debounce))
            except queue.Empty:
                break
        return Change(spec="spec" in kinds)
