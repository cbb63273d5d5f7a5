"""The example specs work as documented (on a copy of examples/, so nothing is written into
the repository; the README's quickstart as real processes is tests/e2e/test_examples.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.support.server import TestServer
from tests.support.stac_api import collection, item, stac_api


def test_the_committed_team_lock_matches_its_spec(examples: Path) -> None:
    result = run_cli("apply", examples / "configs/team.yaml", "--locked", cwd=examples)
    assert result.code == 0, result.stderr
    assert "15 downloaded" in result.stdout


@pytest.mark.parametrize("name", ["filters.yaml", "stac.yaml"])
def test_offline_examples_apply(examples: Path, name: str) -> None:
    result = run_cli("apply", examples / "configs" / name, cwd=examples)
    assert result.code == 0, result.stderr


def test_the_earth_search_example_runs_against_a_local_stac_api(
    examples: Path, tmp_path: Path
) -> None:
    root = tmp_path / "served"
    bands = ("red", "green", "blue", "nir")
    with TestServer(root) as server:
        scenes = []
        for i in range(12):  # 36.7 .. 37.25 east, January 2023, cloud cover 0, 3, 6, 9, ...
            hrefs = {}
            for band in bands:
                (root / "blobs").mkdir(parents=True, exist_ok=True)
                (root / "blobs" / f"{i}-{band}.tif").write_bytes(f"{i}{band}".encode() * 50)
                hrefs[band] = f"{server.url}/blobs/{i}-{band}.tif"
            scene = item("sentinel-2-l2a", f"S2_{i:02}", 36.7 + 0.05 * i, 1 + 2 * i, hrefs,
                         eo_cloud_cover=(3 * i) % 20)  # fmt: skip
            scene["properties"]["datetime"] = f"2023-01-{1 + 2 * i:02}T08:00:00Z"
            lon = scene["geometry"]["coordinates"][0]
            scene["geometry"]["coordinates"] = [lon, -1.3]  # Nairobi's latitude
            scene["bbox"] = [lon, -1.3, lon, -1.3]
            scenes.append(scene)
        with stac_api(tmp_path / "api", [collection("sentinel-2-l2a")], scenes) as url:
            spec = examples / "configs" / "earth-search.yaml"
            result = run_cli("apply", spec, cwd=examples, env={"EARTH_SEARCH_URL": url})
            assert result.code == 0, result.stderr
    out = examples / "data" / "out-earth-search" / "s2_nairobi_2023_01" / "sentinel-2-l2a"
    # inside the bbox (lon <= 37.10: i <= 8), cloud cover < 10: i in 0, 1, 2, 3, 7, 8
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        f"S2_{i:02}" for i in (0, 1, 2, 3, 7, 8)
    ]
    assert sorted(p.name for p in (out / "S2_00").glob("*.tif")) == [
        "blue.tif", "green.tif", "red.tif"
    ]  # fmt: skip
