"""``mlhub-sync validate`` as a real process: run from another folder, paths resolve against
the spec's folder, and neither a key from the spec nor one from the environment is printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import API_KEY
from tests.unit.test_spec import SECRET, write_spec


def test_cli_validate_json_resolves_from_another_cwd_and_hides_the_key(
    cli: Any, tmp_path: Path
) -> None:
    spec = write_spec(
        tmp_path / "conf",
        f"""
        version: 1
        defaults:
          output_dir: ./data
          source: {{api_key: "${{MLHUB_API_KEY}}"}}
        datasets:
          - id: a
            datetime: 2019-04-01
          - id: b
            source: {{type: mlhub, api_key: {SECRET}}}
        """,
    )
    result = cli("validate", "--json", spec.relative_to(tmp_path))
    assert result.code == 0, result.stderr
    document = result.json()
    assert [d["dataset_dir"] for d in document["datasets"]] == [
        str(tmp_path / "conf" / "data" / "a"),
        str(tmp_path / "conf" / "data" / "b"),
    ]
    (time_filter,) = document["datasets"][0]["filters"]  # the whole UTC day
    assert "2019-04-01T00:00:00Z" in time_filter and "2019-04-01T23:59:59" in time_filter
    for output in (result.stdout, result.stderr):
        assert SECRET not in output and API_KEY not in output
    text = cli("validate", spec)
    assert text.code == 0
    assert SECRET not in text.stdout + text.stderr and API_KEY not in text.stdout + text.stderr
