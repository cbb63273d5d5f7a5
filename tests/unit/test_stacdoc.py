"""Reading STAC documents: hrefs, times, bboxes, file: fields, and what the Indexer ignores."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from mlhub_sync.stac.document import (
    AssetFacts,
    RejectedAsset,
    asset_facts,
    document_kind,
    fallback_collection_id,
    item_bbox,
    item_time,
    parse_item,
    parse_time,
)
from mlhub_sync.stac.href import normalize_href

ITEM_URL = "https://data.example.org/mlhub/ds/coll/item_1/item_1.json"


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def make_item(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "item_1",
        "collection": "coll",
        "geometry": {"type": "Point", "coordinates": [1.0, 2.0]},
        "bbox": [1.0, 2.0, 1.0, 2.0],
        "properties": {"datetime": "2019-04-01T10:00:00Z"},
        "links": [],
        "assets": {"B02": {"href": "https://blob.example.org/B02.tif"}},
    }
    doc.update(overrides)
    return doc


# -- hrefs --------------------------------------------------------------------------------------


def test_s3_hrefs_become_the_buckets_public_https_url() -> None:
    assert (
        normalize_href("s3://my-bucket/path/to/B02.tif", ITEM_URL, allow_file=False)
        == "https://my-bucket.s3.amazonaws.com/path/to/B02.tif"
    )
    assert (
        normalize_href("s3://b/a key+x.tif?versionId=3", ITEM_URL, allow_file=False)
        == "https://b.s3.amazonaws.com/a%20key%2Bx.tif?versionId=3"
    )


def test_an_s3_href_without_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="without a bucket"):
        normalize_href("s3:///key", ITEM_URL, allow_file=False)


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("./B02.tif", "https://data.example.org/mlhub/ds/coll/item_1/B02.tif"),
        ("B02.tif", "https://data.example.org/mlhub/ds/coll/item_1/B02.tif"),
        ("../shared/doc.pdf", "https://data.example.org/mlhub/ds/coll/shared/doc.pdf"),
        ("/other/x.tif", "https://data.example.org/other/x.tif"),
        ("//cdn.example.org/x.tif", "https://cdn.example.org/x.tif"),
        ("  https://h/x.tif  ", "https://h/x.tif"),
        ("HTTP://h/x.tif", "HTTP://h/x.tif"),
    ],
)
def test_relative_hrefs_resolve_against_the_document_url(href: str, expected: str) -> None:
    assert normalize_href(href, ITEM_URL, allow_file=False) == expected


@pytest.mark.parametrize(
    ("href", "reason"),
    [
        ("ftp://host/B02.tif", "unsupported URL scheme ftp:"),
        ("javascript:alert(1)", "unsupported URL scheme javascript:"),
        ("file:///etc/passwd", "file: href in a remote catalog is refused"),
        ("C:\\data\\B02.tif", "unsupported URL scheme"),
        ("", "empty href"),
        ("https://h/a\nb.tif", "control characters"),
    ],
)
def test_hrefs_we_will_not_fetch_are_refused_with_a_reason(href: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_href(href, ITEM_URL, allow_file=False)


def test_file_hrefs_are_allowed_from_a_local_catalog() -> None:
    base = "file:///srv/catalogs/ds/coll/item_1/item_1.json"
    assert normalize_href("file:///srv/B02.tif", base, allow_file=True) == "file:///srv/B02.tif"
    assert normalize_href("B02.tif", base, allow_file=True) == (
        "file:///srv/catalogs/ds/coll/item_1/B02.tif"
    )
    with pytest.raises(ValueError, match="file: href"):
        normalize_href("B02.tif", base, allow_file=False)


def test_rejected_assets_are_reported_not_dropped() -> None:
    assets = {
        "ok": {"href": "s3://b/k.tif"},
        "ftp": {"href": "ftp://h/x"},
        "nohref": {"type": "image/tiff"},
        "notobject": "https://h/x",
    }
    facts = list(asset_facts(assets, ITEM_URL, allow_file=False))
    accepted = [f for f in facts if isinstance(f, AssetFacts)]
    rejected = {f.key: f.reason for f in facts if isinstance(f, RejectedAsset)}
    assert [a.href for a in accepted] == ["https://b.s3.amazonaws.com/k.tif"]
    assert rejected == {
        "ftp": "unsupported URL scheme ftp:",
        "nohref": "the asset has no href",
        "notobject": "the asset has no href",
    }


# -- times --------------------------------------------------------------------------------------


def test_a_single_datetime_is_start_and_end() -> None:
    moment = ts("2019-04-01T10:00:00+00:00")
    assert item_time({"datetime": "2019-04-01T10:00:00Z"}) == (moment, moment)


def test_null_datetime_with_a_range_is_that_range() -> None:
    props = {
        "datetime": None,
        "start_datetime": "2019-03-01T00:00:00Z",
        "end_datetime": "2019-03-28T00:00:00Z",
    }
    assert item_time(props) == (ts("2019-03-01T00:00:00+00:00"), ts("2019-03-28T00:00:00+00:00"))


def test_a_range_wins_over_a_datetime() -> None:
    props = {
        "datetime": "2000-01-01T00:00:00Z",
        "start_datetime": "2019-03-01T00:00:00Z",
        "end_datetime": "2019-03-28T00:00:00Z",
    }
    assert item_time(props)[0] == ts("2019-03-01T00:00:00+00:00")


def test_only_a_start_or_only_an_end_is_an_instant() -> None:
    start = ts("2019-03-01T00:00:00+00:00")
    assert item_time({"datetime": None, "start_datetime": "2019-03-01T00:00:00Z"}) == (
        start,
        start,
    )
    assert item_time({"datetime": None, "end_datetime": "2019-03-01T00:00:00Z"}) == (start, start)


def test_a_reversed_range_still_means_that_span() -> None:
    props = {"start_datetime": "2019-03-28T00:00:00Z", "end_datetime": "2019-03-01T00:00:00Z"}
    assert item_time(props) == (ts("2019-03-01T00:00:00+00:00"), ts("2019-03-28T00:00:00+00:00"))


def test_no_time_at_all_is_none() -> None:
    assert item_time({"datetime": None}) == (None, None)
    assert item_time({}) == (None, None)


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "yesterday", "2019-13-45T00:00:00Z", "2019-04-01T25:00", 1554112800, []],
)
def test_unparseable_datetimes_are_none(value: Any) -> None:
    assert parse_time(value) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-04-01T10:00:00Z", "2019-04-01T10:00:00+00:00"),
        ("2019-04-01T10:00:00", "2019-04-01T10:00:00+00:00"),  # naive = UTC
        ("2019-04-01T12:00:00+02:00", "2019-04-01T10:00:00+00:00"),
        ("2019-04-01", "2019-04-01T00:00:00+00:00"),
        ("2019-04-01T10:00:00.123456Z", "2019-04-01T10:00:00.123456+00:00"),
        ("20190401T100000Z", "2019-04-01T10:00:00+00:00"),
    ],
)
def test_iso_datetimes_parse_to_utc_epoch_seconds(text: str, expected: str) -> None:
    assert parse_time(text) == ts(expected)


# -- bboxes -------------------------------------------------------------------------------------


def test_a_missing_bbox_is_computed_from_the_geometry() -> None:
    geometry = {"type": "Polygon", "coordinates": [[[0, 0], [3, 0], [3, 2], [0, 2], [0, 0]]]}
    assert item_bbox({}, json.dumps(geometry)) == (0.0, 0.0, 3.0, 2.0)


def test_a_3d_bbox_is_reduced_to_2d() -> None:
    assert item_bbox({"bbox": [1, 2, -5, 3, 4, 100]}, None) == (1.0, 2.0, 3.0, 4.0)


def test_an_antimeridian_crossing_bbox_is_kept_as_it_is() -> None:
    assert item_bbox({"bbox": [175, -5, -175, 5]}, None) == (175.0, -5.0, -175.0, 5.0)


@pytest.mark.parametrize(
    "bbox",
    [
        [1, 2, 3],
        [1, 2, 3, "4"],
        [1, 2, 3, True],
        [1, 2, 3, float("nan")],
        [1, 2, 3, float("inf")],
        [1, 2, 3, 10**400],
        [0, 5, 1, 1],  # miny > maxy
        "0,0,1,1",
    ],
)
def test_an_unusable_bbox_falls_back_to_the_geometry(bbox: Any) -> None:
    point = json.dumps({"type": "Point", "coordinates": [7, 8]})
    assert item_bbox({"bbox": bbox}, point) == (7.0, 8.0, 7.0, 8.0)
    assert item_bbox({"bbox": bbox}, None) is None


def test_a_broken_geometry_gives_no_bbox() -> None:
    assert item_bbox({}, '{"type":"Polygon","coordinates":"x"}') is None
    assert item_bbox({}, '{"type":"Polygon","coordinates":[]}') is None


# -- file: fields and whole items ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "size", "checksum"),
    [
        ({"file:size": 2048, "file:checksum": "D510ABCDEF"}, 2048, "d510abcdef"),
        ({"file:size": 0}, 0, None),
        ({"file:size": "2048", "file:checksum": 1234}, None, None),
        ({"file:size": 2048.0}, None, None),
        ({"file:size": -1}, None, None),
        ({"file:size": True}, None, None),
        ({"file:checksum": "d510xyz0"}, None, None),
        ({"file:checksum": "d510abc"}, None, None),  # odd length: not bytes
        ({"file:checksum": ""}, None, None),
    ],
)
def test_file_size_and_checksum_are_validated(
    fields: dict[str, Any], size: int | None, checksum: str | None
) -> None:
    assets = {"a": {"href": "https://h/a.tif", **fields}}
    (facts,) = asset_facts(assets, ITEM_URL, allow_file=False)
    assert isinstance(facts, AssetFacts)
    assert (facts.size, facts.checksum) == (size, checksum)


def test_parse_item_collects_the_facts_and_the_rejections() -> None:
    doc = make_item(
        assets={
            "B02": {"href": "./B02.tif", "type": "image/tiff", "file:size": 10},
            "bad": {"href": "ftp://h/x"},
        },
        bbox=None,
        geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
    )
    record, rejected = parse_item(doc, ITEM_URL, "fallback", allow_file=False)
    assert record.collection_id == "coll"
    assert record.item_id == "item_1"
    assert record.bbox == (0.0, 0.0, 1.0, 1.0)
    assert record.start == record.end == ts("2019-04-01T10:00:00+00:00")
    assert [(a.key, a.href, a.media_type, a.size) for a in record.assets] == [
        ("B02", "https://data.example.org/mlhub/ds/coll/item_1/B02.tif", "image/tiff", 10)
    ]
    assert [(r.key, r.href) for r in rejected] == [("bad", "ftp://h/x")]


def test_an_item_without_collection_takes_it_from_its_place_in_the_archive() -> None:
    doc = make_item()
    del doc["collection"]
    record, _ = parse_item(doc, ITEM_URL, "from_folder", allow_file=False)
    assert record.collection_id == "from_folder"
    assert fallback_collection_id("top/coll/item_1/item_1.json") == "coll"
    assert fallback_collection_id("coll/item_1/item_1.json") == "coll"
    assert fallback_collection_id("item_1.json") == "_default"


@pytest.mark.parametrize("item_id", [None, "", 12])
def test_an_item_without_a_usable_id_is_refused(item_id: Any) -> None:
    with pytest.raises(ValueError, match="no id"):
        parse_item(make_item(id=item_id), ITEM_URL, "c", allow_file=False)


# -- document kinds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        ({"type": "Feature"}, "item"),
        ({"type": "Collection"}, "collection"),
        ({"type": "Catalog"}, "catalog"),
        ({"stac_version": "0.8.1", "id": "c", "extent": {}, "license": "MIT"}, "collection"),
        ({"type": "Catalog", "extent": {}, "license": "MIT"}, "catalog"),
        ({"stac_version": "0.8.1", "id": "root", "description": "d", "links": []}, "catalog"),
    ],
)
def test_document_kind(doc: dict[str, Any], kind: str) -> None:
    assert document_kind(doc) == kind
