"""Signed transfers against real servers on 127.0.0.1: a Planetary-Computer-style token
endpoint and a blob host that checks the token (``acct.blob.localhost``, which libcurl
resolves to 127.0.0.1, stands in for ``acct.blob.core.windows.net``), and credential headers
that must not follow a redirect to another host."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from mlhub_sync.errors import TransferError
from mlhub_sync.net.client import Http
from mlhub_sync.net.planetary import PlanetaryComputer
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import DEFAULT_NET, NetSettings
from mlhub_sync.net.signing import Signer, SourceHeaders
from mlhub_sync.transfer.curl import CurlDriver
from mlhub_sync.transfer.ops import FetchState, TransferRequest, TransferResult
from mlhub_sync.transfer.rules import Transfers
from tests.support.server import Fault, TestServer

SUFFIX = ".blob.localhost"
FAST = RetryPolicy(max_retries=2, backoff=0.01, max_backoff=0.05)
TOKEN_PATH = "/token/acct/blobs"


class Clock:
    """Wall time the test moves on (expiries are dates; nobody waits for them)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class TokenHost:
    """The token endpoint (``/token/{account}/{container}``) and the blob host's check: a
    request passes with a token issued and not revoked."""

    def __init__(self, server: TestServer, clock: Clock, lifetime: float = 3600.0):
        self.server, self.clock, self.lifetime = server, clock, lifetime
        self.issued = 0
        self.valid: set[str] = set()
        self.release = threading.Event()
        self.release.set()
        self.lock = threading.Lock()
        server.add_handler(TOKEN_PATH, self.token)
        server.add_gate("/blobs/", self.check)

    def token(self, _query: dict[str, str], _headers: dict[str, str]) -> tuple[int, object]:
        self.release.wait(10)  # a test holds the endpoint to pile callers up behind it
        with self.lock:
            self.issued += 1
            sig = f"sig-secret-{self.issued}"
            self.valid.add(sig)
        expiry = dt.datetime.fromtimestamp(self.clock() + self.lifetime, dt.UTC)
        when = expiry.isoformat().replace("+00:00", "Z")
        return 200, {"msft:expiry": when, "token": f"se={quote(when)}&sp=r&sig={sig}"}

    def check(self, query: dict[str, str], _headers: dict[str, str]) -> int | None:
        return None if query.get("sig") in self.valid else 403

    def requests(self) -> int:
        return self.server.count(TOKEN_PATH)


ROOTS: dict[int, Path] = {}  # each server's folder (its blobs under blobs/)


def serve(root: Path) -> Iterator[TestServer]:
    with TestServer(root) as running:
        ROOTS[id(running)] = root
        yield running
        del ROOTS[id(running)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestServer]:
    yield from serve(tmp_path / "served")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(server: TestServer, clock: Clock) -> TokenHost:
    return TokenHost(server, clock)


def signer_for(server: TestServer, clock: Clock) -> PlanetaryComputer:
    # Retry-After is honoured up to max_retry_after: scaled down here, so nobody waits long
    http = Http(policy=RetryPolicy(max_retries=3, backoff=0.01, max_retry_after=0.3))
    return PlanetaryComputer(
        http, {"PC_SDK_SAS_URL": f"{server.url}/token"}, clock=clock, suffix=SUFFIX
    )


def blob(server: TestServer, name: str, data: bytes, host: str = f"acct{SUFFIX}") -> str:
    path = ROOTS[id(server)] / "blobs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"http://{host}:{server.url.rsplit(':', 1)[1]}/blobs/{name}"


def fetch_all(
    urls: list[str], dest: Path, signer: Signer | None, net: NetSettings = DEFAULT_NET
) -> list[TransferResult | BaseException]:
    """Fetch ``urls`` at once on one libcurl multi handle (one slot each)."""
    driver = CurlDriver(len(urls), stop=threading.Event(), net=net)
    transfers = Transfers(policy=FAST, rand=random.Random(0).random, net=net, signer=signer)
    ended: list[TransferResult | BaseException] = []
    try:
        for i, url in enumerate(urls):
            request = TransferRequest(url=url, dest=dest / f"f{i}")
            driver.submit(
                transfers.fetch(request, FetchState()),
                lambda value, error: ended.append(error or value),
            )
        while len(ended) < len(urls):
            driver.poll(0.05)
    finally:
        driver.close()
    return ended


def asset_sigs(server: TestServer) -> list[str | None]:
    return [r.query.get("sig") for r in server.requests if r.path.startswith("/blobs/")]


def test_blob_hrefs_are_fetched_with_the_containers_token(
    server: TestServer, clock: Clock, tokens: TokenHost, tmp_path: Path
) -> None:
    urls = [blob(server, f"a{i}.bin", b"x" * 100) for i in range(3)]
    results = fetch_all(urls, tmp_path / "out", signer_for(server, clock))
    assert all(isinstance(r, TransferResult) for r in results), results
    assert all(r.url in urls for r in results if isinstance(r, TransferResult))  # unsigned
    assert tokens.requests() == 1 and asset_sigs(server) == ["sig-secret-1"] * 3
    assert (tmp_path / "out" / "f0").read_bytes() == b"x" * 100


def test_twenty_transfers_waiting_for_a_token_cause_one_request(
    server: TestServer, clock: Clock, tokens: TokenHost, tmp_path: Path
) -> None:
    urls = [blob(server, f"b{i}.bin", bytes([i]) * 10) for i in range(20)]
    signer = signer_for(server, clock)
    driver = CurlDriver(20, stop=threading.Event())
    transfers = Transfers(policy=FAST, rand=random.Random(0).random, signer=signer)
    ended: list[object] = []
    tokens.release.clear()  # the first token request is held until all twenty wait
    try:
        for i, url in enumerate(urls):
            request = TransferRequest(url=url, dest=tmp_path / "out" / f"f{i}")
            driver.submit(transfers.fetch(request, FetchState()), lambda v, e: ended.append(e or v))
        assert driver.signing.pending == 20  # every transfer waits; the loop is not blocked
        tokens.release.set()
        while len(ended) < 20:
            driver.poll(0.05)
    finally:
        driver.close()
    assert all(isinstance(r, TransferResult) for r in ended), ended
    assert tokens.requests() == 1 and signer.requests == 1


def test_a_token_about_to_expire_is_renewed_before_it_does(
    server: TestServer, clock: Clock, tokens: TokenHost, tmp_path: Path
) -> None:
    signer = signer_for(server, clock)
    first = fetch_all([blob(server, "c0.bin", b"1")], tmp_path / "one", signer)
    clock.now += tokens.lifetime - 120  # two minutes left: within the five of RENEW_BEFORE
    second = fetch_all([blob(server, "c1.bin", b"2")], tmp_path / "two", signer)
    assert isinstance(first[0], TransferResult) and isinstance(second[0], TransferResult)
    assert tokens.requests() == 2
    assert asset_sigs(server) == ["sig-secret-1", "sig-secret-2"]  # never a refused request


def test_a_stale_token_refused_with_403_is_renewed_once(
    server: TestServer, clock: Clock, tokens: TokenHost, tmp_path: Path
) -> None:
    signer = signer_for(server, clock)
    fetch_all([blob(server, "d0.bin", b"1")], tmp_path / "one", signer)
    tokens.valid.clear()  # revoked upstream before its expiry
    [result] = fetch_all([blob(server, "d1.bin", b"2")], tmp_path / "two", signer)
    assert isinstance(result, TransferResult), result
    assert tokens.requests() == 2
    assert asset_sigs(server) == ["sig-secret-1", "sig-secret-1", "sig-secret-2"]
    assert server.count("/blobs/", status=403) == 1


def test_a_refusal_after_renewal_is_final(
    server: TestServer, clock: Clock, tokens: TokenHost, tmp_path: Path
) -> None:
    server.add_gate("/blobs/", lambda _q, _h: 403)  # refuses whatever token it gets
    [result] = fetch_all([blob(server, "e.bin", b"1")], tmp_path, signer_for(server, clock))
    assert isinstance(result, TransferError) and result.error_class == "http-403"
    assert tokens.requests() == 2 and server.count("/blobs/") == 2
    assert "sig-secret" not in f"{result} {result.subject} {result.hint}"


def test_a_429_from_the_token_endpoint_is_waited_out_not_hammered(
    server: TestServer, clock: Clock, tokens: TokenHost, tmp_path: Path
) -> None:
    server.add_fault(TOKEN_PATH, Fault("status", status=429, retry_after="30"))
    urls = [blob(server, f"g{i}.bin", b"z") for i in range(5)]
    started = time.monotonic()
    results = fetch_all(urls, tmp_path, signer_for(server, clock))
    assert all(isinstance(r, TransferResult) for r in results), results
    assert time.monotonic() - started >= 0.3  # Retry-After honoured (up to max_retry_after)
    assert tokens.requests() == 2  # the 429, then one more: not one per waiting transfer


# -- credential headers and redirects ------------------------------------------------------


@pytest.fixture
def other(tmp_path: Path) -> Iterator[TestServer]:
    yield from serve(tmp_path / "other")


def headers_seen(server: TestServer, name: str) -> list[str | None]:
    return [r.headers.get(name) for r in server.requests]


def test_source_headers_reach_the_source_host_and_not_a_redirects_other_host(
    server: TestServer, other: TestServer, tmp_path: Path
) -> None:
    target = blob(other, "moved.bin", b"moved", host="127.0.0.1")
    server.add_redirect("/blobs/moved.bin", target)
    same = blob(server, "same.bin", b"same", host="127.0.0.1")
    access = SourceHeaders.of([server.url], {"X-Api-Key": "hdr-secret"})
    net = NetSettings(allow_private_redirects=True)  # the other host is on loopback too
    results = fetch_all([same, f"{server.url}/blobs/moved.bin"], tmp_path, access, net)
    assert all(isinstance(r, TransferResult) for r in results), results
    assert sorted(headers_seen(server, "x-api-key")) == ["hdr-secret", "hdr-secret"]
    assert headers_seen(other, "x-api-key") == [None]  # followed, without the header
    assert (tmp_path / "f1").read_bytes() == b"moved"


def test_a_hop_sent_without_credentials_is_still_judged_as_a_redirect(
    server: TestServer, tmp_path: Path
) -> None:
    # To another host on loopback: the private-redirect guard refuses the hop it re-issues
    # without the header, as it refuses any redirect from another host into loopback.
    port = server.url.rsplit(":", 1)[1]
    server.add_redirect("/blobs/x", f"http://elsewhere.localhost:{port}/blobs/y")
    access = SourceHeaders.of([server.url], {"X-Api-Key": "hdr-secret"})
    [result] = fetch_all([f"{server.url}/blobs/x"], tmp_path, access)
    assert isinstance(result, TransferError) and result.error_class == "private-redirect"
    assert [r.path for r in server.requests] == ["/blobs/x"]  # the hop never went out


def test_the_api_client_sends_source_headers_per_hop(server: TestServer, other: TestServer) -> None:
    other.add_json("/doc.json", {"ok": True})
    server.add_redirect("/doc.json", f"{other.url}/doc.json")
    server.add_json("/root.json", {"ok": True})
    http = Http(
        access=SourceHeaders.of([server.url], {"X-Api-Key": "hdr-secret"}),
        net=NetSettings(allow_private_redirects=True),
    )
    assert http.get(f"{server.url}/root.json").json() == {"ok": True}
    assert http.get(f"{server.url}/doc.json").json() == {"ok": True}
    assert http.get(f"{other.url}/doc.json").json() == {"ok": True}
    assert headers_seen(server, "x-api-key") == ["hdr-secret", "hdr-secret"]
    assert headers_seen(other, "x-api-key") == [None, None]
    assert "hdr-secret" in http.secrets  # scrubbed from its error messages


def test_a_stopping_run_does_not_wait_for_a_token(
    server: TestServer, clock: Clock, tokens: TokenHost, tmp_path: Path
) -> None:
    stop = threading.Event()
    driver = CurlDriver(3, stop=stop)
    transfers = Transfers(
        policy=FAST, rand=random.Random(0).random, signer=signer_for(server, clock)
    )
    ended: list[BaseException | None] = []
    tokens.release.clear()  # the token endpoint does not answer until the test says
    try:
        for i in range(3):
            request = TransferRequest(url=blob(server, f"h{i}", b"1"), dest=tmp_path / f"f{i}")
            driver.submit(transfers.fetch(request, FetchState()), lambda _v, e: ended.append(e))
        stop.set()
        driver.poll(0.05)
        assert [type(e).__name__ for e in ended] == ["Cancelled"] * 3
        assert driver.active == 0 and driver.signing.pending == 0
    finally:
        tokens.release.set()
        driver.close()
    assert asset_sigs(server) == []  # nothing went out
