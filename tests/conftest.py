"""Shared fixtures: a real HTTP server on 127.0.0.1 serving a generated MLHub-style dataset,
spec files, and a runner for the real ``mlhub-sync`` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

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


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Result:
    """Run ``python -m mlhub_sync ARGS`` as a real subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
    full_env["MLHUB_HOME"] = str((cwd or Path.cwd()) / ".mlhub-home")
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "mlhub_sync", *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    """``cli(*args, env=...)`` runs the CLI in ``tmp_path`` with the sentinel API key set."""

    def run(
        *args: str | Path, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> Result:
        return run_cli(
            *args, cwd=tmp_path, env={"MLHUB_API_KEY": API_KEY, **(env or {})}, timeout=timeout
        )

    return run


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--soak``: run the long version of the chaos soak (tests/e2e/test_chaos.py)."""
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the chaos soak at full size: more assets, more kills, several seeded rounds",
    )
