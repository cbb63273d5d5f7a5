"""`mlhub-sync lock` and `--locked`: deterministic lock files, drift refused with a clear diff,
and files verified against the lock's checksums where the catalog has none."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Hub, run_cli
from tests.support.mlhub_dataset import build_tiny
from tests.support.server import Fault

TWO = [
    {"id": "tiny"},
    {"id": "tiny", "output_dir": "./labels", "collection_filter": {"tiny_labels": []}},
]


def lock_of(spec: Path) -> Path:
    return spec.with_name(spec.name + ".lock")


def test_locked_apply_passes_when_nothing_drifted(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("lock", spec).code == 0
    result = cli("apply", spec, "--locked")
    assert result.code == 0, result.stderr
    plan = cli("plan", spec, "--locked", "--json").json()
    assert plan["datasets"][0]["lock"]["drifted"] is False


def test_upstream_change_is_refused_with_a_diff(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("lock", spec).code == 0
    shutil.rmtree(hub.data.root / "blobs" / "tiny")  # upstream publishes new files
    build_tiny(hub.data.root, hub.server.url, size=4096)
    result = cli("apply", spec, "--locked")
    assert result.code == 3
    assert "--locked" in result.stderr and "the upstream catalog changed" in result.stderr
    assert "changed" in result.stderr and "~ tiny_source/src_0/B02.tif" in result.stderr
    assert not (tmp_path / "out/tiny/tiny_source").exists() or not any(
        (tmp_path / "out/tiny/tiny_source").rglob("*.tif")
    )  # nothing downloaded
    plan = cli("plan", spec, "--locked", "--json")
    assert plan.code == 3
    lock = plan.json()["datasets"][0]["lock"]
    assert lock["catalog_changed"] and lock["changed"] == 6  # six B02 with file:size
    assert cli("apply", spec).code == 0  # without --locked the new catalog is used


def test_a_changed_selection_is_drift(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("lock", spec).code == 0
    hub.spec(spec, [{"id": "tiny", "collection_filter": {"tiny_labels": []}}])
    result = cli("plan", spec, "--locked")
    assert result.code == 3
    assert "lock: DRIFT: selection: 0 added, 14 removed, 0 changed" in result.stdout


def test_lock_checksums_verify_assets_the_catalog_has_none_for(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("apply", spec).code == 0
    assert cli("lock", spec).code == 0  # pins the MD5s of our verified downloads
    assets = {a[0]: a for a in json.loads(lock_of(spec).read_text())["datasets"][0]["assets"]}
    assert assets["tiny_source/src_1/B03.tif"][4] == "download"  # no file:checksum upstream
    assert assets["tiny_source/src_0/B02.tif"][4] == "catalog"
    # a teammate's fresh machine: the server corrupts the first response for that asset
    shutil.rmtree(tmp_path / "out")
    blob = "/blobs/tiny/src/src_1/B03.TIF"
    hub.server.add_fault(blob, Fault("corrupt"))
    hub.server.clear_log()
    assert cli("apply", spec, "--locked").code == 0
    assert hub.server.count(blob) == 2  # the lock's checksum caught the corrupt body
    db = sqlite3.connect(tmp_path / "out/tiny/mlhub_stac_assets.db")
    try:
        verified = db.execute(
            "SELECT verified_by FROM files WHERE path = ?", ("tiny_source/src_1/B03.tif",)
        ).fetchone()[0]
    finally:
        db.close()
    assert verified == "file:checksum"


def test_missing_lock_file_is_a_clear_error(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    result = cli("apply", spec, "--locked")
    assert result.code == 3
    assert "no lock file" in result.stderr and "mlhub-sync lock" in result.stderr


def test_a_local_catalog_locks_the_same_wherever_the_repo_is(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    locks = []
    for name in ("a", "b"):
        copy = tmp_path / name / "examples"
        shutil.copytree(repo / "examples/configs", copy / "configs")
        shutil.copytree(repo / "examples/data/quickstart", copy / "data/quickstart")
        spec = copy / "configs/quickstart.yaml"
        result = run_cli("lock", spec, "-q", cwd=tmp_path)
        assert result.code == 0, result.stderr
        locks.append(lock_of(spec).read_bytes())
    assert locks[0] == locks[1]
    assert b'"file:../data/quickstart/assets/' in locks[0]
    assert yaml.safe_load(locks[0])["datasets"][0]["output_dir"] == "../data/out"
