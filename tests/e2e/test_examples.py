"""The README's quickstart, run as a user would: ``plan``, ``apply``, ``status`` and ``apply``
again as real processes (on a copy of examples/, so nothing is written into the repository).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.conftest import run_cli_process


def test_quickstart_plan_apply_status_as_in_the_readme(examples: Path) -> None:
    spec = examples / "configs/quickstart.yaml"
    plan = run_cli_process("plan", spec, cwd=examples)
    assert plan.code == 0 and "download 21 files" in plan.stdout
    assert run_cli_process("apply", spec, cwd=examples).code == 0
    status = run_cli_process("status", spec, cwd=examples)
    assert "in sync 21" in status.stdout
    again = run_cli_process("apply", spec, cwd=examples)
    assert "nothing to do" in again.stdout
    out = examples / "data/out/quickstart_floods"
    source = examples / "data/quickstart/assets"
    for name in (
        "floods_source/floods_source_0/B02.tif",
        "floods_labels/floods_labels_3/labels.geojson",
    ):
        assert (
            hashlib.md5((out / name).read_bytes()).digest()
            == hashlib.md5((source / name).read_bytes()).digest()
        )
    assert (out / "_common/documentation.md").is_file()
