"""The first five minutes: messages a new user meets read right (counts in the singular,
validate names a missing archive, verify says how to repair)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.cli.render import count
from mlhub_sync.errors import ExitCode
from tests.conftest import Hub


@pytest.mark.parametrize(
    ("n", "noun", "text"),
    [
        (0, "file", "0 files"),
        (1, "file", "1 file"),
        (2, "item", "2 items"),
        (1, "managed file", "1 managed file"),
    ],
)
def test_counts_take_the_singular_for_one(n: int, noun: str, text: str) -> None:
    assert count(n, noun) == text


def test_validate_of_one_dataset_says_dataset(tmp_path: Path, hub: Hub, cli: Any) -> None:
    result = cli("validate", hub.spec(tmp_path / "spec.yaml"))
    assert result.code == ExitCode.OK
    assert "valid (1 dataset)" in result.stdout


def test_validate_names_a_missing_archive_and_fails(tmp_path: Path, cli: Any) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "datasets:\n"
        "  - id: here\n    source: {type: stac, path: ./catalog.json}\n"
        "  - id: gone\n    source: {type: archive, path: ./catalogs/gone.tar.gz}\n"
    )
    (tmp_path / "catalog.json").write_text("{}")
    result = cli("validate", spec)
    assert result.code == ExitCode.USAGE
    assert "valid, but 1 dataset cannot run (2 in all)" in result.stdout
    assert (
        f"problem: source.path: the archive {tmp_path / 'catalogs' / 'gone.tar.gz'} does not "
        "exist, so apply would fail" in result.stdout
    )
    data = cli("validate", spec, "--json").json()
    assert [d["problems"] != [] for d in data["datasets"]] == [False, True]


def test_verify_that_finds_problems_says_how_to_repair(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("apply", spec).code == ExitCode.OK
    clean = cli("verify", spec)
    assert clean.code == ExitCode.OK
    assert "mlhub-sync apply" not in clean.stdout
    next((tmp_path / "out" / "tiny").rglob("B02.tif")).unlink()
    result = cli("verify", spec)
    assert result.code == ExitCode.FAILURES
    assert "1 missing" in result.stdout
    assert f"run `mlhub-sync apply {spec}` to fetch those files again" in result.stdout


def test_progress_lines_without_a_terminal_read_as_output_not_as_log_records(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    result = cli("apply", hub.spec(tmp_path / "spec.yaml"))
    assert result.code == ExitCode.OK, result.stderr
    lines = result.stderr.splitlines()
    assert "unarchive tiny.tar.gz: 14 files" in result.stderr  # the archive's name, not a .part
    assert ".part" not in result.stderr
    assert not [line for line in lines if line.startswith("INFO")]
    assert any(line.startswith("download assets: ") for line in lines)
    verbose = cli("apply", hub.spec(tmp_path / "fresh.yaml", output_dir="./fresh"), "-v")
    assert "INFO mlhub_sync." in verbose.stderr  # -v shows where each line comes from
