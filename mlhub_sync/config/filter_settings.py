"""The spec models of the filters: time bounds and ranges, bboxes and GeoJSON (inline or a
file), validated so that the filters they become cannot fail later."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    model_validator,
)

from mlhub_sync.config.base import StrictModel
from mlhub_sync.selection.filters import TimeWindow


def _parse_time(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        try:
            # A date in any ISO form (2019-04-01, 20190401) stays a date, so that it means the
            # whole day; datetime.fromisoformat would read 20190401 as its first instant.
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return dt.datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 date or datetime (e.g. 2019-04-01 or "
                "2019-04-01T00:00:00Z)"
            ) from None
    return value


def _representable(value: dt.date | dt.datetime) -> dt.date | dt.datetime:
    # The filters work on the UTC day around a bound; year 1 and 9999 can overflow there.
    try:
        TimeWindow.from_bounds(value, value)
        TimeWindow.day_of(as_aware(value))
    except OverflowError:
        raise ValueError(f"{value} is outside the supported range of dates") from None
    return value


def as_aware(value: dt.date | dt.datetime) -> dt.date | dt.datetime:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # naive means UTC
    return value


TimeBound = Annotated[
    dt.datetime | dt.date, BeforeValidator(_parse_time), AfterValidator(_representable)
]


class DatetimeRange(StrictModel):
    """An inclusive time range; a date as ``end`` includes that whole (UTC) day."""

    start: TimeBound | None = None
    end: TimeBound | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DatetimeRange:
        if self.start is None and self.end is None:
            raise ValueError("give `start`, `end` or both")
        window = self.window()
        if window.start is not None and window.end is not None and window.end < window.start:
            raise ValueError(f"the range ends ({self.end}) before it starts ({self.start})")
        return self

    def window(self) -> TimeWindow:
        """The range as a :class:`TimeWindow`."""
        start = as_aware(self.start) if self.start is not None else None
        end = as_aware(self.end) if self.end is not None else None
        return TimeWindow.from_bounds(start, end)


def _split_interval(value: Any) -> Any:
    # STAC-style "start/end" (".." or empty for an open end) given as one string.
    if isinstance(value, str) and "/" in value:
        start, _, end = value.partition("/")
        bounds = {"start": start.strip(), "end": end.strip()}
        return {k: v for k, v in bounds.items() if v not in ("", "..")}
    return value


DatetimeFilter = Annotated[DatetimeRange | TimeBound, BeforeValidator(_split_interval)]


def check_bbox(bbox: list[float]) -> list[float]:
    minx, miny, maxx, maxy = bbox
    for name, lon in (("min longitude", minx), ("max longitude", maxx)):
        if not -180.0 <= lon <= 180.0:
            raise ValueError(f"{name} {lon} is outside [-180, 180]")
    for name, lat in (("min latitude", miny), ("max latitude", maxy)):
        if not -90.0 <= lat <= 90.0:
            raise ValueError(f"{name} {lat} is outside [-90, 90]")
    if miny > maxy:
        raise ValueError(f"min latitude {miny} is greater than max latitude {maxy}")
    return bbox


BBox = Annotated[
    list[float],
    Field(
        min_length=4,
        max_length=4,
        description="[min lon, min lat, max lon, max lat] in EPSG:4326; "
        "min lon > max lon crosses the antimeridian",
    ),
]


class GeoJSONFile(StrictModel):
    """A GeoJSON file (Geometry, Feature or FeatureCollection), relative to the spec."""

    path: str


Intersects = Annotated[
    GeoJSONFile | dict[str, Any],
    Field(description="a GeoJSON Geometry, Feature or FeatureCollection, or {path: file}"),
]


def read_geojson(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"GeoJSON file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read GeoJSON file {path}: {exc}") from None
    except RecursionError:
        raise ValueError(f"GeoJSON file {path} is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"GeoJSON file {path} does not hold a JSON object")
    return data
