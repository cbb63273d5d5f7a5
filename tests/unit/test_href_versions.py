"""An href names one version of its object (``#etag=``), the spec's rewrites move hosts, and a
listed key's mirror path stays inside the dataset folder: pure functions, table-driven."""

from __future__ import annotations

import pytest

from mlhub_sync.selection.layout import mirror_relpath
from mlhub_sync.stac.href import href_identity, rewrite_href, with_version

VERSIONS = [
    # href, listed etag, the href we index
    ("https://h/b/k.tif", '"abc"', "https://h/b/k.tif#etag=abc"),
    ("https://h/b/k.tif", "abc", "https://h/b/k.tif#etag=abc"),
    ("https://h/b/k.tif#old", '"abc"', "https://h/b/k.tif#etag=abc"),  # the listing's wins
    ("https://h/b/k.tif", '"a/b c"', "https://h/b/k.tif#etag=a%2Fb%20c"),
    ("https://h/b/k.tif", 'W/"abc"', "https://h/b/k.tif"),  # weak: says nothing
    ("https://h/b/k.tif", '""', "https://h/b/k.tif"),
    ("https://h/b/k.tif", None, "https://h/b/k.tif"),
]


@pytest.mark.parametrize(("href", "etag", "indexed"), VERSIONS)
def test_a_listed_etag_becomes_the_hrefs_version(href: str, etag: str | None, indexed: str) -> None:
    assert with_version(href, etag) == indexed


def test_a_new_version_is_a_new_identity_and_a_new_signature_is_not() -> None:
    v1 = with_version("https://h/b/k.tif", '"1"')
    v2 = with_version("https://h/b/k.tif", '"2"')
    assert href_identity(v1) != href_identity(v2)
    signed_once = with_version("https://h/b/k.tif?sv=1&sig=aaa", '"1"')
    signed_again = with_version("https://h/b/k.tif?sv=1&sig=bbb", '"1"')
    assert href_identity(signed_once) == href_identity(signed_again)
    assert href_identity(signed_once).endswith("#etag=1")


REWRITES = [
    ("https://old.example/mlhub/", "https://new.example/m/"),
    ("https://old.example/", "https://x/"),
]


@pytest.mark.parametrize(
    ("href", "moved"),
    [
        ("https://old.example/mlhub/a/b.tif", "https://new.example/m/a/b.tif"),
        ("https://old.example/other/b.tif", "https://x/other/b.tif"),  # the first match wins
        ("https://elsewhere.example/mlhub/b.tif", "https://elsewhere.example/mlhub/b.tif"),
        ("https://old.example.evil/mlhub/b.tif", "https://old.example.evil/mlhub/b.tif"),
    ],
)
def test_rewrites_move_only_the_hrefs_they_name(href: str, moved: str) -> None:
    assert rewrite_href(href, REWRITES) == moved


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("train_features/abc/B02.tif", "train_features/abc/B02.tif"),
        ("a//b.tif", "a/b.tif"),
        ("/abs/b.tif", "abs/b.tif"),
        ("../../etc/passwd", "_/_/etc/passwd"),
        ("x/../../y", "x/_/_/y"),
        ("catalog.json", "_catalog.json"),  # the synced catalog's root stays ours
        ("mlhub_stac_assets.db", "_mlhub_stac_assets.db"),
        (".mlhub-staging-1/x", "_.mlhub-staging-1/x"),
        ("d/x.tif.part", "d/x.tif.part_"),
        ("d/a\\b.tif", "d/a_b.tif"),
    ],
)
def test_a_mirror_path_is_the_key_made_safe(key: str, path: str) -> None:
    assert mirror_relpath(key) == path


@pytest.mark.parametrize("key", ["", "/", "//"])
def test_a_key_naming_no_file_has_no_mirror_path(key: str) -> None:
    with pytest.raises(ValueError, match="names no file"):
        mirror_relpath(key)
