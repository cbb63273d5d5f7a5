"""A catalog written on Windows: its relative hrefs use backslashes (``.\\item\\item.json``),
and they are read as ``/``; an item that names no collection lands under ``_default/``
(issue 12, A5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.stac.href import normalize_href
from tests.conftest import Hub

BASE = "https://host/cat/sub/catalog.json"


@pytest.mark.parametrize(
    ("href", "url"),
    [
        (".\\item\\item.json", "https://host/cat/sub/item/item.json"),
        ("..\\labels\\a.tif", "https://host/cat/labels/a.tif"),
        ("item\\item.json?path=a\\b", "https://host/cat/sub/item/item.json?path=a\\b"),
        ("a\\b.tif#part\\1", "https://host/cat/sub/a/b.tif#part\\1"),
        ("https://host/x\\y.tif", "https://host/x\\y.tif"),  # an absolute URL is as written
    ],
)
def test_a_relative_hrefs_backslashes_are_read_as_slashes_in_its_path(href: str, url: str) -> None:
    assert normalize_href(href, BASE, allow_file=False) == url


def test_a_backslashed_local_href_stays_inside_the_catalogs_folder() -> None:
    base = "file:///data/cat/catalog.json"
    assert normalize_href(".\\c\\i.json", base, allow_file=True) == "file:///data/cat/c/i.json"


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def test_a_catalog_written_on_windows_syncs_and_loose_items_go_to_default(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    root = hub.data.root / "blobs" / "win"
    _write(
        root / "catalog.json",
        {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "win",
            "description": "",
            "links": [
                {"rel": "child", "href": ".\\c\\collection.json"},
                {"rel": "item", "href": ".\\loose\\loose.json"},
            ],
        },
    )
    _write(
        root / "c" / "collection.json",
        {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": "c",
            "license": "x",
            "description": "",
            "extent": {},
            "links": [{"rel": "item", "href": ".\\i\\i.json"}],
        },
    )
    item = {"type": "Feature", "stac_version": "1.0.0", "geometry": None, "links": []}
    item["properties"] = {"datetime": None}
    _write(
        root / "c" / "i" / "i.json",
        {**item, "id": "i", "collection": "c", "assets": {"data": {"href": "..\\..\\i.bin"}}},
    )
    _write(
        root / "loose" / "loose.json",
        {**item, "id": "loose", "assets": {"data": {"href": "x.bin"}}},
    )
    (root / "i.bin").write_bytes(b"in collection c")
    (root / "loose" / "x.bin").write_bytes(b"in no collection")
    source = {"type": "stac", "url": f"{hub.server.url}/blobs/win/catalog.json"}
    spec = hub.spec(tmp_path / "spec.yaml", [{"id": "win", "source": source}])
    result = cli("apply", spec)
    assert result.code == 0, result.stderr
    out = tmp_path / "out" / "win"
    assert (out / "c" / "i" / "data.bin").read_bytes() == b"in collection c"
    assert (out / "_default" / "loose" / "data.bin").read_bytes() == b"in no collection"
