"""A source's ``headers:`` and ``sign: planetary-computer`` through the whole CLI: the headers
reach the source's host (the catalog archive, an asset there) and no other; blob assets are
fetched with a token from a local token endpoint; and no header value, token signature or
subscription key appears in the dataset folder (state db, lock, report, synced catalog),
the logs or any output."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.mlhub_dataset import write_asset_catalog
from tests.support.server import TestServer

HEADER_SECRET = "hdr-secret-4f1c9a"
SUB_KEY = "subkey-secret-77b2e0"
SIG = "sig-secret-"
SECRETS = (HEADER_SECRET, SUB_KEY, SIG)


class Tokens:
    """``/token/acct/blobs`` hands out tokens; blobs under ``/blobs/pc/`` need one."""

    def __init__(self, server: TestServer):
        self.issued = 0
        self.keys: list[str | None] = []
        self.lock = threading.Lock()
        server.add_handler("/token/acct/blobs", self.token)
        server.add_gate("/blobs/pc/", self.check)

    def token(self, _query: dict[str, str], headers: dict[str, str]) -> tuple[int, object]:
        with self.lock:
            self.issued += 1
            self.keys.append(headers.get("ocp-apim-subscription-key"))
            sig = f"{SIG}{self.issued}"
        when = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
        return 200, {"msft:expiry": when, "token": f"sp=r&sig={sig}"}

    def check(self, query: dict[str, str], _headers: dict[str, str]) -> int | None:
        return None if query.get("sig", "").startswith(SIG) else 403


def needs_header(query: dict[str, str], headers: dict[str, str]) -> int | None:
    return None if headers.get("x-api-key") == HEADER_SECRET else 401


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # acct.blob.localhost (libcurl resolves *.localhost to 127.0.0.1) stands in for Azure.
    monkeypatch.setattr("mlhub_sync.net.planetary.BLOB_SUFFIX", ".blob.localhost")
    root = tmp_path / "served"
    with TestServer(root) as server:
        yield server, root


def test_headers_and_tokens_go_where_they_belong_and_are_never_shown(
    tmp_path: Path, site: Any, cli: Any
) -> None:
    server, root = site
    port = server.url.rsplit(":", 1)[1]
    tokens = Tokens(server)
    server.add_gate("/cat.tar.gz", needs_header)
    server.add_gate("/blobs/own/", needs_header)
    files = {"pc/a.bin": b"signed bytes", "own/b.bin": b"the source's own host"}
    for rel, data in files.items():
        (root / "blobs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "blobs" / rel).write_bytes(data)
    assets = {
        "a": {"href": f"http://acct.blob.localhost:{port}/blobs/pc/a.bin"},
        "b": {"href": f"{server.url}/blobs/own/b.bin"},
        "gone": {"href": f"http://acct.blob.localhost:{port}/blobs/pc/missing.bin"},
    }
    for asset, rel in (("a", "pc/a.bin"), ("b", "own/b.bin")):
        assets[asset]["file:checksum"] = "d50110" + hashlib.md5(files[rel]).hexdigest()
    write_asset_catalog(root / "cat.tar.gz", "ds", assets)
    server.add_file_route("/cat.tar.gz", root / "cat.tar.gz")
    spec = tmp_path / "spec.yaml"
    source = {
        "type": "archive",
        "url": f"{server.url}/cat.tar.gz",
        "headers": {"X-Api-Key": "${HDR}"},
        "sign": "planetary-computer",
    }
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {
                    "output_dir": "./out",
                    "source": source,
                    "retry": {"max_retries": 1, "backoff": 0.01, "max_backoff": 0.02},
                },
                "datasets": [{"id": "ds"}],
            }
        )
    )
    # the token endpoint is another origin (localhost, not 127.0.0.1) on the same server
    env = {"HDR": HEADER_SECRET, "PC_SDK_SAS_URL": f"http://localhost:{port}/token",
           "PC_SDK_SUBSCRIPTION_KEY": SUB_KEY}  # fmt: skip

    runs = [cli("apply", spec, "-vv", env=env), cli("lock", spec, "-v", env=env)]
    runs.append(cli("plan", spec, "--json", "-v", env=env))
    assert runs[0].code == 1 and "1 FAILED" in runs[0].stdout, runs[0]  # the missing one
    dataset = tmp_path / "out" / "ds"
    assert (dataset / "c" / "a" / "data.bin").read_bytes() == files["pc/a.bin"]
    assert (dataset / "c" / "b" / "data.bin").read_bytes() == files["own/b.bin"]

    # the headers went to the source's host only; the token endpoint got the key, once
    by_path = {r.path: r.headers for r in server.requests}
    assert by_path["/cat.tar.gz"].get("x-api-key") == HEADER_SECRET
    assert by_path["/blobs/own/b.bin"].get("x-api-key") == HEADER_SECRET
    assert "x-api-key" not in by_path["/blobs/pc/a.bin"]  # another host (origin)
    assert "x-api-key" not in by_path["/token/acct/blobs"]
    assert tokens.keys == [SUB_KEY]

    # ... and none of them is anywhere a person or a file could see it
    seen = [f"{r.stdout}\n{r.stderr}" for r in runs]
    for path in [p for p in tmp_path.rglob("*") if p.is_file() and "served" not in p.parts]:
        seen.append(path.read_bytes().decode("latin-1"))
    assert (dataset / "mlhub_errors.csv").exists() and any("missing.bin" in s for s in seen)
    for secret in SECRETS:
        assert not [s[:200] for s in seen if secret in s], secret
