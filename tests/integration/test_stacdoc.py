"""The Indexer's view of STAC documents, in a real state db: what it ignores, counts as
invalid, or stores with a reason (the pure document parsing is tests/unit/test_stacdoc.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.catalog.index import Indexer
from mlhub_sync.stac.document import Document
from mlhub_sync.state.db import StateDB
from tests.support.sql import query
from tests.unit.test_stacdoc import make_item

# -- the Indexer's view of documents ------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB.open(tmp_path) as opened:
        yield opened


def index(db: StateDB, *docs: tuple[str, bytes]) -> Indexer:
    indexer = Indexer(db, allow_file_hrefs=False)
    with db.transaction():
        for name, data in docs:
            indexer.add(Document(name, data, f"https://h/{name}"))
        indexer.flush()
    return indexer


def rows(db: StateDB, sql: str) -> list[tuple[Any, ...]]:
    return query(db.path, sql)


def test_documents_without_stac_version_are_ignored(db: StateDB) -> None:
    not_stac = make_item()
    del not_stac["stac_version"]
    indexer = index(
        db,
        ("ds/coll/a/a.json", json.dumps(not_stac).encode()),
        ("ds/labels.json", b'{"type": "FeatureCollection", "features": []}'),
        ("ds/list.json", b"[1, 2, 3]"),
    )
    assert (indexer.items, indexer.assets, indexer.invalid_documents) == (0, 0, 0)
    assert db.count("items") == 0


def test_invalid_json_is_counted_not_fatal(db: StateDB) -> None:
    indexer = index(db, ("ds/broken.json", b"{nope"), ("ds/latin1.json", b'{"id": "\xe9"}'))
    assert indexer.invalid_documents == 2


def test_a_lone_surrogate_makes_a_document_invalid_not_a_crash(db: StateDB) -> None:
    evil = json.dumps(make_item(id="bad\ud800id"))  # json escapes it as \ud800
    good = json.dumps(make_item(id="ok\U0001f600"))  # a proper pair is fine
    indexer = index(db, ("ds/coll/x/x.json", evil.encode()), ("ds/coll/y/y.json", good.encode()))
    assert indexer.invalid_documents == 1
    assert rows(db, "SELECT item_id FROM items") == [("ok\U0001f600",)]


def test_pre_1_0_collections_without_type_are_indexed_as_collections(db: StateDB) -> None:
    old_collection = {
        "stac_version": "0.9.0",
        "id": "old_labels",
        "description": "labels",
        "license": "CC-BY-4.0",
        "extent": {},
        "links": [],
        "assets": {"class_map": {"href": "https://h/class_map.csv"}},
    }
    indexer = index(db, ("ds/old_labels/collection.json", json.dumps(old_collection).encode()))
    assert indexer.assets == 1
    assert rows(db, "SELECT item_pk, collection_id, asset_key, path FROM assets") == [
        (None, "old_labels", "class_map", "old_labels/class_map.csv")
    ]


def test_a_catalog_document_adds_nothing(db: StateDB) -> None:
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": "ds", "links": []}
    indexer = index(db, ("ds/catalog.json", json.dumps(catalog).encode()))
    assert (indexer.items, indexer.assets) == (0, 0)


def test_rejected_hrefs_are_stored_with_their_reason(db: StateDB) -> None:
    doc = make_item(assets={"ok": {"href": "https://h/a.tif"}, "local": {"href": "file:///x"}})
    indexer = index(db, ("ds/coll/item_1/item_1.json", json.dumps(doc).encode()))
    assert (indexer.assets, indexer.rejected) == (1, 1)
    (row,) = rows(db, "SELECT collection_id, item_id, asset_key, reason FROM rejected")
    assert row[:3] == ("coll", "item_1", "local")
    assert "file:" in row[3]
