"""Edge cases found in review, each pinned by a test against the real server and CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import yaml

from mlhub_sync.config.resolve import load_spec
from mlhub_sync.net.client import Http
from mlhub_sync.selection.layout import CommonLayout, asset_relpath
from mlhub_sync.session import DatasetRun
from tests.conftest import Hub
from tests.support.mlhub_dataset import write_archive, write_shared_href_archive
from tests.support.server import Fault


def test_stopping_while_work_is_queued_returns_promptly(tmp_path: Path, hub: Hub) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", workers=1)
    config = load_spec(spec, {"MLHUB_API_KEY": hub.api_key}).datasets[0]
    stop = threading.Event()
    hub.server.add_fault("/blobs/tiny/documentation.pdf", Fault("stall", seconds=20))
    result: list[Any] = []

    def run() -> None:
        with DatasetRun(config, Http(), {"MLHUB_API_KEY": hub.api_key}) as ds:
            result.append(ds.apply(stop=stop))

    thread = threading.Thread(target=run)
    thread.start()
    pause = threading.Event()  # never set: wait() below is a poll interval
    for _ in range(1500):  # poll for up to 30 s
        if hub.server.count("/blobs/tiny/documentation.pdf") >= 1:
            break
        pause.wait(0.02)
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive(), "apply did not return after stop"
    assert result and result[0].stats.interrupted


def test_state_db_deleted_and_head_refused_downloads_instead_of_failing(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("apply", spec, "-q").code == 0
    (tmp_path / "out/tiny/mlhub_stac_assets.db").unlink()
    blob = "/blobs/tiny/src/src_1/B03.TIF"  # no file:checksum: adoption would need a HEAD
    hub.server.add_fault(blob, Fault("status", status=403))  # presigned GET-only URLs do this
    result = cli("apply", spec)
    assert result.code == 0, result.stdout + result.stderr
    assert [r.method for r in hub.server.requests if r.path == blob][-2:] == ["HEAD", "GET"]


def test_a_publisher_adding_sha256_checksums_causes_no_redownload(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    import hashlib  # noqa: PLC0415

    shared = f"{hub.server.url}/blobs/tiny/src/src_1/B03.TIF"
    data = (hub.data.root / "blobs/tiny/src/src_1/B03.TIF").read_bytes()
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "it",
        "collection": "c",
        "geometry": None,
        "properties": {"datetime": None},
        "links": [],
        "assets": {"data": {"href": shared}},
    }
    archive = tmp_path / "x.tar.gz"

    def publish(checksum: str | None) -> None:
        asset = dict(item["assets"]["data"])  # type: ignore[index]
        if checksum:
            asset["file:checksum"] = checksum
        doc = {**item, "assets": {"data": asset}}
        write_archive(
            archive,
            [
                (
                    "catalog.json",
                    b'{"type": "Catalog", "stac_version": "1.0.0", "id": "x", "links": []}',
                ),
                ("c/it/it.json", json.dumps(doc).encode()),
            ],
            top="x",
        )
        os.utime(archive, ns=(1, 1 if checksum is None else 2))

    publish(None)
    spec = hub.spec(
        tmp_path / "spec.yaml", [{"id": "x", "source": {"type": "archive", "path": str(archive)}}]
    )
    assert cli("apply", spec, "-q").code == 0
    publish("1220" + hashlib.sha256(data).hexdigest())
    hub.server.clear_log()
    result = cli("apply", spec)
    assert result.code == 0 and "1 adopted" in result.stdout
    assert hub.server.count("/blobs/") == 0  # verified by hashing the file we have


def test_an_href_shared_by_many_items_that_fails_is_tried_once(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    shared = f"{hub.server.url}/blobs/tiny/missing.bin"
    archive = tmp_path / "x.tar.gz"
    write_shared_href_archive(archive, "x", "data", shared, items=5)
    spec = hub.spec(
        tmp_path / "spec.yaml", [{"id": "x", "source": {"type": "archive", "path": str(archive)}}]
    )
    result = cli("apply", spec)
    assert result.code == 1 and "5 FAILED" in result.stdout
    assert hub.server.count("/blobs/tiny/missing.bin") == 1  # 404, not retried 5 times


def test_an_interrupted_replacement_resumes(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", retry={"max_retries": 0, "backoff": 0.01})
    assert cli("apply", spec, "-q").code == 0
    victim = tmp_path / "out/tiny/tiny_source/src_5/B03.tif"
    victim.write_bytes(b"\0" * 5)  # wrong size: replace
    blob = "/blobs/tiny/src/src_5/B03.tif"
    hub.server.add_fault(blob, Fault("truncate", after_bytes=1000))
    assert cli("apply", spec, "-q").code == 1
    hub.server.clear_log()
    assert cli("apply", spec, "-q").code == 0
    (request,) = [r for r in hub.server.requests if r.path == blob]
    assert request.headers["range"] == "bytes=1000-" and request.status == 206


def test_a_leftover_hard_linked_part_never_damages_the_file_it_shares(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("apply", spec, "-q").code == 0
    root = tmp_path / "out/tiny"
    good = root / "tiny_source/src_0/B03.tif"
    before = good.read_bytes()
    victim = root / "tiny_source/src_1/B03.tif"
    victim.unlink()
    os.link(good, f"{victim}.part")  # as if killed between link and rename
    assert cli("apply", spec, "-q").code == 0
    assert good.read_bytes() == before


def test_status_reports_state_problems_instead_of_not_synced(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("apply", spec, "-q").code == 0
    db = sqlite3.connect(tmp_path / "out/tiny/mlhub_stac_assets.db")
    db.execute("PRAGMA user_version=99")
    db.close()
    result = cli("status", spec)
    assert result.code == 3 and "newer" in result.stderr


def test_verify_on_a_dataset_never_synced_creates_nothing(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    result = cli("verify", spec)
    assert result.code == 3 and "not been synced" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_catalog_that_turns_a_file_into_a_folder_installs(tmp_path: Path, cli: Any) -> None:
    archive = tmp_path / "x.tar.gz"
    catalog = b'{"type": "Catalog", "stac_version": "1.0.0", "id": "x", "links": []}'
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": "./out"},
                "datasets": [{"id": "x", "source": {"type": "archive", "path": str(archive)}}],
            }
        )
    )
    write_archive(archive, [("catalog.json", catalog), ("c/notes", b"v1")], top="x")
    assert cli("plan", spec, "-q").code == 0
    write_archive(archive, [("catalog.json", catalog), ("c/notes/README", b"v2")], top="x")
    os.utime(archive, ns=(5, 5))
    result = cli("plan", spec)
    assert result.code == 0, result.stderr
    assert (tmp_path / "out/x/c/notes/README").read_bytes() == b"v2"


def test_an_asset_never_lands_on_the_catalogs_own_files() -> None:
    layout = CommonLayout()
    assert asset_relpath("c", "it", "it", "https://h/it.json", None, layout) == "c/it/it.asset.json"
    assert (
        asset_relpath("c", None, "collection", "https://h/x.json", None, layout)
        == "c/collection.asset.json"
    )


def test_options_before_the_command_are_honoured(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("-q", "plan", spec).stdout == ""
    assert "DEBUG" in cli("-vv", "plan", spec).stderr


def test_detailed_exitcode_counts_pending_deletions(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("apply", spec, "-q").code == 0
    hub.spec(spec, [{"id": "tiny", "collection_filter": {"tiny_labels": []}, "prune": True}])
    assert cli("plan", spec, "--detailed-exitcode").code == 2
    hub.spec(spec, [{"id": "tiny", "collection_filter": {"tiny_labels": []}}])
    assert cli("plan", spec, "--detailed-exitcode").code == 0  # no prune: nothing to do


def test_an_unreachable_linked_stac_document_keeps_the_index_and_files(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    root = hub.data.root / "blobs" / "stac"
    root.mkdir(parents=True)
    (root / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "s",
                "description": "",
                "links": [{"rel": "child", "href": "./c/collection.json"}],
            }
        )
    )
    (root / "c").mkdir()
    (root / "c/collection.json").write_text(
        json.dumps(
            {
                "type": "Collection",
                "stac_version": "1.0.0",
                "id": "c",
                "license": "x",
                "description": "",
                "extent": {},
                "links": [{"rel": "item", "href": "./i.json"}],
            }
        )
    )
    (root / "c/i.json").write_text(
        json.dumps(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": "i",
                "collection": "c",
                "geometry": None,
                "properties": {"datetime": None},
                "links": [],
                "assets": {"data": {"href": f"{hub.server.url}/blobs/tiny/src/src_0/B02.tif"}},
            }
        )
    )
    spec = hub.spec(
        tmp_path / "spec.yaml",
        [
            {
                "id": "s",
                "prune": True,
                "source": {"type": "stac", "url": f"{hub.server.url}/blobs/stac/catalog.json"},
            }
        ],
        retry={"max_retries": 0},
    )
    assert cli("apply", spec, "-q").code == 0
    data = tmp_path / "out/s/c/i/data.tif"
    assert data.is_file()
    hub.server.add_fault("/blobs/stac/c/collection.json", Fault("status", status=503))
    result = cli("apply", spec)
    assert result.code == 1 and "503" in result.stderr
    assert data.is_file()  # not pruned
    assert cli("plan", spec, "--detailed-exitcode").code == 0  # index intact, in sync


def test_archive_limits_are_configurable_in_the_spec(tmp_path: Path, cli: Any) -> None:
    archive = tmp_path / "x.tar.gz"
    catalog = b'{"type": "Catalog", "stac_version": "1.0.0", "id": "x", "links": []}'
    write_archive(
        archive, [("catalog.json", catalog), *[(f"c/{i}.json", b"{}") for i in range(5)]], top="x"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": "./out", "archive_limits": {"max_members": 4}},
                "datasets": [{"id": "x", "source": {"type": "archive", "path": str(archive)}}],
            }
        )
    )
    result = cli("plan", spec)
    assert result.code == 1 and "beyond 4 members" in result.stderr
