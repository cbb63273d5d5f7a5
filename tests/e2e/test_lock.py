"""`mlhub-sync lock` as a real process: the lock file is byte-identical whatever the process's
hash seed (``PYTHONHASHSEED`` needs a new interpreter, so this cannot run in-process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Hub
from tests.integration.test_lock import TWO, lock_of


def test_lock_is_deterministic_and_sorted(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", TWO)
    assert cli("lock", spec).code == 0
    first = lock_of(spec).read_bytes()
    assert cli("lock", spec, env={"PYTHONHASHSEED": "123"}).code == 0
    assert lock_of(spec).read_bytes() == first
    hub.spec(spec, list(reversed(TWO)))  # the same datasets listed in another order
    assert cli("lock", spec).code == 0
    assert lock_of(spec).read_bytes() == first
    data = json.loads(first)
    assert data["format"] == "mlhub-sync.lock/1"
    assert [(d["id"], d["output_dir"]) for d in data["datasets"]] == [
        ("tiny", "labels"),
        ("tiny", "out"),
    ]
    main = data["datasets"][1]
    assert main["selection"]["assets"] == 20 == len(main["assets"])
    assert [a[0] for a in main["assets"]] == sorted(a[0] for a in main["assets"])
    assert all("SECRETSIG" not in a[1] for a in main["assets"])  # signatures are not pinned
    assert "API_KEY" not in first.decode() and hub.api_key not in first.decode()
