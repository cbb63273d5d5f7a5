"""End-to-end tests: here the ``cli`` fixture runs ``python -m mlhub_sync`` as a real
subprocess (everywhere else it calls ``mlhub_sync.cli.main`` in the test process)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def cli(cli_process: Any) -> Any:
    """``cli(*args, env=...)``: the CLI as a subprocess in ``tmp_path`` (see ``cli_process``)."""
    return cli_process
