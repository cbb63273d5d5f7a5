"""Fuzzing the catalog reader: hostile STAC documents and raw bytes never crash the indexer,
and every path it records stays inside the dataset folder.

The indexer reads whatever an archive holds, so any document (valid-ish STAC with hostile
values, JSON of the wrong shape, bytes that are not JSON at all) must either be indexed,
be counted in ``invalid_documents``, or raise an :class:`~mlhub_sync.errors.MlhubSyncError`;
never anything else. Every ``assets.path`` it writes is a relative POSIX path of plain
components. ``normalize_href`` and ``asset_relpath`` are fuzzed for the same promises.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlhub_sync.catalog.index import Indexer
from mlhub_sync.errors import MlhubSyncError
from mlhub_sync.selection.layout import CommonLayout, asset_relpath
from mlhub_sync.stac.document import Document
from mlhub_sync.stac.href import LocalHrefs, normalize_href
from mlhub_sync.state.db import StateDB
from tests.support.sql import query

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NAME_MAX_BYTES = 255  # the longest file name common file systems accept

# ------------------------------------------------------------------------------ hostile values

HOSTILE_NAMES: tuple[str, ...] = (
    "",
    " ",
    ".",
    "..",
    "...",
    "/",
    "\\",
    "a/b",
    "a\\b",
    "../../etc/passwd",
    "..\\..\\windows",
    "/abs",
    "C:",
    "C:\\x",
    "\x00",
    "a\x00b",
    "\x01\x1f\x7f",
    "\u0085\u2028\u2029",
    "CON",
    "nul",
    "nul.txt",
    "com1",
    "LPT9.tif",
    "aux.tar.gz",
    "_common",
    "catalog.json",
    "collection.json",
    "x" * 1000,
    "é" * 600,
    "." * 300,
    "." * 190 + "a" * 20,
    "a" + "." * 300,
    "\ud800",
    "\udfff",
    "a\udc80b",
    "%2e%2e",
    "~",
    '*?<>|:"',
)

HOSTILE_HREFS: tuple[str, ...] = (
    "https://host/a.tif",
    "http://host/a",
    "HTTPS://HOST/A.TIF",
    "https://host/a.tar.gz?sig=SECRET#frag",
    "https://host/%2e%2e/%2F..%2Fx.tif",
    "https://host/..%00.tif",
    "https://[::1",
    "http://[::1]:80/x.tif",
    "s3://bucket/key.tif",
    "s3://bucket/a b/../c.TIF?versionId=1",
    "s3://",
    "s3:///key",
    "s3://[bad/x",
    "gs://bucket/key",
    "file:///etc/passwd",
    "file:///tmp/ds/../../etc/passwd",
    "file:///tmp/dsx/a.tif",
    "file:///tmp/ds/c/%2e%2e/%2e%2e/%2e%2e/x.tif",
    "file:///tmp/ds/c/i/a.tif",
    "file:relative.tif",
    "file://host/share/x.tif",
    "../x.tif",
    "../../../../etc/passwd",
    "./a/b.tif",
    "/abs/x.tif",
    "C:\\x\\y.tif",
    "c:/x.tif",
    "\\\\server\\share\\x.tif",
    "//host/x.tif",
    "ftp://host/x",
    "javascript:alert(1)",
    "data:,x",
    "mailto:a@b",
    "",
    " ",
    "\x00",
    "a\x00b.tif",
    "?q=1",
    "#f",
    "%00",
    "x.tif\n",
    "h\ud800.tif",
    "https://host/\ud800.tif",
    "x" * 1000,
)

DOC_URLS: tuple[str, ...] = (
    "https://example.org/ds/c/i/i.json",
    "http://127.0.0.1:1/blobs/ds/c/i/i.json?key=k",
    "file:///tmp/ds/c/i/i.json",
    "file:///",
    "s3://bucket/c/i/i.json",
    "",
    "not a url",
)


def _text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Any text: printable, control characters, lone surrogates."""
    anything = st.characters(codec=None, exclude_categories=())
    return st.text(anything, max_size=max_size)


def hostile_strings() -> st.SearchStrategy[str]:
    """Names and ids an archive could use against us."""
    return st.one_of(
        st.sampled_from(HOSTILE_NAMES),
        _text(),
        st.builds("".join, st.lists(st.sampled_from(HOSTILE_NAMES), min_size=1, max_size=4)),
        st.builds(lambda s, n: s * n, _text(3), st.integers(1, 400)),
    )


def hostile_hrefs() -> st.SearchStrategy[str]:
    """hrefs of every scheme, relative, local and garbage."""
    scheme = st.sampled_from(
        ["http://", "https://", "s3://", "file://", "file:", "ftp://", "", "//", "C:\\", "/"]
    )
    return st.one_of(
        st.sampled_from(HOSTILE_HREFS),
        st.builds(lambda a, b: a + b, scheme, hostile_strings()),
        _text(60),
    )


def json_numbers() -> st.SearchStrategy[Any]:
    """Numbers including NaN, infinities, huge integers and booleans posing as numbers."""
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.sampled_from([math.nan, math.inf, -math.inf, 10**308 * 10, True, False, 0, -0.0]),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value (with hostile leaves)."""
    leaves = st.one_of(st.none(), st.booleans(), json_numbers(), hostile_strings(), hostile_hrefs())
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(hostile_strings(), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def bboxes() -> st.SearchStrategy[Any]:
    """bbox values: right and wrong lengths, wrong types, reversed, non-finite."""
    return st.one_of(
        st.lists(json_numbers(), min_size=0, max_size=7),
        st.lists(st.floats(-200, 200), min_size=4, max_size=4),
        st.lists(st.floats(-200, 200), min_size=6, max_size=6),
        json_values(4),
    )


def geometries() -> st.SearchStrategy[Any]:
    """GeoJSON-ish geometries: valid, degenerate, of wrong types and non-finite."""
    position = st.lists(json_numbers(), min_size=0, max_size=4)
    ring = st.lists(position, max_size=6)
    geometry_type = st.one_of(
        st.sampled_from(
            ["Point", "LineString", "Polygon", "MultiPolygon", "GeometryCollection", "Nope"]
        ),
        json_values(2),
    )
    return st.one_of(
        st.fixed_dictionaries(
            {"type": geometry_type},
            optional={
                "coordinates": st.one_of(position, ring, st.lists(ring, max_size=3), json_values()),
                "geometries": st.lists(json_values(4), max_size=3),
            },
        ),
        json_values(6),
    )


def datetimes() -> st.SearchStrategy[Any]:
    """Datetime property values: ISO strings, garbage, out of range, wrong types."""
    return st.one_of(
        st.sampled_from(
            [
                "2019-04-01T10:00:00Z",
                "2019-04-01",
                "2019-02-30T00:00:00Z",
                "0000-01-01T00:00:00Z",
                "9999-12-31T23:59:59+14:00",
                "-0001-01-01",
                "2019-04-01T25:61:61",
                "20190401T100000Z",
                "2019-W14-1",
                "now",
                "",
                "\x00",
                "1" * 5000,
            ]
        ),
        st.datetimes().map(lambda d: d.isoformat()),
        json_values(3),
    )


def assets_values() -> st.SearchStrategy[Any]:
    """An ``assets`` member: a mapping of hostile keys to asset objects, or anything else."""
    asset = st.one_of(
        st.fixed_dictionaries(
            {"href": st.one_of(hostile_hrefs(), json_values(2))},
            optional={
                "type": st.one_of(
                    st.sampled_from(
                        [
                            "image/tiff; application=geotiff",
                            "application/geo+json",
                            "application/x-tar",
                            "text/html",
                            "../../x",
                            "",
                        ]
                    ),
                    json_values(2),
                ),
                "file:size": st.one_of(json_numbers(), json_values(2)),
                "file:checksum": st.one_of(
                    st.sampled_from(["d50110" + "0" * 32, "1220" + "ab" * 32, "abc", "zz", ""]),
                    json_values(2),
                ),
                "roles": json_values(3),
            },
        ),
        json_values(3),
    )
    return st.one_of(st.dictionaries(hostile_strings(), asset, max_size=5), json_values(4))


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, json_values(3))


def item_documents() -> st.SearchStrategy[dict[str, Any]]:
    """STAC items, valid-ish, with hostile values in every field."""
    return st.fixed_dictionaries(
        {"type": st.just("Feature"), "stac_version": st.just("1.0.0")},
        optional={
            "id": _maybe(hostile_strings()),
            "collection": _maybe(hostile_strings()),
            "geometry": geometries(),
            "bbox": bboxes(),
            "properties": st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "datetime": datetimes(),
                        "start_datetime": datetimes(),
                        "end_datetime": datetimes(),
                    },
                ),
                json_values(3),
            ),
            "assets": assets_values(),
            "links": json_values(3),
        },
    )


def collection_documents() -> st.SearchStrategy[dict[str, Any]]:
    """STAC collections (with and without ``type``), hostile ids and assets."""
    return st.fixed_dictionaries(
        {"stac_version": st.just("1.0.0")},
        optional={
            "type": st.sampled_from(["Collection", "Catalog", "Feature", "FeatureCollection"]),
            "id": _maybe(hostile_strings()),
            "license": json_values(2),
            "extent": json_values(3),
            "assets": assets_values(),
            "links": json_values(3),
        },
    )


def documents() -> st.SearchStrategy[Any]:
    """Any parsed document the archive could hold."""
    return st.one_of(item_documents(), collection_documents(), json_values(8))


ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be")


def _encode(document: Any, encoding: str, ensure_ascii: bool) -> bytes:
    """``document`` as JSON bytes (lone surrogates kept raw when not escaped)."""
    text = json.dumps(document, ensure_ascii=ensure_ascii, allow_nan=True)
    return text.encode(encoding, "surrogatepass")


def document_bytes() -> st.SearchStrategy[bytes]:
    """Documents serialised in any encoding JSON allows, plus raw garbage and near-JSON."""
    serialised = st.builds(_encode, documents(), st.sampled_from(ENCODINGS), st.booleans())
    return st.one_of(
        serialised,
        st.binary(max_size=300),
        serialised.map(lambda data: data[: len(data) // 2]),
        st.builds(lambda a, b: a + b, serialised, st.binary(max_size=8)),
    )


# ------------------------------------------------------------------------------ invariants


def assert_safe_relpath(path: str) -> None:
    """A path that names a file inside the dataset folder on any file system."""
    assert isinstance(path, str), path
    assert path, "empty path"
    assert "\x00" not in path, repr(path)
    assert "\\" not in path, repr(path)
    assert not path.startswith("/"), repr(path)
    path.encode("utf-8")  # storable as a file name (no lone surrogates)
    parts = path.split("/")
    assert 2 <= len(parts) <= 3, repr(path)
    for part in parts:
        assert part not in ("", ".", ".."), repr(path)
        assert len(part.encode("utf-8")) <= NAME_MAX_BYTES, repr(path)


@contextmanager
def fresh_db() -> Iterator[StateDB]:
    """A new state db in its own temporary folder (catalog warnings muted meanwhile: hostile
    names make them huge, and they would bury a failure report)."""
    catalog_log = logging.getLogger("mlhub_sync.catalog.index")  # the indexer's own logger
    was_disabled = catalog_log.disabled
    catalog_log.disabled = True
    try:
        with tempfile.TemporaryDirectory(prefix="fuzz-stac-") as folder:
            db = StateDB.open(Path(folder) / "ds")
            try:
                yield db
            finally:
                db.close()
    finally:
        catalog_log.disabled = was_disabled


def index_documents(
    db: StateDB, docs: list[tuple[str, bytes, str]], *, allow_file_hrefs: bool, local_root: Path
) -> Indexer:
    """Feed ``docs`` to an indexer and flush; only :class:`MlhubSyncError` may escape."""
    # file: hrefs allowed inside local_root only (as allow_local: [local_root] would)
    local = LocalHrefs.of([local_root], local_root)
    indexer = Indexer(db, allow_file_hrefs=allow_file_hrefs, local=local)
    try:
        for name, data, url in docs:
            indexer.add(Document(name, data, url))
        indexer.flush()
    except MlhubSyncError:
        pass
    return indexer


def assert_hrefs_fetchable_and_local_ones_inside(
    db: StateDB, *, allow_file_hrefs: bool, local_root: Path
) -> None:
    """Indexed hrefs are http(s), or ``file:`` only when allowed and inside ``local_root``."""
    root = os.path.realpath(local_root)
    for (href,) in query(db.path, "SELECT href FROM assets"):
        scheme = href.split(":", 1)[0].lower()
        if scheme != "file":
            assert scheme in ("http", "https"), repr(href)
            continue
        assert allow_file_hrefs, f"file: href indexed although not allowed: {href!r}"
        target = os.path.realpath(url2pathname(urlsplit(href).path))
        assert os.path.commonpath([target, root]) == root, f"{href!r} is outside {root}"


def indexed_paths(db: StateDB) -> list[str]:
    """Every ``assets.path`` in the db."""
    return [row[0] for row in query(db.path, "SELECT path FROM assets")]


# ------------------------------------------------------------------------------ tests


@pytest.mark.fuzz
@FUZZ
@given(
    docs=st.lists(
        st.tuples(
            st.one_of(st.sampled_from(["c/i/i.json", "i.json", "a/b/c/d.json"]), hostile_strings()),
            document_bytes(),
            st.sampled_from(DOC_URLS),
        ),
        min_size=1,
        max_size=4,
    ),
    allow_file_hrefs=st.booleans(),
)
def test_indexer_survives_hostile_documents_and_keeps_paths_inside(
    docs: list[tuple[str, bytes, str]], allow_file_hrefs: bool
) -> None:
    local_root = Path("/tmp/ds")  # the catalog folder of the file: document URLs
    with fresh_db() as db:
        index_documents(db, docs, allow_file_hrefs=allow_file_hrefs, local_root=local_root)
        for path in indexed_paths(db):
            assert_safe_relpath(path)
        assert_hrefs_fetchable_and_local_ones_inside(
            db, allow_file_hrefs=allow_file_hrefs, local_root=local_root
        )


@pytest.mark.fuzz
@FUZZ
@given(document=item_documents(), encoding=st.sampled_from(ENCODINGS))
def test_hostile_items_are_indexed_or_counted_invalid(
    document: dict[str, Any], encoding: str
) -> None:
    """An item document is either indexed (one item row) or counted as invalid, never lost."""
    data = _encode(document, encoding, ensure_ascii=True)
    with fresh_db() as db:
        indexer = index_documents(
            db, [("c/i/i.json", data, DOC_URLS[0])], allow_file_hrefs=False, local_root=Path("/")
        )
        assert indexer.items + indexer.invalid_documents == 1
        assert db.count("items") == indexer.items
        assert db.count("assets") == indexer.assets
        assert db.count("rejected") == indexer.rejected
        for path in indexed_paths(db):
            assert_safe_relpath(path)


def _index_one(data: bytes) -> Indexer:
    """Index one document named like an item; let any exception out."""
    with fresh_db() as db:
        indexer = Indexer(db, allow_file_hrefs=False)
        indexer.add(Document("c/i/i.json", data, DOC_URLS[0]))
        indexer.flush()
        return indexer


def test_a_number_longer_than_the_int_digit_limit_is_an_invalid_document() -> None:
    """JSON allows any number of digits; Python refuses to parse more than 4300 by default
    (``ValueError``, not ``JSONDecodeError``): the document is invalid, not a crash."""
    digits = b"9" * (sys.get_int_max_str_digits() + 1)
    data = b'{"type": "Feature", "stac_version": "1.0.0", "id": "i", "bbox": [' + digits + b"]}"
    indexer = _index_one(data)
    assert indexer.invalid_documents == 1


@pytest.mark.parametrize("size", [2**63, 10**100])
def test_a_file_size_beyond_the_sqlite_integer_range_is_not_a_crash(size: int) -> None:
    """``file:size`` is any JSON integer; SQLite stores at most 2**63 - 1. Such an asset is
    indexed without a size (or left out), never a crash of the whole index."""
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "i",
        "assets": {"a": {"href": "https://host/a.tif", "file:size": size}},
    }
    indexer = _index_one(json.dumps(item).encode())
    assert indexer.items == 1
    assert indexer.assets + indexer.rejected == 1


_SURROGATE_ITEMS = {
    "id": {"type": "Feature", "stac_version": "1.0.0", "id": "\ud800", "assets": {}},
    "asset key": {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "i",
        "assets": {"\udc00": {"href": "https://host/a.tif"}},
    },
    "href": {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "i",
        "assets": {"a": {"href": "https://host/\udbff.tif"}},
    },
}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32-be"])
@pytest.mark.parametrize("where", sorted(_SURROGATE_ITEMS))
def test_a_lone_surrogate_escape_in_a_utf16_or_utf32_document_is_an_invalid_document(
    where: str, encoding: str
) -> None:
    """JSON text may be UTF-16 or UTF-32 (``json.loads`` detects it); an escaped lone surrogate
    there is as unstorable as in UTF-8 and must be refused the same way, not crash the flush."""
    data = json.dumps(_SURROGATE_ITEMS[where]).encode(encoding)
    indexer = _index_one(data)
    assert indexer.invalid_documents == 1


_NESTING_FIELDS = ("geometry", "bbox", "properties", "assets", "links", "id")


def _nested_item(field: str, depth: int) -> bytes:
    """An item whose ``field`` is ``depth`` lists deep (a geometry's coordinates for geometry)."""
    nested = "[" * depth + "]" * depth
    members = {
        "type": '"Feature"',
        "stac_version": '"1.0.0"',
        "id": '"i"',
        "assets": '{"a": {"href": "https://host/a.tif"}}',
    }
    members[field] = (
        f'{{"type": "Point", "coordinates": {nested}}}' if field == "geometry" else nested
    )
    return ("{" + ", ".join(f'"{key}": {value}' for key, value in members.items()) + "}").encode()


def test_indexer_survives_nesting_at_every_depth_up_to_the_recursion_limit() -> None:
    """Deeply nested JSON is invalid or indexed, at every depth around the interpreter's limit.

    A sweep, not a sample: the depth at which parsing succeeds but a later re-serialisation
    (of the geometry, say) runs out of stack is a narrow window that random depths miss.
    """
    limit = sys.getrecursionlimit()
    with fresh_db() as db:
        for field in _NESTING_FIELDS:
            for depth in range(max(1, limit - 150), limit + 20):
                indexer = Indexer(db, allow_file_hrefs=False)
                try:
                    indexer.add(Document("c/i/i.json", _nested_item(field, depth), DOC_URLS[0]))
                    indexer.flush()
                except MlhubSyncError:
                    pass
                except RecursionError as exc:
                    raise AssertionError(
                        f"Indexer.add raised RecursionError for an item whose {field!r} is "
                        f"{depth} levels deep"
                    ) from exc
        for path in indexed_paths(db):
            assert_safe_relpath(path)


@pytest.mark.fuzz
@FUZZ
@given(
    href=hostile_hrefs(),
    base_url=st.one_of(st.sampled_from(DOC_URLS), hostile_hrefs()),
    allow_file=st.booleans(),
)
def test_normalize_href_returns_a_fetchable_url_or_raises_value_error(
    href: str, base_url: str, allow_file: bool
) -> None:
    try:
        url = normalize_href(href, base_url, allow_file=allow_file)
    except ValueError:
        return
    assert isinstance(url, str) and url
    assert not any(ord(c) < 0x20 for c in url), repr(url)
    scheme = url.split(":", 1)[0].lower()
    allowed = {"http", "https", "file"} if allow_file else {"http", "https"}
    assert scheme in allowed, repr(url)
    if scheme in ("http", "https"):
        assert url.lower().startswith(("http://", "https://")), repr(url)
        try:
            host = urlsplit(url).netloc
        except ValueError:  # e.g. an unbalanced IPv6 bracket: urllib3 refuses it later
            return
        assert host, f"{url!r} names no host: not fetchable, yet not refused"


@pytest.mark.fuzz
@FUZZ
@given(
    collection_id=hostile_strings(),
    item_id=st.one_of(st.none(), hostile_strings()),
    asset_key=hostile_strings(),
    href=hostile_hrefs(),
    media_type=st.one_of(
        st.none(),
        hostile_strings(),
        st.sampled_from(["image/tiff", "application/geo+json", "application/x-tar", "a/b/../c"]),
    ),
    wide=st.booleans(),
    per_collection=st.booleans(),
)
def test_asset_relpath_is_always_a_safe_relative_path(
    collection_id: str,
    item_id: str | None,
    asset_key: str,
    href: str,
    media_type: str | None,
    wide: bool,
    per_collection: bool,
) -> None:
    common = CommonLayout(
        dataset_wide=frozenset({asset_key} if wide else ()),
        per_collection=frozenset({(collection_id, asset_key)} if per_collection else ()),
    )
    path = asset_relpath(collection_id, item_id, asset_key, href, media_type, common)
    assert_safe_relpath(path)
