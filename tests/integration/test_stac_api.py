"""The stac-api source against a real STAC API (``rustac serve`` on 127.0.0.1): the dataset's
filters go into the search, results arrive over several pages, assets sync like any other
source's, a re-run fetches nothing, and a changed result set is planned as such."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from mlhub_sync.config.sources import StacApiSource
from mlhub_sync.errors import ExitCode
from mlhub_sync.selection.filters import FilterSet, TimeWindow
from mlhub_sync.sources.stac_api import search_parameters
from tests.support.server import TestServer
from tests.support.stac_api import collection, item, stac_api

ITEMS = 60  # over three pages of 25


def blob(server: TestServer, root: Path, name: str) -> str:
    data = hashlib.sha256(name.encode()).digest() * 64
    path = root / "blobs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"{server.url}/blobs/{name}"


def items(server: TestServer, root: Path, count: int = ITEMS) -> list[dict[str, Any]]:
    """Items of s2 at longitudes 0..count-1, one day each in April 2019 (cycling), with a B02
    and a B03 asset; a few items of another collection, dem."""
    out = [
        item(
            "s2", f"s2_{i:03}", float(i % 50), 1 + i % 28,
            {key: blob(server, root, f"s2_{i:03}_{key}.tif") for key in ("B02", "B03")},
        )
        for i in range(count)
    ]  # fmt: skip
    out += [
        item("dem", f"dem_{i}", 1.0, 2, {"data": blob(server, root, f"dem_{i}.tif")})
        for i in range(3)
    ]
    return out


def write_spec(path: Path, url: str, **dataset: Any) -> Path:
    spec = {
        "defaults": {"output_dir": "./out", "retry": {"max_retries": 1, "backoff": 0.01}},
        "datasets": [
            {"id": "s2api", "source": {"type": "stac-api", "url": url, "page_size": 25}, **dataset}
        ],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_a_stac_api_search_syncs_what_the_filters_select_over_several_pages(
    tmp_path: Path, cli: Any
) -> None:
    root = tmp_path / "served"
    with TestServer(root, etag_style="md5") as server:
        found = items(server, root)
        with stac_api(tmp_path / "api", [collection("s2"), collection("dem")], found) as url:
            spec = write_spec(
                tmp_path / "spec.yaml",
                url,
                collection_filter={"s2": ["B02"]},
                bbox=[-0.5, -1.0, 39.5, 1.0],
                datetime={"start": "2019-04-01", "end": "2019-04-20"},
            )
            result = cli("apply", spec, "--json")
            assert result.code == ExitCode.OK, result.stderr
            # lon 0..39 and day 1..20: i in 0..59 with i % 50 < 40 and i % 28 < 20
            expected = {
                f"s2/s2_{i:03}/B02.tif" for i in range(ITEMS) if i % 50 < 40 and i % 28 < 20
            }
            out = tmp_path / "out" / "s2api"
            got = {str(p.relative_to(out)) for p in out.rglob("*.tif")}
            assert got == expected
            assert len(expected) > 25  # more than one page of results
            for path in expected:
                name = path.split("/")[1] + "_B02.tif"
                assert (out / path).read_bytes() == (root / "blobs" / name).read_bytes()
            assert (out / "s2" / "collection.json").exists()
            assert not (out / "dem").exists()  # another collection: never searched
            before = server.count("/blobs/", method="GET")
            again = cli("apply", spec, "--json")
            assert again.code == ExitCode.OK
            assert server.count("/blobs/", method="GET") == before  # nothing fetched twice


def test_a_changed_result_set_is_planned_as_such(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "served"
    with TestServer(root, etag_style="md5") as server:
        first = items(server, root, count=4)
        with stac_api(tmp_path / "api1", [collection("s2"), collection("dem")], first) as url:
            spec = write_spec(tmp_path / "spec.yaml", url, collection_filter={"s2": ["B02"]})
            assert cli("apply", spec).code == ExitCode.OK
        later = items(server, root, count=5)  # one item more upstream
        with stac_api(tmp_path / "api2", [collection("s2"), collection("dem")], later) as url:
            spec = write_spec(tmp_path / "spec.yaml", url, collection_filter={"s2": ["B02"]})
            plan = cli("plan", spec, "--json").json()["datasets"][0]
    assert plan["actions"]["download"]["files"] == 1
    assert plan["actions"]["keep"]["files"] == 4
    changes = plan["catalog"]["item_changes"]  # the other items came back byte for byte
    assert (changes["added"], changes["changed"], changes["removed"]) == (1, 0, 0)
    assert changes["samples"]["added"] == [{"collection": "s2", "item": "s2_004"}]


def test_the_search_takes_the_datasets_filters_and_the_sources_own() -> None:
    spec = StacApiSource.model_validate(
        {
            "type": "stac-api",
            "url": "https://stac.example.org/v1",
            "collections": ["s2", "l8"],
            "query": {"eo:cloud_cover": {"lt": 10}},
            "max_items": 500,
        }
    )
    filters = FilterSet(
        collections={"s2": frozenset({"B02"}), "dem": frozenset()},
        time=TimeWindow.from_bounds(None, None).__class__(1554076800.0, None),
        intersects={"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 1], [0, 1], [0, 0]]]},
    )
    assert search_parameters(spec, filters) == {
        "limit": 250,
        "collections": ["s2"],  # the source's, narrowed to the filter's
        "bbox": [0.0, 0.0, 2.0, 1.0],  # intersects goes as its bounds; checked locally after
        "datetime": "2019-04-01T00:00:00Z/..",
        "query": {"eo:cloud_cover": {"lt": 10}},  # left out for an API without the extension
    }  # and no max_items: it counts the items that pass the local checks


def cloudy_items(server: TestServer, root: Path, count: int = 40) -> list[dict[str, Any]]:
    """s2 items at longitudes 0..count-1 on April 1..count, cloud cover i % 10, one asset."""
    return [
        item(
            "s2", f"s2_{i:03}", float(i), 1 + i % 28,
            {"B02": blob(server, root, f"c{i}.tif")}, eo_cloud_cover=i % 10,
        )
        for i in range(count)
    ]  # fmt: skip


def test_a_query_the_api_cannot_run_is_applied_to_each_item(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "served"
    with TestServer(root) as server:
        found = cloudy_items(server, root)
        with stac_api(tmp_path / "api", [collection("s2")], found) as url:
            spec = write_spec(
                tmp_path / "spec.yaml",
                url,
                collection_filter={"s2": ["B02"]},
                bbox=[4.5, -1.0, 30.5, 1.0],
                datetime={"start": "2019-04-01", "end": "2019-04-25"},
            )
            data = yaml.safe_load(spec.read_text())
            data["datasets"][0]["source"]["query"] = {"eo:cloud_cover": {"lt": 3}}
            spec.write_text(yaml.safe_dump(data))
            result = cli("apply", spec, "--json")
            assert result.code == ExitCode.OK, result.stderr
            out = tmp_path / "out" / "s2api"
            got = {p.parent.name for p in out.rglob("B02.tif")}
            # lon 5..30, day 1 + i % 28 <= 25, cloud cover i % 10 < 3
            assert got == {f"s2_{i:03}" for i in range(5, 31) if 1 + i % 28 <= 25 and i % 10 < 3}
            assert len(got) > 3
            data["datasets"][0]["source"]["max_items"] = 2  # counts items that pass
            spec.write_text(yaml.safe_dump(data))
            plan = cli("plan", spec, "--json").json()["datasets"][0]
            assert plan["catalog"]["items"] == 2


def test_a_cql2_filter_the_api_cannot_run_is_a_clear_error(tmp_path: Path, cli: Any) -> None:
    with stac_api(tmp_path / "api", [collection("s2")], []) as url:
        spec = write_spec(tmp_path / "spec.yaml", url)
        data = yaml.safe_load(spec.read_text())
        data["datasets"][0]["source"]["filter"] = {
            "op": "<", "args": [{"property": "eo:cloud_cover"}, 3]
        }  # fmt: skip
        spec.write_text(yaml.safe_dump(data))
        result = cli("plan", spec)
    assert result.code != ExitCode.OK
    assert "does not support the filter extension" in result.stderr
    assert "source.query" in result.stderr  # the hint names the way out
