"""The synced catalog's tree, derived in SQL from the documents and links the indexer found
(``state/documents.py``): every document placed exactly once, under the first document that
links it, or (linked by nothing reachable) under its collection or the root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlhub_sync.state.db import StateDB

Doc = tuple[str, str, str | None]  # path, kind, collection id


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB.open(tmp_path) as opened:
        yield opened


def tree(db: StateDB, docs: list[Doc], links: list[tuple[str, str]]) -> dict[str, str | None]:
    """Index ``docs`` (their URL is ``u:{path}``) and ``links`` (from, to) and return each
    document's parent in the tree (``None`` for the root)."""
    pks = {path: pk for pk, (path, _, _) in enumerate(docs, start=1)}
    with db.transaction():
        db.documents.insert(
            [(pks[p], p, f"u:{p}", kind, cid, None) for p, kind, cid in docs],
            [(pks[a], "child", f"u:{b}") for a, b in links],
        )
        root = db.documents.build_tree()
    assert root is not None
    return {row[1]: row[6] for row in db.documents.placed(by_item=False)}


def test_documents_hang_under_the_first_document_that_links_them(db: StateDB) -> None:
    docs: list[Doc] = [
        ("c2/collection.json", "collection", "c2"),  # archive order: not the tree's
        ("catalog.json", "catalog", None),
        ("c1/collection.json", "collection", "c1"),
        ("c1/i/i.json", "item", "c1"),
    ]
    links = [
        ("catalog.json", "c1/collection.json"),
        ("catalog.json", "c2/collection.json"),
        ("c1/collection.json", "c1/i/i.json"),
        ("c2/collection.json", "c1/i/i.json"),  # a second parent: the first one wins
    ]
    assert tree(db, docs, links) == {
        "catalog.json": None,
        "c1/collection.json": "catalog.json",
        "c2/collection.json": "catalog.json",
        "c1/i/i.json": "c2/collection.json",  # both on one level: the first document
    }


def test_documents_nothing_links_go_under_their_collection_or_the_root(db: StateDB) -> None:
    docs: list[Doc] = [
        ("catalog.json", "catalog", None),
        ("c/collection.json", "collection", "c"),
        ("c/a/a.json", "item", "c"),
        ("d/b/b.json", "item", "d"),  # its collection has no document
        ("sub/catalog.json", "catalog", None),
        ("sub/x/x.json", "item", "c"),
    ]
    links = [("sub/catalog.json", "sub/x/x.json")]
    assert tree(db, docs, links) == {
        "catalog.json": None,
        "c/collection.json": "catalog.json",
        "c/a/a.json": "c/collection.json",
        "d/b/b.json": "catalog.json",
        "sub/catalog.json": "catalog.json",
        "sub/x/x.json": "sub/catalog.json",  # its own parent, once that one is placed
    }


def test_a_cycle_nothing_reaches_is_broken_once_and_placed(db: StateDB) -> None:
    docs: list[Doc] = [
        ("catalog.json", "catalog", None),
        ("a/catalog.json", "catalog", None),
        ("b/catalog.json", "catalog", None),
    ]
    links = [("a/catalog.json", "b/catalog.json"), ("b/catalog.json", "a/catalog.json")]
    assert tree(db, docs, links) == {
        "catalog.json": None,
        "a/catalog.json": "catalog.json",
        "b/catalog.json": "a/catalog.json",
    }


def test_a_cycle_through_the_root_does_not_give_the_root_a_parent(db: StateDB) -> None:
    docs: list[Doc] = [("catalog.json", "catalog", None), ("a/catalog.json", "catalog", None)]
    links = [("catalog.json", "a/catalog.json"), ("a/catalog.json", "catalog.json")]
    assert tree(db, docs, links) == {"catalog.json": None, "a/catalog.json": "catalog.json"}


def test_without_a_catalog_json_the_root_is_the_shallowest_document(db: StateDB) -> None:
    docs: list[Doc] = [
        ("ref_0/stac.json", "item", "ref"),
        ("collection.json", "collection", "ref"),
    ]
    assert tree(db, docs, []) == {"collection.json": None, "ref_0/stac.json": "collection.json"}
