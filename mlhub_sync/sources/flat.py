"""A flat tree of files (an object-store prefix without STAC) read as a STAC catalog: the core
every object-store source (``s3``, ``azure``) hands its lister to.

Each listed key (relative to the prefix) is read through the source's path templates
(``selection/template.py``; without one, a key's folder is its item and its stem the asset)
into (collection, item, asset); the keys no template reads are counted and the first ones
named in the plan (:class:`~mlhub_sync.sources.base.Unmatched`). The keys of one item need
not be adjacent in the listing, so the matches go into a scratch table on disk
(``state/keys.py``) and come back grouped: memory stays flat at any size of listing.

Then the documents, staged in the layout and handed to the indexer like a crawled catalog's:
a root ``catalog.json``, one Item per pseudo-item and, after its items, one Collection per
collection (its extent theirs). An Item's ``properties`` are its template fields
(``split: train``), its ``datetime`` the sidecar's, else the template's ``{date:...}``, else
null; its geometry and bbox the sidecar's. Each asset is ``{href, file:size, mlhub:etag}``
(``file:checksum`` only where the store vouches for an MD5: an S3 ETag is no checksum, the
transfer's ``s3-etag`` rung judges it on the GET), and with ``layout: mirror`` its
``mlhub:path``: the key itself, which the indexer makes a safe path segment by segment
(``selection.layout.mirror_relpath``), so the tree on disk is the store's.

A sidecar given by ``key`` is a file of the store: it is also synced, as an asset of the
default collection (torchgeo's loaders read ``{split}_metadata.csv`` beside the images), and
read from the store once listed; one given by ``path`` is read from the local disk.
"""

from __future__ import annotations

import json
import logging
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlhub_sync.config.sources import AzureSource, S3Source
from mlhub_sync.errors import CatalogError
from mlhub_sync.net.redact import redact_url
from mlhub_sync.selection.layout import asset_extension, collection_dir, safe_component
from mlhub_sync.selection.template import KeyMatch, Template, compile_templates, match_key
from mlhub_sync.sources.base import CrawledCatalog, SourceContext, Unmatched, stage_document
from mlhub_sync.sources.listing import ListedObject, Lister
from mlhub_sync.sources.sidecar import MAX_SIDECAR_BYTES, parse_sidecar
from mlhub_sync.stac.checksum import md5_multihash
from mlhub_sync.stac.document import Document
from mlhub_sync.state.keys import Group, KeyRow, KeyTable

log = logging.getLogger(__name__)

STAC_VERSION = "1.0.0"
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
SCRATCH_NAME = ".flat-keys.sqlite"  # in the staging folder, removed with it

FlatSource = S3Source | AzureSource


def default_match(key: str, collection: str) -> KeyMatch:
    """What a key is without a template: its folder (the whole path above it) is the item, its
    stem the asset; a key at the top is an item of its own, named by its stem."""
    folder, _, name = key.rpartition("/")
    stem = name.split(".", 1)[0] or name or "_"
    return KeyMatch(collection=collection, item=folder or stem, asset=stem)


def dot_segments(key: str) -> bool:
    """Whether ``key`` has a ``.`` or ``..`` segment: its URL cannot be fetched as is (libcurl
    and most HTTP clients remove dot segments, ``%2E`` ones too, and would GET another key),
    so it is counted with the keys no template reads rather than synced."""
    return any(segment in (".", "..") for segment in key.split("/"))


def read_key(templates: tuple[Template, ...] | None, key: str, collection: str) -> KeyMatch | None:
    """The reading of ``key`` (pure): the first template that matches, or the default rule
    when there are no templates; ``None`` when templates are given and none matches."""
    if templates is None:
        return default_match(key, collection)
    return match_key(templates, key, collection)


def item_place(collection: str, item: str) -> str:
    """Where an item's document is staged: ``{collection}/{item}/{item}.json``."""
    name = safe_component(item)
    return f"{collection_dir(collection)}/{name}/{name}.json"


def origin(spec: FlatSource) -> str:
    """The tree's own address, ``s3://bucket/prefix`` or ``az://account/container/prefix``:
    where its documents say they come from (they are made here, never fetched)."""
    if isinstance(spec, S3Source):
        return f"s3://{spec.bucket}/{spec.prefix}"
    return f"az://{spec.account}/{spec.container}/{spec.prefix}"


def default_collection(spec: FlatSource, dataset_id: str) -> str:
    """The collection of keys whose template has no ``{collection}``."""
    return spec.collection or dataset_id


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
        assets[_free_key(assets, row)] = asset_entry(row, mirror)
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
    box = _bounds(geometry)
    if box is not None:
        doc["bbox"] = list(box)
    return doc


def _free_key(assets: dict[str, Any], row: KeyRow) -> str:
    if row.asset not in assets:
        return row.asset
    name = posixpath.basename(row.key)
    ext = asset_extension(row.url, None)
    base = name[: -len(ext)] if ext and name.lower().endswith(ext) else name
    candidate, n = base or row.asset, 2
    while candidate in assets:
        candidate, n = f"{base or row.asset}_{n}", n + 1
    return candidate


def _bounds(geometry: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(geometry, dict):
        return None
    import shapely  # noqa: PLC0415 - only items with a sidecar geometry need it

    shape = shapely.from_geojson(json.dumps(geometry))
    minx, miny, maxx, maxy = shape.bounds
    return (float(minx), float(miny), float(maxx), float(maxy))


@dataclass
class _Extent:
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
    collection: str, extent: _Extent, description: str, assets: dict[str, Any]
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


def flat_documents(
    spec: FlatSource, lister: Lister, ctx: SourceContext, staging: Path, unmatched: Unmatched
) -> Iterator[Document]:
    """List the tree, read every key through the templates, and stage and yield its
    documents (see the module docstring)."""
    templates = compile_templates(spec.template) if spec.template is not None else None
    collection = default_collection(spec, ctx.dataset_id)
    mirror = spec.layout == "mirror"
    base = origin(spec)
    sidecar_key = spec.sidecar.key if spec.sidecar is not None else None
    sidecar_object: ListedObject | None = None
    root = {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": ctx.dataset_id,
        "description": f"{ctx.dataset_id}: the files under {base}, read as STAC by mlhub-sync",
        "links": [],
    }
    data = json.dumps(root).encode()
    if stage_document(staging, "catalog.json", data):
        yield Document("catalog.json", data, base + "catalog.json")
    with KeyTable(staging / SCRATCH_NAME) as table:
        with ctx.reporter.stage("list keys", unit="keys") as stage:
            for obj in lister():
                stage.update()
                if obj.key == sidecar_key:
                    sidecar_object = obj
                    continue
                found = None if dot_segments(obj.key) else read_key(templates, obj.key, collection)
                if found is None:
                    unmatched.add(obj.key)
                    continue
                when = found.datetime.strftime("%Y-%m-%dT%H:%M:%SZ") if found.datetime else None
                table.add(
                    KeyRow(
                        found.collection, found.item, found.asset, obj.key, obj.url, obj.size,
                        obj.etag, obj.md5, obj.last_modified, when, dict(found.properties),
                    )
                )  # fmt: skip
        if unmatched.count:
            log.warning(
                "%s: keys that match no template (not synced): %d, e.g. %s",
                ctx.dataset_id, unmatched.count, ", ".join(unmatched.shown[:3]),
            )  # fmt: skip
        if spec.sidecar is not None:
            data, name = _sidecar_bytes(spec, sidecar_object, ctx)
            table.add_sidecar(parse_sidecar(data, spec.sidecar, name))
        yield from _grouped(table, spec, ctx, staging, collection, sidecar_object, mirror)


def _grouped(
    table: KeyTable,
    spec: FlatSource,
    ctx: SourceContext,
    staging: Path,
    default: str,
    sidecar_object: ListedObject | None,
    mirror: bool,
) -> Iterator[Document]:
    base = origin(spec)
    current: str | None = None
    extent = _Extent()

    def collection_doc(collection: str) -> Iterator[Document]:
        assets: dict[str, Any] = {}
        if collection == default and sidecar_object is not None:
            row = KeyRow(collection, "", "", sidecar_object.key, sidecar_object.url,
                         sidecar_object.size, sidecar_object.etag, sidecar_object.md5)  # fmt: skip
            stem = posixpath.basename(sidecar_object.key).split(".", 1)[0] or "sidecar"
            assets[stem] = {**asset_entry(row, mirror), "roles": ["metadata"]}
        doc = collection_document(collection, extent, f"{collection}: files under {base}", assets)
        rel = f"{collection_dir(collection)}/collection.json"
        data = json.dumps(doc).encode()
        if stage_document(staging, rel, data):
            yield Document(rel, data, base + rel)

    seen_default = False
    for group in table.groups():
        if group.collection != current:
            if current is not None:
                yield from collection_doc(current)
            current, extent = group.collection, _Extent()
            seen_default = seen_default or current == default
        doc = item_document(group, mirror)
        extent.add(doc)
        rel = item_place(group.collection, group.item)
        data = json.dumps(doc).encode()
        if stage_document(staging, rel, data):
            yield Document(rel, data, base + rel)
    if current is not None:
        yield from collection_doc(current)
    if not seen_default and sidecar_object is not None:
        extent = _Extent()
        yield from collection_doc(default)


def _sidecar_bytes(
    spec: FlatSource, listed: ListedObject | None, ctx: SourceContext
) -> tuple[bytes, str]:
    sidecar = spec.sidecar
    assert sidecar is not None
    if sidecar.path is not None:
        try:
            with open(sidecar.path, "rb") as handle:
                return handle.read(MAX_SIDECAR_BYTES + 1)[:MAX_SIDECAR_BYTES], sidecar.path
        except OSError as exc:
            raise CatalogError(
                f"cannot read the sidecar: {exc.strerror or exc}",
                subject=sidecar.path,
                hint="sidecar.path is relative to the spec's folder",
            ) from None
    if listed is None:
        raise CatalogError(
            f"the sidecar key {sidecar.key!r} is not in the listing of {origin(spec)}",
            subject=origin(spec),
            hint="sidecar.key is relative to the source's prefix; check it against the keys",
        )
    reply = ctx.http.get(listed.url, what="sidecar", max_bytes=MAX_SIDECAR_BYTES)
    return reply.content, redact_url(listed.url)


class _Snapshot:
    """Keeps the arguments of :func:`flat_snapshot` for its documents callable."""

    def __init__(self, spec: FlatSource, lister: Lister, ctx: SourceContext, unmatched: Unmatched):
        self.spec, self.lister, self.ctx, self.unmatched = spec, lister, ctx, unmatched

    def __call__(self, staging: Path) -> Iterator[Document]:
        return flat_documents(self.spec, self.lister, self.ctx, staging, self.unmatched)


def flat_snapshot(
    spec: S3Source | AzureSource, lister: Lister, ctx: SourceContext
) -> CrawledCatalog:
    """The snapshot of a flat tree: its documents made as the listing streams (see the
    module docstring), its unmatched keys counted, its assets placed by ``mlhub:path`` when
    the layout is ``mirror``."""
    unmatched = Unmatched()
    return CrawledCatalog(
        documents=_Snapshot(spec, lister, ctx, unmatched),
        allow_file_hrefs=False,  # a store on the network never names local files
        unmatched=unmatched,
        asset_paths=spec.layout == "mirror",
    )
