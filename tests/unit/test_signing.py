"""Per-request signing: the signers as values, and the transfer rules that use them (rule 14
of transfer/rules.py), played through the ScriptedDriver."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlhub_sync.errors import TransferError
from mlhub_sync.net.client import Http
from mlhub_sync.net.planetary import PlanetaryComputer, parse_token
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.signing import Chain, SasSigner, Signed, SourceHeaders, chain, origin
from mlhub_sync.transfer.ops import FetchState, TransferRequest, TransferResult
from mlhub_sync.transfer.rules import Transfers
from mlhub_sync.transfer.scripted import Reply, ScriptedDriver

BLOB = "https://acct.blob.core.windows.net/cont/a/b.tif"
BODY = b"0123456789"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://h.example/x", "https://H.example:443/y?q=1", True),
        ("http://h.example/x", "https://h.example/x", False),  # a downgrade is another origin
        ("https://h.example/x", "https://h.example:8443/x", False),
        ("https://h.example/x", "https://h.example.evil/x", False),
        ("http://127.0.0.1:81/", "http://localhost:81/", False),
    ],
)
def test_an_origin_is_scheme_host_and_port(a: str, b: str, same: bool) -> None:
    assert (origin(a) == origin(b)) is same


def test_source_headers_go_to_the_source_origins_only() -> None:
    access = SourceHeaders.of(["https://api.example/v1/"], {"X-Key": "s3cret"})
    assert access.for_url("https://api.example/other/doc.json") == {"X-Key": "s3cret"}
    assert access.for_url("https://cdn.example/file.tif") == {}
    assert access.for_url("http://api.example/v1/") == {}
    assert not SourceHeaders() and chain(SourceHeaders(), None) is None


def test_a_sas_signer_appends_its_token_to_its_hosts_urls() -> None:
    sas = SasSigner("?sv=1&sig=abc", ("https://acct.blob.core.windows.net/cont/",))
    assert sas.cached(BLOB).url == BLOB + "?sv=1&sig=abc"
    assert sas.cached(BLOB + "?x=1").url == BLOB + "?x=1&sv=1&sig=abc"
    other = "https://acct.blob.core.windows.net/another/f"
    assert sas.cached(other).url == other  # the token is the container's


def test_a_chain_signs_in_turn_and_merges_headers() -> None:
    both = chain(SasSigner("sig=abc"), SourceHeaders.of([BLOB], {"X-Key": "k"}))
    assert isinstance(both, Chain)
    assert both.cached(BLOB) == Signed(BLOB + "?sig=abc", {"X-Key": "k"})


def _at(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def test_a_token_is_renewed_before_the_earlier_of_its_expiries() -> None:
    now = 1_000_000.0
    token = parse_token(
        {"msft:expiry": _at(now + 3600), "token": f"se={_at(now + 1800)}&sig=x"}, now
    )
    assert token.renew_at == now + 1800 - 300  # se= comes first; five minutes before it
    short = parse_token({"msft:expiry": _at(now + 60), "token": "sig=x"}, now)
    assert short.renew_at == now + 30  # a short token: at half its life, not at every file
    assert parse_token({"token": "sig=x"}, now).renew_at == float("inf")
    with pytest.raises(ValueError, match="no token"):
        parse_token({"msft:expiry": _at(now)}, now)


@pytest.mark.parametrize(
    ("url", "container"),
    [
        (BLOB, ("acct", "cont")),
        ("https://acct.blob.core.windows.net/cont/x?se=2030&sig=y", None),  # signed already
        ("https://ai4edatasetspublicassets.blob.core.windows.net/c/x", None),  # public
        ("https://example.com/cont/x", None),
        ("https://acct.blob.core.windows.net/", None),
    ],
)
def test_which_hrefs_get_a_planetary_computer_token(
    url: str, container: tuple[str, str] | None
) -> None:
    assert PlanetaryComputer(Http(), {}).container(url) == container


@dataclass
class Tokens:
    """A signer whose tokens the test hands out: ``tok1``, ``tok2``... (no I/O)."""

    issued: int = 0
    renewals: int = 0
    fail: bool = False
    current: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, url: str, method: str = "GET") -> Signed | None:
        return None if self.current is None else Signed(f"{url}?sig={self.current}")

    def sign(self, url: str, method: str = "GET") -> Signed:
        if self.fail:
            raise TransferError("token endpoint down", retryable=True, error_class="signing")
        self.issued += 1
        self.current = f"tok{self.issued}"
        return Signed(f"{url}?sig={self.current}")

    def renew(self, url: str, refused: Signed, method: str = "GET") -> Signed:
        self.renewals += 1
        return self.sign(url)


def _fetch(
    tmp_path: Path, replies: list[Reply], signer: Tokens
) -> tuple[ScriptedDriver, TransferResult | TransferError]:
    driver = ScriptedDriver(replies)
    transfers = Transfers(policy=RetryPolicy(max_retries=2), rand=lambda: 0.0, signer=signer)
    request = TransferRequest(url=BLOB, dest=tmp_path / "b.tif", size=len(BODY))
    try:
        return driver, driver.run(transfers.fetch(request, FetchState()))
    except TransferError as exc:
        return driver, exc


def test_each_attempt_sends_the_signed_url_and_the_result_keeps_the_href(tmp_path: Path) -> None:
    signer = Tokens()
    driver, result = _fetch(tmp_path, [Reply(503), Reply(200, {}, BODY)], signer)
    assert isinstance(result, TransferResult)
    assert [r.url for r in driver.requests] == [f"{BLOB}?sig=tok1"] * 2  # signed once, cached
    assert result.url == BLOB and "tok" not in repr(result)


def test_a_refused_signature_is_renewed_once_then_the_refusal_is_final(tmp_path: Path) -> None:
    signer = Tokens()
    driver, result = _fetch(tmp_path, [Reply(403), Reply(200, {}, BODY)], signer)
    assert isinstance(result, TransferResult)
    assert [r.url for r in driver.requests] == [f"{BLOB}?sig=tok1", f"{BLOB}?sig=tok2"]
    assert signer.renewals == 1

    again = Tokens()
    driver, failed = _fetch(tmp_path, [Reply(403), Reply(403)], again)
    assert isinstance(failed, TransferError) and failed.error_class == "http-403"
    assert again.renewals == 1 and len(driver.requests) == 2
    assert "tok" not in str(failed) and "tok" not in (failed.subject or "")


def test_a_signer_that_fails_is_a_failed_attempt_retried_by_the_policy(tmp_path: Path) -> None:
    signer = Tokens(fail=True)
    driver, failed = _fetch(tmp_path, [], signer)
    assert isinstance(failed, TransferError) and failed.error_class == "signing"
    assert driver.requests == [] and len(driver.sleeps) == 2  # max_retries=2, no request sent


def test_a_head_is_signed_and_renewed_the_same_way(tmp_path: Path) -> None:
    signer = Tokens()
    driver = ScriptedDriver([Reply(401), Reply(200, {"Content-Length": "10"})])
    transfers = Transfers(policy=RetryPolicy(), rand=lambda: 0.0, signer=signer)
    size, _ = driver.run(transfers.head(BLOB))
    assert size == 10 and signer.renewals == 1
    assert [r.url for r in driver.requests] == [f"{BLOB}?sig=tok1", f"{BLOB}?sig=tok2"]


def test_credential_headers_travel_with_the_request(tmp_path: Path) -> None:
    access = SourceHeaders.of([BLOB], {"Authorization": "Bearer abc"})
    driver = ScriptedDriver([Reply(200, {}, BODY)])
    transfers = Transfers(policy=RetryPolicy(), rand=lambda: 0.0, signer=access)
    driver.run(transfers.fetch(TransferRequest(url=BLOB, dest=tmp_path / "b"), FetchState()))
    assert driver.requests[0].header("authorization") == "Bearer abc"
    assert driver.requests[0].url == BLOB


def test_a_403_without_a_signature_is_not_renewed(tmp_path: Path) -> None:
    # The source's headers are for another host: nothing was signed, nothing to renew.
    access = SourceHeaders.of(["https://api.example/"], {"X-Key": "k"})
    driver = ScriptedDriver([Reply(403)])
    transfers = Transfers(policy=RetryPolicy(), rand=lambda: 0.0, signer=access)
    with pytest.raises(TransferError, match="403"):
        driver.run(transfers.fetch(TransferRequest(url=BLOB, dest=tmp_path / "b"), FetchState()))
    assert len(driver.requests) == 1 and driver.requests[0].header("x-key") is None
