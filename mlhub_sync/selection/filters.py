"""Asset filters: pure values and predicates, no I/O.

A :class:`FilterSet` combines a collection / asset-key allow-list, a time window, and one
spatial filter (a bbox or a GeoJSON geometry). Spatial and temporal tests apply to *items*;
the allow-list applies to assets. Every test is inclusive: a point on a box edge, or an item
whose time range touches the window's end, is selected.

Spatial tests use the item's real geometry when it has one (shapely), after a cheap bbox
pre-test. A bbox whose min longitude is greater than its max longitude crosses the
antimeridian and is split into two boxes, for filters and item bboxes alike.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import shapely
from shapely.errors import GEOSException
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from mlhub_sync.stac.document import Box


@dataclass(frozen=True)
class TimeWindow:
    """An inclusive window of UTC instants, as epoch seconds; ``None`` is an open end."""

    start: float | None
    end: float | None

    @classmethod
    def from_bounds(
        cls, start: dt.date | dt.datetime | None, end: dt.date | dt.datetime | None
    ) -> TimeWindow:
        """A window from datetimes or dates; a date ``end`` includes that whole UTC day."""
        return cls(
            _instant(start, end_of_day=False) if start is not None else None,
            _instant(end, end_of_day=True) if end is not None else None,
        )

    @classmethod
    def day_of(cls, when: dt.date | dt.datetime) -> TimeWindow:
        """The whole UTC day containing ``when`` (a date, or a datetime's UTC date; naive = UTC)."""
        if isinstance(when, dt.datetime):
            aware = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
            day = aware.astimezone(dt.UTC).date()
        else:
            day = when
        return cls.from_bounds(day, day)

    def admits(self, item_start: float | None, item_end: float | None) -> bool:
        """True when the item's time range overlaps the window (items without time: False)."""
        if item_start is None and item_end is None:
            return False
        lo = item_start if item_start is not None else item_end
        hi = item_end if item_end is not None else item_start
        assert lo is not None and hi is not None
        if self.start is not None and hi < self.start:
            return False
        return not (self.end is not None and lo > self.end)

    def describe(self) -> str:
        """Human-readable ``start .. end`` in ISO 8601."""
        return f"{_iso(self.start)} .. {_iso(self.end)}"


def _instant(value: dt.date | dt.datetime, *, end_of_day: bool) -> float:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.timestamp()
    midnight = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if end_of_day:
        return (midnight + dt.timedelta(days=1)).timestamp() - 1e-6
    return midnight.timestamp()


def _iso(ts: float | None) -> str:
    if ts is None:
        return "open"
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def split_antimeridian(bbox: Box) -> tuple[Box, ...]:
    """A bbox as one or two boxes that do not cross the antimeridian."""
    minx, miny, maxx, maxy = bbox
    if minx <= maxx:
        return (bbox,)
    return ((minx, miny, 180.0, maxy), (-180.0, miny, maxx, maxy))


def boxes_intersect(a: Box, b: Box) -> bool:
    """Inclusive intersection of two bboxes, either of which may cross the antimeridian."""
    for ax0, ay0, ax1, ay1 in split_antimeridian(a):
        for bx0, by0, bx1, by1 in split_antimeridian(b):
            if ax0 <= bx1 and bx0 <= ax1 and ay0 <= by1 and by0 <= ay1:
                return True
    return False


def geometry_from_geojson(obj: Mapping[str, Any]) -> BaseGeometry:
    """A shapely geometry from a GeoJSON Geometry, Feature or FeatureCollection.

    Raises ``ValueError`` with a specific message when ``obj`` is not usable.
    """
    kind = obj.get("type")
    if kind == "Feature":
        geometry = obj.get("geometry")
        if not isinstance(geometry, Mapping):
            raise ValueError("the Feature has no geometry")
        return geometry_from_geojson(geometry)
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list) or not features:
            raise ValueError("the FeatureCollection has no features")
        parts = []
        for feature in features:
            if not isinstance(feature, Mapping):
                raise ValueError("a feature of the FeatureCollection is not an object")
            parts.append(geometry_from_geojson(feature))
        return shapely.GeometryCollection(parts)
    if kind not in _GEOMETRY_TYPES:
        raise ValueError(f"GeoJSON type {kind!r} is not a Geometry, Feature or FeatureCollection")
    try:
        geometry = shape(obj)
    except Exception as exc:  # shapely raises several types for malformed coordinates
        raise ValueError(f"malformed {kind} coordinates ({exc})") from exc
    if geometry.is_empty:
        raise ValueError(f"the {kind} is empty")
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        raise ValueError(f"the {kind} is not a valid geometry ({reason})")
    return geometry


_GEOMETRY_TYPES = frozenset(
    {
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
)


class Exclusion(StrEnum):
    """Why an item was left out by a filter (counted in the plan)."""

    TIME = "outside the time window"
    NO_TIME = "no datetime (a time filter is set)"
    SPACE = "outside the area of interest"
    NO_GEOMETRY = "no geometry or bbox (a spatial filter is set)"


@dataclass(frozen=True)
class ItemFacts:
    """What filters look at in an item."""

    bbox: Box | None
    geometry_json: str | None
    start: float | None
    end: float | None


@dataclass(frozen=True)
class FilterSet:
    """All the filters of one dataset. Empty means: everything."""

    collections: Mapping[str, frozenset[str]] | None = None
    time: TimeWindow | None = None
    bbox: Box | None = None
    intersects: Mapping[str, Any] | None = None
    _area: BaseGeometry | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.bbox is not None and self.intersects is not None:
            raise ValueError("bbox and intersects are mutually exclusive")
        area: BaseGeometry | None = None
        if self.bbox is not None:
            area = shapely.union_all([box(*part) for part in split_antimeridian(self.bbox)])
        elif self.intersects is not None:
            area = geometry_from_geojson(self.intersects)
        if area is not None:
            shapely.prepare(area)
        object.__setattr__(self, "_area", area)

    @property
    def spatial(self) -> bool:
        """True when a bbox or intersects filter is set."""
        return self._area is not None

    def admits_collection(self, collection_id: str) -> bool:
        """True when the allow-list (if any) names this collection."""
        return self.collections is None or collection_id in self.collections

    def admits_asset(self, collection_id: str, asset_key: str) -> bool:
        """True when the allow-list admits this asset key of this collection."""
        if self.collections is None:
            return True
        keys = self.collections.get(collection_id)
        return keys is not None and (not keys or asset_key in keys)

    def exclusion(self, item: ItemFacts) -> Exclusion | None:
        """Why the item is excluded by the time or spatial filter, or ``None`` if admitted."""
        if self.time is not None:
            if item.start is None and item.end is None:
                return Exclusion.NO_TIME
            if not self.time.admits(item.start, item.end):
                return Exclusion.TIME
        if self._area is not None:
            return self._spatial_exclusion(item)
        return None

    def _spatial_exclusion(self, item: ItemFacts) -> Exclusion | None:
        assert self._area is not None
        if item.bbox is None and item.geometry_json is None:
            return Exclusion.NO_GEOMETRY
        if item.bbox is not None:
            area_bounds: Box = tuple(self._area.bounds)
            if self.bbox is not None:
                if not boxes_intersect(item.bbox, self.bbox):
                    return Exclusion.SPACE
            elif not boxes_intersect(item.bbox, area_bounds):
                return Exclusion.SPACE
        geometry = self._item_geometry(item)
        if geometry is None:
            # Only an unreadable geometry and no bbox get here: nothing to test against.
            return Exclusion.NO_GEOMETRY
        return None if self._area.intersects(geometry) else Exclusion.SPACE

    @staticmethod
    def _item_geometry(item: ItemFacts) -> BaseGeometry | None:
        if item.geometry_json is not None:
            try:
                geometry = shapely.from_geojson(item.geometry_json)
            except (GEOSException, ValueError):
                geometry = None
            if geometry is not None and not geometry.is_empty and not _unsplit(geometry, item):
                if not geometry.is_valid:
                    geometry = shapely.make_valid(geometry)
                return geometry
        if item.bbox is not None:
            parts = [box(*part) for part in split_antimeridian(item.bbox)]
            return parts[0] if len(parts) == 1 else shapely.union_all(parts)
        return None

    def describe(self) -> list[str]:
        """One phrase per filter that is set, for plan output."""
        phrases = []
        if self.collections is not None:
            names = ", ".join(
                f"{cid}[{', '.join(sorted(keys)) or '*'}]"
                for cid, keys in sorted(self.collections.items())
            )
            phrases.append(f"collections {names}")
        if self.time is not None:
            phrases.append(f"datetime {self.time.describe()}")
        if self.bbox is not None:
            phrases.append(f"bbox {list(self.bbox)}")
        if self.intersects is not None:
            phrases.append(f"intersects {json.dumps(self.intersects)[:80]}")
        return phrases


def _unsplit(geometry: BaseGeometry, item: ItemFacts) -> bool:
    """True when the item's bbox crosses the antimeridian and its geometry spans half the globe.

    On a flat plane, a geometry that was not split at 180 runs the long way round (from -179
    to 179 instead of across 180) and would match the wrong half of the world. The bbox says
    what the catalog meant, so it is used instead (for a geometry that was split properly,
    the bbox's two boxes are a close stand-in).
    """
    if item.bbox is None or item.bbox[0] <= item.bbox[2]:
        return False
    minx, _, maxx, _ = geometry.bounds
    return bool(maxx - minx > 180.0)
