"""Where jobs run: the :class:`Runner` interface, and its thread-based libcurl implementation.

The executor (the journal writer) knows a runner only through :class:`Runner`: it starts the
workers, hands them batches of jobs through a bounded queue, and reads back events; it never
sees a thread, a driver or a connection. Another runner (a distributed one, say) implements
the same four members and reuses :class:`~mlhub_sync.apply.jobs.JobSteps` on its workers.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlhub_sync.apply.jobs import WORKER_DONE, Event, Job, JobSteps, Received, task_ended
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import DEFAULT_NET, NetSettings
from mlhub_sync.net.signing import Signer
from mlhub_sync.transfer.curl import CurlDriver

MAX_DRIVERS = 2  # libcurl driver threads (see CurlThreads.drivers)


SMALL_FILES = 1 << 20  # an average size under this runs on one driver


REPORT_SECONDS = 0.2  # how often a driver tells the bytes that arrived (Received)


@dataclass(frozen=True)
class ExecutorSettings:
    """What every worker needs to carry out jobs."""

    asset_dir: Path
    workers: int  # transfers in flight, over all workers
    checksum_mode: str
    policy: RetryPolicy
    net: NetSettings = DEFAULT_NET  # timeouts, deadlines, byte caps, redirects
    catalog_since_ns: int | None = None  # see JobSteps: files that may be the catalog's
    signer: Signer | None = None  # signs asset requests (net/signing.py); shared by drivers


class Runner(Protocol):
    """Carries out jobs somewhere and reports what happened.

    - :meth:`start` launches the workers and returns how many there are; ``emit`` (thread-safe)
      receives every event, and each worker's last one is ``WORKER_DONE``. Bytes are told as
      they arrive, as :class:`~mlhub_sync.apply.jobs.Received` batches (at most one every
      :data:`REPORT_SECONDS` per worker, and the rest before ``WORKER_DONE``), not per file.
    - :meth:`put` hands over a batch (``None``: one worker's end marker); ``False`` when
      there was no room within ``timeout`` seconds (the queue is bounded: memory stays flat).
    - Workers end on their own once ``stop`` (given at start) is set.
    """

    def start(
        self,
        emit: Callable[[Event], None],
        stop: threading.Event,
        total_files: int,
        total_bytes: int | None,
    ) -> int:
        """Launch the workers; how many there are."""
        ...

    def put(self, batch: list[Job] | None, timeout: float) -> bool:
        """Queue a batch (or an end marker); False if the queue stayed full."""
        ...


class CurlThreads:
    """Driver threads in this process, each running its share of ``workers`` transfers at once
    on one libcurl multi handle (:class:`~mlhub_sync.transfer.curl.CurlDriver`)."""

    def __init__(self, settings: ExecutorSettings):
        self.settings = settings
        self._jobs: queue.Queue[list[Job] | None] = queue.Queue(maxsize=2 * settings.workers)

    @staticmethod
    def drivers(workers: int, total_files: int, total_bytes: int | None) -> int:
        """How many driver threads.

        Small files cost Python time per file, which a second driver only fights over (the
        GIL): one driver. Big files (or unknown sizes) cost hashing per byte, which two drivers
        spread over two cores (hashlib releases the GIL). Measured in benchmarks/RESULTS.md.
        """
        small = total_bytes is not None and total_bytes < SMALL_FILES * max(1, total_files)
        cores = os.cpu_count() or 1
        return 1 if small else max(1, min(MAX_DRIVERS, workers, cores))

    def start(
        self,
        emit: Callable[[Event], None],
        stop: threading.Event,
        total_files: int,
        total_bytes: int | None,
    ) -> int:
        """Start the driver threads (daemons: a stalled one never blocks the exit)."""
        count = self.drivers(self.settings.workers, total_files, total_bytes)
        slots = -(-self.settings.workers // count)
        for i in range(count):
            threading.Thread(
                target=self._driver,
                args=(slots, emit, stop),
                name=f"mlhub-sync-driver-{i}",
                daemon=True,
            ).start()
        return count

    def put(self, batch: list[Job] | None, timeout: float) -> bool:
        """Queue a batch for the drivers."""
        try:
            self._jobs.put(batch, timeout=timeout)
        except queue.Full:
            return False
        return True

    def _driver(self, slots: int, emit: Callable[[Event], None], stop: threading.Event) -> None:
        """Run jobs ``slots`` at a time on one multi handle until the end marker."""
        s = self.settings
        jobs = JobSteps(
            s.asset_dir, s.checksum_mode, s.policy, emit, stop.is_set, random.Random().random,
            net=s.net, catalog_since_ns=s.catalog_since_ns, signer=s.signer,
        )  # fmt: skip
        runner = CurlDriver(slots, stop=stop, net=s.net)

        def ended(_value: object, error: BaseException | None) -> None:
            if task_ended(emit, error):
                stop.set()

        waiting: deque[Job] = deque()
        ended_marker = False
        told, next_report = 0, time.monotonic() + REPORT_SECONDS

        def tell_received() -> None:  # a sum over the handles in flight, every 0.2 s at most
            nonlocal told
            arrived = runner.received() + jobs.copied
            if arrived > told:
                emit(Received(arrived - told))
                told = arrived

        try:
            while not stop.is_set():
                while runner.free and (waiting or not ended_marker):
                    if not waiting:
                        try:  # block for work only when nothing is in flight
                            batch = (
                                self._jobs.get(timeout=0.2)
                                if runner.active == 0
                                else self._jobs.get_nowait()
                            )
                        except queue.Empty:
                            break
                        if batch is None:
                            ended_marker = True
                            break
                        waiting.extend(batch)
                    runner.submit(jobs.run(waiting.popleft()), ended)
                if ended_marker and not waiting and runner.active == 0:
                    break
                if runner.active:
                    runner.poll(0.2)
                now = time.monotonic()
                if now >= next_report:
                    tell_received()
                    next_report = now + REPORT_SECONDS
        except BaseException as exc:
            ended(None, exc)
        finally:
            runner.close()
            tell_received()
            jobs.close()
            emit(WORKER_DONE)
