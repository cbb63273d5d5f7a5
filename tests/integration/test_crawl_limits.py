"""A remote static catalog whose links never end stops at the crawl's limits (documents, and
links from the root), with the limit named; an honest catalog at the limits syncs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhub_sync.config.sources import StacSource
from tests.support.server import TestServer


def catalog(children: list[str]) -> str:
    links = [{"rel": "child", "href": f"./{c}/catalog.json"} for c in children]
    return json.dumps({"type": "Catalog", "stac_version": "1.0.0", "id": "s", "links": links})


def endless(folder: Path, children: list[str]) -> None:
    """A catalog linking to ``{child}/catalog.json`` for each child, every child folder a link
    back to ``folder``: a new URL on every level, for ever (one document on disk)."""
    folder.mkdir(parents=True)
    (folder / "catalog.json").write_text(catalog(children))
    for child in children:
        os.symlink(".", folder / child)


def crawl_spec(tmp_path: Path, url: str, **limits: int) -> Path:
    spec = tmp_path / "spec.yaml"
    source = {"type": "stac", "url": url, **limits}
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": "./out", "retry": {"max_retries": 0}},
                "datasets": [{"id": "s", "source": source}],
            }
        )
    )
    return spec


@pytest.mark.parametrize(
    ("children", "limits", "named", "most_requests"),
    [
        (["x"], {"max_depth": 8}, "source.max_depth (8 links", 9),  # a chain
        (["a", "b"], {"max_documents": 20}, "source.max_documents (20)", 20),  # a tree
    ],
)
def test_a_crawl_of_endless_links_stops_at_its_limit_named(
    tmp_path: Path,
    cli: Any,
    children: list[str],
    limits: dict[str, int],
    named: str,
    most_requests: int,
) -> None:
    endless(tmp_path / "served/blobs/loop", children)
    with TestServer(tmp_path / "served") as server:
        spec = crawl_spec(tmp_path, f"{server.url}/blobs/loop/catalog.json", **limits)
        result = cli("plan", spec)
        requests = server.count("/blobs/loop/", method="GET")
    assert result.code == 1
    assert named in result.stderr and "raise source.max_" in result.stderr
    assert requests <= most_requests


@pytest.mark.timeout(30)  # without a limit, this crawl would never end
def test_an_endless_chain_stops_at_the_default_depth(tmp_path: Path, cli: Any) -> None:
    endless(tmp_path / "served/blobs/loop", ["x"])
    with TestServer(tmp_path / "served") as server:
        result = cli("plan", crawl_spec(tmp_path, f"{server.url}/blobs/loop/catalog.json"))
        requests = server.count("/blobs/loop/", method="GET")
    assert result.code == 1 and "source.max_depth (32 links" in result.stderr
    assert requests == 33  # the root and 32 levels below it


def test_a_catalog_exactly_at_the_limits_syncs(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "served/blobs/cat"
    (root / "a/b").mkdir(parents=True)
    (root / "catalog.json").write_text(catalog(["a"]))
    (root / "a/catalog.json").write_text(catalog(["b"]))
    (root / "a/b/catalog.json").write_text(catalog([]))
    with TestServer(tmp_path / "served") as server:
        url = f"{server.url}/blobs/cat/catalog.json"
        assert cli("plan", crawl_spec(tmp_path, url, max_depth=2, max_documents=3)).code == 0
        assert cli("plan", crawl_spec(tmp_path, url, max_depth=1)).code == 1
        assert cli("plan", crawl_spec(tmp_path, url, max_documents=2)).code == 1


def test_the_limits_have_generous_defaults() -> None:
    source = StacSource(type="stac", url="https://h/catalog.json")
    assert source.max_documents == 1_000_000  # a million-item catalog still crawls
    assert source.max_depth == 32
