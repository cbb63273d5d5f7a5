"""The pseudo-items of a flat tree (``sources/flat.py``) as STAC documents: pure functions from
what the listing, the templates and the sidecar said to an Item's or a Collection's JSON.

An Item's ``properties`` are its template fields (``split: train``), its ``datetime`` the
sidecar's, else the template's ``{date:...}``, else null; its geometry and bbox the sidecar's.
Each asset is ``{href, file:size, mlhub:etag}`` (``file:checksum`` only where the store vouches
for an MD5), and with ``layout: mirror`` its ``mlhub:path``: the key itself. A Collection's
extent is its items'.

:data:`FORMAT` names this shape: a flat tree's index digest includes it, so a change here
re-indexes every flat tree once (bump it with any change to what these functions write).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from typing import Any

import shapely

from mlhub_sync.selection.layout import asset_extension
from mlhub_sync.stac.checksum import md5_multihash
from mlhub_sync.state.keys import Group, KeyRow

FORMAT = "flat-items/1"

STAC_VERSION = "1.0.0"
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"


def asset_entry(row: KeyRow, mirror: bool) -> dict[str, Any]:
    """An asset of a pseudo-item, from what the listing said about its key (pure)."""
    entry: dict[str, Any] = {"href": row.url, "roles": ["data"]}
    if row.size is not None:
        entry["file:size"] = row.size
    if row.md5:
        entry["file:checksum"] = md5_multihash(row.md5.lower())
    if row.etag:
        entry["mlhub:etag"] = row.etag
    if mirror:
        entry["mlhub:path"] = row.key  # the indexer makes it a safe path (mirror_relpath)
    return entry


def item_document(group: Group, mirror: bool) -> dict[str, Any]:
    """The STAC Item of one pseudo-item (pure). Two keys that read as the same asset keep
    the first's key; the next is named by its file name (less the extension the layout adds),
    then numbered."""
    properties: dict[str, Any] = {}
    when: str | None = None
    for row in group.keys:
        for name, value in (row.properties or {}).items():
            properties.setdefault(name, value)
        when = when or row.datetime
    geometry: Any = None
    if group.sidecar is not None:
        for name, value in group.sidecar.properties.items():
            properties.setdefault(name, value)
        when = group.sidecar.datetime or when
        if group.sidecar.geometry is not None:
            geometry = json.loads(group.sidecar.geometry)
    assets: dict[str, Any] = {}
    for row in group.keys:
        assets[free_key(assets, row)] = asset_entry(row, mirror)
    doc: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [FILE_EXTENSION],
        "id": group.item,
        "collection": group.collection,
        "geometry": geometry,
        "properties": {"datetime": when, **properties},
        "links": [],
        "assets": assets,
    }
    box = bounds(geometry)
    if box is not None:
        doc["bbox"] = list(box)
    return doc


def free_key(assets: dict[str, Any], row: KeyRow) -> str:
    if row.asset not in assets:
        return row.asset
    name = posixpath.basename(row.key)
    ext = asset_extension(row.url, None)
    base = name[: -len(ext)] if ext and name.lower().endswith(ext) else name
    candidate, n = base or row.asset, 2
    while candidate in assets:
        candidate, n = f"{base or row.asset}_{n}", n + 1
    return candidate


def bounds(geometry: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(geometry, dict):
        return None
    shape = shapely.from_geojson(json.dumps(geometry))
    minx, miny, maxx, maxy = shape.bounds
    return (float(minx), float(miny), float(maxx), float(maxy))


@dataclass
class Extent:
    """A collection's extent, grown item by item."""

    box: list[float] | None = None
    start: str | None = None
    end: str | None = None

    def add(self, item: dict[str, Any]) -> None:
        box = item.get("bbox")
        if box is not None:
            self.box = box if self.box is None else [
                min(self.box[0], box[0]), min(self.box[1], box[1]),
                max(self.box[2], box[2]), max(self.box[3], box[3]),
            ]  # fmt: skip
        when = item["properties"].get("datetime")
        if when is not None:
            self.start = when if self.start is None else min(self.start, when)
            self.end = when if self.end is None else max(self.end, when)


def collection_document(
    collection: str, extent: Extent, description: str, assets: dict[str, Any]
) -> dict[str, Any]:
    """The STAC Collection of a flat tree's collection (pure)."""
    doc: dict[str, Any] = {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [FILE_EXTENSION],
        "id": collection,
        "description": description,
        "license": "other",
        "extent": {
            "spatial": {"bbox": [extent.box or [-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[extent.start, extent.end]]},
        },
        "links": [],
    }
    if assets:
        doc["assets"] = assets
    return doc
