"""Filters: time windows, bboxes (antimeridian included), real geometries, allow-lists.

Pure values and predicates: no server, no disk. Property tests pin the monotonicity the plan
relies on (a larger box or window never selects less) and compare the bbox filter with a
brute-force shapely intersection.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import shapely
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import box, mapping

from mlhub_sync.selection.filters import (
    Exclusion,
    FilterSet,
    ItemFacts,
    TimeWindow,
    boxes_intersect,
    geometry_from_geojson,
    split_antimeridian,
)
from mlhub_sync.stac.document import Box

UTC = dt.UTC
PROPERTY = settings(max_examples=60, deadline=None)


def ts(text: str) -> float:
    """Epoch seconds of an ISO 8601 instant."""
    return dt.datetime.fromisoformat(text).timestamp()


def square(cx: float, cy: float, d: float = 0.5) -> dict[str, Any]:
    """A GeoJSON square polygon around (cx, cy)."""
    return mapping(box(cx - d, cy - d, cx + d, cy + d))  # type: ignore[no-any-return]


def item(geometry: dict[str, Any] | None = None, bbox: Box | None = None) -> ItemFacts:
    """Spatial facts as the indexer stores them: the bbox defaults to the geometry's bounds."""
    if geometry is not None and bbox is None:
        bbox = tuple(shapely.geometry.shape(geometry).bounds)
    return ItemFacts(bbox, None if geometry is None else json.dumps(geometry), None, None)


def timed(start: str | None, end: str | None = None) -> ItemFacts:
    """Temporal facts: ``end`` defaults to ``start`` (a single datetime)."""
    lo = ts(start) if start else None
    hi = ts(end) if end else lo
    return ItemFacts(None, None, lo, hi)


# -- time windows -------------------------------------------------------------------------------


def test_window_is_inclusive_at_both_ends() -> None:
    window = FilterSet(
        time=TimeWindow.from_bounds(
            dt.datetime(2019, 4, 1, tzinfo=UTC), dt.datetime(2019, 4, 7, tzinfo=UTC)
        )
    )
    assert window.exclusion(timed("2019-04-01T00:00:00+00:00")) is None
    assert window.exclusion(timed("2019-04-07T00:00:00+00:00")) is None
    assert window.exclusion(timed("2019-03-31T23:59:59+00:00")) is Exclusion.TIME
    assert window.exclusion(timed("2019-04-07T00:00:01+00:00")) is Exclusion.TIME


def test_a_date_as_end_includes_that_whole_utc_day() -> None:
    window = FilterSet(time=TimeWindow.from_bounds(dt.date(2019, 4, 1), dt.date(2019, 4, 2)))
    assert window.exclusion(timed("2019-04-02T23:59:59.999+00:00")) is None
    assert window.exclusion(timed("2019-04-03T00:00:00+00:00")) is Exclusion.TIME


def test_day_of_a_date_is_that_utc_day() -> None:
    day = FilterSet(time=TimeWindow.day_of(dt.date(2019, 4, 2)))
    assert day.exclusion(timed("2019-04-02T00:00:00+00:00")) is None
    assert day.exclusion(timed("2019-04-02T23:59:59+00:00")) is None
    assert day.exclusion(timed("2019-04-01T23:59:59+00:00")) is Exclusion.TIME
    assert day.exclusion(timed("2019-04-03T00:00:00+00:00")) is Exclusion.TIME


def test_day_of_an_aware_datetime_is_the_day_of_its_utc_instant() -> None:
    # 21:00 in New York on the 1st is 01:00 UTC on the 2nd.
    evening = dt.datetime(2019, 4, 1, 21, 0, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    day = FilterSet(time=TimeWindow.day_of(evening))
    assert day.exclusion(timed("2019-04-02T12:00:00+00:00")) is None
    assert day.exclusion(timed("2019-04-01T12:00:00+00:00")) is Exclusion.TIME


@pytest.fixture
def far_from_utc_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a local timezone 10 hours east of UTC (naive datetimes must still mean UTC)."""
    monkeypatch.setenv("TZ", "Etc/GMT-10")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc_local_time")
def test_day_of_a_naive_datetime_means_utc_whatever_the_local_timezone() -> None:
    # 02:00 UTC on the 2nd; read as local time (UTC+10) it would be 16:00 UTC on the 1st.
    day = FilterSet(time=TimeWindow.day_of(dt.datetime(2019, 4, 2, 2, 0)))
    assert day.exclusion(timed("2019-04-02T12:00:00+00:00")) is None
    assert day.exclusion(timed("2019-04-01T12:00:00+00:00")) is Exclusion.TIME


def test_an_item_range_is_admitted_when_it_overlaps_the_window() -> None:
    april = FilterSet(time=TimeWindow.from_bounds(dt.date(2019, 4, 1), dt.date(2019, 4, 30)))
    assert april.exclusion(timed("2019-03-01T00:00:00+00:00", "2019-04-01T00:00:00+00:00")) is None
    assert april.exclusion(timed("2019-04-30T23:00:00+00:00", "2019-06-01T00:00:00+00:00")) is None
    assert april.exclusion(timed("2019-01-01T00:00:00+00:00", "2019-12-31T00:00:00+00:00")) is None
    assert (
        april.exclusion(timed("2019-03-01T00:00:00+00:00", "2019-03-31T23:59:59+00:00"))
        is Exclusion.TIME
    )


def test_an_open_ended_window_admits_everything_on_its_open_side() -> None:
    since = FilterSet(time=TimeWindow.from_bounds(dt.date(2019, 4, 1), None))
    until = FilterSet(time=TimeWindow.from_bounds(None, dt.date(2019, 4, 1)))
    assert since.exclusion(timed("2999-01-01T00:00:00+00:00")) is None
    assert since.exclusion(timed("2019-03-31T00:00:00+00:00")) is Exclusion.TIME
    assert until.exclusion(timed("1970-01-02T00:00:00+00:00")) is None
    assert until.exclusion(timed("2019-04-02T00:00:00+00:00")) is Exclusion.TIME


def test_an_item_with_only_one_end_of_its_range_is_tested_at_that_instant() -> None:
    window = TimeWindow.from_bounds(dt.date(2019, 4, 1), dt.date(2019, 4, 1))
    inside, outside = ts("2019-04-01T12:00:00+00:00"), ts("2019-05-01T12:00:00+00:00")
    assert window.admits(inside, None)
    assert window.admits(None, inside)
    assert not window.admits(outside, None)
    assert not window.admits(None, outside)


def test_items_without_time_are_excluded_as_no_time_only_when_a_time_filter_is_set() -> None:
    timeless = ItemFacts(None, None, None, None)
    window = FilterSet(time=TimeWindow.from_bounds(None, None))
    assert window.exclusion(timeless) is Exclusion.NO_TIME
    assert FilterSet().exclusion(timeless) is None


# -- bboxes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "touching",
    [
        (1.0, 0.2, 2.0, 0.8),  # shares the east edge
        (1.0, 1.0, 2.0, 2.0),  # shares the north-east corner only
        (-1.0, -1.0, 0.0, 0.0),  # shares the south-west corner only
        (0.5, 1.0, 0.5, 1.0),  # a point on the north edge
    ],
)
def test_bbox_intersection_is_inclusive_on_edges(touching: Box) -> None:
    aoi = FilterSet(bbox=(0.0, 0.0, 1.0, 1.0))
    assert boxes_intersect(touching, (0.0, 0.0, 1.0, 1.0))
    assert aoi.exclusion(item(mapping(box(*touching)))) is None
    assert aoi.exclusion(item(bbox=touching)) is None


def test_bbox_just_beyond_an_edge_is_excluded() -> None:
    aoi = FilterSet(bbox=(0.0, 0.0, 1.0, 1.0))
    assert aoi.exclusion(item(square(1.6, 0.5, 0.5))) is Exclusion.SPACE
    assert aoi.exclusion(item(bbox=(1.1, 0.0, 2.0, 1.0))) is Exclusion.SPACE


def test_a_point_item_with_a_zero_area_bbox_is_selected_inside_and_on_the_edge() -> None:
    aoi = FilterSet(bbox=(0.0, 0.0, 1.0, 1.0))
    for x, y in [(0.5, 0.5), (1.0, 0.5), (0.0, 0.0)]:
        point = {"type": "Point", "coordinates": [x, y]}
        assert aoi.exclusion(item(point)) is None
        assert aoi.exclusion(item(bbox=(x, y, x, y))) is None
    outside = {"type": "Point", "coordinates": [1.01, 0.5]}
    assert aoi.exclusion(item(outside)) is Exclusion.SPACE
    assert aoi.exclusion(item(bbox=(1.01, 0.5, 1.01, 0.5))) is Exclusion.SPACE


def test_a_zero_area_filter_box_selects_the_items_it_touches() -> None:
    pin = FilterSet(bbox=(0.5, 0.5, 0.5, 0.5))
    assert pin.exclusion(item(square(0.5, 0.5))) is None
    assert pin.exclusion(item(square(3.0, 3.0))) is Exclusion.SPACE


def test_split_antimeridian_gives_one_box_or_two() -> None:
    assert split_antimeridian((0.0, 0.0, 1.0, 1.0)) == ((0.0, 0.0, 1.0, 1.0),)
    assert split_antimeridian((170.0, -5.0, -170.0, 5.0)) == (
        (170.0, -5.0, 180.0, 5.0),
        (-180.0, -5.0, -170.0, 5.0),
    )


def test_a_filter_box_crossing_the_antimeridian_selects_both_sides_and_not_the_middle() -> None:
    pacific = FilterSet(bbox=(170.0, -10.0, -170.0, 10.0))
    assert pacific.exclusion(item(square(175.0, 0.0))) is None
    assert pacific.exclusion(item(square(-175.0, 0.0))) is None
    assert pacific.exclusion(item({"type": "Point", "coordinates": [180.0, 0.0]})) is None
    assert pacific.exclusion(item({"type": "Point", "coordinates": [-180.0, 0.0]})) is None
    assert pacific.exclusion(item(square(0.0, 0.0))) is Exclusion.SPACE
    assert pacific.exclusion(item(square(160.0, 0.0))) is Exclusion.SPACE
    assert pacific.exclusion(item(square(175.0, 20.0))) is Exclusion.SPACE


def test_an_item_bbox_crossing_the_antimeridian_matches_filters_on_either_side() -> None:
    crossing = item(bbox=(175.0, -5.0, -175.0, 5.0))  # no geometry: the bbox is all there is
    assert FilterSet(bbox=(176.0, -1.0, 178.0, 1.0)).exclusion(crossing) is None
    assert FilterSet(bbox=(-178.0, -1.0, -176.0, 1.0)).exclusion(crossing) is None
    assert FilterSet(bbox=(179.0, -1.0, -179.0, 1.0)).exclusion(crossing) is None
    assert FilterSet(bbox=(-10.0, -1.0, 10.0, 1.0)).exclusion(crossing) is Exclusion.SPACE
    assert FilterSet(bbox=(170.0, -1.0, 174.0, 1.0)).exclusion(crossing) is Exclusion.SPACE


def test_a_crossing_item_with_a_split_multipolygon_uses_its_real_geometry_sides() -> None:
    split = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[175, -5], [180, -5], [180, 5], [175, 5], [175, -5]]],
            [[[-180, -5], [-175, -5], [-175, 5], [-180, 5], [-180, -5]]],
        ],
    }
    crossing = item(split, bbox=(175.0, -5.0, -175.0, 5.0))
    assert FilterSet(bbox=(176.0, -1.0, 178.0, 1.0)).exclusion(crossing) is None
    assert FilterSet(bbox=(-178.0, -1.0, -176.0, 1.0)).exclusion(crossing) is None
    assert FilterSet(bbox=(-10.0, -1.0, 10.0, 1.0)).exclusion(crossing) is Exclusion.SPACE


def test_a_crossing_item_whose_polygon_was_not_split_is_placed_by_its_bbox() -> None:
    # Read on a flat plane this ring runs from -175 to 175 the long way round the globe.
    unsplit = {
        "type": "Polygon",
        "coordinates": [[[175, -5], [-175, -5], [-175, 5], [175, 5], [175, -5]]],
    }
    crossing = item(unsplit, bbox=(175.0, -5.0, -175.0, 5.0))
    assert FilterSet(bbox=(176.0, -1.0, 178.0, 1.0)).exclusion(crossing) is None
    assert FilterSet(bbox=(-178.0, -1.0, -176.0, 1.0)).exclusion(crossing) is None
    assert FilterSet(bbox=(-10.0, -1.0, 10.0, 1.0)).exclusion(crossing) is Exclusion.SPACE


# -- real geometry and intersects ---------------------------------------------------------------

# A thin L along the west and south edges of [0, 10] x [0, 10]: its bbox covers the whole
# square, its polygon does not reach the north-east corner.
L_SHAPE = {
    "type": "Polygon",
    "coordinates": [[[0, 0], [10, 0], [10, 1], [1, 1], [1, 10], [0, 10], [0, 0]]],
}


def test_an_item_whose_bbox_overlaps_the_aoi_but_whose_polygon_does_not_is_excluded() -> None:
    corner = FilterSet(bbox=(8.0, 8.0, 9.0, 9.0))
    assert boxes_intersect((0.0, 0.0, 10.0, 10.0), (8.0, 8.0, 9.0, 9.0))
    assert corner.exclusion(item(L_SHAPE)) is Exclusion.SPACE
    assert FilterSet(bbox=(8.0, 0.5, 9.0, 0.6)).exclusion(item(L_SHAPE)) is None


def test_intersects_uses_the_aoi_shape_and_the_item_shape() -> None:
    triangle = {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [0, 10], [0, 0]]]}
    aoi = FilterSet(intersects=triangle)
    assert aoi.spatial
    assert aoi.exclusion(item(square(1.0, 1.0))) is None
    # bbox pre-test passes (both inside [0, 10]^2), the shapes do not meet
    assert aoi.exclusion(item(square(8.0, 8.0))) is Exclusion.SPACE
    assert aoi.exclusion(item(L_SHAPE)) is None


def test_a_feature_aoi_is_its_geometry() -> None:
    feature = {"type": "Feature", "properties": {}, "geometry": square(0.0, 0.0)}
    aoi = FilterSet(intersects=feature)
    assert aoi.exclusion(item(square(0.9, 0.0))) is None
    assert aoi.exclusion(item(square(5.0, 5.0))) is Exclusion.SPACE


def test_a_feature_collection_aoi_is_the_union_of_its_features() -> None:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {}, "geometry": square(0.0, 0.0)},
            {"type": "Feature", "properties": {}, "geometry": square(50.0, 50.0)},
        ],
    }
    aoi = FilterSet(intersects=collection)
    assert aoi.exclusion(item(square(0.0, 0.0, 0.1))) is None
    assert aoi.exclusion(item(square(50.0, 50.0, 0.1))) is None
    # inside the union's bounds but touching neither square
    assert aoi.exclusion(item(square(25.0, 25.0, 0.1))) is Exclusion.SPACE


def test_items_without_geometry_and_bbox_are_no_geometry_under_a_spatial_filter() -> None:
    bare = ItemFacts(None, None, None, None)
    assert FilterSet(bbox=(0.0, 0.0, 1.0, 1.0)).exclusion(bare) is Exclusion.NO_GEOMETRY
    assert FilterSet(intersects=square(0.0, 0.0)).exclusion(bare) is Exclusion.NO_GEOMETRY
    assert FilterSet().exclusion(bare) is None


@pytest.mark.parametrize(
    "geometry_json",
    ['{"type":"Polygon","coordinates":"x"}', '{"type":"Nope"}', "[]", "not json"],
)
def test_an_unreadable_geometry_without_bbox_is_no_geometry(geometry_json: str) -> None:
    broken = ItemFacts(None, geometry_json, None, None)
    assert FilterSet(bbox=(0.0, 0.0, 1.0, 1.0)).exclusion(broken) is Exclusion.NO_GEOMETRY


def test_an_unreadable_geometry_falls_back_to_the_bbox() -> None:
    aoi = FilterSet(bbox=(0.0, 0.0, 1.0, 1.0))
    assert aoi.exclusion(ItemFacts((0.5, 0.5, 2.0, 2.0), '{"type":"Nope"}', None, None)) is None
    assert (
        aoi.exclusion(ItemFacts((5.0, 5.0, 6.0, 6.0), '{"type":"Nope"}', None, None))
        is Exclusion.SPACE
    )


def test_a_self_intersecting_item_polygon_is_repaired_not_fatal() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    assert FilterSet(bbox=(1.5, 0.5, 3.0, 1.5)).exclusion(item(bowtie)) is None
    assert FilterSet(bbox=(0.9, 1.6, 1.1, 3.0)).exclusion(item(bowtie)) is Exclusion.SPACE


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"type": "Feature", "properties": {}}, "no geometry"),
        ({"type": "FeatureCollection", "features": []}, "no features"),
        ({"type": "Topology"}, "not a Geometry"),
        ({"type": "Polygon", "coordinates": []}, "empty"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]},
            "not a valid geometry",
        ),
        ({"type": "Point", "coordinates": "here"}, "malformed"),
    ],
)
def test_unusable_geojson_aois_say_why(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        geometry_from_geojson(obj)


def test_bbox_and_intersects_together_are_refused() -> None:
    with pytest.raises(ValueError, match="mutually exclusive"):
        FilterSet(bbox=(0.0, 0.0, 1.0, 1.0), intersects=square(0.0, 0.0))


def test_time_and_space_both_apply_time_first() -> None:
    both = FilterSet(time=TimeWindow.day_of(dt.date(2019, 4, 1)), bbox=(0.0, 0.0, 1.0, 1.0))
    here, there = json.dumps(square(0.5, 0.5)), json.dumps(square(9.0, 9.0))
    day, other_day = ts("2019-04-01T10:00:00+00:00"), ts("2019-05-01T10:00:00+00:00")
    assert both.exclusion(ItemFacts((0.0, 0.0, 1.0, 1.0), here, day, day)) is None
    assert both.exclusion(ItemFacts((8.5, 8.5, 9.5, 9.5), there, day, day)) is Exclusion.SPACE
    assert (
        both.exclusion(ItemFacts((0.0, 0.0, 1.0, 1.0), here, other_day, other_day))
        is Exclusion.TIME
    )


# -- the collection / asset-key allow-list ------------------------------------------------------


def test_no_allow_list_admits_every_collection_and_key() -> None:
    everything = FilterSet()
    assert everything.admits_collection("anything")
    assert everything.admits_asset("anything", "any_key")


def test_an_empty_key_list_admits_every_key_of_that_collection_only() -> None:
    labels_only = FilterSet(collections={"labels": frozenset()})
    assert labels_only.admits_collection("labels")
    assert labels_only.admits_asset("labels", "whatever")
    assert not labels_only.admits_collection("source")
    assert not labels_only.admits_asset("source", "whatever")


def test_a_key_list_admits_exactly_those_keys() -> None:
    bands = FilterSet(collections={"source": frozenset({"B02", "B03"})})
    assert bands.admits_asset("source", "B02")
    assert not bands.admits_asset("source", "B04")
    assert not bands.admits_asset("source", "b02")


def test_describe_names_each_filter_that_is_set() -> None:
    phrases = FilterSet(
        collections={"s": frozenset({"B02"}), "l": frozenset()},
        time=TimeWindow.day_of(dt.date(2019, 4, 1)),
        bbox=(0.0, 0.0, 1.0, 1.0),
    ).describe()
    assert phrases[0] == "collections l[*], s[B02]"
    assert phrases[1].startswith("datetime 2019-04-01T00:00:00Z .. 2019-04-01T23:59:59")
    assert phrases[2] == "bbox [0.0, 0.0, 1.0, 1.0]"
    assert FilterSet().describe() == []


# -- properties ---------------------------------------------------------------------------------

coordinate = st.integers(-20, 20).map(float)


@st.composite
def boxes(draw: st.DrawFn, lo: float = -20.0, hi: float = 20.0) -> Box:
    """A non-crossing box with integer corners (so edges often touch)."""
    xs = sorted(draw(st.lists(st.integers(int(lo), int(hi)), min_size=2, max_size=2)))
    ys = sorted(draw(st.lists(st.integers(int(lo), int(hi)), min_size=2, max_size=2)))
    return (float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1]))


@st.composite
def geometries(draw: st.DrawFn) -> dict[str, Any]:
    """A point, a box or a (non-degenerate) triangle."""
    kind = draw(st.sampled_from(["point", "box", "triangle"]))
    if kind == "point":
        return {"type": "Point", "coordinates": [draw(coordinate), draw(coordinate)]}
    if kind == "box":
        x0, y0, x1, y1 = draw(boxes())
        assume(x0 < x1 and y0 < y1)
        return mapping(box(x0, y0, x1, y1))  # type: ignore[no-any-return]
    points = [(draw(coordinate), draw(coordinate)) for _ in range(3)]
    assume(shapely.Polygon(points).area > 0)
    return {"type": "Polygon", "coordinates": [[*map(list, points), list(points[0])]]}


def admitted(filters: FilterSet, items: Sequence[ItemFacts]) -> set[int]:
    return {i for i, facts in enumerate(items) if filters.exclusion(facts) is None}


@PROPERTY
@given(st.lists(geometries(), min_size=1, max_size=12), boxes(), st.data())
def test_a_larger_bbox_selects_a_superset(
    shapes: list[dict[str, Any]], small: Box, data: st.DataObject
) -> None:
    grow = data.draw(st.lists(st.integers(0, 10).map(float), min_size=4, max_size=4))
    large = (small[0] - grow[0], small[1] - grow[1], small[2] + grow[2], small[3] + grow[3])
    items = [item(shape) for shape in shapes]
    assert admitted(FilterSet(bbox=small), items) <= admitted(FilterSet(bbox=large), items)


@PROPERTY
@given(
    st.lists(
        st.tuples(st.integers(0, 100), st.integers(0, 20), st.booleans()), min_size=1, max_size=15
    ),
    st.integers(0, 100),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
)
def test_a_wider_time_window_selects_a_superset(
    spans: list[tuple[int, int, bool]], start: int, length: int, before: int, after: int
) -> None:
    day = 86_400.0
    items = [
        ItemFacts(None, None, s * day, (s + n) * day)
        if timed_
        else ItemFacts(None, None, None, None)
        for s, n, timed_ in spans
    ]
    narrow = TimeWindow(start * day, (start + length) * day)
    wide = TimeWindow((start - before) * day, (start + length + after) * day)
    assert admitted(FilterSet(time=narrow), items) <= admitted(FilterSet(time=wide), items)


@PROPERTY
@given(st.lists(geometries(), min_size=1, max_size=12), boxes())
def test_the_bbox_filter_equals_a_brute_force_shapely_intersection(
    shapes: list[dict[str, Any]], aoi: Box
) -> None:
    items = [item(shape) for shape in shapes]
    expected = {
        i for i, shape in enumerate(shapes) if box(*aoi).intersects(shapely.geometry.shape(shape))
    }
    assert admitted(FilterSet(bbox=aoi), items) == expected
