"""examples/configs/planetary-computer.yaml works as documented, against a local STAC API
(``rustac serve``) whose assets sit on a blob host that wants a token from a local
Planetary-Computer-style token endpoint (on a copy of examples/)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.support.server import TestServer
from tests.support.stac_api import collection, item, stac_api

BANDS = ("B02", "B03", "B04", "B08")


def test_the_planetary_computer_example_signs_its_assets(
    examples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # acct.blob.localhost (libcurl resolves *.localhost to 127.0.0.1) stands in for Azure.
    monkeypatch.setattr("mlhub_sync.net.planetary.BLOB_SUFFIX", ".blob.localhost")
    root = tmp_path / "served"
    (root / "blobs").mkdir(parents=True)
    issued: list[str] = []

    def token(_query: dict[str, str], _headers: dict[str, str]) -> tuple[int, object]:
        issued.append(f"sig-{len(issued)}")
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=45)
        return 200, {"msft:expiry": expiry.isoformat(), "token": f"sp=r&sig={issued[-1]}"}

    with TestServer(root) as server:
        port = server.url.rsplit(":", 1)[1]
        server.add_handler("/token/acct/blobs", token)
        server.add_gate("/blobs/", lambda q, _h: None if q.get("sig") in issued else 403)
        scenes = []
        for i in range(4):  # 36.7 .. 36.85 east: inside the example's bbox
            hrefs = {}
            for band in BANDS:
                (root / "blobs" / f"{i}-{band}.tif").write_bytes(f"{i}{band}".encode() * 50)
                hrefs[band] = f"http://acct.blob.localhost:{port}/blobs/{i}-{band}.tif"
            scene = item("sentinel-2-l2a", f"S2_{i:02}", 36.7 + 0.05 * i, 1 + 2 * i, hrefs)
            scene["properties"]["datetime"] = f"2023-01-{1 + 2 * i:02}T08:00:00Z"
            scene["geometry"]["coordinates"][1] = -1.3
            scene["bbox"] = [scene["bbox"][0], -1.3, scene["bbox"][2], -1.3]
            scenes.append(scene)
        with stac_api(tmp_path / "api", [collection("sentinel-2-l2a")], scenes) as url:
            env = {"PC_STAC_URL": url, "PC_SDK_SAS_URL": f"http://localhost:{port}/token"}
            spec = examples / "configs" / "planetary-computer.yaml"
            result = run_cli("apply", spec, cwd=examples, env=env)
        assert result.code == 0, result.stderr
        blob_requests = [r for r in server.requests if r.path.startswith("/blobs/")]
    out = examples / "data" / "out-planetary-computer" / "s2_nairobi_2023_01_pc"
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tif"))
    assert got == [f"sentinel-2-l2a/S2_{i:02}/{b}.tif" for i in range(4) for b in BANDS[:3]]
    assert issued == ["sig-0"]  # one token for the container, shared by twelve transfers
    assert len(blob_requests) == 12 and {r.query["sig"] for r in blob_requests} == {"sig-0"}
    assert not [p for p in out.parent.rglob("*") if p.is_file() and b"sig-0" in p.read_bytes()]
