"""`apply`: the reconcile guarantees, checked through the CLI (in-process) against the request
log of the real local server."""

from __future__ import annotations

import csv
import hashlib
import os
import sqlite3
from pathlib import Path

from mlhub_sync.state.lock import DatasetLock
from tests.conftest import API_KEY, Hub, Result
from tests.support.server import Fault, RequestRecord

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def out_dir(tmp_path: Path, hub: Hub) -> Path:
    return tmp_path / "out" / hub.data.dataset_id


def asset_requests(hub: Hub, method: str = "GET") -> list[RequestRecord]:
    prefix = f"/blobs/{hub.data.dataset_id}/"
    return [r for r in hub.server.requests if r.method == method and r.path.startswith(prefix)]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def assert_tree_correct(tmp_path: Path, hub: Hub) -> None:
    root = out_dir(tmp_path, hub)
    wrong = [
        a.expected_path
        for a in hub.data.unique_assets().values()
        if not (root / a.expected_path).is_file() or md5(root / a.expected_path) != a.md5
    ]
    assert wrong == []
    assert not list(root.rglob("*.part"))


def apply_ok(cli: object, spec: Path, *args: str) -> Result:
    result: Result = cli("apply", spec, *args)  # type: ignore[operator]
    assert result.code == 0, result.stderr
    return result


def test_fresh_apply_writes_the_documented_layout(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    result = apply_ok(cli, spec)
    assert "tiny:" in result.stdout
    assert_tree_correct(tmp_path, hub)
    root = out_dir(tmp_path, hub)
    tree = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and p.name not in ("mlhub_stac_assets.db-wal", "mlhub_stac_assets.db-shm")
    )
    golden = GOLDEN / "tiny_tree.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text("\n".join(tree) + "\n")
    assert tree == golden.read_text().split()
    assert not (root / "mlhub_errors.csv").exists()


def test_api_key_goes_to_the_api_only(tmp_path: Path, hub: Hub, cli: object) -> None:
    apply_ok(cli, hub.spec(tmp_path / "spec.yaml"))
    api = [r for r in hub.server.requests if r.path.startswith("/api/")]
    assert api and all(r.query.get("key") == API_KEY for r in api)
    others = [r for r in hub.server.requests if not r.path.startswith("/api/")]
    assert others and all("key" not in r.query for r in others)


def test_second_apply_makes_no_asset_request(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    hub.server.clear_log()
    result = apply_ok(cli, spec)
    assert "nothing to do" in result.stdout
    assert asset_requests(hub) == [] and asset_requests(hub, "HEAD") == []
    catalog = [r for r in hub.server.requests if "catalog" in r.path or "archives" in r.path]
    assert [(r.path, r.status) for r in catalog] == [
        ("/api/catalog/tiny", 302),
        ("/blobs/archives/tiny.tar.gz", 304),
    ]
    assert "if-none-match" in catalog[1].headers


def test_a_deleted_file_is_downloaded_again_alone(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    victim = out_dir(tmp_path, hub) / "tiny_source/src_3/B03.tif"
    victim.unlink()
    hub.server.clear_log()
    apply_ok(cli, spec)
    assert [r.path for r in asset_requests(hub)] == ["/blobs/tiny/src/src_3/B03.tif"]
    assert_tree_correct(tmp_path, hub)


def test_truncated_file_is_replaced(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    victim = out_dir(tmp_path, hub) / "tiny_source/src_0/B02.tif"
    victim.write_bytes(victim.read_bytes()[:100])
    plan = cli("plan", spec, "--json").json()  # type: ignore[operator]
    assert plan["datasets"][0]["actions"]["replace"]["reasons"]["size-mismatch"]["files"] == 1
    hub.server.clear_log()
    apply_ok(cli, spec)
    assert [r.path for r in asset_requests(hub)] == ["/blobs/tiny/src/src_0/B02.tif"]
    assert_tree_correct(tmp_path, hub)


def test_touched_but_intact_file_is_verified_locally_not_downloaded(
    tmp_path: Path, hub: Hub, cli: object
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    victim = out_dir(tmp_path, hub) / "tiny_source/src_1/B03.tif"
    os.utime(victim, ns=(1_000_000_000, 1_000_000_000))
    plan = cli("plan", spec, "--json").json()  # type: ignore[operator]
    assert plan["datasets"][0]["actions"]["verify"]["reasons"]["modified-locally"]["files"] == 1
    hub.server.clear_log()
    apply_ok(cli, spec)
    assert asset_requests(hub) == [] and asset_requests(hub, "HEAD") == []
    hub.server.clear_log()
    apply_ok(cli, spec)  # the refreshed record makes the next run a no-op
    assert asset_requests(hub) == []


def test_modified_content_of_same_size_is_replaced(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    victim = out_dir(tmp_path, hub) / "tiny_source/src_1/B03.tif"
    victim.write_bytes(b"\0" * victim.stat().st_size)
    hub.server.clear_log()
    apply_ok(cli, spec)
    assert [r.path for r in asset_requests(hub)] == ["/blobs/tiny/src/src_1/B03.TIF"]
    assert_tree_correct(tmp_path, hub)


def test_partial_download_is_resumed_with_range(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", retry={"max_retries": 0, "backoff": 0.01})
    blob = "/blobs/tiny/src/src_5/B02.tif"
    hub.server.add_fault(blob, Fault("truncate", after_bytes=1000))
    first = cli("apply", spec)  # type: ignore[operator]
    assert first.code == 1
    part = out_dir(tmp_path, hub) / "tiny_source/src_5/B02.tif.part"
    assert part.stat().st_size == 1000
    hub.server.clear_log()
    plan = cli("plan", spec, "--json").json()  # type: ignore[operator]
    assert plan["datasets"][0]["actions"]["resume"]["files"] == 1
    apply_ok(cli, spec)
    gets = asset_requests(hub)
    assert [r.path for r in gets] == [blob]
    assert gets[0].headers["range"] == "bytes=1000-"
    assert gets[0].headers["if-range"].startswith('"')
    assert gets[0].status == 206
    assert_tree_correct(tmp_path, hub)


def test_deleted_state_db_adopts_intact_files_on_evidence(
    tmp_path: Path, hub: Hub, cli: object
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    root = out_dir(tmp_path, hub)
    for name in ("mlhub_stac_assets.db", "mlhub_stac_assets.db-wal", "mlhub_stac_assets.db-shm"):
        (root / name).unlink(missing_ok=True)
    hub.server.clear_log()
    result = apply_ok(cli, spec)
    assert asset_requests(hub) == []
    heads = asset_requests(hub, "HEAD")
    with_checksum = {a.blob for a in hub.data.assets if "checksum" in a.expected_path}
    assert heads and not with_checksum  # heads only for assets without file:checksum
    assert "adopted" in result.stdout
    hub.server.clear_log()
    apply_ok(cli, spec)
    assert asset_requests(hub) == [] and asset_requests(hub, "HEAD") == []


def test_a_file_we_did_not_write_is_not_trusted_by_name(
    tmp_path: Path, hub: Hub, cli: object
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    impostor = out_dir(tmp_path, hub) / "tiny_source/src_4/B03.tif"
    impostor.parent.mkdir(parents=True)
    impostor.write_bytes(b"x" * (2048 + 100 + 4))  # right size, wrong bytes
    apply_ok(cli, spec)
    assert_tree_correct(tmp_path, hub)
    assert "/blobs/tiny/src/src_4/B03.tif" in [r.path for r in asset_requests(hub)]


def test_shared_href_is_fetched_once(tmp_path: Path, hub: Hub, cli: object) -> None:
    apply_ok(cli, hub.spec(tmp_path / "spec.yaml"))
    docs = [r for r in asset_requests(hub) if r.path.endswith("documentation.pdf")]
    assert len(docs) == 1
    assert (out_dir(tmp_path, hub) / "_common/documentation.pdf").is_file()


def test_narrowing_filters_deletes_nothing_and_reports_not_desired(
    tmp_path: Path, hub: Hub, cli: object
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    before = {p for p in out_dir(tmp_path, hub).rglob("*") if p.is_file()}
    narrow = [{"id": "tiny", "collection_filter": {"tiny_labels": ["labels"]}}]
    hub.spec(spec, narrow)
    apply_ok(cli, spec)
    after = {p for p in out_dir(tmp_path, hub).rglob("*") if p.is_file()}
    assert before <= after
    plan = cli("plan", spec, "--json").json()  # type: ignore[operator]
    # 4 labels + class_map are selected; the 15 others are managed but not desired
    assert plan["datasets"][0]["selection"]["files"] == 5
    assert plan["datasets"][0]["not_desired"]["files"] == 15
    status = cli("status", spec, "--json").json()  # type: ignore[operator]
    assert status["datasets"][0]["not_desired"]["files"] == 15


def test_prune_respects_max_delete_and_then_deletes(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    narrow = [
        {"id": "tiny", "collection_filter": {"tiny_labels": []}, "prune": True, "max_delete": 3}
    ]
    hub.spec(spec, narrow)
    refused = cli("apply", spec)  # type: ignore[operator]
    assert refused.code == 1  # asked to prune and could not: not a success
    assert "prune skipped" in refused.stdout and "max_delete" in refused.stdout
    root = out_dir(tmp_path, hub)
    assert (root / "tiny_source/src_0/B02.tif").exists()
    forced = apply_ok(cli, spec, "--force")
    assert "pruned 14" in forced.stdout  # 20 selected before, 6 now (labels, class_map, docs)
    assert not (root / "tiny_source/src_0/B02.tif").exists()
    assert (root / "tiny_source/src_0/src_0.json").exists()  # the catalog is not pruned
    assert (root / "tiny_labels/lbl_0/labels.geojson").exists()


def test_prune_never_runs_after_errors(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    hub.spec(spec, [{"id": "tiny", "collection_filter": {"tiny_labels": []}, "prune": True}])
    (out_dir(tmp_path, hub) / "tiny_labels/lbl_2/labels.geojson").unlink()
    hub.server.add_fault("/blobs/tiny/lbl/lbl_2/labels.geojson", Fault("status", status=404))
    result = cli("apply", spec)  # type: ignore[operator]
    assert result.code == 1
    assert "not pruning after a run with errors" in result.stdout
    assert (out_dir(tmp_path, hub) / "tiny_source/src_0/B02.tif").exists()


def test_failures_are_reported_and_the_report_clears(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    blob = "/blobs/tiny/src/src_3/B04.tif"
    hub.server.add_fault(blob, Fault("status", status=404))
    hub.server.add_fault("/blobs/tiny/src/src_2/B04", Fault("status", status=403))
    result = cli("apply", spec)  # type: ignore[operator]
    assert result.code == 1
    assert "2 FAILED" in result.stdout
    report = out_dir(tmp_path, hub) / "mlhub_errors.csv"
    with report.open() as f:
        rows = list(csv.DictReader(f))
    assert {r["error"] for r in rows} == {"http-404", "http-403"}
    assert rows[0].keys() == {
        "dataset",
        "collection",
        "item",
        "asset_key",
        "url",
        "error",
        "message",
        "attempts",
    }
    signed = next(r for r in rows if r["item"] == "src_3")
    assert "SECRETSIG" not in signed["url"] and "sig=***" in signed["url"]
    assert [r.path for r in asset_requests(hub)].count(blob) == 1  # 404 is not retried
    apply_ok(cli, spec)
    assert not report.exists()
    assert_tree_correct(tmp_path, hub)


def test_faults_are_survived(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    s = hub.server
    s.add_fault("/blobs/tiny/src/src_0/B02.tif", Fault("status", status=429, retry_after="1"))
    s.add_fault(
        "/blobs/tiny/src/src_1/B02.tif", Fault("status", status=503), Fault("status", status=503)
    )
    s.add_fault("/blobs/tiny/src/src_2/B02.tif", Fault("reset", after_bytes=700))
    s.add_fault("/blobs/tiny/src/src_4/B02.tif", Fault("truncate", after_bytes=500))
    s.add_fault("/blobs/tiny/src/src_5/B02.tif", Fault("corrupt"))
    s.add_fault("/blobs/tiny/lbl/lbl_1/labels.geojson", Fault("corrupt"))
    s.add_fault(
        "/blobs/tiny/src/src_0/B03.tif", Fault("truncate", after_bytes=900), Fault("ignore_range")
    )
    apply_ok(cli, spec)
    assert_tree_correct(tmp_path, hub)
    gets = asset_requests(hub)

    def tries(path: str) -> list[RequestRecord]:
        return [r for r in gets if r.path == path]

    assert [r.status for r in tries("/blobs/tiny/src/src_0/B02.tif")] == [429, 200]
    assert [r.status for r in tries("/blobs/tiny/src/src_1/B02.tif")] == [503, 503, 200]
    # A reset may drop bytes already sent (the kernel discards them on RST): retried either way.
    assert len(tries("/blobs/tiny/src/src_2/B02.tif")) == 2
    assert tries("/blobs/tiny/src/src_4/B02.tif")[1].headers["range"] == "bytes=500-"
    assert len(tries("/blobs/tiny/src/src_5/B02.tif")) == 2  # corrupt -> one restart
    ignored = tries("/blobs/tiny/src/src_0/B03.tif")
    assert ignored[1].headers["range"] == "bytes=900-" and ignored[1].status == 200


def test_second_apply_on_a_locked_folder_exits_3(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    with DatasetLock(out_dir(tmp_path, hub)):
        result = cli("apply", spec)  # type: ignore[operator]
    assert result.code == 3
    assert f"pid {os.getpid()}" in result.stderr


def test_catalog_only_downloads_no_asset(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", catalog_only=True)
    apply_ok(cli, spec)
    root = out_dir(tmp_path, hub)
    assert (root / "catalog.json").is_file() and (root / "tiny.tar.gz").is_file()
    assert asset_requests(hub) == []


def test_asset_output_dir_separates_assets_from_catalog(
    tmp_path: Path, hub: Hub, cli: object
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", asset_output_dir="./assets")
    apply_ok(cli, spec)
    assert (tmp_path / "out/tiny/catalog.json").is_file()
    assert (tmp_path / "assets/tiny/tiny_source/src_0/B02.tif").is_file()
    assert not (tmp_path / "out/tiny/tiny_source/src_0/B02.tif").exists()
    hub.server.clear_log()
    apply_ok(cli, spec)
    assert asset_requests(hub) == []


def test_state_db_is_a_documented_sqlite_file(tmp_path: Path, hub: Hub, cli: object) -> None:
    apply_ok(cli, hub.spec(tmp_path / "spec.yaml"))
    db = sqlite3.connect(out_dir(tmp_path, hub) / "mlhub_stac_assets.db")
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        verified = dict(db.execute("SELECT path, verified_by FROM files").fetchall())
    finally:
        db.close()
    assert verified["tiny_source/src_0/B02.tif"] == "file:checksum"
    assert verified["tiny_source/src_1/B03.tif"] == "s3-etag"


def test_a_non_common_href_shared_by_items_is_fetched_once_and_linked(
    tmp_path: Path, hub: Hub, cli: object
) -> None:
    from tests.support.mlhub_dataset import write_shared_href_archive  # noqa: PLC0415

    shared = f"{hub.server.url}/blobs/tiny/src/src_0/B02.tif"  # any served blob will do
    archive = tmp_path / "shared.tar.gz"
    write_shared_href_archive(archive, "shared", "metadata", shared, items=3)
    spec = hub.spec(
        tmp_path / "spec.yaml",
        [{"id": "shared", "source": {"type": "archive", "path": str(archive)}}],
    )
    result = apply_ok(cli, spec)
    assert "1 downloaded" in result.stdout and "2 linked" in result.stdout
    gets = [r for r in hub.server.requests if r.path == "/blobs/tiny/src/src_0/B02.tif"]
    assert len(gets) == 1
    paths = [tmp_path / f"out/shared/c/it{i}/metadata.tif" for i in range(3)]
    assert len({p.stat().st_ino for p in paths}) == 1  # one file, hard-linked three times
    hub.server.clear_log()
    apply_ok(cli, spec)
    assert hub.server.requests == [] or all("/blobs/" not in r.path for r in hub.server.requests)


def test_prune_flag_deletes_only_managed_files(tmp_path: Path, hub: Hub, cli: object) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    apply_ok(cli, spec)
    root = out_dir(tmp_path, hub)
    mine = root / "tiny_source/src_0/my_notes.txt"  # a file the user put there
    mine.write_text("keep me")
    hub.spec(spec, [{"id": "tiny", "collection_filter": {"tiny_labels": []}}])
    plain = apply_ok(cli, spec)
    assert "pruned" not in plain.stdout and (root / "tiny_source/src_0/B02.tif").exists()
    pruned = apply_ok(cli, spec, "--prune")
    assert "pruned 14" in pruned.stdout
    assert not (root / "tiny_source/src_0/B02.tif").exists()
    assert mine.read_text() == "keep me"
    assert (root / "catalog.json").exists() and (root / "mlhub_stac_assets.db").exists()
    status = cli("status", spec, "--json").json()  # type: ignore[operator]
    assert status["datasets"][0]["not_desired"]["files"] == 0
