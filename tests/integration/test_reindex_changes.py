"""What a re-index tells the plan: items added, changed and removed since the last index; a
listed object's new version (``mlhub:etag``) replaces the file; ``rewrite`` rules move asset
hosts (and re-index a kept archive when they change); a version-1 state db is upgraded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from mlhub_sync.catalog.index import Indexer
from mlhub_sync.errors import ExitCode
from mlhub_sync.stac.document import Document
from mlhub_sync.state.db import StateDB
from mlhub_sync.state.schema import DB_NAME, SCHEMA_VERSION
from tests.support.mlhub_dataset import write_asset_catalog
from tests.support.server import TestServer


def write_catalog(root: Path, items: dict[str, dict[str, Any]]) -> None:
    """A static catalog at ``root/cat/``: one item per entry, each with one asset ``data``
    (the entry: its href and any other asset fields) and a ``note`` property."""
    cat = root / "blobs" / "cat"
    cat.mkdir(parents=True, exist_ok=True)
    links = [{"rel": "item", "href": f"./{name}/{name}.json"} for name in items]
    (cat / "catalog.json").write_text(
        json.dumps(
            {"type": "Catalog", "stac_version": "1.0.0", "id": "cat", "description": "d",
             "links": links}
        )
    )  # fmt: skip
    for name, asset in items.items():
        folder = cat / name
        folder.mkdir(exist_ok=True)
        note = asset.pop("note", "")
        document = {
            "type": "Feature", "stac_version": "1.0.0", "id": name, "collection": "c",
            "geometry": None, "properties": {"datetime": None, "note": note}, "links": [],
            "assets": {"data": asset},
        }  # fmt: skip
        (folder / f"{name}.json").write_text(json.dumps(document))


def blobs(root: Path, *names: str, content: bytes = b"x" * 100) -> None:
    (root / "blobs" / "data").mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / "blobs" / "data" / name).write_bytes(content + name.encode())


def spec(path: Path, source: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "defaults": {"output_dir": "./out", "retry": {"max_retries": 0}},
                "datasets": [{"id": "ds", "source": source}],
            }
        )
    )
    return path


def plan_of(cli: Any, spec_file: Path) -> dict[str, Any]:
    result = cli("plan", spec_file, "--json")
    assert result.code == ExitCode.OK, result.stderr
    return result.json()["datasets"][0]  # type: ignore[no-any-return]


def test_the_plan_says_which_items_a_reindex_added_changed_and_removed(
    tmp_path: Path, cli: Any
) -> None:
    root = tmp_path / "served"
    blobs(root, "a.tif", "b.tif", "c.tif", "d.tif")
    with TestServer(root) as server:
        href = f"{server.url}/blobs/data/"
        write_catalog(root, {n: {"href": f"{href}{n}.tif"} for n in "abc"})
        s = spec(
            tmp_path / "spec.yaml", {"type": "stac", "url": f"{server.url}/blobs/cat/catalog.json"}
        )
        first = plan_of(cli, s)
        assert first["catalog"]["item_changes"] is None  # nothing to compare with
        unchanged = plan_of(cli, s)["catalog"]["item_changes"]
        assert (unchanged["added"], unchanged["changed"], unchanged["removed"]) == (0, 0, 0)
        write_catalog(
            root,
            {
                "a": {"href": f"{href}a.tif"},
                "b": {"href": f"{href}b.tif", "note": "relabelled"},
                "d": {"href": f"{href}d.tif"},
            },
        )
        (root / "blobs" / "cat" / "c" / "c.json").unlink()
        changes = plan_of(cli, s)["catalog"]["item_changes"]
        assert (changes["added"], changes["changed"], changes["removed"]) == (1, 1, 1)
        assert changes["samples"] == {
            "added": [{"collection": "c", "item": "d"}],
            "changed": [{"collection": "c", "item": "b"}],
            "removed": [{"collection": "c", "item": "c"}],
        }
        text = cli("plan", s).stdout
        assert "items since the last index: 0 added, 0 changed, 0 removed" not in text
        write_catalog(root, {n: {"href": f"{href}{n}.tif"} for n in "ab"})
        text = cli("plan", s).stdout
        assert "items since the last index: 0 added, 1 changed, 1 removed" in text
        assert "    removed: c/d" in text


def test_a_new_listed_version_of_an_object_replaces_the_file(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "served"
    blobs(root, "a.tif")
    with TestServer(root) as server:
        asset = {"href": f"{server.url}/blobs/data/a.tif", "mlhub:etag": '"v1"'}
        write_catalog(root, {"a": dict(asset)})
        s = spec(
            tmp_path / "spec.yaml", {"type": "stac", "url": f"{server.url}/blobs/cat/catalog.json"}
        )
        assert cli("apply", s).code == ExitCode.OK
        assert plan_of(cli, s)["actions"]["keep"]["files"] == 1  # same version: kept
        blobs(root, "a.tif", content=b"y" * 100)  # new bytes, same size, new listed ETag
        write_catalog(root, {"a": {**asset, "mlhub:etag": '"v2"'}})
        replace = plan_of(cli, s)["actions"]["replace"]
        assert replace["reasons"] == {
            "upstream-changed": {"files": 1, "bytes": 0, "unknown_size": 1}
        }
        assert cli("apply", s).code == ExitCode.OK
        assert (tmp_path / "out/ds/c/a/data.tif").read_bytes() == b"y" * 100 + b"a.tif"


def test_rewrites_move_asset_hosts_before_planning(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "served"
    blobs(root, "a.tif", "b.tif")
    with TestServer(root) as server:
        old = "https://old-host.invalid/mlhub/"
        write_catalog(root, {n: {"href": f"{old}{n}.tif"} for n in "ab"})
        source = {
            "type": "stac",
            "url": f"{server.url}/blobs/cat/catalog.json",
            "rewrite": [{"from": old, "to": f"{server.url}/blobs/data/"}],
        }
        s = spec(tmp_path / "spec.yaml", source)
        result = cli("apply", s)
        assert result.code == ExitCode.OK, result.stderr
        assert (tmp_path / "out/ds/c/b/data.tif").read_bytes() == b"x" * 100 + b"b.tif"
        assert server.count("/blobs/data/", method="GET") == 2


def test_a_changed_rewrite_reindexes_the_same_kept_archive(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "served"
    blobs(root, "a.tif")
    (root / "blobs" / "mirror").mkdir()
    (root / "blobs" / "mirror" / "a.tif").write_bytes(b"from the mirror")
    archive = tmp_path / "ds.tar.gz"
    old = "https://old-host.invalid/mlhub/"
    write_asset_catalog(archive, "ds", {"a": {"href": f"{old}a.tif"}})
    with TestServer(root) as server:
        source: dict[str, Any] = {"type": "archive", "path": str(archive)}
        source["rewrite"] = [{"from": old, "to": f"{server.url}/blobs/data/"}]
        assert cli("apply", spec(tmp_path / "spec.yaml", source)).code == ExitCode.OK
        source["rewrite"] = [{"from": old, "to": f"{server.url}/blobs/mirror/"}]
        s = spec(tmp_path / "spec.yaml", source)
        plan = plan_of(cli, s)  # the same archive, indexed again under the new rule
        assert plan["catalog"]["reindexed"] is True
        assert plan["actions"]["replace"]["reasons"].keys() == {"upstream-changed"}
        assert cli("apply", s).code == ExitCode.OK
        assert (tmp_path / "out/ds/c/a/data.tif").read_bytes() == b"from the mirror"
        assert plan_of(cli, s)["catalog"]["reindexed"] is False  # and then kept


def test_own_paths_are_honoured_only_when_the_source_wrote_them(tmp_path: Path) -> None:
    item = {
        "type": "Feature", "stac_version": "1.0.0", "id": "chip1", "collection": "c",
        "geometry": None, "properties": {"datetime": None}, "links": [],
        "assets": {"B02": {"href": "https://h/b/train/chip1/B02.tif",
                           "mlhub:path": "train/chip1/B02.tif"},
                   "bad": {"href": "https://h/b/x", "mlhub:path": "/"}},
    }  # fmt: skip
    data = json.dumps(item).encode()
    for own, expected in (
        (True, ["train/chip1/B02.tif"]),
        (False, ["c/chip1/B02.tif", "c/chip1/bad"]),
    ):
        with StateDB.open(tmp_path / str(own)) as db, db.transaction():
            indexer = Indexer(db, allow_file_hrefs=False, own_paths=own)
            indexer.add(Document("c/chip1/chip1.json", data, "https://h/c/chip1/chip1.json"))
            indexer.flush()
            paths = sorted(row[-1] for row in db.index.rows("assets"))
            assert paths == expected
            assert indexer.rejected == (1 if own else 0)  # "/" names no file


def test_a_version_1_state_db_gets_the_item_digests_on_open(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    conn = sqlite3.connect(folder / DB_NAME)
    conn.executescript(
        "CREATE TABLE items (item_pk INTEGER PRIMARY KEY, collection_id TEXT NOT NULL, "
        "item_id TEXT NOT NULL, minx REAL, miny REAL, maxx REAL, maxy REAL, geometry TEXT, "
        "start_ts REAL, end_ts REAL);"
        "INSERT INTO items VALUES (1, 'c', 'i', NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
        "PRAGMA user_version=1;"
    )
    conn.close()
    with StateDB.open(folder) as db:
        assert db.schema_version() == SCHEMA_VERSION == 2
    conn = sqlite3.connect(folder / DB_NAME)
    try:
        assert conn.execute("SELECT item_id, digest FROM items").fetchall() == [("i", None)]
    finally:
        conn.close()
