"""No unbounded bytes, no endless waits, no redirect into the user's network (issue 11,
sections 2, 3 and 5), against the real :class:`TestServer` and the production libcurl driver
or the requests client: what reached the disk, what the server sent, how long it took.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import random
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhub_sync.errors import CatalogError, TransferError
from mlhub_sync.net.client import Http
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import NetSettings
from mlhub_sync.sources.archive import fetch_remote
from mlhub_sync.state.db import StateDB
from mlhub_sync.transfer.curl import CurlDriver
from mlhub_sync.transfer.ops import FetchState, TransferRequest, TransferResult
from mlhub_sync.transfer.rules import Transfers
from tests.support.mlhub_dataset import write_asset_catalog
from tests.support.server import TestServer

BLOCK = b"x" * 65536
HUGE = 300 * 2**20  # what a hostile server would send, were it let
SENT_AT_MOST = 16 * 2**20  # what it can send before the client hangs up (socket buffers)
MIB = 2**20
ZEROS_GZ = gzip.compress(bytes(64 * MIB), compresslevel=9)  # 64 MiB of zeros in 65 KB
FAST = RetryPolicy(max_retries=3, backoff=0.01, max_backoff=0.05)


def blocks(total: int) -> Any:
    """A streamed body of ``total`` bytes, made as it is sent."""
    return lambda _stopping: itertools.islice(itertools.repeat(BLOCK), total // len(BLOCK))


def endless(_stopping: threading.Event) -> Iterator[bytes]:
    return itertools.repeat(BLOCK)


def drip(every: float, count: int) -> Any:
    """A byte every ``every`` seconds, ``count`` times."""

    def chunks(stopping: threading.Event) -> Iterable[bytes]:
        for _ in range(count):
            if stopping.wait(every):
                return
            yield b"d"

    return chunks


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestServer]:
    with TestServer(tmp_path / "served") as running:
        yield running


DEFAULT_NET = NetSettings()


def fetch(
    server: TestServer, path: str, dest: Path, net: NetSettings = DEFAULT_NET, **fields: Any
) -> TransferResult:
    driver = CurlDriver(1, stop=threading.Event(), net=net)
    transfers = Transfers(policy=FAST, rand=random.Random(0).random, net=net)
    try:
        request = TransferRequest(url=server.url + path, dest=dest, **fields)
        return driver.run(transfers.fetch(request, FetchState()))
    finally:
        driver.close()


def fetch_error(*args: Any, **kwargs: Any) -> TransferError:
    with pytest.raises(TransferError) as caught:
        fetch(*args, **kwargs)
    return caught.value


def sent(server: TestServer, path: str) -> list[int]:
    """The body bytes the server wrote to the socket, per GET of ``path``."""
    return [r.body_bytes for r in server.requests if r.path == path and r.method == "GET"]


def nothing_at(dest: Path) -> bool:
    return not dest.exists() and not Path(f"{dest}.part").exists()


# -- section 2: a body stops at its limit -----------------------------------------------------


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_a_body_longer_than_file_size_stops_there_and_is_not_fetched_again(
    server: TestServer, tmp_path: Path, framing: str
) -> None:
    server.add_stream_route("/big", blocks(HUGE), framing=framing)
    dest = tmp_path / "out" / "a.tif"
    error = fetch_error(server, "/big", dest, size=10)
    assert (error.error_class, error.retryable) == ("size-mismatch", False)
    assert "more than the 10 bytes of its file:size" in error.message
    [body] = sent(server, "/big")  # one GET: not restarted as a whole new download
    assert body < SENT_AT_MOST
    assert nothing_at(dest)


def test_an_endless_body_with_no_size_stops_at_max_asset_size(
    server: TestServer, tmp_path: Path
) -> None:
    server.add_stream_route("/endless", endless)
    dest = tmp_path / "a.bin"
    started = time.monotonic()
    error = fetch_error(server, "/endless", dest, NetSettings(max_asset_size=MIB))
    assert (error.error_class, error.retryable) == ("too-large", False)
    assert "larger than max_asset_size (1 MiB)" in error.message
    assert error.hint == "if the file really is this large, raise max_asset_size in the spec"
    [body] = sent(server, "/endless")
    assert body < SENT_AT_MOST and time.monotonic() - started < 5
    assert nothing_at(dest)


@pytest.mark.parametrize(
    ("fields", "net", "error_class"),
    [
        ({"size": MIB}, NetSettings(), "size-mismatch"),  # decoded bytes past file:size
        ({}, NetSettings(max_asset_size=MIB), "too-large"),  # Content-Length is the encoded size
    ],
    ids=["file:size", "no size"],
)
def test_a_gzip_bomb_stops_at_the_decoded_limit(
    server: TestServer, tmp_path: Path, fields: dict[str, Any], net: NetSettings, error_class: str
) -> None:
    server.add_stream_route(
        "/bomb",
        lambda _stopping: [ZEROS_GZ],
        framing="length",
        length=len(ZEROS_GZ),
        headers={"Content-Encoding": "gzip"},
    )
    dest = tmp_path / "a.bin"
    error = fetch_error(server, "/bomb", dest, net, **fields)
    assert error.error_class == error_class
    assert len(sent(server, "/bomb")) == 1
    assert nothing_at(dest)


def test_the_catalog_archive_stops_at_its_own_cap(server: TestServer, tmp_path: Path) -> None:
    server.add_stream_route("/catalog.tar.gz", endless)
    server.add_stream_route(
        "/bomb.tar.gz", lambda _s: [ZEROS_GZ], headers={"Content-Encoding": "gzip"}
    )
    http = Http(net=NetSettings(max_archive_size=MIB), policy=FAST)
    kept = tmp_path / "ds" / "ds.tar.gz"
    with StateDB.open(tmp_path / "ds") as db:
        for path in ("/catalog.tar.gz", "/bomb.tar.gz"):
            with pytest.raises(CatalogError) as caught:
                fetch_remote(http, server.url + path, kept, db)
            assert "larger than archive_limits.max_unpacked_gib (1 MiB)" in str(caught.value)
            [body] = sent(server, path)
            assert body < SENT_AT_MOST
    assert not kept.exists() and not kept.with_name("ds.tar.gz.part").exists()


def one_asset_spec(tmp_path: Path, href: str, **defaults: Any) -> Path:
    write_asset_catalog(tmp_path / "cat.tar.gz", "ds", {"it": {"href": href}})
    spec = tmp_path / "spec.yaml"
    settings = {
        "output_dir": "./out",
        "source": {"type": "archive", "path": "./cat.tar.gz"},
        "retry": {"max_retries": 3, "backoff": 0.01, "max_backoff": 0.05},
        **defaults,
    }
    document = {"version": 1, "defaults": settings, "datasets": [{"id": "ds"}]}
    spec.write_text(yaml.safe_dump(document))
    return spec


def report_rows(tmp_path: Path) -> list[dict[str, str]]:
    with (tmp_path / "out" / "ds" / "mlhub_errors.csv").open() as f:
        return list(csv.DictReader(f))


def test_the_spec_caps_assets_and_archives(server: TestServer, tmp_path: Path, cli: Any) -> None:
    server.add_stream_route("/endless", endless)
    spec = one_asset_spec(tmp_path, server.url + "/endless", max_asset_size="1 MiB")
    result = cli("apply", spec, "-q")
    assert result.code == 1
    [row] = report_rows(tmp_path)
    assert (row["error"], row["attempts"]) == ("too-large", "1")

    remote = tmp_path / "remote.yaml"
    remote.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": "./out2", "archive_limits": {"max_unpacked_gib": 0.001}},
                "datasets": [{"id": "ds", "source": {"type": "archive", "url": server.url + "/x"}}],
            }
        )
    )
    server.add_stream_route("/x", endless)
    result = cli("apply", remote, "-q")
    assert result.code == 1
    assert "larger than archive_limits.max_unpacked_gib (1 MiB)" in result.stderr
    assert sum(sent(server, "/x")) < SENT_AT_MOST


# -- section 3: a minimum rate, deadlines, name resolution -----------------------------------


def test_a_drip_below_the_minimum_rate_is_a_timeout(server: TestServer, tmp_path: Path) -> None:
    # 5 bytes a second with a valid Content-Length: libcurl's old 1 B/s limit never cut it
    server.add_stream_route("/drip", drip(0.2, 30), framing="length", length=30)
    started = time.monotonic()
    error = fetch_error(
        server, "/drip", tmp_path / "a.bin", NetSettings(read=1, asset_deadline=1.5), size=30
    )
    assert error.error_class == "timeout"
    assert time.monotonic() - started < 5  # the drip would take 6 s
    assert "gave up after 2 attempts" in error.message


def test_a_dead_host_name_is_tried_twice_not_the_whole_budget(tmp_path: Path) -> None:
    driver = CurlDriver(1, stop=threading.Event())
    transfers = Transfers(policy=RetryPolicy(max_retries=8, backoff=0.01), rand=lambda: 0.0)
    state = FetchState()
    request = TransferRequest(url="http://no-such-host.invalid/a.tif", dest=tmp_path / "a")
    with pytest.raises(TransferError) as caught:
        driver.run(transfers.fetch(request, state))
    driver.close()
    assert caught.value.error_class == "dns" and state.attempts == 2
    assert "the host name does not resolve" in caught.value.message


def test_the_api_client_gives_up_a_dripping_response_at_its_deadline(server: TestServer) -> None:
    server.add_stream_route("/api/datasets/x", drip(0.1, 100), framing="length", length=100)
    http = Http(net=NetSettings(read=5, request_deadline=1.0), policy=FAST)
    started = time.monotonic()
    with pytest.raises(CatalogError) as caught:
        http.get(server.url + "/api/datasets/x", what="look up dataset 'x'")
    assert "took longer than timeout.request (1 s)" in str(caught.value)
    assert time.monotonic() - started < 3  # the drip would take 10 s


def test_the_api_client_retries_a_dead_host_name_once() -> None:
    http = Http(policy=RetryPolicy(max_retries=8, backoff=0.01))
    with pytest.raises(CatalogError) as caught:
        http.get("http://no-such-host.invalid/api/datasets/x")
    assert "failed after 2 attempt(s)" in str(caught.value)


# -- section 5: no redirect from another host into the user's network ------------------------


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[TestServer, TestServer]]:
    """An origin, and a second host on loopback (reached as ``localhost``: a name that
    resolves to a loopback address) holding a blob."""
    (tmp_path / "inner" / "blobs").mkdir(parents=True)
    (tmp_path / "inner" / "blobs" / "secret.bin").write_bytes(b"internal" * 100)
    with TestServer(tmp_path / "outer") as outer, TestServer(tmp_path / "inner") as inner:
        yield outer, inner


def inner_url(inner: TestServer, path: str = "/blobs/secret.bin") -> str:
    return inner.url.replace("127.0.0.1", "localhost") + path


def test_a_redirect_from_another_host_to_loopback_is_refused_before_it_is_sent(
    two_servers: tuple[TestServer, TestServer], tmp_path: Path
) -> None:
    outer, inner = two_servers
    outer.add_redirect("/asset", inner_url(inner))
    error = fetch_error(outer, "/asset", tmp_path / "a.bin")
    assert (error.error_class, error.retryable) == ("private-redirect", False)
    assert error.message == (
        f"refused a redirect to {inner_url(inner)}: it leads to 127.0.0.1, a loopback address"
    )
    assert error.hint is not None and "allow_private_redirects: true" in error.hint
    assert inner.count() == 0  # the request never went out
    assert len(sent(outer, "/asset")) == 1  # final: not retried

    # within the same host (127.0.0.1, on another port) a redirect is followed
    outer.add_redirect("/same-host", inner.url + "/blobs/secret.bin")
    fetch(outer, "/same-host", tmp_path / "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == b"internal" * 100
    # and with allow_private_redirects, the other host's too
    result = fetch(outer, "/asset", tmp_path / "c.bin", NetSettings(allow_private_redirects=True))
    assert (tmp_path / "c.bin").read_bytes() == b"internal" * 100
    assert result.url == inner_url(inner)


def test_the_api_client_refuses_it_too(two_servers: tuple[TestServer, TestServer]) -> None:
    outer, inner = two_servers
    inner.add_json("/api/datasets/x", {"id": "x"})
    outer.add_redirect("/api/datasets/x", inner_url(inner, "/api/datasets/x"))
    with pytest.raises(CatalogError) as caught:
        Http().get(outer.url + "/api/datasets/x", what="look up dataset 'x'")
    assert "refused a redirect to http://localhost:" in str(caught.value)
    assert inner.count() == 0

    outer.add_redirect("/api/old", inner.url + "/api/datasets/x")  # the same host
    with Http().get(outer.url + "/api/old") as reply:
        assert (reply.status_code, reply.json()) == (200, {"id": "x"})
        assert reply.url == inner.url + "/api/datasets/x"
    allowed = Http(net=NetSettings(allow_private_redirects=True))
    assert allowed.get(outer.url + "/api/datasets/x").json() == {"id": "x"}


def test_a_refused_redirect_is_reported_per_asset_unless_the_spec_allows_it(
    two_servers: tuple[TestServer, TestServer], tmp_path: Path, cli: Any
) -> None:
    outer, inner = two_servers
    outer.add_redirect("/asset.bin", inner_url(inner))
    spec = one_asset_spec(tmp_path, outer.url + "/asset.bin")
    assert cli("apply", spec, "-q").code == 1
    [row] = report_rows(tmp_path)
    assert row["error"] == "private-redirect" and "loopback address" in row["message"]
    allowed = one_asset_spec(tmp_path, outer.url + "/asset.bin", allow_private_redirects=True)
    assert cli("apply", allowed, "-q").code == 0
    assert (tmp_path / "out/ds/c/it/data.bin").read_bytes() == b"internal" * 100
