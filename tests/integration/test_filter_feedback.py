"""Filters that say what they did: every collection id and asset key of a collection_filter
that matches nothing is a warning with a did-you-mean; a filter that matches nothing at all
stops the dataset with exit 64 and the catalog's real names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlhub_sync.errors import ExitCode
from tests.conftest import Hub


def test_an_unknown_asset_key_is_a_warning_and_the_rest_syncs(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(
        tmp_path / "spec.yaml",
        [{"id": "tiny", "collection_filter": {"tiny_source": ["B02", "B2"]}}],
    )
    result = cli("apply", spec)
    assert result.code == ExitCode.OK, result.stderr
    assert (
        "tiny: collection_filter: asset key 'B2' matches no asset of collection 'tiny_source' "
        "(did you mean 'B02'?)" in result.stderr
    )
    assert sorted(p.name for p in (tmp_path / "out" / "tiny").rglob("*.tif")) == ["B02.tif"] * 6


def test_an_unknown_collection_is_a_warning_naming_the_nearest_real_one(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(
        tmp_path / "spec.yaml",
        [{"id": "tiny", "collection_filter": {"tiny_labels": [], "tiny_sourse": ["B02"]}}],
    )
    result = cli("plan", spec)
    assert result.code == ExitCode.OK, result.stderr
    assert (
        "collection 'tiny_sourse' is not in the catalog (did you mean 'tiny_source'?)"
        in result.stderr
    )


def test_a_filter_that_matches_nothing_is_an_error_listing_the_real_names(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(
        tmp_path / "spec.yaml",
        [{"id": "tiny", "collection_filter": {"tiny_source": ["image_jpg"], "labels": []}}],
    )
    result = cli("apply", spec)
    assert result.code == ExitCode.USAGE
    assert "No changes" not in result.stdout + result.stderr
    assert "collection_filter matches no asset of the catalog" in result.stderr
    assert "collection 'labels' is not in the catalog" in result.stderr
    assert "tiny_source: [B02, B03, B04, documentation]" in result.stderr  # the real keys
    assert not list((tmp_path / "out" / "tiny").rglob("*.tif"))


def test_a_correct_filter_says_nothing(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(
        tmp_path / "spec.yaml", [{"id": "tiny", "collection_filter": {"tiny_source": ["B02"]}}]
    )
    result = cli("plan", spec)
    assert result.code == ExitCode.OK
    assert "collection_filter" not in result.stderr


def test_a_collection_with_no_keys_given_means_every_key(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = tmp_path / "spec.yaml"
    hub.spec(spec)
    text = spec.read_text().replace(
        "datasets:\n- id: tiny\n", "datasets:\n- id: tiny\n  collection_filter:\n    tiny_source:\n"
    )
    spec.write_text(text.replace("version: 1\n", ""))  # and version is optional
    result = cli("apply", spec, "--json")
    assert result.code == ExitCode.OK, result.stderr
    names = sorted({p.name for p in (tmp_path / "out" / "tiny").rglob("*.tif")})
    assert names == ["B02.tif", "B03.tif", "B04.tif"]
