"""A flat tree's sidecar table: the geometry, datetime and properties of its pseudo-items,
joined on the item id (pure parsing; the bytes come from the store or a local file).

Two shapes are read:

- CSV (UTF-8, a header row): ``id_column`` names the item; ``datetime_column`` (when given
  and present) its datetime, ISO 8601; a ``geometry`` column, when there is one, holds WKT
  (``POINT (36.8 -1.3)``) or GeoJSON text; every other column becomes an item property,
  as text.
- GeoJSON (a FeatureCollection): each feature's geometry, its ``properties`` (the id in
  ``properties[id_column]``, else the feature's ``id``), the datetime among them.

What is in the file decides the shape (a ``{`` first is GeoJSON), not its name. A row without
an id is skipped; a geometry that cannot be read is left out (with a warning for the first
few), the row's other facts kept: one bad cell does not cost the whole table.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import shapely
from shapely.errors import GEOSException

from mlhub_sync.config.sources import Sidecar
from mlhub_sync.errors import CatalogError
from mlhub_sync.stac.document import parse_time
from mlhub_sync.state.keys import SidecarRow

log = logging.getLogger(__name__)

GEOMETRY_COLUMN = "geometry"

MAX_SIDECAR_BYTES = 512 * 2**20

_WARNINGS = 5  # bad geometries named in the log before the rest go quiet


def parse_sidecar(data: bytes, sidecar: Sidecar, name: str) -> Iterator[SidecarRow]:
    """The rows of a sidecar table (``name``: how errors name it)."""
    text = _text(data, name)
    if text.lstrip()[:1] == "{":
        return _geojson_rows(text, sidecar, name)
    return _csv_rows(text, sidecar, name)


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"the sidecar is not UTF-8 text ({exc.reason} at byte {exc.start})",
            subject=name,
            hint="give a CSV or GeoJSON file encoded as UTF-8",
        ) from None


def _csv_rows(text: str, sidecar: Sidecar, name: str) -> Iterator[SidecarRow]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    if sidecar.id_column not in columns:
        raise CatalogError(
            f"the sidecar has no column {sidecar.id_column!r} (its columns: "
            f"{', '.join(columns[:20]) or 'none'})",
            subject=name,
            hint="set sidecar.id_column to the column that holds the item ids",
        )
    bad = 0
    for number, row in enumerate(reader, start=2):
        item = (row.get(sidecar.id_column) or "").strip()
        if not item:
            continue
        cell = (row.get(GEOMETRY_COLUMN) or "").strip()
        geometry = _geometry_text(cell) if cell else None
        if cell and geometry is None:
            bad += 1
            if bad <= _WARNINGS:
                log.warning("%s line %d: geometry is not WKT or GeoJSON; left out", name, number)
        properties = {
            column: value
            for column, value in row.items()
            if column not in (sidecar.id_column, sidecar.datetime_column, GEOMETRY_COLUMN)
            and isinstance(column, str)
            and value is not None
        }
        when = row.get(sidecar.datetime_column) if sidecar.datetime_column else None
        yield SidecarRow(item, geometry, iso_datetime(when), properties)


def _geojson_rows(text: str, sidecar: Sidecar, name: str) -> Iterator[SidecarRow]:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CatalogError(
            f"the sidecar is not valid JSON ({str(exc)[:200]})",
            subject=name,
            hint="give a GeoJSON FeatureCollection, or a CSV",
        ) from None
    features = parsed.get("features") if isinstance(parsed, Mapping) else None
    if not isinstance(features, list):
        raise CatalogError(
            "the sidecar is JSON but not a GeoJSON FeatureCollection",
            subject=name,
            hint="give a FeatureCollection (features with an id property), or a CSV",
        )
    for feature in features:
        if not isinstance(feature, Mapping):
            continue
        properties = feature.get("properties")
        properties = dict(properties) if isinstance(properties, Mapping) else {}
        item = properties.pop(sidecar.id_column, None)
        if item is None and sidecar.id_column == "id":
            item = feature.get("id")
        if not isinstance(item, str | int) or isinstance(item, bool) or str(item) == "":
            continue
        when = properties.pop(sidecar.datetime_column, None) if sidecar.datetime_column else None
        geometry = feature.get("geometry")
        geometry_text = (
            _geometry_text(json.dumps(geometry)) if isinstance(geometry, Mapping) else None
        )
        yield SidecarRow(str(item), geometry_text, iso_datetime(when), properties)


def _geometry_text(cell: str) -> str | None:
    """A geometry cell (WKT or GeoJSON) as GeoJSON text, or ``None`` when it is neither."""
    try:
        shape = shapely.from_geojson(cell) if cell[:1] == "{" else shapely.from_wkt(cell)
    except (GEOSException, ValueError, TypeError):
        return None
    if shape is None or shape.is_empty:
        return None
    return str(shapely.to_geojson(shape))


def iso_datetime(value: Any) -> str | None:
    """An ISO 8601 instant (naive = UTC) as ``YYYY-MM-DDTHH:MM:SSZ``; ``None`` if unreadable."""
    instant = parse_time(value) if isinstance(value, str) else None
    if instant is None:
        return None
    return dt.datetime.fromtimestamp(instant, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + "Z"
