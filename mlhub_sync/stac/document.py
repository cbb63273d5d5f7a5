"""Reading STAC documents: pure functions from parsed JSON to the facts we index.

Real catalogs are untidy, so this is forgiving where the intent is clear and strict where a
mistake would be silent: an item without ``bbox`` gets one from its geometry; ``datetime: null``
with ``start_datetime``/``end_datetime`` is a range; ``s3://bucket/key`` becomes the bucket's
public https URL; a relative href is resolved against the document's own URL. An href with a
scheme we will not fetch (``ftp:``, ``javascript:``, ``file:`` from a remote catalog) is kept
out and reported instead.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import shapely
from dateutil import parser as dateparser
from shapely.errors import GEOSException

from mlhub_sync.stac.href import (
    LocalHrefs,
    check_local_href,
    is_relative,
    normalize_href,
    with_version,
)


@dataclass(frozen=True)
class Document:
    """A JSON member: its name in the archive, its bytes, and its URL for relative hrefs.

    ``digest`` says when two versions of an item are the same: by default a hash of ``data``;
    a source whose documents carry links that change from response to response (a STAC
    API's paging and ``self`` links) gives a hash of the rest instead."""

    name: str
    data: bytes
    url: str
    digest: str | None = None


Box = tuple[float, float, float, float]


DocKind = Literal["catalog", "collection", "item"]


_HEX = re.compile(r"^[0-9a-fA-F]+$")


@dataclass(frozen=True)
class AssetFacts:
    """One asset as indexed: where it comes from and what we know about its bytes."""

    key: str
    href: str
    media_type: str | None
    size: int | None
    checksum: str | None  # STAC file:checksum, a hex multihash
    # A relative href of an archive that stays inside it: the member it names (``href`` is
    # then its resolution beside the archive, not yet checked: see :func:`asset_facts`), and
    # the href as the catalog wrote it.
    member: str | None = None
    written: str = ""
    # An object-store listing's own relative key (``mlhub:path``): the asset's path in the
    # ``mirror`` layout, used only when the indexer is told the source wrote it.
    path: str | None = None


@dataclass(frozen=True)
class ItemRecord:
    """An item's filterable facts and its assets."""

    collection_id: str
    item_id: str
    bbox: Box | None
    geometry_json: str | None
    start: float | None
    end: float | None
    assets: tuple[AssetFacts, ...]


@dataclass(frozen=True)
class RejectedAsset:
    """An asset we will not fetch, and why (reported, never silently dropped)."""

    key: str
    href: str
    reason: str


def document_kind(doc: Mapping[str, Any]) -> DocKind:
    """Classify a parsed STAC document (works for pre-1.0 collections without ``type``)."""
    kind = doc.get("type")
    if kind == "Feature":
        return "item"
    if kind == "Collection" or ("extent" in doc and "license" in doc and kind != "Catalog"):
        return "collection"
    return "catalog"


def parse_time(value: Any) -> float | None:
    """An ISO 8601 string as epoch seconds (naive = UTC); ``None`` for null or unparseable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = dateparser.isoparse(text)
        except (ValueError, OverflowError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def item_time(properties: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """``(start, end)`` of an item: its range if it has one, else its datetime twice."""
    start = parse_time(properties.get("start_datetime"))
    end = parse_time(properties.get("end_datetime"))
    if start is not None and end is not None:
        return (min(start, end), max(start, end))  # a reversed range still means that span
    if start is not None or end is not None:
        return (start if start is not None else end, end if end is not None else start)
    single = parse_time(properties.get("datetime"))
    return (single, single)


def item_bbox(doc: Mapping[str, Any], geometry_json: str | None) -> Box | None:
    """The item's 2D bbox: its own (2D or 3D), else the bounds of its geometry.

    A bbox that is not 4 or 6 finite numbers with ``miny <= maxy`` is ignored (``minx > maxx``
    is allowed: it crosses the antimeridian).
    """
    bbox = doc.get("bbox")
    if isinstance(bbox, list) and all(_is_finite(v) for v in bbox):
        own: Box | None = None
        if len(bbox) == 4:
            own = (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
        elif len(bbox) == 6:
            own = (float(bbox[0]), float(bbox[1]), float(bbox[3]), float(bbox[4]))
        if own is not None and own[1] <= own[3]:
            return own
    if geometry_json is None:
        return None
    try:
        geometry = shapely.from_geojson(geometry_json)
    except (GEOSException, ValueError):
        return None
    if geometry is None or geometry.is_empty:
        return None
    minx, miny, maxx, maxy = geometry.bounds
    return (float(minx), float(miny), float(maxx), float(maxy))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    if not _is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range (JSON allows any length)
        return False


def asset_facts(
    assets: Any,
    base_url: str,
    *,
    allow_file: bool,
    local: LocalHrefs | None = None,
    members_base: str | None = None,
) -> Iterator[AssetFacts | RejectedAsset]:
    """The assets of an item or collection, normalised; rejected ones say why.

    ``file:`` hrefs need ``allow_file`` and must reach only what ``local`` allows.
    ``members_base`` (an archive's documents: the URL its members' URLs start with) marks
    a relative href that stays inside the archive with the ``member`` it names: it may be a
    file the archive bundles, which is the caller's to find out once the archive is read
    (``local`` is not checked for it here; the caller checks it when there is no member).
    """
    if not isinstance(assets, Mapping):
        return
    for key, asset in assets.items():
        if not isinstance(asset, Mapping) or not isinstance(asset.get("href"), str):
            yield RejectedAsset(str(key), "", "the asset has no href")
            continue
        member = None
        try:
            href = normalize_href(asset["href"], base_url, allow_file=allow_file)
            if members_base is not None and is_relative(asset["href"]):
                member = archive_member(href, members_base)
            if member is None:
                check_local_href(href, local, asset["href"])
        except ValueError as exc:
            yield RejectedAsset(str(key), str(asset["href"])[:200], str(exc))
            continue
        media_type = asset.get("type")
        etag, own_path = asset.get("mlhub:etag"), asset.get("mlhub:path")
        if member is None and isinstance(etag, str):
            href = with_version(href, etag)
        size = asset.get("file:size")
        checksum = asset.get("file:checksum")
        yield AssetFacts(
            key=str(key),
            href=href,
            media_type=media_type if isinstance(media_type, str) else None,
            size=size
            if isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 2**63
            else None,
            checksum=checksum.lower()
            if isinstance(checksum, str) and _HEX.match(checksum) and len(checksum) % 2 == 0
            else None,
            member=member,
            written=asset["href"] if member is not None else "",
            path=own_path if isinstance(own_path, str) and own_path else None,
        )


def archive_member(url: str, members_base: str) -> str | None:
    """The member path (``/``-separated, unquoted) that ``url`` names below ``members_base``,
    or ``None`` when it is not below it (or names a folder)."""
    if not url.startswith(members_base):
        return None
    rest = urlsplit(url[len(members_base) :])
    if rest.scheme or rest.netloc or rest.query or not rest.path or rest.path.endswith("/"):
        return None
    parts = unquote(rest.path).split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return "/".join(parts)


def parse_item(
    doc: Mapping[str, Any],
    base_url: str,
    fallback_collection: str,
    *,
    allow_file: bool,
    local: LocalHrefs | None = None,
    members_base: str | None = None,
) -> tuple[ItemRecord, list[RejectedAsset]]:
    """An item's record (``ValueError`` when it has no usable id); ``members_base`` as in
    :func:`asset_facts`."""
    item_id = doc.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise ValueError("the item has no id")
    collection = doc.get("collection")
    collection_id = (
        collection if isinstance(collection, str) and collection else fallback_collection
    )
    geometry = doc.get("geometry")
    geometry_json = (
        json.dumps(geometry, separators=(",", ":")) if isinstance(geometry, Mapping) else None
    )
    properties = doc.get("properties")
    start, end = item_time(properties if isinstance(properties, Mapping) else {})
    accepted: list[AssetFacts] = []
    rejected: list[RejectedAsset] = []
    for facts in asset_facts(
        doc.get("assets"), base_url, allow_file=allow_file, local=local, members_base=members_base
    ):
        (accepted if isinstance(facts, AssetFacts) else rejected).append(facts)  # type: ignore[arg-type]
    record = ItemRecord(
        collection_id=collection_id,
        item_id=item_id,
        bbox=item_bbox(doc, geometry_json),
        geometry_json=geometry_json,
        start=start,
        end=end,
        assets=tuple(accepted),
    )
    return record, rejected


def tree_links(doc: Mapping[str, Any], base_url: str) -> Iterator[tuple[str, str]]:
    """``(rel, URL)`` of a document's ``child`` and ``item`` links, resolved against
    ``base_url`` (for matching documents by URL: nothing is fetched, so any scheme is kept);
    links that cannot be resolved are left out."""
    links = doc.get("links")
    if not isinstance(links, list):
        return
    for link in links:
        if not isinstance(link, Mapping) or link.get("rel") not in ("child", "item"):
            continue
        href = link.get("href")
        if not isinstance(href, str):
            continue
        try:
            yield str(link["rel"]), normalize_href(href, base_url, allow_file=True)
        except ValueError:
            continue


def fallback_collection_id(relpath: str) -> str:
    """The collection an item belongs to by its place in the archive.

    Items sit at ``[top/]{collection}/{item}/{item}.json``: the folder above the item's folder.
    """
    parts = posixpath.normpath(relpath).split("/")
    return parts[-3] if len(parts) >= 3 else "_default"
