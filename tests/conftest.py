"""Shared fixtures: a real HTTP server on 127.0.0.1 serving a generated MLHub-style dataset,
spec files, and runners for the real ``mlhub-sync`` CLI: in this process (``run_cli``, the
``cli`` fixture) and as a subprocess (``run_cli_process``, ``cli_process``: tests/e2e/)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coverage
import pytest
import yaml

import mlhub_sync.cli
from tests.support.mlhub_dataset import GeneratedDataset, build_tiny, serve_mlhub
from tests.support.server import TestServer

API_KEY = "sentinel-KEY-4f1c9e"


@dataclass
class Hub:
    """A running server with the tiny dataset behind an MLHub-style API."""

    server: TestServer
    data: GeneratedDataset
    root_url: str
    api_key: str

    def spec(
        self, path: Path, datasets: list[dict[str, Any]] | None = None, **defaults: Any
    ) -> Path:
        """Write a spec using this hub as the source; return its path."""
        base: dict[str, Any] = {
            "output_dir": "./out",
            "source": {"type": "mlhub", "root_url": self.root_url, "api_key": "${MLHUB_API_KEY}"},
            "workers": 4,
            "retry": {"max_retries": 5, "backoff": 0.01, "max_backoff": 0.05},
            "timeout": {"connect": 5, "read": 5},
        }
        base.update(defaults)
        spec = {
            "version": 1,
            "defaults": base,
            "datasets": datasets if datasets is not None else [{"id": self.data.dataset_id}],
        }
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """The tiny dataset served at /api/ (key required) and /blobs/."""
    root = tmp_path / "served"
    with TestServer(root, etag_style="md5") as server:
        data = build_tiny(root, server.url)
        root_url = serve_mlhub(server, data, API_KEY)
        yield Hub(server, data, root_url, API_KEY)


@dataclass
class Result:
    """A finished CLI run."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.stdout)


def _cli_environ(cwd: Path | None, env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment of one CLI run: this process's, less every ``MLHUB_*`` and ``AWS_*``
    variable, with ``MLHUB_HOME`` and the AWS files in the run's folder (so a real
    ``~/.mlhub`` or ``~/.aws`` is never read, and no one's keys sign a test's requests),
    then ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLHUB_", "AWS_"))}
    home = cwd or Path.cwd()
    full_env["MLHUB_HOME"] = str(home / ".mlhub-home")
    full_env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / ".aws-home" / "credentials")
    full_env["AWS_CONFIG_FILE"] = str(home / ".aws-home" / "config")
    full_env.update(env or {})
    return full_env


def run_cli_process(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Result:
    """Run ``python -m mlhub_sync ARGS`` as a real subprocess (for tests/e2e/)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlhub_sync", *map(str, args)],
        cwd=cwd,
        env=_cli_environ(cwd, env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


# Loggers the CLI configures (``-vv`` also takes over urllib3's and requests').
_CLI_LOGGERS = ("mlhub_sync", "mlhub_sync.progress", "urllib3", "requests")


@contextlib.contextmanager
def _cli_call_isolated(cwd: Path | None, environ: Mapping[str, str]) -> Iterator[None]:
    """What a subprocess gives a run for free, for one in-process ``cli.main`` call: its own
    working directory, environment, signal handlers and logging configuration, all restored
    afterwards."""
    saved_logging = [
        (log, log.handlers[:], log.level, log.propagate)
        for log in map(logging.getLogger, _CLI_LOGGERS)
    ]
    saved_signals = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    threads_before = set(threading.enumerate())
    try:
        with pytest.MonkeyPatch.context() as mp:
            # A few code paths read os.environ rather than the environ passed to main()
            # (os.path.expanduser for "~" in spec paths, transfer.default_backend for
            # MLHUB_SYNC_HTTP): make it the run's environment too, as in a subprocess.
            for key in [k for k in os.environ if k not in environ]:
                mp.delenv(key)
            for key, value in environ.items():
                if os.environ.get(key) != value:
                    mp.setenv(key, value)
            if cwd is not None:
                mp.chdir(cwd)
            yield
    finally:
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)
        for log, handlers, level, propagate in saved_logging:
            log.handlers[:] = handlers
            log.setLevel(level)
            log.propagate = propagate
    # A subprocess would not exit while a non-daemon thread runs: the run must not leave one.
    for thread in set(threading.enumerate()) - threads_before:
        if not thread.daemon:
            thread.join(timeout=30)
            assert not thread.is_alive(), f"the CLI left a non-daemon thread running: {thread}"


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Result:
    """Run the CLI in this process: ``mlhub_sync.cli.main(ARGS, environ)`` with stdout and
    stderr captured, in ``cwd``, with the environment ``run_cli_process`` would give the
    subprocess (``timeout`` is pytest-timeout's job here; it is accepted for the same calls).
    """
    unhonoured = sorted(
        k for k, v in (env or {}).items() if k.startswith("PYTHON") and os.environ.get(k) != v
    )
    if unhonoured:  # e.g. another PYTHONHASHSEED: only a new interpreter can have it
        raise ValueError(f"{unhonoured} need a new interpreter: use run_cli_process")
    environ = _cli_environ(cwd, env)
    out, err = io.StringIO(), io.StringIO()
    # The CLI builds its logging handler from sys.stderr when called: redirect first.
    with (
        _cli_call_isolated(cwd, environ),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = mlhub_sync.cli.main([str(a) for a in args], environ)
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    """``cli(*args, env=...)`` runs the CLI (in this process, see ``run_cli``) in
    ``tmp_path`` with the sentinel API key set."""

    def run(
        *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> Result:
        return run_cli(
            *args, cwd=tmp_path, env={"MLHUB_API_KEY": API_KEY, **(env or {})}, timeout=timeout
        )

    return run


@pytest.fixture
def cli_process(tmp_path: Path) -> Any:
    """Like ``cli``, but the CLI runs as a real subprocess (``run_cli_process``)."""

    def run(
        *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> Result:
        return run_cli_process(
            *args, cwd=tmp_path, env={"MLHUB_API_KEY": API_KEY, **(env or {})}, timeout=timeout
        )

    return run


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: one worker more than there are cores. Many tests spend seconds waiting on
    purpose (stalled transfers running into their timeouts, a locked db's busy timeout,
    watch's debounce, a stalled request to kill a run at); the extra worker uses a core
    meanwhile (on 2 cores, with --dist worksteal: 69 s with 3 workers, 82 s with 2).
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own hook reads it
    return len(os.sched_getaffinity(0)) + 1


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Run ``@pytest.mark.fuzz`` tests with coverage paused: line tracing made those thousands
    of generated examples about twice as slow, and nearly all the code they reach is reached
    by example-based tests too. (pytest-cov's own ``no_cover`` marker fails under
    ``--no-cov``: pytest-cov issue 590.)"""
    cov = coverage.Coverage.current() if item.get_closest_marker("fuzz") else None
    if cov is None:
        return (yield)
    cov.stop()
    try:
        return (yield)
    finally:
        cov.start()


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--soak``: run the long version of the chaos soak (tests/e2e/test_chaos.py);
    ``--fault-defaults``: run the fault run with the real default timeouts (minutes;
    tests/e2e/test_fault_run.py)."""
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the chaos soak at full size: more assets, more kills, several seeded rounds",
    )
    parser.addoption(
        "--fault-defaults",
        action="store_true",
        default=False,
        help="run the fault run with default settings (takes minutes) instead of scaled down",
    )


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of the repository's examples (configs and the bundled quickstart data)."""
    repo = Path(__file__).resolve().parents[1]
    target = tmp_path / "examples"
    shutil.copytree(repo / "examples/configs", target / "configs")
    shutil.copytree(repo / "examples/data/quickstart", target / "data/quickstart")
    return target


_FIRST = ("tests/e2e/", "tests/integration/")  # then tests/unit/: the long poles start first


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the end-to-end tests first, then the integration tests, then the unit tests.

    Longest first is how a few workers finish together: the e2e tests (real processes, a
    soak, kills) take seconds each, the unit tests milliseconds, so the many short ones fill
    in at the end instead of one 18 s soak starting last (``--dist worksteal`` hands each
    worker consecutive tests). A stable sort: the order within each folder is kept."""

    def rank(item: pytest.Item) -> int:
        path = item.nodeid
        return next((i for i, prefix in enumerate(_FIRST) if path.startswith(prefix)), 2)

    items.sort(key=rank)
