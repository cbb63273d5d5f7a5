"""AWS Signature Version 4 presigned URLs (net/sigv4.py): AWS's own documented example, then
botocore's signer as the oracle for the canonical forms S3 uses (keys with spaces, ``+``,
``~``, unicode, escapes; a listing's query; session tokens; HEAD), and the bucket's signer:
its scope, its clock, its renewal."""

from __future__ import annotations

import calendar
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from mlhub_sync.net.signing import Signed
from mlhub_sync.net.sigv4 import (
    Credentials,
    S3Presigner,
    canonical_host,
    canonical_path,
    canonical_query,
    presign,
)
from tests.support.sigv4_front import verify

EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
MAY_24_2013 = calendar.timegm((2013, 5, 24, 0, 0, 0))
NOW = calendar.timegm((2026, 12, 4, 22, 0, 0))
KEY = Credentials("AKIDUNIT", "unit/secret+Key=", "unit token/+=")
BUCKET = "http://127.0.0.1:9000/bucket/"


def test_the_presign_of_awss_documented_example_is_the_documented_url() -> None:
    # "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)", S3 API docs
    url = presign(
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        EXAMPLE,
        "us-east-1",
        MAY_24_2013,
        expires=86400,
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def _verifies(method: str, url: str, creds: Credentials = KEY, now: float = NOW) -> str | None:
    parts = urlsplit(url)
    keys = {creds.access_key_id: (creds.secret_access_key, creds.session_token)}
    target = f"{parts.path}?{parts.query}"
    return verify(method, parts.netloc, target, keys, "us-east-1", now)


ODD_KEYS = [
    "plain.tif",
    "a b/c d.tif",  # spaces: %20
    "a+b/c+d.tif",  # plus signs are plus signs
    "tilde~/x~y.tif",  # unreserved: not encoded
    "ünïcødé/日本.tif",  # UTF-8 bytes
    "res;er=ved&/x?y#z.tif",  # reserved characters
    "per%cent/%41.tif",  # a literal % and what looks like an escape
    "dir//double/",  # empty segments
]


@pytest.mark.parametrize("key", ODD_KEYS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_an_objects_presign_verifies_with_botocores_signer(key: str, method: str) -> None:
    url = BUCKET + quote(key, safe="/~")  # as sources/s3.py encodes a key
    signed = presign(method, url, KEY, "us-east-1", NOW)
    assert signed.startswith(url + "?")  # the path is sent as it was: not encoded again
    assert _verifies(method, signed) is None


def test_a_listing_pages_query_is_signed_whole() -> None:
    token = "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM+Ab=="
    query = (
        f"list-type=2&prefix={quote('odd dir/ü+~', safe='~')}&max-keys=1000&encoding-type=url"
        f"&continuation-token={quote(token, safe='~')}"
    )
    signed = presign("GET", f"{BUCKET}?{query}", KEY, "us-east-1", NOW)
    assert _verifies("GET", signed) is None
    fields = dict(parse_qsl(urlsplit(signed).query))
    assert fields["continuation-token"] == token and fields["prefix"] == "odd dir/ü+~"
    assert fields["X-Amz-Security-Token"] == KEY.session_token
    # what is sent is what was signed: a changed parameter no longer verifies
    assert _verifies("GET", signed.replace("max-keys=1000", "max-keys=999")) is not None


def test_a_presign_is_for_its_method_its_key_its_time_and_its_secret() -> None:
    signed = presign("GET", BUCKET + "k.tif", KEY, "us-east-1", NOW, expires=60)
    assert _verifies("GET", signed) is None
    assert _verifies("HEAD", signed) == "SignatureDoesNotMatch"
    assert _verifies("GET", signed.replace("k.tif", "j.tif")) == "SignatureDoesNotMatch"
    assert _verifies("GET", signed, now=NOW + 61) == "AccessDenied"  # expired
    other = Credentials(KEY.access_key_id, "another secret", KEY.session_token)
    assert _verifies("GET", signed, creds=other) == "SignatureDoesNotMatch"


def test_presigning_a_presigned_url_replaces_its_signature() -> None:
    once = presign("GET", BUCKET + "k.tif", KEY, "us-east-1", NOW)
    twice = presign("GET", once, KEY, "us-east-1", NOW + 10)
    assert twice.count("X-Amz-Signature=") == 1 and twice.count("X-Amz-Date=") == 1
    assert _verifies("GET", twice, now=NOW + 10) is None


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("", "/"),
        ("/b/a%20b", "/b/a%20b"),
        ("/b/a%2fb", "/b/a%2Fb"),  # an escaped slash stays one, its hex upper-cased
        ("/b/a b", "/b/a%20b"),  # a raw space is encoded
        ("/b/%2E%2E/x", "/b/%2E%2E/x"),  # never decoded into a dot segment
        ("/b/100%", "/b/100%25"),  # a lone % is a percent sign
        ("/b/ü~", "/b/%C3%BC~"),
    ],
)
def test_the_canonical_path_keeps_the_urls_own_encoding(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical


def test_the_canonical_query_sorts_and_encodes_the_aws_way() -> None:
    pairs = [("prefix", "a b+c"), ("list-type", "2"), ("a", ""), ("A", "~/")]
    assert canonical_query(pairs) == "A=~%2F&a=&list-type=2&prefix=a%20b%2Bc"


@pytest.mark.parametrize(
    ("scheme", "netloc", "host"),
    [
        ("https", "Bucket.S3.amazonaws.com", "bucket.s3.amazonaws.com"),
        ("https", "h.example:443", "h.example"),
        ("http", "h.example:80", "h.example"),
        ("http", "127.0.0.1:9000", "127.0.0.1:9000"),
        ("https", "[::1]:8443", "[::1]:8443"),
        ("https", "[::1]", "[::1]"),
    ],
)
def test_the_signed_host_is_the_host_header_a_client_sends(
    scheme: str, netloc: str, host: str
) -> None:
    assert canonical_host(scheme, netloc) == host


def test_an_expiry_beyond_what_s3_allows_is_refused() -> None:
    for expires in (0, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="expires"):
            presign("GET", BUCKET + "k", KEY, "us-east-1", NOW, expires=expires)


def test_credentials_never_show_their_secret_in_a_repr() -> None:
    shown = repr(KEY)
    assert KEY.access_key_id in shown
    assert KEY.secret_access_key not in shown and str(KEY.session_token) not in shown
    assert KEY.secrets == [KEY.secret_access_key, KEY.session_token]


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


def test_the_bucket_signer_presigns_its_bucket_only() -> None:
    signer = S3Presigner(KEY, "us-east-1", [BUCKET], clock=Clock())
    signed = signer.cached(BUCKET + "k.tif")
    assert signed.url.startswith(BUCKET + "k.tif?") and not signed.headers
    for other in ("http://127.0.0.1:9000/bucket-two/k.tif", "https://elsewhere.example/k"):
        assert signer.cached(other) == Signed(other)  # another bucket on the same host too


def test_each_attempt_gets_a_presign_of_its_own_time_so_none_is_ever_stale() -> None:
    clock = Clock()
    signer = S3Presigner(KEY, "us-east-1", [BUCKET], clock=clock)
    first = signer.cached(BUCKET + "k.tif").url
    clock.now += 2 * 3600  # two hours on: the first presign has expired
    second = signer.cached(BUCKET + "k.tif").url
    assert "X-Amz-Date=20261204T220000Z" in first and "X-Amz-Date=20261205T000000Z" in second
    assert _verifies("GET", first, now=clock.now) == "AccessDenied"
    assert _verifies("GET", second, now=clock.now) is None


def test_a_head_is_presigned_for_head_and_requester_pays_is_signed_in() -> None:
    signer = S3Presigner(KEY, "us-east-1", [BUCKET], clock=Clock(), request_payer=True)
    head = signer.cached(BUCKET + "k.tif", "HEAD").url
    assert _verifies("HEAD", head) is None and _verifies("GET", head) is not None
    assert dict(parse_qsl(urlsplit(head).query))["x-amz-request-payer"] == "requester"


def test_renewal_reads_the_credentials_again() -> None:
    fresh = Credentials("AKIDFRESH", "fresh secret")
    calls: list[int] = []

    def reload() -> Credentials:
        calls.append(1)
        return fresh

    signer = S3Presigner(KEY, "us-east-1", [BUCKET], clock=Clock(), reload=reload)
    refused = signer.sign(BUCKET + "k.tif")
    renewed = signer.renew(BUCKET + "k.tif", refused)
    assert calls == [1] and signer.credentials is fresh
    assert "AKIDFRESH%2F" in renewed.url and _verifies("GET", renewed.url, creds=fresh) is None
    signer.renew("https://elsewhere.example/k", Signed("https://elsewhere.example/k"))
    assert calls == [1]  # another host's refusal is none of the bucket's business
