"""``mlhub-sync schema`` prints exactly the committed golden file (the CLI in-process; the
schema itself is tested in tests/unit/test_schema.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.unit.test_schema import REGENERATE, SCHEMA_FILE, committed_schema


def test_cli_schema_prints_exactly_the_committed_schema(tmp_path: Path) -> None:
    result = run_cli("schema", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == committed_schema(), REGENERATE
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8"), REGENERATE
