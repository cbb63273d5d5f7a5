"""A remote catalog archive goes through the transfer engine: conditional, resumable, sha256."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from mlhub_sync.errors import CatalogError
from mlhub_sync.net.client import Http
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import NetSettings
from mlhub_sync.sources.archive import fetch_remote
from mlhub_sync.state.db import StateDB
from tests.support.server import Fault, TestServer

ARCHIVE = random.Random(5).randbytes(200_000)
PATH = "/blobs/archives/ds.tar.gz"


def test_a_killed_fetch_resumes_and_the_next_one_is_a_304(tmp_path: Path) -> None:
    served = tmp_path / "served"
    (served / "blobs" / "archives").mkdir(parents=True)
    (served / "blobs" / "archives" / "ds.tar.gz").write_bytes(ARCHIVE)
    kept = tmp_path / "ds" / "ds.tar.gz"
    http = Http(policy=RetryPolicy(max_retries=0), net=NetSettings(connect=2, read=2))
    with TestServer(served, etag_style="md5") as server, StateDB.open(tmp_path / "ds") as db:
        url = server.url + PATH
        server.add_fault(PATH, Fault("truncate", after_bytes=50_000))
        with pytest.raises(CatalogError):
            fetch_remote(http, url, kept, db, params={"key": "SECRET"})

        fetched = fetch_remote(http, url, kept, db, params={"key": "SECRET"})
        assert fetched.pending and fetched.path.read_bytes() == ARCHIVE
        assert fetched.sha256 == hashlib.sha256(ARCHIVE).hexdigest()
        first, second = [r for r in server.requests if r.path == PATH]
        assert second.headers["range"] == "bytes=50000-" and second.status == 206
        assert first.query == second.query == {"key": "SECRET"}

        fetched.path.replace(kept)  # what refresh does once the archive proved sound
        with db.transaction():
            db.set_meta(fetched.meta)
        again = fetch_remote(http, url, kept, db)
        assert not again.pending and again.sha256 == fetched.sha256
        assert server.requests[-1].status == 304
        assert server.requests[-1].headers["if-none-match"] == fetched.meta["archive_etag"]
