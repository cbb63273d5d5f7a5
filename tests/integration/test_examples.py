"""The example specs work as documented (on a copy of examples/, so nothing is written into
the repository; the README's quickstart as real processes is tests/e2e/test_examples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_the_committed_team_lock_matches_its_spec(examples: Path) -> None:
    result = run_cli("apply", examples / "configs/team.yaml", "--locked", cwd=examples)
    assert result.code == 0, result.stderr
    assert "15 downloaded" in result.stdout


@pytest.mark.parametrize("name", ["filters.yaml", "stac.yaml"])
def test_offline_examples_apply(examples: Path, name: str) -> None:
    result = run_cli("apply", examples / "configs" / name, cwd=examples)
    assert result.code == 0, result.stderr
