"""Catalogs in the shapes real ones have, generated (deterministic), and a check that the
synced folder is a catalog pystac walks offline.

- :func:`nested`: a static catalog of sub-catalogs and collections several levels deep
  (``catalog.json`` -> ``country-N/catalog.json`` -> ``country-N/area-N-M/collection.json``
  -> items), relative links everywhere, items named ``{id}.json`` and ``stac.json``, an
  absolute ``self`` link per document, asset hrefs both absolute (a blob server) and relative
  (a file beside the item's JSON);
- :func:`root_collection`: a catalog whose root is a collection (``collection.json``), its
  items at ``{id}/stac.json``;
- :func:`mlhub_collection_archive`: an MLHub collection archive (top folder = collection id,
  items at ``{collection}_{n}/stac.json``) that bundles its labels (``./labels.tif`` beside the
  item) with ``file:checksum`` on some, ``file:size`` on others, neither on one, and links to
  the API as it was (absolute ``self`` links to a host that no longer answers).

:func:`walk_offline` opens a synced dataset folder with pystac, with an I/O that refuses
anything but local files, and returns every item's assets as pystac resolves them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
from pystac.stac_io import DefaultStacIO

from tests.support.mlhub_dataset import blob_bytes, md5_multihash, write_archive

API = "https://api.radiant.earth/mlhub/v1"  # shut down: nothing may ask it for anything


@dataclass
class Shape:
    """A generated catalog: its root document's path below the served root, the files it is
    made of (for an archive), and what a full sync must bring: item id -> asset key -> bytes.
    """

    root: str  # e.g. "blobs/nested/catalog.json"
    items: dict[str, dict[str, bytes]] = field(default_factory=dict)
    collections: dict[str, str] = field(default_factory=dict)  # item id -> collection id
    members: list[tuple[str, bytes]] = field(default_factory=list)

    def archive(self, path: Path, top: str) -> Path:
        """The catalog as a ``.tar.gz`` under the folder ``top``."""
        write_archive(path, self.members, top=top)
        return path


def _extent() -> dict[str, Any]:
    return {
        "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
        "temporal": {"interval": [["2020-01-01T00:00:00Z", None]]},
    }


def _item(item_id: str, collection: str, day: int, links: list[Any], assets: Any) -> Any:
    x = float(day)
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": collection,
        "geometry": {"type": "Point", "coordinates": [x, 1.0]},
        "bbox": [x, 1.0, x, 1.0],
        "properties": {"datetime": f"2020-01-{day:02d}T00:00:00Z"},
        "links": links,
        "assets": assets,
    }


class _Writer:
    def __init__(self, served: Path, base_url: str, folder: str):
        self.served, self.base_url, self.folder = served, base_url.rstrip("/"), folder
        self.shape = Shape(root="")

    def doc(self, rel: str, obj: Any) -> None:
        data = json.dumps(obj, indent=2).encode()
        path = self.served / "blobs" / self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.shape.members.append((rel, data))

    def file(self, rel: str, size: int) -> bytes:
        """A file of the catalog itself (beside its documents)."""
        data = blob_bytes(f"{self.folder}/{rel}", size)
        path = self.served / "blobs" / self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.shape.members.append((rel, data))
        return data

    def blob(self, rel: str, size: int) -> tuple[str, bytes]:
        """A file on the blob server, outside the catalog: its URL and bytes."""
        data = blob_bytes(rel, size)
        path = self.served / "blobs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.base_url}/blobs/{rel}", data

    def self_link(self, rel: str) -> dict[str, str]:
        return {"rel": "self", "href": f"{self.base_url}/blobs/{self.folder}/{rel}"}


def nested(served: Path, base_url: str, folder: str = "nested") -> Shape:
    """See the module doc: 2 countries, 3 areas, 2 items each."""
    w = _Writer(served, base_url, folder)
    countries = {"country-1": ["area-1-1", "area-1-2"], "country-2": ["area-2-1"]}
    day = 0
    for country, areas in countries.items():
        for area in areas:
            links = [
                {"rel": "root", "href": "../../catalog.json"},
                {"rel": "parent", "href": "../catalog.json"},
                w.self_link(f"{country}/{area}/collection.json"),
            ]
            for n in range(2):
                day += 1
                item_id = f"{area}-item-{n}"
                name = "stac.json" if n else f"{item_id}.json"
                rel = f"{country}/{area}/{item_id}/{name}"
                url, image = w.blob(f"{folder}-assets/{item_id}/image.tif", 300 + day)
                labels = w.file(f"{country}/{area}/{item_id}/labels.geojson", 100 + day)
                w.doc(
                    rel,
                    _item(
                        item_id,
                        area,
                        day,
                        [
                            {"rel": "root", "href": "../../../catalog.json"},
                            {"rel": "parent", "href": "../collection.json"},
                            {"rel": "collection", "href": "../collection.json"},
                            w.self_link(rel),
                        ],
                        {
                            "image": {"href": url, "type": "image/tiff", "roles": ["data"]},
                            "labels": {"href": "./labels.geojson", "roles": ["labels"]},
                        },
                    ),
                )
                links.append({"rel": "item", "href": f"./{item_id}/{name}", "title": item_id})
                w.shape.items[item_id] = {"image": image, "labels": labels}
                w.shape.collections[item_id] = area
            w.doc(
                f"{country}/{area}/collection.json",
                {
                    "type": "Collection",
                    "stac_version": "1.0.0",
                    "id": area,
                    "description": area,
                    "license": "CC-BY-4.0",
                    "extent": _extent(),
                    "links": links,
                },
            )
        w.doc(
            f"{country}/catalog.json",
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": country,
                "description": country,
                "links": [
                    {"rel": "root", "href": "../catalog.json"},
                    {"rel": "parent", "href": "../catalog.json"},
                    *({"rel": "child", "href": f"./{a}/collection.json"} for a in areas),
                ],
            },
        )
    w.doc(
        "catalog.json",
        {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "nested",
            "description": "countries, areas, items",
            "links": [
                {"rel": "root", "href": "./catalog.json"},
                w.self_link("catalog.json"),
                *({"rel": "child", "href": f"./{c}/catalog.json"} for c in countries),
            ],
        },
    )
    w.shape.root = f"blobs/{folder}/catalog.json"
    return w.shape


def root_collection(served: Path, base_url: str, folder: str = "rootcol") -> Shape:
    """A root collection and 3 items at ``{id}/stac.json`` with relative asset hrefs."""
    w = _Writer(served, base_url, folder)
    links: list[Any] = [{"rel": "root", "href": "./collection.json"}]
    for n in range(3):
        item_id = f"scene-{n}"
        data = w.file(f"{item_id}/data.tif", 200 + n)
        w.doc(
            f"{item_id}/stac.json",
            _item(
                item_id,
                "rootcol",
                n + 1,
                [
                    {"rel": "root", "href": "../collection.json"},
                    {"rel": "parent", "href": "../collection.json"},
                    {"rel": "collection", "href": "../collection.json"},
                ],
                {"data": {"href": "./data.tif", "type": "image/tiff"}},
            ),
        )
        links.append({"rel": "item", "href": f"./{item_id}/stac.json"})
        w.shape.items[item_id] = {"data": data}
        w.shape.collections[item_id] = "rootcol"
    w.doc(
        "collection.json",
        {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": "rootcol",
            "description": "a root collection",
            "license": "CC-BY-4.0",
            "extent": _extent(),
            "links": links,
        },
    )
    w.shape.root = f"blobs/{folder}/collection.json"
    return w.shape


def mlhub_collection_archive(served: Path, base_url: str, collection: str = "ref_col") -> Shape:
    """See the module doc: 4 items, each bundling ``labels.tif``, with imagery on the blob
    server. Write it with ``shape.archive(path, top=collection)``."""
    w = _Writer(served, base_url, f"{collection}-src")
    links: list[Any] = [
        {"rel": "self", "href": f"{API}/collections/{collection}"},
        {"rel": "root", "href": f"{API}/"},
    ]
    for n in range(4):
        item_id = f"{collection}_{n}"
        labels = w.file(f"{item_id}/labels.tif", 500 + n)
        label_asset: dict[str, Any] = {"href": "./labels.tif", "type": "image/tiff"}
        if n % 2 == 0:
            label_asset["file:checksum"] = md5_multihash(labels)
        elif n == 1:
            label_asset["file:size"] = len(labels)
        url, image = w.blob(f"{collection}-imagery/{item_id}/image.tif", 700 + n)
        w.doc(
            f"{item_id}/stac.json",
            _item(
                item_id,
                collection,
                n + 1,
                [
                    {"rel": "self", "href": f"{API}/collections/{collection}/items/{item_id}"},
                    {"rel": "parent", "href": "../collection.json"},
                    {"rel": "collection", "href": "../collection.json"},
                    {"rel": "root", "href": f"{API}/"},
                ],
                {"labels": label_asset, "image": {"href": url, "type": "image/tiff"}},
            ),
        )
        links.append({"rel": "item", "href": f"./{item_id}/stac.json"})
        w.shape.items[item_id] = {"labels": labels, "image": image}
        w.shape.collections[item_id] = collection
    w.doc(
        "collection.json",
        {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": collection,
            "description": "an MLHub collection archive",
            "license": "CC-BY-4.0",
            "extent": _extent(),
            "links": links,
        },
    )
    w.shape.root = f"blobs/{collection}-src/collection.json"
    return w.shape


class OfflineIO(DefaultStacIO):
    """pystac's I/O, refusing everything but local files (and never writing)."""

    def read_text_from_href(self, href: str) -> str:
        assert "://" not in href or href.startswith("file://"), f"pystac went online: {href}"
        return super().read_text_from_href(href)

    def write_text_to_href(self, href: str, txt: str) -> None:
        raise AssertionError(f"pystac wrote {href}")


@dataclass(frozen=True)
class Walked:
    """An asset as pystac resolved it."""

    item: str
    collection: str | None
    key: str
    href: str  # as written in the item
    absolute: str  # as pystac resolves it
    extra: dict[str, Any]


def walk_offline(root_document: Path) -> list[Walked]:
    """Open the root document with pystac (offline), walk every catalog and item, and check
    every structural link on disk is relative; the assets of every item walked."""
    root = pystac.read_file(str(root_document), stac_io=OfflineIO())
    assert isinstance(root, pystac.Catalog)
    found: list[Walked] = []
    seen: set[str] = set()
    for catalog, _, items in root.walk():
        _relative_links(catalog)
        for item in items:
            assert item.id not in seen, f"{item.id} walked twice"
            seen.add(item.id)
            _relative_links(item)
            for key, asset in item.assets.items():
                found.append(
                    Walked(
                        item.id,
                        item.collection_id,
                        key,
                        asset.href,
                        asset.get_absolute_href() or "",
                        dict(asset.extra_fields),
                    )
                )
    return found


def _relative_links(obj: pystac.STACObject) -> None:
    """The document on disk (not pystac's view of it) links only by relative paths."""
    path = obj.get_self_href()
    assert path is not None
    for link in json.loads(Path(path).read_text())["links"]:
        if link["rel"] in ("root", "parent", "child", "item", "collection", "self"):
            assert "://" not in link["href"], f"{path}: absolute {link['rel']} link {link}"


def md5(data: bytes) -> str:
    """Hex MD5."""
    return hashlib.md5(data).hexdigest()
