"""A deterministic MLHub-style dataset for tests: API objects, the catalog archive, the blobs.

``build_tiny`` makes the standard fixture, chosen to exercise the quirks of real archives:

- two collections (``tiny_source``: imagery; ``tiny_labels``: labels) and a collection-level
  asset (``class_map``);
- items with a single ``datetime`` (source) and with ``datetime: null`` plus a range (labels),
  one item without any time, Point and Polygon geometries, one item without ``bbox``;
- a ``documentation`` asset whose href every item shares (a common asset);
- ``file:checksum`` (MD5 multihash) and ``file:size`` on some assets, not on others;
- an uppercase extension, an href with a query string, an href without extension;
- macOS debris (``._*``, ``.DS_Store``) and, in one item folder, a copy of an asset at exactly
  its asset path (as real archives ship ``labels.geojson``).

Everything is derived from names, so two builds are byte-identical (archive mtimes fixed).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EPOCH = 1_600_000_000
AOI_BBOX = (-13.278254, 8.447033, -13.231551, 8.493532)  # Freetown, as in the seed notebook


def blob_bytes(name: str, size: int) -> bytes:
    """Deterministic content for a blob."""
    seed = hashlib.sha256(name.encode()).digest()
    reps = size // len(seed) + 1
    return (seed * reps)[:size]


def md5_multihash(data: bytes) -> str:
    """STAC ``file:checksum`` for MD5."""
    return "d50110" + hashlib.md5(data).hexdigest()


@dataclass(frozen=True)
class GenAsset:
    """One asset as generated: where its bytes live and what the layout should make of it."""

    collection_id: str
    item_id: str | None
    key: str
    blob: str  # path under blobs/
    size: int
    md5: str
    expected_path: str  # path under {output_dir}/{dataset_id}/ per DESIGN.md §1.3


@dataclass
class GeneratedDataset:
    """What a test needs to know about a generated dataset."""

    dataset_id: str
    root: Path  # serve this with TestServer(root)
    archive: Path
    api_object: dict[str, Any]
    assets: list[GenAsset] = field(default_factory=list)

    def unique_assets(self) -> dict[str, GenAsset]:
        """By expected path (shared hrefs at one path collapse to one)."""
        return {a.expected_path: a for a in self.assets}

    def blob_path(self, asset: GenAsset) -> Path:
        """The file the server sends for ``asset``."""
        return self.root / "blobs" / asset.blob


def _polygon(cx: float, cy: float, d: float = 0.01) -> dict[str, Any]:
    ring = [
        [cx - d, cy - d],
        [cx + d, cy - d],
        [cx + d, cy + d],
        [cx - d, cy + d],
        [cx - d, cy - d],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


def _bbox(geometry: dict[str, Any]) -> list[float]:
    if geometry["type"] == "Point":
        x, y = geometry["coordinates"]
        return [x, y, x, y]
    xs = [p[0] for p in geometry["coordinates"][0]]
    ys = [p[1] for p in geometry["coordinates"][0]]
    return [min(xs), min(ys), max(xs), max(ys)]


class _Builder:
    def __init__(self, root: Path, base_url: str, dataset_id: str):
        self.root = root
        self.base_url = base_url.rstrip("/")
        self.dataset_id = dataset_id
        self.members: list[tuple[str, bytes]] = []
        self.assets: list[GenAsset] = []

    def blob(self, rel: str, size: int) -> tuple[str, bytes]:
        data = blob_bytes(rel, size)
        path = self.root / "blobs" / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return f"{self.base_url}/blobs/{rel}", data

    def asset(
        self,
        collection_id: str,
        item_id: str | None,
        key: str,
        rel: str,
        size: int,
        expected: str,
        *,
        media_type: str | None = None,
        checksum: bool = False,
        file_size: bool = False,
        query: str = "",
    ) -> dict[str, Any]:
        href, data = self.blob(rel, size)
        self.assets.append(
            GenAsset(
                collection_id, item_id, key, rel, size, hashlib.md5(data).hexdigest(), expected
            )
        )
        obj: dict[str, Any] = {"href": href + query, "roles": ["data"]}
        if media_type:
            obj["type"] = media_type
        if checksum:
            obj["file:checksum"] = md5_multihash(data)
        if file_size:
            obj["file:size"] = size
        return obj

    def json_member(self, rel: str, obj: dict[str, Any]) -> None:
        self.members.append((rel, json.dumps(obj, indent=1).encode()))


def build_tiny(
    root: Path,
    base_url: str,
    dataset_id: str = "tiny",
    size: int = 2048,
    *,
    top_folder: str | None = None,
) -> GeneratedDataset:
    """The standard test dataset (see the module docstring)."""
    b = _Builder(root, base_url, dataset_id)
    ds = dataset_id
    doc = b.blob(f"{ds}/documentation.pdf", 1500)[0]
    b.assets.append(
        GenAsset(
            "tiny_source",
            None,
            "documentation",
            f"{ds}/documentation.pdf",
            1500,
            hashlib.md5(blob_bytes(f"{ds}/documentation.pdf", 1500)).hexdigest(),
            "_common/documentation.pdf",
        )
    )
    catalog_links: list[dict[str, Any]] = []
    # -- source collection: 6 items, one per day from 2019-04-01, alternating inside/outside AOI
    src_items = []
    for i in range(6):
        item_id = f"src_{i}"
        inside = i % 2 == 0
        cx, cy = (-13.25, 8.47) if inside else (10.0 + i, 40.0)
        geometry = _polygon(cx, cy)
        ext_b03 = ".TIF" if i == 1 else ".tif"
        assets = {
            "B02": b.asset(
                "tiny_source",
                item_id,
                "B02",
                f"{ds}/src/{item_id}/B02.tif",
                size + i,
                f"tiny_source/{item_id}/B02.tif",
                media_type="image/tiff",
                checksum=i % 2 == 0,
                file_size=True,
            ),
            "B03": b.asset(
                "tiny_source",
                item_id,
                "B03",
                f"{ds}/src/{item_id}/B03{ext_b03}",
                size + 100 + i,
                f"tiny_source/{item_id}/B03.tif",
            ),
            "documentation": {"href": doc, "type": "application/pdf"},
        }
        if i == 2:  # an href without extension: the media type decides
            assets["B04"] = b.asset(
                "tiny_source",
                item_id,
                "B04",
                f"{ds}/src/{item_id}/B04",
                size,
                f"tiny_source/{item_id}/B04.tif",
                media_type="image/tiff; application=geotiff",
            )
        if i == 3:  # a signed href with a query string
            assets["B04"] = b.asset(
                "tiny_source",
                item_id,
                "B04",
                f"{ds}/src/{item_id}/B04.tif",
                size,
                f"tiny_source/{item_id}/B04.tif",
                query="?sv=2021-06-08&sig=SECRETSIG",
            )
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": item_id,
            "collection": "tiny_source",
            "geometry": geometry,
            "bbox": _bbox(geometry),
            "properties": {"datetime": f"2019-04-0{i + 1}T10:00:00Z"},
            "links": [],
            "assets": assets,
        }
        b.json_member(f"tiny_source/{item_id}/{item_id}.json", item)
        src_items.append(item_id)
    b.json_member(
        "tiny_source/collection.json",
        {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": "tiny_source",
            "license": "CC-BY-4.0",
            "description": "source",
            "extent": {},
            "links": [{"rel": "item", "href": f"./{i}/{i}.json"} for i in src_items],
        },
    )
    catalog_links.append({"rel": "child", "href": "./tiny_source/collection.json"})
    # -- labels collection: ranges, a point, an item without bbox, one without time
    lbl_items = []
    for i in range(4):
        item_id = f"lbl_{i}"
        geometry = (
            {"type": "Point", "coordinates": [-13.25, 8.47]}
            if i == 0
            else _polygon(-13.25 if i < 3 else 50.0, 8.47)
        )
        props: dict[str, Any] = {"datetime": None}
        if i < 3:
            props["start_datetime"] = f"2019-0{3 + i}-01T00:00:00Z"
            props["end_datetime"] = f"2019-0{3 + i}-28T00:00:00Z"
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": item_id,
            "collection": "tiny_labels",
            "geometry": geometry,
            "properties": props,
            "links": [],
            "assets": {
                "labels": b.asset(
                    "tiny_labels",
                    item_id,
                    "labels",
                    f"{ds}/lbl/{item_id}/labels.geojson",
                    300 + i,
                    f"tiny_labels/{item_id}/labels.geojson",
                    media_type="application/geo+json",
                    checksum=True,
                ),
                "documentation": {"href": doc},
            },
        }
        if i != 1:
            item["bbox"] = _bbox(geometry)
        b.json_member(f"tiny_labels/{item_id}/{item_id}.json", item)
        lbl_items.append(item_id)
    # a copy of an asset shipped inside the archive at its asset path
    copy = blob_bytes(f"{ds}/lbl/lbl_0/labels.geojson", 300)
    b.members.append(("tiny_labels/lbl_0/labels.geojson", copy))
    b.json_member(
        "tiny_labels/collection.json",
        {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": "tiny_labels",
            "license": "CC-BY-4.0",
            "description": "labels",
            "extent": {},
            "links": [{"rel": "item", "href": f"./{i}/{i}.json"} for i in lbl_items],
            "assets": {
                "class_map": b.asset(
                    "tiny_labels",
                    None,
                    "class_map",
                    f"{ds}/lbl/class_map.csv",
                    64,
                    "tiny_labels/class_map.csv",
                    media_type="text/csv",
                )
            },
        },
    )
    catalog_links.append({"rel": "child", "href": "./tiny_labels/collection.json"})
    b.json_member(
        "catalog.json",
        {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": ds,
            "description": "tiny test dataset",
            "links": catalog_links,
        },
    )
    b.members.append(("._catalog.json", b"\x00\x05\x16\x07debris"))
    b.members.append((".DS_Store", b"debris"))
    archive = root / "blobs" / "archives" / f"{ds}.tar.gz"
    write_archive(archive, b.members, top=ds if top_folder is None else top_folder)
    api_object = {
        "id": ds,
        "title": "Tiny test dataset",
        "description": "for tests",
        "doi": "10.0/tiny",
        "citation": "Tests (2026)",
        "registry": "https://example.invalid/tiny",
        "status": "ok",
        "tags": ["test"],
        "date_added": "2026-01-01",
        "date_modified": "2026-01-02",
        "documentation_link": doc,
        "creator_contact": {"contact": "a@b.c", "creator": "tests"},
        "publications": [],
        "tools_applications": [],
        "tutorials": [],
        "bbox": {
            "type": "Polygon",
            "coordinates": [[[-14, 8], [-13, 8], [-13, 9], [-14, 9], [-14, 8]]],
        },
        "collections": [
            {"id": "tiny_source", "types": ["source_imagery"], "license": "CC-BY-4.0"},
            {"id": "tiny_labels", "types": ["labels"], "license": "CC-BY-4.0"},
        ],
    }
    return GeneratedDataset(ds, root, archive, api_object, b.assets)


def write_archive(path: Path, members: Iterable[tuple[str, bytes]], top: str = "") -> None:
    """A deterministic ``.tar.gz`` of ``members`` under the folder ``top`` ('' for none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            info.mtime = EPOCH
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=EPOCH) as gz:
        gz.write(buffer.getvalue())


def write_shared_href_archive(
    path: Path, dataset_id: str, asset_key: str, href: str, items: int
) -> None:
    """A catalog archive of ``items`` items in collection ``c`` whose asset ``asset_key``
    all point at the same ``href`` (not a common asset: fetched once, linked to the rest)."""
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": dataset_id, "links": []}
    members = [("catalog.json", json.dumps(catalog).encode())]
    for i in range(items):
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": f"it{i}",
            "collection": "c",
            "geometry": None,
            "properties": {"datetime": None},
            "links": [],
            "assets": {asset_key: {"href": href}},
        }
        members.append((f"c/it{i}/it{i}.json", json.dumps(item).encode()))
    write_archive(path, members, top=dataset_id)


def serve_mlhub(server: Any, data: GeneratedDataset, api_key: str | None = None) -> str:
    """Register the MLHub API routes for ``data`` on ``server``; return the API root URL."""
    ds = data.dataset_id
    server.add_json(f"/api/datasets/{ds}", data.api_object)
    server.add_redirect(f"/api/catalog/{ds}", f"{server.url}/blobs/archives/{ds}.tar.gz")
    if api_key:
        server.require_key("/api/", api_key)
    return f"{server.url}/api/"


def build_many(
    root: Path,
    base_url: str,
    dataset_id: str = "many",
    items: int = 50,
    size: int = 64 * 1024,
    *,
    checksum: bool = False,
) -> GeneratedDataset:
    """One collection of ``items`` items with two assets each (for load, kill and resume)."""
    b = _Builder(root, base_url, dataset_id)
    ds = dataset_id
    for i in range(items):
        item_id = f"item_{i:05d}"
        assets = {
            key: b.asset(
                "c",
                item_id,
                key,
                f"{ds}/{item_id}/{key}.tif",
                size + i,
                f"c/{item_id}/{key}.tif",
                checksum=checksum,
                file_size=True,
            )
            for key in ("a", "b")
        }
        b.json_member(
            f"c/{item_id}/{item_id}.json",
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": item_id,
                "collection": "c",
                "geometry": _polygon(0.0, 0.0),
                "bbox": [-0.01, -0.01, 0.01, 0.01],
                "properties": {"datetime": "2020-01-01T00:00:00Z"},
                "links": [],
                "assets": assets,
            },
        )
    b.json_member(
        "c/collection.json",
        {
            "type": "Collection",
            "stac_version": "1.0.0",
            "id": "c",
            "license": "x",
            "description": "c",
            "extent": {},
            "links": [],
        },
    )
    b.json_member(
        "catalog.json",
        {"type": "Catalog", "stac_version": "1.0.0", "id": ds, "description": ds, "links": []},
    )
    archive = root / "blobs" / "archives" / f"{ds}.tar.gz"
    write_archive(archive, b.members, top=ds)
    return GeneratedDataset(ds, root, archive, {"id": ds, "title": ds}, b.assets)


def write_asset_catalog(path: Path, dataset_id: str, assets: dict[str, dict[str, Any]]) -> None:
    """A catalog archive with one item per entry of ``assets`` (item id -> its ``data`` asset
    object: ``href`` and any ``file:size`` / ``file:checksum``), in collection ``c``."""
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": dataset_id, "links": []}
    members = [("catalog.json", json.dumps(catalog).encode())]
    for item_id, asset in assets.items():
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": item_id,
            "collection": "c",
            "geometry": None,
            "properties": {"datetime": None},
            "links": [],
            "assets": {"data": asset},
        }
        members.append((f"c/{item_id}/{item_id}.json", json.dumps(item).encode()))
    write_archive(path, members, top=dataset_id)


def one_asset_item(item_id: str, href: str) -> bytes:
    """An item of collection ``c`` with no geometry or datetime and one asset ``data`` at
    ``href``, as JSON bytes: the smallest document that makes an asset of ``href``."""
    return json.dumps(
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": item_id,
            "collection": "c",
            "geometry": None,
            "properties": {"datetime": None},
            "links": [],
            "assets": {"data": {"href": href}},
        }
    ).encode()
