"""``mlhub-sync validate`` on rejected specs: exit 64, naming the YAML file:line and the field
(the CLI in-process; the loader itself is tested in tests/unit/test_spec.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.errors import ExitCode
from tests.unit.test_spec import write_spec


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            """
            version: 1
            datasets:
              - id: a
                colection_filter: {c: []}
            """,
            "spec.yaml:4: datasets[0].colection_filter: unknown key 'colection_filter' "
            "(did you mean 'collection_filter'?)",
        ),
        (
            """
            version: 1
            datasets:
              - id: a
              - id: b
                bbox: [0, 95, 1, 96]
            """,
            "spec.yaml:5: datasets[1].bbox: min latitude 95.0 is outside [-90, 90]",
        ),
        (
            """
            version: 1
            datasets:
              - id: a
                output_dir: ${NO_SUCH_VAR_XYZ}
            """,
            "spec.yaml:4: datasets[0].output_dir: environment variable NO_SUCH_VAR_XYZ is not set",
        ),
        (
            """
            version: 1
            datasets:
              - id: a
                workers: 1
                workers: 2
            """,
            "spec.yaml:5: datasets[0].workers: duplicate key 'workers' (first given on line 4)",
        ),
        (
            """
            version: 1
            datasets:
              - id: a
                datetime: 2019-04-07/2019-04-01
            """,
            "spec.yaml:4: datasets[0].datetime: the range ends (2019-04-01) before it starts",
        ),
    ],
    ids=["unknown-key", "bbox-range", "missing-variable", "duplicate-key", "datetime-order"],
)
def test_cli_validate_exits_64_naming_file_line_and_field(
    cli: Any, tmp_path: Path, body: str, expected: str
) -> None:
    write_spec(tmp_path, body)
    result = cli("validate", "spec.yaml")
    assert result.code == ExitCode.USAGE == 64
    assert expected in result.stderr
    assert result.stdout == ""


def test_cli_validate_yaml_syntax_error_exits_64_with_line(cli: Any, tmp_path: Path) -> None:
    write_spec(tmp_path, "version: 1\ndatasets:\n  - id: a\n    bbox: [1, 2\n")
    result = cli("validate", "spec.yaml")
    assert result.code == 64
    assert "spec.yaml:5: invalid YAML" in result.stderr
