"""After every sync the dataset folder is a self-contained STAC catalog: pystac opens it with no
network and walks every item, each synced asset's href names its file (the upstream URL kept
as an alternate), and archives that bundle their files deliver them (issue 12, A1 and A2).

The catalogs are generated in the shapes real ones have (``tests/support/stac_shapes.py``),
served by the loopback server or read from disk, and synced through the CLI in-process.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.mlhub_dataset import md5_multihash, write_archive
from tests.support.server import Fault, TestServer
from tests.support.stac_shapes import (
    Shape,
    Walked,
    mlhub_collection_archive,
    nested,
    root_collection,
    walk_offline,
)

Build = Callable[[Path, str], Shape]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestServer]:
    with TestServer(tmp_path / "served") as running:
        yield running


def write_spec(tmp_path: Path, source: dict[str, Any], **settings: Any) -> Path:
    spec = tmp_path / "spec.yaml"
    dataset = {"id": "ds", "source": source, **settings}
    spec.write_text(
        yaml.safe_dump(
            {
                "defaults": {"output_dir": "./out", "retry": {"max_retries": 0}, "workers": 4},
                "datasets": [dataset],
            }
        )
    )
    return spec


def source_for(kind: str, shape: Shape, server: TestServer, tmp_path: Path) -> dict[str, Any]:
    """The spec's source for ``shape`` served as ``kind``."""
    served = tmp_path / "served"
    if kind == "stac-url":
        return {"type": "stac", "url": f"{server.url}/{shape.root}"}
    if kind == "stac-path":
        return {"type": "stac", "path": str(served / shape.root)}
    archive = shape.archive(served / "blobs/archives/ds.tar.gz", top="ds")
    if kind == "archive":
        return {"type": "archive", "path": str(archive)}
    assert kind == "mlhub"
    server.add_redirect("/api/catalog/ds", f"{server.url}/blobs/archives/ds.tar.gz")
    return {"type": "mlhub", "root_url": f"{server.url}/api/"}


def synced_root(tmp_path: Path) -> Path:
    """The root document: ``catalog.json``, or the collection an archive has at its top."""
    folder = tmp_path / "out/ds"
    top = folder / "catalog.json"
    return top if top.exists() else folder / "collection.json"


def walk(tmp_path: Path) -> list[Walked]:
    return walk_offline(synced_root(tmp_path))


def by_item(walked: list[Walked]) -> dict[str, dict[str, Walked]]:
    found: dict[str, dict[str, Walked]] = {}
    for w in walked:
        found.setdefault(w.item, {})[w.key] = w
    return found


def is_local(w: Walked) -> bool:
    return "://" not in w.href and Path(w.absolute).is_file()


def records(tmp_path: Path) -> dict[str, tuple[str, str]]:
    conn = sqlite3.connect(tmp_path / "out/ds/mlhub_stac_assets.db")
    try:
        return {p: (h, v) for p, h, v in conn.execute("SELECT path, href, verified_by FROM files")}
    finally:
        conn.close()


SHAPES: list[tuple[str, Build, str, dict[str, Any]]] = [
    ("nested sub-catalogs crawled over HTTP", nested, "stac-url", {}),
    ("nested sub-catalogs crawled from disk", nested, "stac-path", {"allow_local": ["served"]}),
    ("nested sub-catalogs in an archive", nested, "archive", {}),
    ("a root collection crawled over HTTP", root_collection, "stac-url", {}),
    ("a root collection in an archive", root_collection, "archive", {}),
    ("an MLHub collection archive, local", mlhub_collection_archive, "archive", {}),
    ("an MLHub collection archive from the API", mlhub_collection_archive, "mlhub", {}),
]


@pytest.mark.parametrize(
    ("build", "kind", "settings"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES]
)
def test_pystac_walks_the_synced_catalog_offline_and_every_asset_is_its_file(
    tmp_path: Path, cli: Any, server: TestServer, build: Build, kind: str, settings: dict[str, Any]
) -> None:
    shape = build(tmp_path / "served", server.url)
    spec = write_spec(tmp_path, source_for(kind, shape, server, tmp_path), **settings)
    result = cli("apply", spec)
    assert result.code == 0, result.stderr
    walked = by_item(walk(tmp_path))
    assert set(walked) == set(shape.items)  # every item, once
    synced = records(tmp_path)
    for item_id, assets in shape.items.items():
        assert set(walked[item_id]) == set(assets)
        for key, data in assets.items():
            asset = walked[item_id][key]
            assert is_local(asset), asset
            assert Path(asset.absolute).read_bytes() == data
            assert os.path.relpath(asset.absolute, tmp_path / "out/ds") in synced  # delivered
    again = cli("apply", spec)  # a second sync rewrites its own output into the same
    assert again.code == 0, again.stderr
    assert by_item(walk(tmp_path)) == walked


def test_a_synced_asset_keeps_its_upstream_url_as_an_alternate_without_secrets(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    shape = nested(tmp_path / "served", server.url)
    item = tmp_path / "served/blobs/nested/country-2/area-2-1/area-2-1-item-0/area-2-1-item-0.json"
    doc = json.loads(item.read_text())
    signed = doc["assets"]["image"]["href"] + "?sv=2021&sig=SECRET-SIG"
    doc["assets"]["image"]["href"] = signed
    item.write_text(json.dumps(doc))
    spec = write_spec(tmp_path, source_for("stac-url", shape, server, tmp_path))
    assert cli("apply", spec).code == 0
    image = by_item(walk(tmp_path))["area-2-1-item-0"]["image"]
    assert image.href == "./image.tif"
    assert image.extra["alternate"]["origin"]["href"] == signed.replace("SECRET-SIG", "***")
    assert image.extra["alternate:name"] == "local"
    synced = (tmp_path / "out/ds/area-2-1/area-2-1-item-0/area-2-1-item-0.json").read_text()
    assert "SECRET-SIG" not in synced


def test_a_changed_selection_is_walked_as_selected_and_a_wider_one_links_everything_again(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    shape = nested(tmp_path / "served", server.url)
    source = source_for("archive", shape, server, tmp_path)
    spec = write_spec(tmp_path, source, collection_filter={"area-1-1": ["image"]})
    assert cli("apply", spec).code == 0
    walked = by_item(walk(tmp_path))
    assert set(walked) == {"area-1-1-item-0", "area-1-1-item-1"}  # the others: not linked
    for assets in walked.values():
        assert is_local(assets["image"])
        # left out by the key filter: marked by keeping its upstream location (here a file the
        # archive bundles, so it still resolves), and no origin alternate
        assert "alternate" not in assets["labels"].extra
    spec = write_spec(tmp_path, source, datetime={"start": "2020-01-03", "end": "2020-01-04"})
    assert cli("apply", spec).code == 0
    assert set(by_item(walk(tmp_path))) == {"area-1-2-item-0", "area-1-2-item-1"}
    spec = write_spec(tmp_path, source)
    assert cli("apply", spec).code == 0
    walked = by_item(walk(tmp_path))
    assert set(walked) == set(shape.items)
    assert all(is_local(a) for assets in walked.values() for a in assets.values())


def test_a_catalog_only_sync_is_a_catalog_whose_assets_keep_their_upstream_hrefs(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    shape = nested(tmp_path / "served", server.url)
    spec = write_spec(tmp_path, source_for("stac-url", shape, server, tmp_path), catalog_only=True)
    assert cli("apply", spec).code == 0
    walked = by_item(walk(tmp_path))
    assert set(walked) == set(shape.items)
    for item_id, assets in walked.items():
        assert assets["image"].href.startswith(f"{server.url}/blobs/nested-assets/{item_id}/")
        assert assets["labels"].href.startswith(f"{server.url}/blobs/nested/")  # made absolute
    assert server.count("/blobs/nested-assets/") == 0


def test_an_asset_that_failed_keeps_its_upstream_href_until_it_arrives(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    shape = nested(tmp_path / "served", server.url)
    spec = write_spec(tmp_path, source_for("stac-url", shape, server, tmp_path))
    broken = "/blobs/nested-assets/area-1-2-item-1/image.tif"
    server.add_fault(broken, Fault("status", status=404))
    assert cli("apply", spec).code == 1
    image = by_item(walk(tmp_path))["area-1-2-item-1"]["image"]
    assert image.href == f"{server.url}{broken}" and "alternate" not in image.extra
    assert cli("apply", spec).code == 0
    assert is_local(by_item(walk(tmp_path))["area-1-2-item-1"]["image"])


# -- archives that bundle their files -----------------------------------------------------------


def test_bundled_files_arrive_linked_not_copied_and_verified_by_what_the_catalog_knows(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    shape = mlhub_collection_archive(tmp_path / "served", server.url)
    spec = write_spec(tmp_path, source_for("mlhub", shape, server, tmp_path))  # no allow_local
    result = cli("apply", spec)
    assert result.code == 0, result.stderr
    assert server.count("/api/catalog/") == 1
    assert server.count("/blobs/ref_col-src/") == 0  # no GET for a bundled file anywhere
    out = tmp_path / "out/ds"
    for n in range(4):
        asset = out / f"ref_col/ref_col_{n}/labels.tif"
        member = out / f"ref_col_{n}/labels.tif"  # where the archive has it
        assert asset.read_bytes() == shape.items[f"ref_col_{n}"]["labels"]
        assert os.stat(asset).st_ino == os.stat(member).st_ino  # one file, two names
    verified = {p: v for p, (_, v) in records(tmp_path).items() if p.endswith("labels.tif")}
    assert verified == {
        "ref_col/ref_col_0/labels.tif": "file:checksum",
        "ref_col/ref_col_1/labels.tif": "size",
        "ref_col/ref_col_2/labels.tif": "file:checksum",
        "ref_col/ref_col_3/labels.tif": "none",
    }
    assert cli("plan", spec, "--detailed-exitcode").code == 0  # in sync: nothing to fetch


def test_a_bundled_file_that_does_not_match_its_checksum_is_a_failure_not_an_asset(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    shape = mlhub_collection_archive(tmp_path / "served", server.url)
    shape.members = [
        (name, b"X" * len(data) if name == "ref_col_0/labels.tif" else data)
        for name, data in shape.members
    ]
    spec = write_spec(tmp_path, source_for("archive", shape, server, tmp_path))
    result = cli("apply", spec)
    assert result.code == 1
    assert "does not match its file:checksum" in result.stderr
    assert not (tmp_path / "out/ds/ref_col/ref_col_0/labels.tif").exists()
    assert (tmp_path / "out/ds/ref_col/ref_col_2/labels.tif").is_file()  # the rest arrived
    report = (tmp_path / "out/ds/mlhub_errors.csv").read_text()
    assert "ref_col_0" in report and "checksum-mismatch" in report


def test_a_new_archive_replaces_the_bundled_files_that_changed(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    shape = mlhub_collection_archive(tmp_path / "served", server.url)
    spec = write_spec(tmp_path, source_for("archive", shape, server, tmp_path))
    assert cli("apply", spec).code == 0
    changed = b"new labels" * 40
    shape.members = [
        (name, changed if name == "ref_col_3/labels.tif" else data) for name, data in shape.members
    ]
    source_for("archive", shape, server, tmp_path)  # the archive, written again
    result = cli("apply", spec)
    assert result.code == 0, result.stderr
    assert (tmp_path / "out/ds/ref_col/ref_col_3/labels.tif").read_bytes() == changed
    assert (tmp_path / "out/ds/ref_col_3/labels.tif").read_bytes() == changed


def test_a_link_planted_at_a_bundled_file_is_not_followed_but_replaced(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    shape = mlhub_collection_archive(tmp_path / "served", server.url)
    spec = write_spec(tmp_path, source_for("archive", shape, server, tmp_path))
    assert cli("plan", spec).code == 0  # installs the catalog, places nothing
    canary = tmp_path / "canary"
    canary.write_bytes(b"secret" * 100)
    member = tmp_path / "out/ds/ref_col_3/labels.tif"  # no checksum, no size: anything goes
    member.unlink()
    member.symlink_to(canary)
    result = cli("apply", spec)
    assert result.code == 0, result.stderr  # the catalog unpacked again, the link replaced
    placed = tmp_path / "out/ds/ref_col/ref_col_3/labels.tif"
    assert placed.read_bytes() == shape.items["ref_col_3"]["labels"]  # never the canary
    assert not member.is_symlink() and os.stat(placed).st_ino == os.stat(member).st_ino
    assert canary.read_bytes() == b"secret" * 100


@pytest.mark.parametrize("kind", ["stac-url", "archive"])
def test_assets_in_another_folder_are_named_by_relative_hrefs_that_reach_them(
    tmp_path: Path, cli: Any, server: TestServer, kind: str
) -> None:
    shape = nested(tmp_path / "served", server.url)
    spec = write_spec(
        tmp_path, source_for(kind, shape, server, tmp_path), asset_output_dir="./assets"
    )
    assert cli("apply", spec).code == 0
    walked = walk(tmp_path)
    assert {w.item for w in walked} == set(shape.items)
    for w in walked:
        assert w.href.startswith("../") and "/assets/ds/" in w.href  # relative, out and down
        assert Path(w.absolute).resolve().is_relative_to(tmp_path / "assets/ds")
        assert Path(w.absolute).read_bytes() == shape.items[w.item][w.key]


def in_place_archive(path: Path) -> dict[str, dict[str, bytes]]:
    """An MLHub dataset archive whose bundled files lie at their own asset paths
    (``c/{item}/{key}.tif``, as the layout puts them): what each item bundles."""
    files: dict[str, dict[str, bytes]] = {}
    members: list[tuple[str, bytes]] = []
    extent = {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}}
    for n in range(2):
        item_id = f"i{n}"
        files[item_id] = {key: f"{key} of {item_id}".encode() * 30 for key in ("labels", "data")}
        assets = {
            key: {"href": f"./{key}.tif", "file:checksum": md5_multihash(data)}
            for key, data in files[item_id].items()
        }
        doc = {
            "type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": "c",
            "geometry": None, "properties": {"datetime": "2020-01-01T00:00:00Z"},
            "links": [{"rel": "parent", "href": "../collection.json"}], "assets": assets,
        }  # fmt: skip
        members.append((f"c/{item_id}/{item_id}.json", json.dumps(doc).encode()))
        members.extend((f"c/{item_id}/{key}.tif", data) for key, data in files[item_id].items())
    collection = {
        "type": "Collection", "stac_version": "1.0.0", "id": "c", "description": "c",
        "license": "x", "extent": extent,
        "links": [{"rel": "item", "href": f"./{i}/{i}.json"} for i in files],
    }  # fmt: skip
    root = {"type": "Catalog", "stac_version": "1.0.0", "id": "ds", "description": "ds",
            "links": [{"rel": "child", "href": "./c/collection.json"}]}  # fmt: skip
    members += [("c/collection.json", json.dumps(collection).encode()),
                ("catalog.json", json.dumps(root).encode())]  # fmt: skip
    write_archive(path, members, top="ds")
    return files


def test_bundled_files_at_their_asset_paths_stay_one_file_and_come_back_after_a_prune(
    tmp_path: Path, cli: Any
) -> None:
    files = in_place_archive(tmp_path / "ds.tar.gz")
    source = {"type": "archive", "path": str(tmp_path / "ds.tar.gz")}
    spec = write_spec(tmp_path, source)
    assert cli("apply", spec).code == 0
    labels = tmp_path / "out/ds/c/i0/labels.tif"
    assert labels.read_bytes() == files["i0"]["labels"] and labels.stat().st_nlink == 1
    assert records(tmp_path)["c/i0/labels.tif"][1] == "file:checksum"
    spec = write_spec(tmp_path, source, collection_filter={"c": ["data"]}, prune=True)
    assert cli("apply", spec).code == 0
    assert not labels.exists()  # pruned, as asked
    walked = by_item(walk(tmp_path))
    assert is_local(walked["i0"]["data"])
    assert "://" in walked["i0"]["labels"].href  # no relative href to a file that is gone
    spec = write_spec(tmp_path, source)
    result = cli("apply", spec)
    assert result.code == 0, result.stderr
    assert labels.read_bytes() == files["i0"]["labels"]  # unpacked again from the archive
    assert all(is_local(w) for w in walk(tmp_path))
