"""A flat tree read as STAC (sources/flat.py, state/keys.py, sources/sidecar.py, the pure parts
of sources/s3.py): keys through templates, keys of one item far apart in the listing, keys no
template reads, the sidecar join, mirror paths of hostile keys, S3 URLs and listing pages."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.config.sources import S3Source, Sidecar
from mlhub_sync.errors import CatalogError
from mlhub_sync.net.client import Http
from mlhub_sync.selection.layout import mirror_relpath
from mlhub_sync.selection.template import compile_templates
from mlhub_sync.sources.base import SourceContext, Unmatched
from mlhub_sync.sources.flat import dot_segments, flat_documents, item_document, read_key
from mlhub_sync.sources.listing import ListedObject
from mlhub_sync.sources.s3 import bucket_url, object_url, parse_page
from mlhub_sync.sources.sidecar import parse_sidecar
from mlhub_sync.state.db import StateDB
from mlhub_sync.state.keys import Group, KeyRow, KeyTable, SidecarRow

CLOUD = compile_templates(["{split}_features/{item}/{asset}.tif", "{split}_labels/{item}.tif"])
KENYA = compile_templates("data/{tile}/{date:%Y%m%d}/{_}_{asset}_{_}.tif")


@pytest.mark.parametrize(
    ("templates", "key", "expected"),
    [
        (CLOUD, "train_features/c1/B02.tif", ("ds", "c1", "B02", {"split": "train"})),
        (CLOUD, "test_labels/c1.tif", ("ds", "c1", "c1", {"split": "test"})),
        (CLOUD, "train_metadata.csv", None),
        (CLOUD, "train_features/c1/B02.jp2", None),
        (KENYA, "data/00/20190606/00_B01_20190606.tif",
         ("ds", "00_20190606", "B01", {"tile": "00"})),
        (None, "a/b/c.tif", ("ds", "a/b", "c", {})),  # no template: the folder is the item
        (None, "top.txt", ("ds", "top", "top", {})),  # a key at the top is an item of its own
        (None, "x/y.tar.gz", ("ds", "x", "y", {})),
    ],
)  # fmt: skip
def test_a_key_reads_as_collection_item_and_asset(
    templates: Any, key: str, expected: tuple[str, str, str, dict[str, str]] | None
) -> None:
    found = read_key(templates, key, "ds")
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert (found.collection, found.item, found.asset, dict(found.properties)) == expected


@pytest.mark.parametrize(
    ("key", "dotted"),
    [("a/../b", True), ("../b", True), ("a/./b", True), ("a/.b", False), ("a..b/c", False)],
)
def test_keys_with_dot_segments_are_told_apart(key: str, dotted: bool) -> None:
    assert dot_segments(key) is dotted


def _row(collection: str, item: str, asset: str, key: str, **more: Any) -> KeyRow:
    return KeyRow(collection, item, asset, key, f"https://h/b/{key}", 10, **more)


def test_keys_of_one_item_far_apart_in_the_listing_come_back_together(tmp_path: Path) -> None:
    listing = [
        _row("ds", "c2", "B02", "train_features/c2/B02.tif"),
        _row("ds", "c1", "B02", "train_features/c1/B02.tif"),
        _row("ds", "c1", "B03", "train_features/c1/B03.tif"),
        _row("ds", "c2", "B03", "train_features/c2/B03.tif"),
        _row("ds", "c1", "c1", "train_labels/c1.tif"),
        _row("other", "c1", "x", "other/c1/x.tif"),
        _row("ds", "c2", "c2", "train_labels/c2.tif"),
    ]
    with KeyTable(tmp_path / "keys.sqlite", batch=2) as table:
        for row in listing:
            table.add(row)
        table.add_sidecar([SidecarRow("c1", '{"type":"Point","coordinates":[1,2]}', None, {})])
        groups = list(table.groups())
    assert [(g.collection, g.item, [k.asset for k in g.keys]) for g in groups] == [
        ("ds", "c1", ["B02", "B03", "c1"]),  # listing order within the item
        ("ds", "c2", ["B02", "B03", "c2"]),
        ("other", "c1", ["x"]),
    ]
    assert groups[0].sidecar is not None and groups[1].sidecar is None
    assert groups[2].sidecar is not None  # joined on the item id, whatever the collection
    assert not (tmp_path / "keys.sqlite").exists()  # the scratch table is gone with it


def test_a_scratch_table_kept_on_close_reads_again_with_its_queued_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    table = KeyTable(path, batch=100)
    table.add(_row("ds", "c1", "B02", "f/c1/B02.tif"))  # queued, not yet written
    table.close(remove=False)
    with KeyTable(path, fresh=False) as again:
        assert [g.item for g in again.groups()] == ["c1"]
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        KeyTable(path, fresh=False)  # nothing kept: no empty table made up


def test_an_item_document_says_what_the_listing_and_the_sidecar_know() -> None:
    group = Group(
        "ds",
        "c1",
        (
            _row("ds", "c1", "B02", "f/c1/B02.tif", etag='"abc-2"', datetime="2019-06-06T00:00:00Z",
                 properties={"split": "train"}),
            _row("ds", "c1", "B02", "f/c1/B02.tif.aux.xml", md5="00" * 16),
            _row("ds", "c1", "B02", "g/c1/B02.tif"),
        ),
        SidecarRow("c1", '{"type":"Point","coordinates":[1.5,2.5]}', "2020-01-02T10:00:00Z",
                   {"split": "ignored", "location": "x"}),
    )  # fmt: skip
    doc = item_document(group, mirror=True)
    assert doc["properties"] == {
        "datetime": "2020-01-02T10:00:00Z",  # the sidecar's, over the template's
        "split": "train",  # the key's own field wins
        "location": "x",
    }
    assert doc["bbox"] == [1.5, 2.5, 1.5, 2.5]
    assert list(doc["assets"]) == ["B02", "B02.tif.aux", "B02_2"]  # clashes named, not lost
    first, second, _ = doc["assets"].values()
    assert first == {
        "href": "https://h/b/f/c1/B02.tif",
        "roles": ["data"],
        "file:size": 10,
        "mlhub:etag": '"abc-2"',
        "mlhub:path": "f/c1/B02.tif",
    }  # fmt: skip  (an ETag is never a checksum)
    assert second["file:checksum"] == "d50110" + "00" * 16  # an MD5 the store vouches for
    plain = item_document(Group("ds", "c1", group.keys[:1], None), mirror=False)
    assert "mlhub:path" not in plain["assets"]["B02"]
    assert plain["geometry"] is None and "bbox" not in plain
    assert plain["properties"]["datetime"] == "2019-06-06T00:00:00Z"


SIDECAR = Sidecar(path="t.csv", id_column="chip_id")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"chip_id,datetime,geometry,site\nc1,2020-01-02,POINT (1 2),a\n,2020,,b\n",
         [("c1", (1.0, 2.0), "2020-01-02T00:00:00Z", {"site": "a"})]),
        (b'chip_id,geometry\nc1,"{""type"":""Point"",""coordinates"":[3,4]}"\n',
         [("c1", (3.0, 4.0), None, {})]),
        (b"\xef\xbb\xbfchip_id,site\nc1,a\nc2,b\n",  # a BOM, no geometry column
         [("c1", None, None, {"site": "a"}), ("c2", None, None, {"site": "b"})]),
        (b"chip_id,geometry\nc1,not a shape\n", [("c1", None, None, {})]),  # left out, row kept
        (json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 6]},
             "properties": {"chip_id": "c1", "datetime": "2021-03-04T05:06:07Z", "n": 1}},
            {"type": "Feature", "geometry": None, "properties": {"n": 2}},  # no id: skipped
        ]}).encode(), [("c1", (5.0, 6.0), "2021-03-04T05:06:07Z", {"n": 1})]),
    ],
)  # fmt: skip
def test_a_sidecar_table_gives_geometry_datetime_and_properties(
    data: bytes, expected: list[tuple[str, Any, str | None, dict[str, Any]]]
) -> None:
    rows = list(parse_sidecar(data, SIDECAR, "t.csv"))
    got = [
        (r.item, tuple(json.loads(r.geometry)["coordinates"]) if r.geometry else None, r.datetime,
         r.properties)
        for r in rows
    ]  # fmt: skip
    assert got == expected


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"id,x\n1,2\n", "no column 'chip_id'"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"type": "Feature"}', "not a GeoJSON FeatureCollection"),
    ],
)
def test_a_sidecar_that_cannot_be_read_says_why(data: bytes, words: str) -> None:
    with pytest.raises(CatalogError, match=words) as caught:
        list(parse_sidecar(data, SIDECAR, "t.csv"))
    assert caught.value.hint


HOSTILE = [
    "a//b.tif", "/abs.tif", "x/" + "n" * 300 + ".tif", "catalog.json", "mlhub_stac_assets.db",
    "a/b\\c.tif", "a/\x1b[31m.tif", "a/x.part", "con/aux.txt",
]  # fmt: skip


@pytest.mark.parametrize("key", HOSTILE)
def test_a_hostile_key_stays_inside_the_dataset_folder_in_the_mirror_layout(
    key: str, tmp_path: Path
) -> None:
    doc = item_document(Group("ds", "i", (_row("ds", "i", "a", key),), None), mirror=True)
    path = mirror_relpath(doc["assets"]["a"]["mlhub:path"])
    root = tmp_path / "dataset"
    target = Path(os.path.normpath(root / path))
    assert target.is_relative_to(root) and target != root
    parts = path.split("/")
    assert all(p not in ("", ".", "..") and len(p.encode()) <= 255 for p in parts)
    assert not parts[0].lower().startswith(("catalog.json", "mlhub_stac_assets.db"))
    assert not path.endswith(".part")


def _context(tmp_path: Path) -> Iterator[SourceContext]:
    with StateDB.open(tmp_path / "ds") as db:
        yield SourceContext("ds", tmp_path / "ds", db, Http(), {})


def test_the_documents_of_a_listing_and_its_unmatched_keys(tmp_path: Path) -> None:
    templates = ["{split}_features/{item}/{asset}.tif", "{split}_labels/{item}.tif"]
    spec = S3Source(type="s3", bucket="b", prefix="p/", template=templates)
    listing = [
        ListedObject("README.md", "https://h/b/p/README.md", 5),
        ListedObject("train_features/c1/B02.tif", "https://h/b/p/train_features/c1/B02.tif", 7),
        ListedObject("x/../train_labels/c1.tif", "https://h/b/p/x/%2E%2E/train_labels/c1.tif", 7),
        ListedObject("train_labels/c1.tif", "https://h/b/p/train_labels/c1.tif", 7, etag='"e"'),
    ]
    staging = tmp_path / "staging"
    staging.mkdir()
    unmatched = Unmatched()
    for ctx in _context(tmp_path):
        docs = list(flat_documents(spec, lambda: iter(listing), ctx, staging, unmatched))
    assert [d.name for d in docs] == ["catalog.json", "ds/c1/c1.json", "ds/collection.json"]
    assert (unmatched.count, unmatched.shown) == (2, ["README.md", "x/../train_labels/c1.tif"])
    item = json.loads(docs[1].data)
    assert set(item["assets"]) == {"B02", "c1"} and item["properties"]["split"] == "train"
    assert docs[1].url == "s3://b/p/ds/c1/c1.json"
    assert sorted(p.name for p in staging.iterdir()) == ["catalog.json", "ds"]  # no scratch left


@pytest.mark.parametrize(
    ("spec", "key", "url"),
    [
        ({"bucket": "radiantearth", "endpoint": "https://data.source.coop"}, "p/a b/c#d.tif",
         "https://data.source.coop/radiantearth/p/a%20b/c%23d.tif"),
        ({"bucket": "rb", "region": "eu-central-1"}, "k/ü+x.tif",
         "https://rb.s3.eu-central-1.amazonaws.com/k/%C3%BC%2Bx.tif"),
        ({"bucket": "my.dotted.bucket"}, "k", "https://s3.us-west-2.amazonaws.com/my.dotted.bucket/k"),
        ({"bucket": "b", "endpoint": "http://127.0.0.1:9000/"}, "a/../b",
         "http://127.0.0.1:9000/b/a/%2E%2E/b"),
    ],
)  # fmt: skip
def test_an_object_url_is_path_style_on_an_endpoint_and_virtual_hosted_on_aws(
    spec: dict[str, Any], key: str, url: str
) -> None:
    source = S3Source(type="s3", **spec)
    assert object_url(source, key) == url
    assert url.startswith(bucket_url(source))


def test_a_listing_page_is_read_with_its_token_and_url_encoded_keys() -> None:
    page = (
        b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<IsTruncated>true</IsTruncated><NextContinuationToken>tok/1=</NextContinuationToken>"
        b"<EncodingType>url</EncodingType>"
        b"<Contents><Key>p/a+b%2Bc%0A.tif</Key><Size>12</Size><ETag>&quot;e1&quot;</ETag>"
        b"<LastModified>2024-01-01T00:00:00.000Z</LastModified></Contents>"
        b"</ListBucketResult>"
    )
    objects, token, truncated = parse_page(page, "https://h/b/")
    assert objects == [
        {"Key": "p/a b+c\n.tif", "Size": "12", "ETag": '"e1"',
         "LastModified": "2024-01-01T00:00:00.000Z"}
    ]  # fmt: skip
    assert (token, truncated) == ("tok/1=", True)
    with pytest.raises(CatalogError, match="not a ListObjectsV2 result"):
        parse_page(b"<Error><Code>NoSuchBucket</Code></Error>", "https://h/b/")
    with pytest.raises(CatalogError, match="not S3 XML"):
        parse_page(b"<html>", "https://h/b/")


def test_a_local_sidecar_is_joined_and_a_missing_sidecar_key_is_a_clear_error(
    tmp_path: Path,
) -> None:
    table = tmp_path / "meta.geojson"
    table.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "c1", "geometry": {"type": "Point", "coordinates": [7, 8]},
         "properties": {"datetime": "2021-01-01T00:00:00Z"}}]}))  # fmt: skip
    listing = [ListedObject("c1/B02.tif", "https://h/b/p/c1/B02.tif", 7)]
    staging = tmp_path / "staging"
    staging.mkdir()
    local = S3Source(type="s3", bucket="b", prefix="p/", sidecar={"path": str(table)})
    for ctx in _context(tmp_path):
        docs = list(flat_documents(local, lambda: iter(listing), ctx, staging, Unmatched()))
        item = json.loads(docs[1].data)
        assert item["geometry"] == {"type": "Point", "coordinates": [7.0, 8.0]}
        assert item["properties"]["datetime"] == "2021-01-01T00:00:00Z"
        remote = S3Source(type="s3", bucket="b", prefix="p/", sidecar={"key": "meta.csv"})
        again = tmp_path / "again"
        again.mkdir()
        with pytest.raises(CatalogError, match=r"'meta\.csv' is not in the listing") as caught:
            list(flat_documents(remote, lambda: iter(listing), ctx, again, Unmatched()))
        assert (
            caught.value.hint is not None and "relative to the source's prefix" in caught.value.hint
        )
