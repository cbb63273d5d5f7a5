"""Every command's text and JSON output on the tiny dataset, against golden files made before
the architecture refactor: the refactor changed no output. ``UPDATE_GOLDEN=1`` rewrites them.

Only what varies from run to run is normalised: the temporary folder, the server's port (and
so the archive's hash), durations and timestamps.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tests.conftest import Hub

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "commands"


def normalise(text: str, tmp_path: Path, hub: Hub) -> str:
    text = text.replace(str(tmp_path), "<tmp>").replace(hub.server.url, "<server>")
    text = re.sub(r'"(seconds|last_sync)": [0-9.e+-]+', r'"\1": 0', text)
    # the archive embeds the server's port in its hrefs: its hash, ETag and the digest vary
    text = re.sub(r'"(etag|sha256|digest)": "(\\"|[^"])*"', r'"\1": "<varies>"', text)
    text = re.sub(r"\b\d+(\.\d+)?s\b", "<t>s", text)  # durations in text
    text = re.sub(
        r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?(\.\d+)?( ?UTC|Z|[+-]\d\d:?\d\d)?", "<when>", text
    )
    return re.sub(r"\b\d+(\.\d+)? ?(B|KiB|MiB|GiB)/s\b", "<rate>", text)


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file"


def test_every_command_prints_what_it_printed_before(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(
        tmp_path / "spec.yaml",
        [
            {"id": "tiny", "collection_filter": {"tiny_source": ["B02", "B03"], "tiny_labels": []}},
            {"id": "tiny", "output_dir": "./out2", "bbox": [-180, -90, 180, 90]},
        ],
    )
    runs = [
        ("validate.txt", ["validate", spec]),
        ("validate.json", ["validate", spec, "--json"]),
        ("status-before.txt", ["status", spec]),
        ("plan.txt", ["plan", spec]),
        ("plan-verbose.txt", ["plan", spec, "-v"]),
        ("apply.txt", ["apply", spec]),
        ("status.txt", ["status", spec]),
        ("status.json", ["status", spec, "--json"]),
        ("verify.txt", ["verify", spec]),
        ("verify-deep.json", ["verify", spec, "--deep", "--json"]),
        ("apply-again.json", ["apply", spec, "--json"]),
        ("plan-in-sync.json", ["plan", spec, "--json"]),
        ("lock.txt", ["lock", spec]),
        ("plan-locked.txt", ["plan", spec, "--locked"]),
        ("datasets.txt", ["datasets"]),  # the registry of where the MLHub datasets went
    ]
    for name, args in runs:
        result = cli(*args)
        assert result.code == 0, (name, result.stderr)
        check(name, normalise(result.stdout, tmp_path, hub))
        if name.endswith(".json"):
            json.loads(result.stdout)
    lock = (tmp_path / "spec.yaml.lock").read_text()
    check("spec.yaml.lock", normalise(lock, tmp_path, hub))
