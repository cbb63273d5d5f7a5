"""Tests for the HTTP test server in ``tests/support/server.py``, over real sockets."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import os
import random
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.server import Fault, RequestRecord, TestServer

SIZE = 200_000  # more than three 64 KiB chunks
SMALL_SIZE = 1_000
MTIME = 1_700_000_000
MTIME_NS = MTIME * 1_000_000_000 + 123_456_789
LAST_MODIFIED = formatdate(MTIME, usegmt=True)
EARLIER = formatdate(MTIME - 3600, usegmt=True)
BLOB = "/blobs/ds/a/b.tif"
SMALL = "/blobs/ds/small.bin"
BREAKING_ERRORS = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)


# --------------------------------------------------------------------------- helpers


def md5_hex(data: bytes) -> str:
    """Hex MD5 of ``data``."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_b64(data: bytes) -> str:
    """Base64 MD5 of ``data`` (Content-MD5 format)."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def fetch(method: str, url: str, **kwargs: Any) -> requests.Response:
    """Perform one request with a throw-away session; the body is read before returning."""
    with requests.Session() as session, session.request(method, url, **kwargs) as response:
        _ = response.content
        return response


def get(server: TestServer, path: str, **kwargs: Any) -> requests.Response:
    """GET ``path`` on ``server``."""
    return fetch("GET", server.url + path, **kwargs)


def port_of(server: TestServer) -> int:
    """The TCP port ``server`` listens on."""
    port = urlsplit(server.url).port
    assert port is not None
    return port


@contextmanager
def connection(server: TestServer, timeout: float = 5.0) -> Iterator[http.client.HTTPConnection]:
    """A raw ``http.client`` connection (no User-Agent, no content decoding)."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=timeout)
    try:
        yield conn
    finally:
        conn.close()


def raw_get(server: TestServer, target: str, headers: dict[str, str] | None = None) -> bytes:
    """Send a raw GET with ``Connection: close`` and return every byte until EOF."""
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as sock:
        sock.sendall(payload)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    return bytes(received)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, lower-cased headers and body of a raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def data() -> bytes:
    """Deterministic blob content."""
    return random.Random(1234).randbytes(SIZE)


@pytest.fixture
def small_data() -> bytes:
    """Deterministic small blob content."""
    return random.Random(99).randbytes(SMALL_SIZE)


@pytest.fixture
def root(tmp_path: Path, data: bytes, small_data: bytes) -> Path:
    """A server root with a large and a small blob, both with a fixed mtime."""
    for path, content in ((BLOB, data), (SMALL, small_data)):
        file = tmp_path / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(content)
        os.utime(file, ns=(MTIME_NS, MTIME_NS))
    (tmp_path / "secret.txt").write_text("do not serve")
    return tmp_path


@pytest.fixture
def server(root: Path) -> Iterator[TestServer]:
    """A running default server."""
    with TestServer(root) as srv:
        yield srv


# --------------------------------------------------------------------------- blobs


def test_full_get_sends_blob_and_headers(server: TestServer, data: bytes) -> None:
    response = get(server, BLOB)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Content-Type"] == "image/tiff"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"] == f'"{md5_hex(data)}"'
    assert response.headers["Last-Modified"] == LAST_MODIFIED
    assert "Content-MD5" not in response.headers
    assert "Transfer-Encoding" not in response.headers


def test_head_has_get_headers_and_no_body(server: TestServer, data: bytes) -> None:
    response = fetch("HEAD", server.url + BLOB)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["ETag"] == f'"{md5_hex(data)}"'
    (record,) = server.requests
    assert (record.method, record.status, record.body_bytes) == ("HEAD", 200, 0)


def test_keep_alive_serves_several_requests_on_one_connection(
    server: TestServer, small_data: bytes
) -> None:
    with connection(server) as conn:
        conn.request("GET", SMALL)
        first = conn.getresponse()
        assert first.read() == small_data
        sock = conn.sock
        conn.request("GET", SMALL)
        assert conn.getresponse().read() == small_data
        assert conn.sock is sock


def test_percent_encoded_paths_are_decoded(root: Path, server: TestServer) -> None:
    (root / "blobs" / "ds" / "with space.json").write_text("{}")
    response = get(server, "/blobs/ds/with%20space.json")
    assert response.status_code == 200
    assert response.content == b"{}"
    assert response.headers["Content-Type"] == "application/json"
    assert server.count("/blobs/ds/with space.json") == 1


def test_unknown_extension_is_octet_stream(root: Path, server: TestServer) -> None:
    (root / "blobs" / "x.unknownext").write_bytes(b"x")
    response = get(server, "/blobs/x.unknownext")
    assert response.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    "target",
    [
        "/blobs/../secret.txt",
        "/blobs/%2e%2e/secret.txt",
        "/blobs/ds/..%2f..%2fsecret.txt",
        "/blobs//etc/passwd",
        "/blobs/ds/missing.tif",
        "/blobs/ds",
        "/elsewhere",
    ],
)
def test_unservable_paths_are_404(server: TestServer, target: str) -> None:
    status, headers, body = split_response(raw_get(server, target))
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert b"do not serve" not in body


def test_empty_file(root: Path, server: TestServer) -> None:
    (root / "blobs" / "empty.bin").write_bytes(b"")
    response = get(server, "/blobs/empty.bin")
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["Content-Length"] == "0"
    response = get(server, "/blobs/empty.bin", headers={"Range": "bytes=0-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == "bytes */0"


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-", 0, SIZE - 1),
        ("bytes=1000-", 1000, SIZE - 1),
        ("bytes=100-199", 100, 199),
        ("bytes=70000-70000", 70000, 70000),
        ("bytes=150000-999999999", 150000, SIZE - 1),
        ("bytes=-500", SIZE - 500, SIZE - 1),
        ("bytes=-999999999", 0, SIZE - 1),
    ],
)
def test_single_range_forms(
    server: TestServer, data: bytes, header: str, start: int, end: int
) -> None:
    response = get(server, BLOB, headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["ETag"] == f'"{md5_hex(data)}"'
    assert response.content == data[start : end + 1]
    assert server.requests[-1].body_bytes == end - start + 1


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=5-2", "items=0-1", "bytes=-", "junk"])
def test_multiple_or_invalid_ranges_are_ignored(
    server: TestServer, data: bytes, header: str
) -> None:
    response = get(server, BLOB, headers={"Range": header})
    assert response.status_code == 200
    assert response.content == data
    assert "Content-Range" not in response.headers


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0"])
def test_unsatisfiable_range_is_416(server: TestServer, header: str) -> None:
    response = get(server, BLOB, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{SIZE}"
    assert response.content == b""


@pytest.mark.parametrize(
    ("if_range", "honoured"),
    [
        ("ETAG", True),
        ('"0123456789abcdef0123456789abcdef"', False),
        ("W/ETAG", False),
        (LAST_MODIFIED, True),
        (formatdate(MTIME + 3600, usegmt=True), True),
        (EARLIER, False),
        ("not a validator", False),
    ],
)
def test_if_range(server: TestServer, data: bytes, if_range: str, honoured: bool) -> None:
    etag = f'"{md5_hex(data)}"'
    validator = if_range.replace("ETAG", etag)
    response = get(server, BLOB, headers={"Range": "bytes=100-", "If-Range": validator})
    if honoured:
        assert response.status_code == 206
        assert response.content == data[100:]
    else:
        assert response.status_code == 200
        assert response.content == data


# --------------------------------------------------------------------------- conditionals


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"If-None-Match": "ETAG"}, 304),
        ({"If-None-Match": 'W/ETAG, "other"'}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"other"'}, 200),
        ({"If-Modified-Since": LAST_MODIFIED}, 304),
        ({"If-Modified-Since": formatdate(MTIME + 60, usegmt=True)}, 304),
        ({"If-Modified-Since": EARLIER}, 200),
        ({"If-Modified-Since": "garbage"}, 200),
        ({"If-None-Match": '"other"', "If-Modified-Since": LAST_MODIFIED}, 200),
    ],
)
def test_conditional_get(
    server: TestServer, data: bytes, headers: dict[str, str], expected: int
) -> None:
    etag = f'"{md5_hex(data)}"'
    sent = {name: value.replace("ETAG", etag) for name, value in headers.items()}
    response = get(server, BLOB, headers=sent)
    assert response.status_code == expected
    if expected == 304:
        assert response.content == b""
        assert response.headers["ETag"] == etag
        assert "Content-Length" not in response.headers
    else:
        assert response.content == data


def test_304_keeps_connection_usable(server: TestServer, data: bytes) -> None:
    with connection(server) as conn:
        conn.request("GET", BLOB, headers={"If-None-Match": f'"{md5_hex(data)}"'})
        first = conn.getresponse()
        assert (first.status, first.read()) == (304, b"")
        conn.request("GET", BLOB)
        assert conn.getresponse().read() == data


# --------------------------------------------------------------------------- validators


@pytest.mark.parametrize(
    ("mode", "full_headers", "partial_headers"),
    [
        (None, set(), set()),
        ("content-md5", {"content-md5"}, {"content-md5"}),
        ("azure", {"content-md5"}, {"x-ms-blob-content-md5"}),
    ],
)
def test_md5_header_modes(
    root: Path,
    data: bytes,
    mode: str | None,
    full_headers: set[str],
    partial_headers: set[str],
) -> None:
    names = {"content-md5", "x-ms-blob-content-md5"}
    with TestServer(root, md5_header=mode) as srv:
        full = get(srv, BLOB)
        partial = get(srv, BLOB, headers={"Range": "bytes=10-20"})
        head = fetch("HEAD", srv.url + BLOB)
    assert (full.status_code, partial.status_code) == (200, 206)
    for response, expected in ((full, full_headers), (partial, partial_headers)):
        present = {name.lower() for name in response.headers} & names
        assert present == expected
        for name in expected:
            assert response.headers[name] == md5_b64(data)  # always the whole file's MD5
    assert {name.lower() for name in head.headers} & names == full_headers


@pytest.mark.parametrize("style", ["md5", "opaque", "multipart", "none"])
def test_etag_styles(root: Path, data: bytes, style: str) -> None:
    with TestServer(root, etag_style=style) as srv:
        first = get(srv, BLOB)
        second = get(srv, BLOB)
        etag = first.headers.get("ETag")
        resumed = get(srv, BLOB, headers={"Range": "bytes=5-", "If-Range": etag or '"x"'})
    assert first.headers["Last-Modified"] == LAST_MODIFIED
    assert second.headers.get("ETag") == etag
    patterns = {
        "md5": re.escape(f'"{md5_hex(data)}"'),
        "opaque": r'"[0-9a-f]{40}"',
        "multipart": r'"[0-9a-f]{32}-3"',
    }
    if style == "none":
        assert etag is None
        assert resumed.status_code == 200
        return
    assert etag is not None
    assert re.fullmatch(patterns[style], etag)
    if style != "md5":
        assert md5_hex(data) not in etag
    assert resumed.status_code == 206


# --------------------------------------------------------------------------- routes


def test_add_json(server: TestServer) -> None:
    catalog: dict[str, Any] = {"type": "Catalog", "links": []}
    server.add_json("/catalog.json", catalog)
    server.add_json("/missing", {"detail": "gone"}, status=404)
    catalog["type"] = "mutated after registration"
    response = get(server, "/catalog.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"type": "Catalog", "links": []}
    missing = get(server, "/missing")
    assert (missing.status_code, missing.json()) == (404, {"detail": "gone"})
    head = fetch("HEAD", server.url + "/catalog.json")
    assert head.status_code == 200
    assert head.content == b""


def test_add_redirect_relative_and_absolute(server: TestServer, data: bytes) -> None:
    server.add_redirect("/download/rel", BLOB)
    server.add_redirect("/download/abs", server.url + BLOB, status=307)
    for path in ("/download/rel", "/download/abs"):
        response = get(server, path)
        assert response.status_code == 200
        assert response.content == data
    bare = get(server, "/download/abs", allow_redirects=False)
    assert bare.status_code == 307
    assert bare.headers["Location"] == server.url + BLOB
    assert server.count("/download/", status=302) == 1
    assert server.count("/download/", status=307) == 2


def test_add_file_route_has_blob_semantics(tmp_path: Path, server: TestServer) -> None:
    file = tmp_path / "elsewhere.bin"
    file.write_bytes(bytes(range(256)) * 4)
    server.add_file_route("/files/x", file)
    response = get(server, "/files/x", headers={"Range": "bytes=-4"})
    assert response.status_code == 206
    assert response.content == bytes([252, 253, 254, 255])
    assert response.headers["ETag"] == f'"{md5_hex(file.read_bytes())}"'
    server.add_fault("/files/x", Fault("status", status=500))
    assert get(server, "/files/x").status_code == 500
    assert get(server, "/files/x").content == file.read_bytes()


def test_require_key(server: TestServer, data: bytes) -> None:
    secret = "s3cr3t-key"
    server.require_key("/blobs/ds/", secret)
    server.add_json("/public.json", {"ok": True})
    for query in ("", "?key=wrong", "?other=1"):
        denied = get(server, BLOB + query)
        assert denied.status_code == 401
        assert denied.json()["detail"]
        assert secret not in denied.text
    allowed = get(server, BLOB, params={"key": secret})
    assert allowed.status_code == 200
    assert allowed.content == data
    assert get(server, "/public.json").status_code == 200
    assert server.count(BLOB, status=401) == 3


def test_require_user_agent(root: Path, small_data: bytes) -> None:
    with TestServer(root, require_user_agent=True) as srv, connection(srv) as conn:
        conn.request("GET", SMALL)  # http.client sends no User-Agent by default
        denied = conn.getresponse()
        assert denied.status == 403
        denied.read()
        conn.request("GET", SMALL, headers={"User-Agent": "mlhub-sync-test"})
        allowed = conn.getresponse()
        assert (allowed.status, allowed.read()) == (200, small_data)


# --------------------------------------------------------------------------- faults


def test_status_fault_then_normal_on_same_connection(server: TestServer, data: bytes) -> None:
    server.add_fault(BLOB, Fault("status", status=429, retry_after="7"))
    with connection(server) as conn:
        conn.request("GET", BLOB)
        faulted = conn.getresponse()
        assert faulted.status == 429
        assert faulted.getheader("Retry-After") == "7"
        assert faulted.read() == b"fault"
        conn.request("GET", BLOB)
        normal = conn.getresponse()
        assert (normal.status, normal.read()) == (200, data)


def test_faults_are_fifo_per_exact_path(server: TestServer, small_data: bytes) -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.add_fault(
        SMALL, Fault("status", status=503, retry_after=date), Fault("status", status=404)
    )
    server.add_fault(SMALL, Fault("status", status=500, body=b"boom"))
    assert get(server, BLOB).status_code == 200  # other paths are unaffected
    first = get(server, SMALL)
    assert (first.status_code, first.headers["Retry-After"]) == (503, date)
    assert get(server, SMALL).status_code == 404
    third = get(server, SMALL)
    assert (third.status_code, third.content) == (500, b"boom")
    assert get(server, SMALL).content == small_data


def test_reset_fault_breaks_requests(server: TestServer) -> None:
    server.add_fault(BLOB, Fault("reset", after_bytes=1000))
    with pytest.raises(BREAKING_ERRORS):
        get(server, BLOB)
    (record,) = server.requests
    assert (record.status, record.body_bytes) == (200, 1000)


def test_reset_fault_sends_rst(server: TestServer) -> None:
    server.add_fault(BLOB, Fault("reset", after_bytes=10))
    with pytest.raises(ConnectionResetError):
        raw_get(server, BLOB)


def test_truncate_fault_sends_short_body(server: TestServer, data: bytes) -> None:
    server.add_fault(BLOB, Fault("truncate", after_bytes=70_000))
    with connection(server) as conn:
        conn.request("GET", BLOB)
        response = conn.getresponse()
        assert response.getheader("Content-Length") == str(SIZE)
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
    assert caught.value.partial == data[:70_000]
    server.add_fault(BLOB, Fault("truncate", after_bytes=5))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(server, BLOB)  # urllib3 enforces Content-Length
    assert [r.body_bytes for r in server.requests] == [70_000, 5]


def test_truncate_fault_on_head_closes_cleanly(server: TestServer) -> None:
    server.add_fault(BLOB, Fault("truncate", after_bytes=5))
    head = fetch("HEAD", server.url + BLOB)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(SIZE)


def test_corrupt_fault_flips_one_byte(server: TestServer, data: bytes) -> None:
    server.add_fault(BLOB, Fault("corrupt"))
    response = get(server, BLOB)
    assert response.status_code == 200
    body = response.content
    assert len(body) == SIZE
    assert [i for i in range(SIZE) if body[i] != data[i]] == [SIZE // 2]
    assert response.headers["ETag"] == f'"{md5_hex(data)}"'
    assert md5_hex(body) != md5_hex(data)


def test_ignore_range_fault(server: TestServer, data: bytes) -> None:
    server.add_fault(BLOB, Fault("ignore_range"))
    response = get(server, BLOB, headers={"Range": "bytes=100-"})
    assert response.status_code == 200
    assert response.content == data
    assert get(server, BLOB, headers={"Range": "bytes=100-"}).status_code == 206


def test_wrong_range_fault(server: TestServer, data: bytes) -> None:
    server.add_fault(BLOB, Fault("wrong_range"))
    response = get(server, BLOB, headers={"Range": "bytes=100-"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 101-{SIZE - 1}/{SIZE}"
    assert response.content == data[101:]


def test_etag_change_fault(server: TestServer, data: bytes) -> None:
    etag = f'"{md5_hex(data)}"'
    server.add_fault(BLOB, Fault("etag_change"), Fault("etag_change"))
    plain = get(server, BLOB)
    assert plain.status_code == 200
    assert re.fullmatch(r'"changed-\d+"', plain.headers["ETag"])
    resumed = get(server, BLOB, headers={"Range": "bytes=100-", "If-Range": etag})
    assert resumed.status_code == 200
    assert resumed.content == data
    assert resumed.headers["ETag"] not in (etag, plain.headers["ETag"])
    assert get(server, BLOB).headers["ETag"] == etag


def test_stall_fault_times_out_client_and_stop_releases_it(root: Path) -> None:
    srv = TestServer(root)
    with srv:
        srv.add_fault(BLOB, Fault("stall", seconds=5))
        with pytest.raises(requests.exceptions.Timeout):
            get(srv, BLOB, timeout=0.5)
        records = srv.requests
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    assert [(r.status, r.body_bytes) for r in records] == [(0, 0)]


def test_stall_fault_ends_with_closed_connection_on_stop(server: TestServer) -> None:
    server.add_fault(BLOB, Fault("stall", seconds=5))
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=0.5) as sock:
        sock.sendall(f"GET {BLOB} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        with pytest.raises(TimeoutError):
            sock.recv(1)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 1.0
        sock.settimeout(2)
        assert sock.recv(1) == b""  # closed without a response


def test_html_fault(server: TestServer) -> None:
    server.add_fault(BLOB, Fault("html"), Fault("html", body=b"<p>captcha</p>"))
    first = get(server, BLOB)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "text/html"
    assert first.content == b"<html><body>Error</body></html>"
    assert get(server, BLOB).content == b"<p>captcha</p>"


def test_gzip_fault(server: TestServer, data: bytes) -> None:
    server.add_fault(BLOB, Fault("gzip"), Fault("gzip"))
    with connection(server) as conn:
        conn.request("GET", BLOB, headers={"Accept-Encoding": "identity", "Range": "bytes=10-"})
        response = conn.getresponse()
        raw = response.read()
    assert response.status == 200
    assert response.getheader("Content-Encoding") == "gzip"
    assert response.getheader("Content-Length") == str(len(raw))
    assert gzip.decompress(raw) == data
    decoded = get(server, BLOB)  # requests decodes transparently
    assert decoded.content == data


def test_long_body_fault(server: TestServer, small_data: bytes) -> None:
    server.add_fault(SMALL, Fault("long_body"))
    status, headers, body = split_response(raw_get(server, SMALL))
    assert status == 200
    assert headers["content-length"] == str(SMALL_SIZE)
    assert len(body) == SMALL_SIZE + 100
    assert body[:SMALL_SIZE] == small_data


def test_fault_validation(root: Path) -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
    with pytest.raises(ValueError):
        Fault("status", status=99)
    with pytest.raises(ValueError):
        TestServer(root, etag_style="crc")
    with pytest.raises(ValueError):
        TestServer(root, md5_header="sha")
    srv = TestServer(root)
    with pytest.raises(ValueError):
        srv.set_fault_rate(1.5, seed=1, kinds=["status"])
    with pytest.raises(ValueError):
        srv.set_fault_rate(0.5, seed=1, kinds=["explode"])


# --------------------------------------------------------------------------- random faults


def observe_random_faults(root: Path, seed: int, kinds: list[str]) -> list[tuple[int, str]]:
    """(status, Content-Type) of 40 sequential small-blob GETs at fault rate 0.5."""
    with TestServer(root) as srv, requests.Session() as session:
        srv.set_fault_rate(0.5, seed=seed, kinds=kinds)
        seen = []
        for _ in range(40):
            with session.get(srv.url + SMALL) as response:
                seen.append((response.status_code, response.headers["Content-Type"]))
        return seen


def test_fault_rate_is_deterministic_per_seed(root: Path) -> None:
    kinds = ["status", "html"]
    first = observe_random_faults(root, seed=7, kinds=kinds)
    assert observe_random_faults(root, seed=7, kinds=kinds) == first
    assert observe_random_faults(root, seed=8, kinds=kinds) != first
    assert {item for item in first} == {
        (200, "application/octet-stream"),
        (503, "text/plain"),
        (200, "text/html"),
    }


def test_fault_rate_defaults(server: TestServer) -> None:
    server.set_fault_rate(1.0, seed=1, kinds=["status"])
    response = get(server, SMALL)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "0")
    server.set_fault_rate(1.0, seed=1, kinds=["truncate"])
    with connection(server) as conn:
        conn.request("GET", SMALL)
        with pytest.raises(http.client.IncompleteRead) as caught:
            conn.getresponse().read()
    assert len(caught.value.partial) == SMALL_SIZE // 2


def test_fault_rate_only_hits_blobs_and_yields_to_scripted(server: TestServer) -> None:
    server.add_json("/api/item.json", {"id": 1})
    server.set_fault_rate(1.0, seed=3, kinds=["status"])
    assert get(server, "/api/item.json").status_code == 200
    server.add_fault(SMALL, Fault("status", status=418))
    assert get(server, SMALL).status_code == 418
    assert get(server, SMALL).status_code == 503
    server.set_fault_rate(0.0, seed=3, kinds=[])
    assert get(server, SMALL).status_code == 200


# --------------------------------------------------------------------------- request log


def test_request_log(server: TestServer) -> None:
    server.add_json("/api/x", {"a": 1})
    get(server, SMALL, params=[("a", "1"), ("a", "2"), ("b", "")])
    get(server, SMALL, headers={"X-Custom": "Yes"})
    fetch("HEAD", server.url + SMALL)
    get(server, "/api/x")
    get(server, "/nope")
    records = server.requests
    assert len(records) == 5
    first = records[0]
    assert isinstance(first, RequestRecord)
    assert (first.method, first.path, first.query) == ("GET", SMALL, {"a": "2", "b": ""})
    assert first.body_bytes == SMALL_SIZE
    assert records[1].headers["x-custom"] == "Yes"
    assert all(name == name.lower() for name in records[1].headers)
    assert server.count() == 5
    assert server.count("/blobs/") == 3
    assert server.count("/blobs/", method="HEAD") == 1
    assert server.count(status=404) == 1
    assert server.count("/api/", method="GET", status=200) == 1
    records.clear()
    assert server.count() == 5  # the property returned a copy
    server.clear_log()
    assert server.requests == []


def test_concurrent_requests_and_faults_are_each_logged_once(server: TestServer) -> None:
    server.add_fault(SMALL, *[Fault("status", status=503)] * 5)

    def status_of(_: int) -> int:
        with requests.get(server.url + SMALL, timeout=5) as response:
            return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(status_of, range(24)))
    assert sorted(statuses) == [200] * 19 + [503] * 5
    assert server.count(SMALL) == 24
    assert server.count(SMALL, status=503) == 5


# --------------------------------------------------------------------------- lifecycle


def test_stop_is_prompt_with_idle_keep_alive_client(root: Path, small_data: bytes) -> None:
    srv = TestServer(root)
    srv.start()
    with requests.Session() as session:
        with session.get(srv.url + SMALL) as response:
            assert response.content == small_data
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 1.0
    srv.stop()  # idempotent


def test_lifecycle_errors_and_restart(root: Path, small_data: bytes) -> None:
    srv = TestServer(root)
    with pytest.raises(RuntimeError):
        _ = srv.url
    with srv:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", srv.url)
        with pytest.raises(RuntimeError):
            srv.start()
    with srv:
        assert get(srv, SMALL).content == small_data
    assert srv.count(SMALL) == 1
