"""The s3 source against a real S3 (moto_server on 127.0.0.1) behind a Source-Cooperative-style
front (anonymous, path-style, max-keys capped at 1000, 403 without a User-Agent): a listing
over several pages read through templates and a sidecar, filters on the sidecar's geometry
and datetime, a re-run with no asset request, corrupt bytes caught, prune, the lock, the
mirror layout's tree, and the synced catalog as pystac opens it."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pystac
import pytest
import yaml

from mlhub_sync.errors import ExitCode
from mlhub_sync.selection.layout import mirror_relpath
from tests.conftest import run_cli
from tests.support.moto_s3 import MotoS3, SourceCoopFront, content, source_coop

BUCKET = "radiantearth"
CHIPS = 100  # 300 keys of chips under cc/, and 2,300 that no template reads: three pages
EXTRA = 2300

FEATURES = "{split}_features/{item}/{asset}.tif"
LABELS = "{split}_labels/{item}.tif"


def _metadata_csv() -> bytes:
    """One row per chip: lon (i % 50) / 10, lat (i // 50) / 10, day 1 + i % 28 of 2020-01."""
    rows = ["chip_id,datetime,geometry,location"]
    for i in range(CHIPS):
        lon, lat = (i % 50) / 10, (i // 50) / 10
        rows.append(f"c{i:04},2020-01-{1 + i % 28:02}T10:00:00Z,POINT ({lon} {lat}),site{i % 3}")
    return ("\n".join(rows) + "\n").encode()


def _small(prefix: str, items: int = 4) -> dict[str, int | bytes]:
    return {f"{prefix}/scene{i}/{band}.tif": 100 + i for i in range(items) for band in ("a", "b")}


def _seed() -> dict[str, dict[str, int | bytes]]:
    keys: dict[str, int | bytes] = {}
    for i in range(CHIPS):
        for band in ("B02", "B03"):
            keys[f"cc/train_features/c{i:04}/{band}.tif"] = 32
        keys[f"cc/train_labels/c{i:04}.tif"] = 32
    keys["cc/train_metadata.csv"] = _metadata_csv()
    keys["cc/README.md"] = b"no template reads me"
    keys.update({f"cc/extra/k{i:05}.bin": 1 for i in range(EXTRA)})
    for name in ("rerun", "corrupt", "prune", "lock", "unmatched"):
        keys.update(_small(name))
    keys["unmatched/notes.txt"] = b"x"
    hostile = {
        "mirror/top.txt": b"top",
        "mirror/a/b/c.tif": b"deep",
        "mirror/../escape.txt": b"escape",  # a key, not a path: S3 allows it (not synced: a
        # client removes the dot segments of its URL and would GET another key)
        "mirror/a//double.txt": b"double",
        "mirror/catalog.json": b"not the catalog",
        "mirror/" + "n" * 240 + ".tif": b"long",
        "mirror/sp ace/%41.txt": b"quoted",
    }
    keys.update(hostile)
    keys.update(_cloud_cover())
    return {BUCKET: keys}


COOP = "cloud-cover-detection-challenge/final/public/"


def _cloud_cover() -> dict[str, int | bytes]:
    """A few chips of the tree the example spec names, as Source Cooperative holds it."""
    keys: dict[str, int | bytes] = {}
    rows = ["chip_id,location,datetime,cloudpath"]
    for chip in ("adwp", "adwu", "adwz"):
        keys.update(
            {f"{COOP}train_features/{chip}/{b}.tif": 20 for b in ("B02", "B03", "B04", "B08")}
        )
        keys[f"{COOP}train_labels/{chip}.tif"] = 20
        rows.append(f"{chip},Chifunfu,2020-04-29T08:20:47Z,az://./train_features/{chip}")
    keys[f"{COOP}train_metadata.csv"] = ("\n".join(rows) + "\n").encode()
    return keys


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoS3, SourceCoopFront]]:
    with source_coop(tmp_path_factory.mktemp("moto"), _seed()) as pair:
        yield pair


def write_spec(path: Path, front: SourceCoopFront, prefix: str, **dataset: Any) -> Path:
    source = {"type": "s3", "bucket": BUCKET, "endpoint": front.url, "prefix": prefix}
    source.update(dataset.pop("source", {}))
    spec = {
        "defaults": {
            "output_dir": "./out",
            "workers": 4,
            "retry": {"max_retries": 2, "backoff": 0.01, "max_backoff": 0.05},
        },
        "datasets": [{"id": dataset.pop("id", "ds"), "source": source, **dataset}],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def data_files(folder: Path) -> set[str]:
    """The files below ``folder`` but the tool's own (state, lock, catalog documents)."""
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.endswith(".json")
        and not p.name.startswith((".mlhub", "mlhub_"))
    }


def _bare_listing_status(front: SourceCoopFront) -> int:
    host, port = front.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", "/radiantearth?list-type=2&prefix=cc/", skip_accept_encoding=True)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_listing_over_pages_syncs_what_the_sidecar_filters_select(
    tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    _, front = store
    spec = write_spec(
        tmp_path / "spec.yaml",
        front,
        "cc/",
        id="cloud",
        source={"template": [FEATURES, LABELS], "sidecar": {"key": "train_metadata.csv",
                "id_column": "chip_id"}},
        bbox=[-0.05, -0.05, 0.45, 0.05],  # lon 0..0.4, lat 0: chips 0..4
        datetime={"start": "2020-01-01", "end": "2020-01-03T23:59:59Z"},  # chips 0..2 (and 28..)
    )  # fmt: skip
    before = len(front.listings())
    result = cli("apply", spec, "--json")
    assert result.code == ExitCode.OK, result.stderr
    pages = front.listings()[before:]
    assert len(pages) == 3  # 2,602 keys at 1,000 a page
    assert all(p.user_agent and p.query["max-keys"] == "1000" for p in pages)
    assert _bare_listing_status(front) == 403  # which a request without one would get
    out = tmp_path / "out" / "cloud"
    expected = {
        f"cloud/c{i:04}/{asset}.tif" for i in range(3) for asset in ("B02", "B03", f"c{i:04}")
    } | {"cloud/train_metadata.csv"}  # the sidecar is synced too, beside its collection
    assert data_files(out) == expected
    assert (out / "cloud/c0001/B02.tif").read_bytes() == content(
        "cc/train_features/c0001/B02.tif", 32
    )
    # the item carries the template's fields and the sidecar's facts
    item = json.loads((out / "cloud/c0001/c0001.json").read_text())
    assert item["properties"]["split"] == "train" and item["properties"]["location"] == "site1"
    assert item["properties"]["datetime"] == "2020-01-02T10:00:00Z"
    assert item["bbox"] == [0.1, 0.0, 0.1, 0.0]
    # the plan counts the keys no template reads, and names the first hundred
    unmatched = result.json()["datasets"][0]["catalog"]["unmatched_keys"]
    assert unmatched["count"] == EXTRA + 1
    assert unmatched["sample"][:2] == ["README.md", "extra/k00000.bin"]
    assert len(unmatched["sample"]) == 100
    # a re-run asks for no asset again, nor the sidecar: its listed ETag is in the listing's
    # digest, and the listing is the one indexed
    assets = ("/radiantearth/cc/train_features/", "/radiantearth/cc/train_labels/")
    gets = [front.count(prefix) for prefix in assets]
    table = front.count("/radiantearth/cc/train_metadata.csv")
    again = cli("apply", spec)
    assert again.code == ExitCode.OK, again.stderr
    assert [front.count(prefix) for prefix in assets] == gets
    assert front.count("/radiantearth/cc/train_metadata.csv") == table
    # the synced catalog is STAC with local hrefs, as pystac reads it
    catalog = pystac.Catalog.from_file(str(out / "catalog.json"))
    items = list(catalog.get_items(recursive=True))
    assert len(items) == 3
    for found in items:
        for asset in found.assets.values():
            href = asset.get_absolute_href()
            assert href is not None and Path(href).is_file(), href


def test_the_plan_lists_keys_no_template_reads(
    tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    _, front = store
    spec = write_spec(
        tmp_path / "spec.yaml",
        front,
        "unmatched/",
        source={"template": "{item}/{asset}.tif", "requester_pays": True},
    )
    result = cli("plan", spec)
    assert result.code == ExitCode.OK, result.stderr
    assert front.listings()[-1].headers["x-amz-request-payer"] == "requester"
    assert "1 key matches no template (not synced)" in result.stdout
    assert "    notes.txt" in result.stdout


def test_a_rerun_makes_no_asset_request(
    tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    _, front = store
    spec = write_spec(tmp_path / "spec.yaml", front, "rerun/")
    assert cli("apply", spec).code == ExitCode.OK
    out = tmp_path / "out/ds"
    assert data_files(out) == {f"ds/scene{i}/{b}.tif" for i in range(4) for b in "ab"}
    gets = front.count("/radiantearth/rerun/")
    assert gets == 8
    assert cli("apply", spec).code == ExitCode.OK
    assert front.count("/radiantearth/rerun/") == gets


def test_corrupt_bytes_are_caught_by_the_etag_and_fetched_again(
    tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    _, front = store
    front.add_fault("/radiantearth/corrupt/scene1/a.tif", "corrupt")
    spec = write_spec(tmp_path / "spec.yaml", front, "corrupt/")
    result = cli("apply", spec)
    assert result.code == ExitCode.OK, result.stderr
    got = (tmp_path / "out/ds/ds/scene1/a.tif").read_bytes()
    assert got == content("corrupt/scene1/a.tif", 101)
    assert front.count("/radiantearth/corrupt/scene1/a.tif") == 2  # the bad copy, then a good one


def test_a_key_gone_upstream_is_pruned(
    tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    moto, front = store
    spec = write_spec(tmp_path / "spec.yaml", front, "prune/", prune=True)
    assert cli("apply", spec).code == ExitCode.OK
    gone = tmp_path / "out/ds/ds/scene2/b.tif"
    assert gone.is_file()
    moto.delete(BUCKET, "prune/scene2/b.tif")
    result = cli("apply", spec)
    assert result.code == ExitCode.OK, result.stderr
    assert not gone.exists()
    assert (tmp_path / "out/ds/ds/scene2/a.tif").is_file()


def test_the_lock_holds_and_an_upstream_change_is_drift(
    tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    moto, front = store
    spec = write_spec(tmp_path / "spec.yaml", front, "lock/")
    assert cli("lock", spec).code == ExitCode.OK
    assert cli("apply", spec, "--locked").code == ExitCode.OK
    moto.put(BUCKET, "lock/scene0/a.tif", b"new bytes, another size")
    result = cli("plan", spec, "--locked")
    assert result.code == 3, result.stderr
    assert "--locked" in result.stderr and "1 changed" in result.stderr


def test_the_mirror_layout_writes_the_stores_tree_and_nothing_outside(
    tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    _, front = store
    canary = tmp_path / "out" / "escape.txt"
    spec = write_spec(
        tmp_path / "spec.yaml", front, "mirror/", id="tree", source={"layout": "mirror"}
    )
    result = cli("apply", spec)
    assert result.code == ExitCode.OK, result.stderr
    out = tmp_path / "out/tree"
    keys = [k.removeprefix("mirror/") for k in _seed()[BUCKET] if k.startswith("mirror/")]
    synced = [k for k in keys if not k.endswith(".json") and ".." not in k]
    assert data_files(out) == {mirror_relpath(k) for k in synced}
    assert (out / "top.txt").read_bytes() == b"top"
    assert (out / "a/b/c.tif").read_bytes() == b"deep"
    assert "../escape.txt" in result.stderr  # named with the keys no template reads
    assert (out / "sp ace/%41.txt").read_bytes() == b"quoted"  # percent-encoded on the way
    assert (out / "_catalog.json").read_bytes() == b"not the catalog"
    assert json.loads((out / "catalog.json").read_text())["type"] == "Catalog"
    assert not canary.exists()
    assert sorted(os.listdir(tmp_path / "out")) == ["tree"]


def test_the_source_cooperative_example_syncs_the_tree_torchgeo_opens(
    examples: Path, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    _, front = store
    spec = examples / "configs/source-cooperative.yaml"
    assert run_cli("validate", spec, cwd=examples).code == ExitCode.OK
    text = spec.read_text()
    assert "endpoint: https://data.source.coop" in text
    spec.write_text(text.replace("https://data.source.coop", front.url))
    result = run_cli("apply", spec, cwd=examples)
    assert result.code == ExitCode.OK, result.stderr
    out = examples / "data/out-source-cooperative/train"
    assert data_files(out) == {k.removeprefix(COOP) for k in _cloud_cover()}
    assert (out / "train_metadata.csv").read_bytes() == _cloud_cover()[COOP + "train_metadata.csv"]
    item = json.loads((out / "ref_cloud_cover_detection_challenge_v1/adwu/adwu.json").read_text())
    assert item["properties"]["datetime"] == "2020-04-29T08:20:47Z"
    assert item["properties"]["location"] == "Chifunfu"


def test_moto_itself_serves_as_an_s3_endpoint(
    tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    moto, _ = store
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"defaults": {"output_dir": "./out"}, "datasets": [{"id": "direct", "source": {
                "type": "s3", "bucket": BUCKET, "endpoint": moto.url, "prefix": "rerun/"}}]}
        )
    )  # fmt: skip
    result = cli("apply", spec)
    assert result.code == ExitCode.OK, result.stderr
    got = (tmp_path / "out/direct/direct/scene3/b.tif").read_bytes()
    assert got == content("rerun/scene3/b.tif", 103)
