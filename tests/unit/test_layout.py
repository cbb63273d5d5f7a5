"""Layout: every id and key becomes one safe path component; paths never leave the dataset.

The layout is an API (loaders depend on it), so the examples here pin exact paths, and the
properties pin the safety promises for arbitrary text.
"""

from __future__ import annotations

import mimetypes
import posixpath
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlhub_sync.apply.report import REPORT_NAME
from mlhub_sync.catalog.install import STAGING_PREFIX, is_bookkeeping
from mlhub_sync.selection.layout import (
    COMMON_DIR,
    MAX_COMPONENT_BYTES,
    RESERVED_PREFIXES,
    CommonLayout,
    asset_extension,
    asset_relpath,
    collection_dir,
    safe_component,
)
from mlhub_sync.state.db import DB_NAME
from mlhub_sync.state.lock import LOCK_NAME

PROPERTY = settings(max_examples=150, deadline=None)
NO_COMMON = CommonLayout()
BLOB = "https://radiantearth.blob.core.windows.net/mlhub/ds"

# Arbitrary text, lone surrogates included (JSON can carry them as \ud800 escapes).
any_text = st.text(st.characters(exclude_categories=()), max_size=300)
hostile_text = st.lists(
    st.sampled_from(
        ["/", "\\", ".", "..", "\x00", "\n", "\x85", " ", "a", "é", "\ud800", ":", "con"]
    ),
    max_size=40,
).map("".join)
names = st.one_of(any_text, hostile_text)


def assert_safe(component: str) -> None:
    assert component not in ("", ".", "..")
    assert "/" not in component and "\\" not in component
    assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in component)
    assert len(component.encode("utf-8")) <= MAX_COMPONENT_BYTES


# -- safe_component -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("B02", "B02"),
        ("", "_"),
        (".", "_"),
        ("..", "_"),
        ("...", "_"),
        ("a/b", "a_b"),
        ("../../etc", ".._.._etc"),
        ("a\\b", "a_b"),
        ("a\x00b", "a_b"),
        ("tab\there", "tab_here"),
        ("c1\x85control", "c1_control"),
        ("line\u2028separator", "line_separator"),
        ("lone\ud800surrogate", "lone_surrogate"),
        ('w:i*n?d"o<w>s|', "w_i_n_d_o_w_s_"),
        ("  padded  ", "padded"),
        ("trailing...", "trailing"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Lpt9", "_Lpt9"),
        ("console", "console"),
        ("caf\u0065\u0301", "caf\u00e9"),  # NFC
    ],
)
def test_safe_component_examples(name: str, expected: str) -> None:
    assert safe_component(name) == expected


def test_long_names_are_shortened_with_a_hash_that_keeps_them_apart() -> None:
    first = "x" * 999 + "a"
    second = "x" * 999 + "b"
    a, b = safe_component(first), safe_component(second)
    assert a != b
    assert len(a.encode()) <= MAX_COMPONENT_BYTES
    assert a.startswith("x" * 100)
    assert safe_component(first) == a  # stable


def test_shortening_never_splits_a_multibyte_character() -> None:
    short = safe_component("é" * 300)
    short.encode("utf-8")  # would fail on a broken sequence
    assert len(short.encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert set(short.split("~")[0]) == {"é"}


def test_a_name_of_exactly_the_limit_is_kept_whole() -> None:
    name = "n" * MAX_COMPONENT_BYTES
    assert safe_component(name) == name
    assert safe_component(name + "n") != name + "n"


@PROPERTY
@given(names)
def test_safe_component_is_always_one_safe_component(name: str) -> None:
    assert_safe(safe_component(name))


@PROPERTY
@given(names, names)
def test_distinct_long_names_stay_distinct(head: str, tail: str) -> None:
    long_a = "p" * 250 + head
    long_b = "p" * 250 + head + "!" + tail
    assert safe_component(long_a) != safe_component(long_b)


# -- extensions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("href", "media_type", "expected"),
    [
        (f"{BLOB}/chips.tar.gz", None, ".tar.gz"),
        (f"{BLOB}/CHIPS.TAR.GZ", None, ".tar.gz"),
        (f"{BLOB}/labels.geojson.bz2", None, ".geojson.bz2"),
        (f"{BLOB}/B03.TIF", None, ".tif"),
        (f"{BLOB}/B04", "image/tiff; application=geotiff", ".tif"),
        (f"{BLOB}/B04", "IMAGE/TIFF; application=geotiff; profile=cloud-optimized", ".tif"),
        (f"{BLOB}/B04.tif?sv=2021-06-08&sig=abc.def", None, ".tif"),
        (f"{BLOB}/download?file=B04.tif", None, ""),
        (f"{BLOB}/B04.tif#fragment.png", None, ".tif"),
        (f"{BLOB}/my%20labels.csv", None, ".csv"),
        (f"{BLOB}/data.gz", None, ".gz"),
        (f"{BLOB}/.hidden", None, ""),
        (f"{BLOB}/folder/", "application/json", ".json"),
        (f"{BLOB}/name.", None, ""),
        (f"{BLOB}/name.with space", None, ""),
        (f"{BLOB}/name.tif~", None, ""),
        (f"{BLOB}/name.averyveryverylongsuffix", None, ""),
        (f"{BLOB}/scene.20190401", "image/tiff", ".tif"),  # a date, not a suffix
        (f"{BLOB}/release-v1.0", None, ""),
        (f"{BLOB}/archive.7z", None, ".7z"),
        (f"{BLOB}/B04", None, ""),
        (f"{BLOB}/B04", "application/x-unknown-thing", ""),
        (f"{BLOB}/B04", "not a media type", ""),
        ("s3://bucket/key", "application/geo+json", ".geojson"),
    ],
)
def test_asset_extension(href: str, media_type: str | None, expected: str) -> None:
    assert asset_extension(href, media_type) == expected


def test_the_hosts_mime_database_does_not_decide_an_extension(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Module-level mimetypes reads /etc/mime.types; a path must not depend on the machine.
    monkeypatch.setattr(mimetypes, "guess_extension", lambda *a, **k: ".host")
    assert asset_extension(f"{BLOB}/B04", "application/x-unknown-thing") == ""
    assert asset_extension(f"{BLOB}/B04", "application/octet-stream") == ".bin"


@PROPERTY
@given(any_text, st.one_of(st.none(), any_text))
def test_an_extension_is_empty_or_one_short_plain_suffix(href: str, media_type: str | None) -> None:
    ext = asset_extension(href, media_type)
    assert ext == "" or (ext.startswith(".") and ext == ext.lower())
    assert "/" not in ext and ".." not in ext and len(ext) <= 22


# -- asset paths --------------------------------------------------------------------------------


def test_item_and_collection_level_paths() -> None:
    assert (
        asset_relpath("src", "item_1", "B02", f"{BLOB}/B02.tif", None, NO_COMMON)
        == "src/item_1/B02.tif"
    )
    assert (
        asset_relpath("labels", None, "class_map", f"{BLOB}/map", "text/csv", NO_COMMON)
        == "labels/class_map.csv"
    )


def test_ids_and_keys_are_sanitised_into_single_components() -> None:
    assert (
        asset_relpath("../../etc", "a/b", "..", f"{BLOB}/x.tif", None, NO_COMMON)
        == ".._.._etc/a_b/_.tif"
    )


def test_a_common_key_with_one_href_in_the_dataset_is_stored_once_in_common() -> None:
    layout = CommonLayout.from_counts(
        ["documentation", "readme"], {"documentation": 1}, {("src", "documentation"): 1}
    )
    assert layout.dataset_wide == {"documentation"}
    for collection, item_id in [("src", "a"), ("labels", "b"), ("labels", None)]:
        path = asset_relpath(collection, item_id, "documentation", f"{BLOB}/doc.pdf", None, layout)
        assert path == "_common/documentation.pdf"


def test_a_common_key_with_one_href_per_collection_is_qualified_by_collection() -> None:
    layout = CommonLayout.from_counts(
        ["documentation"],
        {"documentation": 2},
        {("src", "documentation"): 1, ("labels", "documentation"): 1},
    )
    assert layout.dataset_wide == frozenset()
    assert asset_relpath("src", "a", "documentation", f"{BLOB}/s.pdf", None, layout) == (
        "_common/src/documentation.pdf"
    )
    assert asset_relpath("labels", "b", "documentation", f"{BLOB}/l.pdf", None, layout) == (
        "_common/labels/documentation.pdf"
    )


def test_a_common_key_with_several_hrefs_in_one_collection_is_an_ordinary_asset() -> None:
    layout = CommonLayout.from_counts(
        ["documentation"],
        {"documentation": 3},
        {("src", "documentation"): 2, ("labels", "documentation"): 1},
    )
    assert asset_relpath("src", "a", "documentation", f"{BLOB}/a.pdf", None, layout) == (
        "src/a/documentation.pdf"
    )
    assert asset_relpath("labels", "b", "documentation", f"{BLOB}/l.pdf", None, layout) == (
        "_common/labels/documentation.pdf"
    )


def test_a_collection_named_common_does_not_collide_with_the_common_folder() -> None:
    layout = CommonLayout.from_counts(["documentation"], {"documentation": 1}, {})
    own = asset_relpath("_common", "documentation", "B02", f"{BLOB}/B02.tif", None, layout)
    shared = asset_relpath("_common", "x", "documentation", f"{BLOB}/doc.pdf", None, layout)
    collection_level = asset_relpath("_common", None, "readme", f"{BLOB}/r.md", None, layout)
    assert own == "_common_/documentation/B02.tif"
    assert shared == "_common/documentation.pdf"
    assert collection_level == "_common_/readme.md"
    assert not own.startswith(f"{COMMON_DIR}/")


# Every name mlhub-sync itself writes at the top of a dataset or asset folder.
OWN_NAMES = [
    DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}.corrupt-1700000000",
    LOCK_NAME, f"{STAGING_PREFIX}-4242", STAGING_PREFIX, REPORT_NAME, f"{REPORT_NAME}.part",
    "x.tar.gz", "x.tar.gz.part", "catalog.json", COMMON_DIR,
]  # fmt: skip


def tool_name(name: str) -> bool:
    """True when ``name`` (any case) is, or is taken for, one of the tool's own."""
    lowered = name.lower()
    return (
        is_bookkeeping(lowered)
        or lowered.startswith((REPORT_NAME, "catalog.json"))
        or lowered == COMMON_DIR
    )


def test_the_layout_reserves_every_name_the_tool_writes() -> None:
    # The layout cannot import the stages that own two of them: its copies must agree.
    assert {STAGING_PREFIX, REPORT_NAME, DB_NAME, LOCK_NAME} <= set(RESERVED_PREFIXES)
    assert all(tool_name(n) and tool_name(n.upper()) for n in OWN_NAMES)


@pytest.mark.parametrize(
    ("collection_id", "folder"),
    [
        (".mlhub-staging-x", "_.mlhub-staging-x"),  # the next re-index would sweep it away
        (".mlhub-staging", "_.mlhub-staging"),
        ("mlhub_stac_assets.db", "_mlhub_stac_assets.db"),
        ("mlhub_stac_assets.db-wal", "_mlhub_stac_assets.db-wal"),
        ("MLHUB_STAC_ASSETS.DB", "_MLHUB_STAC_ASSETS.DB"),  # macOS and Windows ignore case
        (".mlhub-sync.lock", "_.mlhub-sync.lock"),
        ("mlhub_errors.csv", "_mlhub_errors.csv"),
        ("mlhub_errors.csv.part", "_mlhub_errors.csv.part_"),
        ("catalog.json", "_catalog.json"),
        ("x.tar.gz", "x.tar.gz_"),
        ("x.TAR.GZ.part", "x.TAR.GZ.part_"),
        ("_common", "_common_"),
        ("x.part", "x.part_"),
        ("sen12floods_labels", "sen12floods_labels"),
        ("mlhub_errors", "mlhub_errors"),
        ("_mlhub_stac_assets.db", "_mlhub_stac_assets.db"),
    ],
)
def test_a_collection_never_takes_a_name_of_the_tools_own(collection_id: str, folder: str) -> None:
    assert collection_dir(collection_id) == folder
    assert asset_relpath(collection_id, "i", "B02", f"{BLOB}/B02.tif", None, NO_COMMON) == (
        f"{folder}/i/B02.tif"
    )
    assert not tool_name(folder)


def test_no_asset_lands_on_a_part_file() -> None:
    part = asset_relpath("c", "i", "B02.tif", f"{BLOB}/x.part", None, NO_COMMON)
    assert part == "c/i/B02.tif.part_"
    assert asset_relpath("c", "i.part", "k.part", f"{BLOB}/x", None, NO_COMMON) == (
        "c/i.part_/k.part_"
    )


@PROPERTY
@given(collection=st.one_of(names, st.sampled_from(OWN_NAMES)), key=names)
def test_no_layout_path_is_a_name_of_the_tools_own(collection: str, key: str) -> None:
    for item_id in (None, "i"):
        rel = asset_relpath(collection, item_id, key, f"{BLOB}/{key}", None, NO_COMMON)
        parts = rel.split("/")
        assert not tool_name(parts[0])
        assert not any(part.lower().endswith(".part") for part in parts)


@PROPERTY
@given(
    collection=names,
    item_id=st.one_of(st.none(), names),
    key=names,
    href=st.one_of(any_text, hostile_text.map(lambda s: f"https://h/{s}")),
    media_type=st.one_of(st.none(), any_text),
    common=st.sampled_from(["none", "wide", "per"]),
)
def test_an_asset_path_never_escapes_the_dataset_folder(
    collection: str, item_id: str | None, key: str, href: str, media_type: str | None, common: str
) -> None:
    layout = {
        "none": NO_COMMON,
        "wide": CommonLayout(dataset_wide=frozenset({key})),
        "per": CommonLayout(per_collection=frozenset({(collection, key)})),
    }[common]
    rel = asset_relpath(collection, item_id, key, href, media_type, layout)
    root = "/data/dataset"
    joined = posixpath.normpath(posixpath.join(root, rel))
    assert joined.startswith(root + "/")
    assert joined == f"{root}/{rel}"  # nothing for normpath to fold: no '.', '..' or '//'
    parts = rel.split("/")
    assert 2 <= len(parts) <= 3
    for part in parts[:-1]:
        assert_safe(part)
    assert parts[-1] not in ("", ".", "..")
    assert "\\" not in rel and "\x00" not in rel


@pytest.mark.fuzz
@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="hs:/?#[]@%.aT0 ", max_size=30))
@example("T://]/")  # a lone ']' in the host: urlsplit refuses it, so the path is ""
def test_fast_url_path_agrees_with_urlsplit(href: str) -> None:
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415

    from mlhub_sync.selection.layout import _url_path  # noqa: PLC0415

    try:
        expected = unquote(urlsplit(href).path)
    except ValueError:
        expected = ""
    assert _url_path(href) == expected
