"""``catalog.localize``: a document rewritten for its place in the synced tree, case by case
(a pure function: documents in, documents out)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlhub_sync.catalog.localize import (
    ALTERNATE_ASSETS,
    AssetPlace,
    Place,
    Target,
    localize,
    relative,
)

UP = "https://example.org/stac"


@pytest.mark.parametrize(
    ("target", "start", "href"),
    [
        ("catalog.json", "catalog.json", "./catalog.json"),
        ("c/collection.json", "catalog.json", "./c/collection.json"),
        ("catalog.json", "c/i/i.json", "../../catalog.json"),
        ("c/collection.json", "c/i/i.json", "../collection.json"),
        ("c/i/B02.tif", "c/i/i.json", "./B02.tif"),
        ("_common/doc.pdf", "c/i/i.json", "../../_common/doc.pdf"),
        ("d/x/data.tif", "c/i/i.json", "../../d/x/data.tif"),
        ("../assets/c/i/B02.tif", "c/i/i.json", "../../../assets/c/i/B02.tif"),
        ("ref/ref_0/labels.tif", "ref_0/stac.json", "../ref/ref_0/labels.tif"),
    ],
)
def test_a_path_becomes_an_href_relative_to_the_document(
    target: str, start: str, href: str
) -> None:
    assert relative(target, start) == href


def item(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "i",
        "links": [
            {"rel": "self", "href": f"{UP}/c/items/i.json"},
            {"rel": "root", "href": f"{UP}/catalog.json"},
            {"rel": "parent", "href": "../collection.json", "title": "the collection"},
            {"rel": "license", "href": "../LICENSE"},
            {"rel": "alternate", "href": "https://example.org/i.html", "type": "text/html"},
        ],
        "assets": {
            "B02": {"href": f"{UP}/data/B02.tif?sig=SECRET", "roles": ["data"]},
            "B03": {"href": "./B03.tif", "title": "band 3"},
            "odd": {"href": "ftp://example.org/x"},
        },
    }
    doc.update(overrides)
    return doc


PLACE = Place(
    path="c/i/i.json",
    url=f"{UP}/c/items/i.json",
    root="catalog.json",
    parent=Target("c/collection.json", f"{UP}/c/collection.json"),
    collection=Target("c/collection.json", f"{UP}/c/collection.json"),
    moved=True,
)

ASSETS = {
    "B02": AssetPlace(upstream=f"{UP}/data/B02.tif?sig=SECRET", synced="c/i/B02.tif"),
    "B03": AssetPlace(upstream=f"{UP}/c/items/B03.tif"),
}


def test_structural_links_come_from_the_tree_and_self_is_left_out() -> None:
    links = localize(item(), PLACE, ASSETS)["links"]
    assert [(link["rel"], link["href"]) for link in links] == [
        ("root", "../../catalog.json"),
        ("parent", "../collection.json"),
        ("collection", "../collection.json"),
        ("license", f"{UP}/c/LICENSE"),  # moved: made absolute where it pointed
        ("alternate", "https://example.org/i.html"),
    ]
    assert links[1]["title"] == "the collection"  # the old link to the same document


def test_a_document_that_was_not_moved_keeps_its_relative_other_links() -> None:
    links = localize(item(), Place("c/i/i.json", "file:///a/c/i/i.json", "catalog.json"), {})[
        "links"
    ]
    assert {"rel": "license", "href": "../LICENSE"} in links


def test_children_are_linked_as_written_by_the_tree() -> None:
    catalog = {"type": "Catalog", "id": "root", "links": [{"rel": "child", "href": "./old/x.json"}]}
    place = Place(
        path="catalog.json",
        url=f"{UP}/catalog.json",
        root="catalog.json",
        children=(("child", Target("c/collection.json")), ("item", Target("loose/loose.json"))),
    )
    assert localize(catalog, place, {})["links"] == [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"},
        {"rel": "child", "href": "./c/collection.json", "type": "application/json"},
        {"rel": "item", "href": "./loose/loose.json", "type": "application/json"},
    ]


def test_a_synced_asset_names_its_file_and_keeps_its_origin_redacted() -> None:
    out = localize(item(), PLACE, ASSETS)
    assert out["assets"]["B02"] == {
        "href": "./B02.tif",
        "roles": ["data"],
        "alternate": {"origin": {"href": f"{UP}/data/B02.tif?sig=***"}},
        "alternate:name": "local",
    }
    assert ALTERNATE_ASSETS in out["stac_extensions"]


def test_an_asset_not_on_disk_keeps_an_href_that_still_names_it() -> None:
    out = localize(item(), PLACE, ASSETS)["assets"]
    assert out["B03"] == {"href": f"{UP}/c/items/B03.tif", "title": "band 3"}  # was relative
    assert out["odd"] == {"href": "ftp://example.org/x"}  # refused by the index: untouched


def test_a_bundled_asset_names_the_archive_file_and_its_copy_at_the_asset_path() -> None:
    doc = item(assets={"labels": {"href": "./labels.tif"}})
    place = Place("ref_0/stac.json", "https://blob/a/ref/ref_0/stac.json", "collection.json")
    bundled = AssetPlace(upstream="file:///x", bundled="ref_0/labels.tif")
    assert localize(doc, place, {"labels": bundled})["assets"]["labels"] == {"href": "./labels.tif"}
    synced = AssetPlace(upstream="file:///x", bundled="ref_0/labels.tif", synced="ref/0/l.tif")
    assert localize(doc, place, {"labels": synced})["assets"]["labels"] == {
        "href": "../ref/0/l.tif",
        "alternate": {"origin": {"href": "./labels.tif"}},
        "alternate:name": "local",
    }
    in_place = AssetPlace(
        upstream="file:///x", bundled="ref_0/labels.tif", synced="ref_0/labels.tif"
    )
    assert localize(doc, place, {"labels": in_place})["assets"]["labels"] == {
        "href": "./labels.tif"
    }


def test_localizing_its_own_output_again_gives_the_same_document() -> None:
    once = localize(item(), PLACE, ASSETS)
    assert localize(copy.deepcopy(once), PLACE, ASSETS) == once


def test_an_asset_no_longer_on_disk_gets_its_upstream_href_back_and_loses_the_alternate() -> None:
    upstream_alternate = {"s3": {"href": "s3://bucket/B02.tif"}}
    doc = item()
    doc["assets"]["B02"]["alternate"] = upstream_alternate
    once = localize(doc, PLACE, ASSETS)
    assert set(once["assets"]["B02"]["alternate"]) == {"s3", "origin"}
    gone = {**ASSETS, "B02": AssetPlace(upstream=f"{UP}/data/B02.tif?sig=SECRET")}
    again = localize(once, PLACE, gone)["assets"]["B02"]
    assert again == {
        "href": f"{UP}/data/B02.tif?sig=SECRET",  # as upstream has it: it is fetched from there
        "roles": ["data"],
        "alternate": upstream_alternate,
    }


def test_the_document_given_is_not_changed() -> None:
    doc = item()
    before = copy.deepcopy(doc)
    localize(doc, PLACE, ASSETS)
    assert doc == before


def test_documents_without_links_or_assets_get_their_structural_links() -> None:
    out = localize({"type": "Catalog", "id": "x"}, Place("a/catalog.json", "", "catalog.json"), {})
    assert out["links"] == [{"rel": "root", "href": "../catalog.json", "type": "application/json"}]
    assert "assets" not in out
