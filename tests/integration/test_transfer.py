"""Transfers run by the production libcurl driver against a real :class:`TestServer`: bytes
on disk and the request log.

Every test checks both what ended up on disk (MD5 against the served blob) and what the server
saw (how many GETs, which Range / If-Range headers, which statuses).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from mlhub_sync.errors import FatalLocalError, MlhubSyncError, TransferError
from mlhub_sync.net.client import USER_AGENT
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import NetSettings
from mlhub_sync.transfer.curl import Cancelled, CurlDriver
from mlhub_sync.transfer.local import copy_or_link
from mlhub_sync.transfer.ops import FetchState, StartedCallback, TransferRequest, TransferResult
from mlhub_sync.transfer.rules import Transfers
from mlhub_sync.tree import Tree
from tests.support.server import Fault, RequestRecord, TestServer

SIZE = 300_000  # several of the server's 64 KiB chunks
BLOB = "/blobs/ds/item/image.tif"
PART_AT = 100_000


# --------------------------------------------------------------------------- helpers


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_multihash(data: bytes) -> str:
    return "d50110" + md5_hex(data)


def sha256_multihash(data: bytes) -> str:
    return "1220" + hashlib.sha256(data).hexdigest()


def file_md5(path: Path) -> str:
    return md5_hex(path.read_bytes())


def part_of(dest: Path) -> Path:
    return Path(f"{dest}.part")


def gets(server: TestServer, path: str = BLOB) -> list[RequestRecord]:
    return [r for r in server.requests if r.method == "GET" and r.path == path]


def statuses(records: list[RequestRecord]) -> list[int]:
    return [r.status for r in records]


def head_etag(server: TestServer, path: str) -> str:
    """The ETag the server currently sends for ``path`` (a raw HEAD, then the log is cleared)."""
    port = urlsplit(server.url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("HEAD", path)
        response = conn.getresponse()
        response.read()
        etag = response.getheader("ETag")
    finally:
        conn.close()
    server.clear_log()
    assert etag is not None
    return etag


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Client:
    """One worker's transfers on one production :class:`CurlDriver` (kept for the client's
    life, so connections stay alive between fetches); ``attempts`` of the latest fetch."""

    def __init__(self, transfers: Transfers, driver: CurlDriver):
        self.transfers, self.driver = transfers, driver
        self.attempts = 0

    def fetch(self, request: TransferRequest) -> TransferResult:
        state = FetchState()
        try:
            return self.driver.run(self.transfers.fetch(request, state))
        finally:
            self.attempts = state.attempts

    def head(self, url: str) -> Any:
        return self.driver.run(self.transfers.head(url))

    def close(self) -> None:
        self.driver.close()


class Env:
    """A served blob tree under ``tmp_path`` plus factories for servers and transferers."""

    def __init__(self, tmp_path: Path, backend: str = "curl-multi"):
        self.backend = backend
        self.root = tmp_path / "served"
        self.out = tmp_path / "out"
        self.data = random.Random(7).randbytes(SIZE)
        self.add_blob(BLOB, self.data)
        self._servers: list[TestServer] = []
        self._transferers: list[Client] = []

    def add_blob(self, path: str, data: bytes) -> Path:
        file = self.root / path.lstrip("/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
        return file

    def server(self, **options: Any) -> TestServer:
        server = TestServer(self.root, **options)
        server.start()
        self._servers.append(server)
        return server

    def transferer(
        self,
        *,
        max_retries: int = 3,
        read_timeout: float = 2.0,
        stop: threading.Event | None = None,
        on_started: StartedCallback | None = None,
    ) -> Client:
        transfers = Transfers(
            policy=RetryPolicy(max_retries=max_retries, backoff=0.01, max_backoff=0.05),
            rand=random.Random(0).random,
            on_started=on_started,
        )
        driver = CurlDriver(
            1,
            stop=stop or threading.Event(),
            net=NetSettings(connect=2.0, read=read_timeout),
            # fsync in the driver thread, or (as on a disk where fsync is slow) in helpers
            inline_sync_below=0.0 if self.backend.endswith("fsync-helpers") else 1.0,
        )
        transferer = Client(transfers, driver)
        self._transferers.append(transferer)
        return transferer

    def dest(self, name: str = "image.tif") -> Path:
        return self.out / "ds" / name

    def close(self) -> None:
        for transferer in self._transferers:
            transferer.close()
        for server in self._servers:
            server.stop()


@pytest.fixture(params=["curl-multi", "curl-multi-fsync-helpers"])
def env(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    """Every transfer test runs on the libcurl multi driver the executor uses, with fsync in
    the driver thread and in helper threads: the same rules."""
    environment = Env(tmp_path, request.param)
    try:
        yield environment
    finally:
        environment.close()


def fetch(
    env: Env,
    server: TestServer,
    *,
    transferer: Client | None = None,
    path: str = BLOB,
    dest: Path | None = None,
    **fields: Any,
) -> TransferResult:
    request = TransferRequest(url=server.url + path, dest=dest or env.dest(), **fields)
    return (transferer or env.transferer()).fetch(request)


def fetch_error(env: Env, server: TestServer, **kwargs: Any) -> TransferError:
    with pytest.raises(TransferError) as caught:
        fetch(env, server, **kwargs)
    return caught.value


def assert_complete(env: Env, dest: Path | None = None, data: bytes | None = None) -> None:
    dest = dest or env.dest()
    assert file_md5(dest) == md5_hex(env.data if data is None else data)
    assert not part_of(dest).exists()


def assert_nothing_left(dest: Path) -> None:
    assert not dest.exists()
    assert not part_of(dest).exists()


# --------------------------------------------------------------------------- 1. plain download


def test_plain_download_headers_result_and_no_part(env: Env) -> None:
    server = env.server(etag_style="md5")
    result = fetch(env, server)

    assert_complete(env)
    [record] = server.requests
    assert (record.method, record.path, record.status) == ("GET", BLOB, 200)
    assert record.headers["accept-encoding"] == "identity"
    assert record.headers["user-agent"] == USER_AGENT
    assert "range" not in record.headers and "if-range" not in record.headers
    assert record.body_bytes == SIZE
    assert result.size == SIZE
    assert result.md5 == md5_hex(env.data)
    assert result.validator == f'"{md5_hex(env.data)}"'  # the ETag
    assert result.verified_by == "s3-etag"
    assert result.transferred == SIZE
    assert (result.attempts, result.resumed) == (1, False)
    assert result.mtime_ns == env.dest().stat().st_mtime_ns


def test_validator_is_last_modified_without_etag(env: Env) -> None:
    server = env.server(etag_style="none")
    result = fetch(env, server, size=SIZE)
    assert_complete(env)
    mtime = int((env.root / BLOB.lstrip("/")).stat().st_mtime)
    assert result.validator == formatdate(mtime, usegmt=True)
    assert result.verified_by == "size"
    assert statuses(gets(server)) == [200]


# --------------------------------------------------------------------------- 2. checksum ladder


@pytest.mark.parametrize("make_claim", [md5_multihash, sha256_multihash], ids=["md5", "sha2-256"])
def test_file_checksum_verifies_first(env: Env, make_claim: Callable[[bytes], str]) -> None:
    server = env.server(etag_style="md5", md5_header="content-md5")
    result = fetch(env, server, checksum=make_claim(env.data), size=SIZE)
    assert_complete(env)
    assert result.verified_by == "file:checksum"
    assert result.md5 == md5_hex(env.data)  # always computed, for the state db
    assert statuses(gets(server)) == [200]


def test_content_md5_on_a_full_body(env: Env) -> None:
    server = env.server(etag_style="opaque", md5_header="content-md5")
    result = fetch(env, server)
    assert_complete(env)
    assert result.verified_by == "content-md5"
    assert statuses(gets(server)) == [200]


def test_azure_blob_md5_on_a_resumed_download(env: Env) -> None:
    server = env.server(etag_style="opaque", md5_header="azure")
    etag = head_etag(server, BLOB)
    server.add_fault(BLOB, Fault("truncate", after_bytes=PART_AT))
    result = fetch(env, server)

    assert_complete(env)
    first, second = gets(server)
    assert (first.status, first.body_bytes) == (200, PART_AT)
    assert second.status == 206
    assert second.headers["range"] == f"bytes={PART_AT}-"
    assert second.headers["if-range"] == etag
    assert result.verified_by == "x-ms-blob-content-md5"
    assert result.resumed is True
    assert result.transferred == SIZE


def test_s3_etag(env: Env) -> None:
    server = env.server(etag_style="md5")
    assert fetch(env, server).verified_by == "s3-etag"
    assert_complete(env)


@pytest.mark.parametrize("etag_style", ["multipart", "opaque", "none"])
def test_only_the_size_when_no_md5_is_known(env: Env, etag_style: str) -> None:
    server = env.server(etag_style=etag_style)
    result = fetch(env, server)
    assert_complete(env)
    assert result.verified_by == "size"
    assert result.md5 == md5_hex(env.data)
    assert statuses(gets(server)) == [200]


def test_required_checksum_with_nothing_known_fails(env: Env) -> None:
    server = env.server(etag_style="opaque")
    error = fetch_error(env, server, checksum_mode="required")
    assert error.error_class == "no-checksum"
    assert error.retryable is False
    assert "checksum" in (error.hint or "")
    assert_nothing_left(env.dest())
    assert statuses(gets(server)) == [200]  # a final answer: not retried


def test_required_checksum_accepts_a_server_md5(env: Env) -> None:
    server = env.server(etag_style="md5")
    assert fetch(env, server, checksum_mode="required").verified_by == "s3-etag"
    assert_complete(env)


def test_checksum_mode_off_verifies_nothing(env: Env) -> None:
    server = env.server(etag_style="md5", md5_header="content-md5")
    wrong = md5_multihash(b"something else")
    result = fetch(env, server, checksum=wrong, checksum_mode="off")
    assert_complete(env)
    assert result.verified_by == "none"
    assert statuses(gets(server)) == [200]


@pytest.mark.parametrize(
    "claim",
    ["1b20" + "ab" * 32, "not-hex-at-all", "d50110abcd"],
    ids=["unknown-code", "non-hex", "short"],
)
def test_unusable_file_checksum_is_logged_and_the_ladder_used(
    env: Env, claim: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = env.server(etag_style="md5")
    with caplog.at_level(logging.WARNING, logger="mlhub_sync.transfer"):
        result = fetch(env, server, checksum=claim)
    assert_complete(env)
    assert result.verified_by == "s3-etag"
    assert any("file:checksum" in message for message in caplog.messages)
    assert statuses(gets(server)) == [200]


# --------------------------------------------------------------------------- 3. retries


def test_429_retry_after_is_honoured(env: Env) -> None:
    server = env.server()
    server.add_fault(BLOB, Fault("status", status=429, retry_after="1"))
    started = time.monotonic()
    result = fetch(env, server)
    elapsed = time.monotonic() - started

    assert_complete(env)
    assert elapsed >= 0.95  # the backoff alone would be at most 0.05 s
    assert statuses(gets(server)) == [429, 200]
    assert result.attempts == 2


def test_503_three_times_then_success(env: Env) -> None:
    server = env.server()
    server.add_fault(BLOB, *[Fault("status", status=503)] * 3)
    result = fetch(env, server, transferer=env.transferer(max_retries=3))
    assert_complete(env)
    assert statuses(gets(server)) == [503, 503, 503, 200]
    assert all("range" not in r.headers for r in gets(server))
    assert result.attempts == 4


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_final_statuses_are_not_retried(env: Env, status: int) -> None:
    server = env.server()
    server.add_fault(BLOB, Fault("status", status=status))
    error = fetch_error(env, server)
    assert error.error_class == f"http-{status}"
    assert error.status == status
    assert error.retryable is False
    assert statuses(gets(server)) == [status]
    assert_nothing_left(env.dest())


def test_a_missing_blob_is_a_404(env: Env) -> None:
    server = env.server()
    error = fetch_error(env, server, path="/blobs/ds/missing.tif")
    assert (error.error_class, error.retryable) == ("http-404", False)
    assert error.hint is not None
    assert server.count("/blobs/ds/missing.tif") == 1


def test_retries_exhausted(env: Env) -> None:
    server = env.server()
    server.add_fault(BLOB, *[Fault("status", status=503, retry_after="0")] * 6)
    transferer = env.transferer(max_retries=2)
    error = fetch_error(env, server, transferer=transferer)
    assert error.error_class == "http-503"
    assert error.retryable is True
    assert statuses(gets(server)) == [503, 503, 503]  # max_retries + 1 attempts
    assert transferer.attempts == 3
    assert_nothing_left(env.dest())


def test_thrown_away_bytes_do_not_reset_the_retry_budget(env: Env) -> None:
    """Bytes that are received and then discarded are no progress: the budget still runs out."""
    server = env.server()
    server.add_fault(BLOB, *[Fault("truncate", after_bytes=1000), Fault("wrong_range")] * 5)
    with pytest.raises(TransferError) as caught:
        fetch(env, server, transferer=env.transferer(max_retries=2))
    assert caught.value.retryable is True
    # truncate (progress to 1000), wrong range (part discarded), truncate again at 1000 (no
    # progress beyond what was reached before): three failures in a row, budget spent.
    records = gets(server)
    assert len(records) == 3
    assert [r.headers.get("range") for r in records] == [None, "bytes=1000-", None]


def test_stop_during_a_backoff_cancels(env: Env) -> None:
    server = env.server()
    server.add_fault(BLOB, Fault("status", status=503, retry_after="30"))
    stop = threading.Event()

    def stop_once_answered() -> None:  # the transfer is then in its 30 s backoff
        deadline = time.monotonic() + 10
        while not server.count(BLOB) and time.monotonic() < deadline:
            time.sleep(0.01)  # polling with a deadline, not a fixed wait
        stop.set()

    stopper = threading.Thread(target=stop_once_answered)
    stopper.start()
    started = time.monotonic()
    try:
        with pytest.raises(Cancelled):
            fetch(env, server, transferer=env.transferer(stop=stop))
    finally:
        stopper.join()
    assert time.monotonic() - started < 5
    assert statuses(gets(server)) == [503]


def test_a_stopped_run_sends_nothing_more(env: Env) -> None:
    server = env.server()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        fetch(env, server, transferer=env.transferer(stop=stop))
    if env.backend.startswith("curl-multi"):
        assert gets(server) == []  # the driver looks at the stop before starting anything


# --------------------------------------------------------------------------- 4. resume


def test_reset_mid_body_resumes_with_range_and_if_range(env: Env) -> None:
    server = env.server(etag_style="md5")
    server.add_fault(BLOB, Fault("reset", after_bytes=PART_AT))
    result = fetch(env, server, size=SIZE)

    assert_complete(env)
    first, second = gets(server)
    assert first.status == 200
    assert second.status == 206
    # A reset may lose bytes in flight: the client resumes from what it actually stored.
    kept = SIZE - second.body_bytes
    assert 0 < kept <= PART_AT
    assert second.headers["range"] == f"bytes={kept}-"
    assert second.headers["if-range"] == f'"{md5_hex(env.data)}"'
    assert result.resumed is True
    assert result.attempts == 2
    assert result.transferred == SIZE


def test_truncated_body_resumes(env: Env) -> None:
    server = env.server(etag_style="md5")
    server.add_fault(BLOB, Fault("truncate", after_bytes=PART_AT))
    result = fetch(env, server, checksum=md5_multihash(env.data))

    assert_complete(env)
    first, second = gets(server)
    assert (first.status, first.body_bytes) == (200, PART_AT)
    assert (second.status, second.body_bytes) == (206, SIZE - PART_AT)
    assert second.headers["range"] == f"bytes={PART_AT}-"
    assert second.headers["if-range"] == f'"{md5_hex(env.data)}"'
    assert result.verified_by == "file:checksum"  # the hash covers the resumed part too
    assert result.transferred == SIZE


def test_existing_part_with_validator_is_resumed(env: Env) -> None:
    server = env.server(etag_style="md5")
    etag = f'"{md5_hex(env.data)}"'
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(env.data[:PART_AT])
    result = fetch(env, server, resume_validator=etag, checksum=sha256_multihash(env.data))

    assert_complete(env)
    [record] = gets(server)
    assert record.status == 206
    assert record.headers["range"] == f"bytes={PART_AT}-"
    assert record.headers["if-range"] == etag
    assert result.transferred == SIZE - PART_AT
    assert result.resumed is True
    assert result.verified_by == "file:checksum"


def test_existing_part_with_last_modified_validator_is_resumed(env: Env) -> None:
    server = env.server(etag_style="none")
    mtime = int((env.root / BLOB.lstrip("/")).stat().st_mtime)
    last_modified = formatdate(mtime, usegmt=True)
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(env.data[:PART_AT])
    result = fetch(env, server, resume_validator=last_modified, size=SIZE)

    assert_complete(env)
    [record] = gets(server)
    assert record.status == 206
    assert record.headers["if-range"] == last_modified
    assert result.transferred == SIZE - PART_AT


def test_range_ignored_restarts_cleanly(env: Env) -> None:
    server = env.server(etag_style="md5")
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(env.data[:PART_AT])
    server.add_fault(BLOB, Fault("ignore_range"))
    result = fetch(env, server, resume_validator=f'"{md5_hex(env.data)}"')

    assert_complete(env)
    [record] = gets(server)
    assert record.headers["range"] == f"bytes={PART_AT}-"
    assert (record.status, record.body_bytes) == (200, SIZE)
    assert result.transferred == SIZE
    assert result.resumed is False  # nothing of the old part was kept
    assert result.verified_by == "s3-etag"


def test_wrong_range_discards_the_part(env: Env) -> None:
    server = env.server(etag_style="md5")
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(env.data[:PART_AT])
    server.add_fault(BLOB, Fault("wrong_range"))
    result = fetch(env, server, resume_validator=f'"{md5_hex(env.data)}"')

    assert_complete(env)
    first, second = gets(server)
    assert first.headers["range"] == f"bytes={PART_AT}-"
    assert first.status == 206  # starting at PART_AT + 1
    assert "range" not in second.headers
    assert (second.status, second.body_bytes) == (200, SIZE)
    assert result.resumed is False


def test_etag_changed_gives_a_full_body(env: Env) -> None:
    server = env.server(etag_style="md5")
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(b"\0" * PART_AT)  # bytes of an older version
    server.add_fault(BLOB, Fault("etag_change"))
    result = fetch(env, server, resume_validator=f'"{md5_hex(env.data)}"')

    assert_complete(env)
    [record] = gets(server)
    assert record.headers["if-range"] == f'"{md5_hex(env.data)}"'
    assert (record.status, record.body_bytes) == (200, SIZE)
    assert result.validator == '"changed-1"'
    assert result.resumed is False


def test_part_larger_than_the_remote_file_restarts_from_zero(env: Env) -> None:
    server = env.server(etag_style="md5")
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(env.data + b"trailing junk")
    result = fetch(env, server, resume_validator=f'"{md5_hex(env.data)}"')

    assert_complete(env)
    first, second = gets(server)
    assert first.headers["range"] == f"bytes={SIZE + 13}-"
    assert first.status == 416
    assert "range" not in second.headers
    assert second.status == 200
    assert result.transferred == SIZE


def test_a_complete_part_with_the_same_etag_is_kept_without_refetching(env: Env) -> None:
    """A run killed between the last byte and the rename: the next one asks for the rest,
    hears 416 "nothing left" for the same version, and renames the part it has."""
    server = env.server(etag_style="md5")
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(env.data)
    result = fetch(env, server, resume_validator=f'"{md5_hex(env.data)}"')

    assert_complete(env)
    [record] = gets(server)
    assert (record.headers["range"], record.status) == (f"bytes={SIZE}-", 416)
    assert (result.transferred, result.resumed, result.size) == (0, True, SIZE)


def test_a_complete_part_is_verified_by_its_checksum_before_it_is_kept(env: Env) -> None:
    server = env.server(etag_style="md5")
    env.dest().parent.mkdir(parents=True)
    wrong = bytes(reversed(env.data))  # the right length, the wrong bytes
    part_of(env.dest()).write_bytes(wrong)
    result = fetch(
        env, server, resume_validator=f'"{md5_hex(env.data)}"', checksum=md5_multihash(env.data)
    )

    assert_complete(env)
    first, second = gets(server)
    assert first.status == 416
    assert ("range" not in second.headers, second.status) == (True, 200)
    assert result.verified_by == "file:checksum"
    assert result.transferred == SIZE


def test_a_complete_part_without_evidence_is_fetched_again(env: Env) -> None:
    server = env.server(etag_style="none")  # no ETag, no checksum: nothing vouches for it
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(env.data)
    served = env.root / BLOB.lstrip("/")
    last_modified = formatdate(served.stat().st_mtime, usegmt=True)
    result = fetch(env, server, resume_validator=last_modified)

    assert_complete(env)
    assert statuses(gets(server)) == [416, 200]
    assert result.transferred == SIZE


@pytest.mark.parametrize("validator", [None, 'W/"weak"'], ids=["none", "weak"])
def test_part_without_a_usable_validator_is_not_trusted(env: Env, validator: str | None) -> None:
    server = env.server(etag_style="md5")
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(b"garbage" * 1000)
    result = fetch(env, server, resume_validator=validator)

    assert_complete(env)
    [record] = gets(server)
    assert "range" not in record.headers and "if-range" not in record.headers
    assert record.status == 200
    assert result.resumed is False


# --------------------------------------------------------------------------- 5. corruption


def test_corrupt_body_restarts_once_from_zero(env: Env) -> None:
    server = env.server(etag_style="opaque")
    server.add_fault(BLOB, Fault("corrupt"))
    result = fetch(env, server, checksum=md5_multihash(env.data))

    assert_complete(env)
    first, second = gets(server)
    assert (first.status, second.status) == (200, 200)
    assert "range" not in second.headers
    assert result.verified_by == "file:checksum"
    assert result.transferred == 2 * SIZE


def test_corrupt_twice_fails_and_leaves_nothing(env: Env) -> None:
    server = env.server(etag_style="opaque")
    server.add_fault(BLOB, Fault("corrupt"), Fault("corrupt"))
    error = fetch_error(env, server, checksum=sha256_multihash(env.data))

    assert error.error_class == "checksum-mismatch"
    assert error.retryable is False
    assert_nothing_left(env.dest())
    assert statuses(gets(server)) == [200, 200]
    assert all("range" not in r.headers for r in gets(server))


def test_corrupt_with_only_a_content_md5(env: Env) -> None:
    server = env.server(etag_style="opaque", md5_header="content-md5")
    server.add_fault(BLOB, Fault("corrupt"))
    result = fetch(env, server)
    assert_complete(env)
    assert result.verified_by == "content-md5"
    assert statuses(gets(server)) == [200, 200]

    server.add_fault(BLOB, Fault("corrupt"), Fault("corrupt"))
    server.clear_log()
    error = fetch_error(env, server, dest=env.dest("again.tif"))
    assert error.error_class == "checksum-mismatch"
    assert_nothing_left(env.dest("again.tif"))
    assert statuses(gets(server)) == [200, 200]


def test_corrupt_resumed_download_restarts_from_zero(env: Env) -> None:
    server = env.server(etag_style="md5")
    env.dest().parent.mkdir(parents=True)
    part_of(env.dest()).write_bytes(env.data[:PART_AT])
    server.add_fault(BLOB, Fault("corrupt"))
    result = fetch(env, server, resume_validator=f'"{md5_hex(env.data)}"')

    assert_complete(env)
    first, second = gets(server)
    assert (first.status, first.headers["range"]) == (206, f"bytes={PART_AT}-")
    assert (second.status, second.headers.get("range")) == (200, None)
    assert result.verified_by == "s3-etag"


# --------------------------------------------------------------------------- 6. hostile servers


def test_stall_times_out_and_is_retried(env: Env) -> None:
    server = env.server()
    server.add_fault(BLOB, Fault("stall", seconds=5))
    started = time.monotonic()
    result = fetch(env, server, transferer=env.transferer(read_timeout=0.5))

    assert time.monotonic() - started < 4
    assert_complete(env)
    assert statuses(gets(server)) == [0, 200]  # 0: no status line was ever sent
    assert result.attempts == 2


def test_stall_every_time_gives_a_timeout_error(env: Env) -> None:
    server = env.server()
    server.add_fault(BLOB, *[Fault("stall", seconds=5)] * 2)
    error = fetch_error(env, server, transferer=env.transferer(max_retries=1, read_timeout=0.5))
    assert (error.error_class, error.retryable) == ("timeout", True)
    assert statuses(gets(server)) == [0, 0]


def test_gzip_despite_identity_stores_the_decoded_bytes(env: Env) -> None:
    server = env.server(etag_style="md5")
    server.add_fault(BLOB, Fault("gzip"))
    result = fetch(env, server, size=SIZE, checksum=md5_multihash(env.data))

    assert_complete(env)
    [record] = gets(server)
    assert record.status == 200
    assert record.headers["accept-encoding"] == "identity"
    assert result.verified_by == "file:checksum"
    assert result.validator is None  # decoded bytes cannot be resumed by encoded offsets


def test_gzip_with_nothing_known_claims_no_verification(env: Env) -> None:
    server = env.server(etag_style="opaque")
    server.add_fault(BLOB, Fault("gzip"))
    result = fetch(env, server)
    assert_complete(env)
    # Content-Length described the gzip body, so not even the size was checked.
    assert result.verified_by == "none"


def test_long_body_keeps_exactly_content_length_bytes(env: Env) -> None:
    server = env.server(etag_style="md5")
    server.add_fault(BLOB, Fault("long_body"))
    transferer = env.transferer()
    result = fetch(env, server, transferer=transferer)

    assert_complete(env)
    assert result.size == SIZE
    assert result.verified_by == "s3-etag"
    # The extra bytes must not poison the next request on a reused connection.
    fetch(env, server, transferer=transferer, dest=env.dest("second.tif"))
    assert_complete(env, env.dest("second.tif"))
    assert statuses(gets(server)) == [200, 200]


def test_html_page_instead_of_a_tif(env: Env) -> None:
    server = env.server(etag_style="opaque")
    server.add_fault(BLOB, Fault("html"))
    error = fetch_error(env, server)
    assert error.error_class == "html-response"
    assert error.retryable is False
    assert_nothing_left(env.dest())
    assert statuses(gets(server)) == [200]


def test_redirect_is_followed(env: Env) -> None:
    server = env.server(etag_style="md5")
    server.add_redirect("/asset", f"{server.url}{BLOB}")
    result = fetch(env, server, path="/asset")
    assert_complete(env)
    assert result.verified_by == "s3-etag"
    assert server.count("/asset") == 1
    assert statuses(gets(server)) == [200]


def test_redirect_loop_is_not_retried_forever(env: Env) -> None:
    server = env.server()
    server.add_redirect("/a", f"{server.url}/b")
    server.add_redirect("/b", f"{server.url}/a")
    error = fetch_error(env, server, path="/a")
    assert error.error_class == "redirect-loop"
    assert error.retryable is False
    hops = server.count("/a") + server.count("/b")
    assert hops == 11  # the request and 10 redirects, once
    assert_nothing_left(env.dest())


def test_redirect_to_ftp_is_final(env: Env) -> None:
    server = env.server()
    server.add_redirect("/ftp", "ftp://127.0.0.1/file.tif")
    error = fetch_error(env, server, path="/ftp")
    assert error.error_class == "bad-url"
    assert error.retryable is False
    assert server.count("/ftp") == 1


def test_connection_refused_is_retried_then_fails(env: Env) -> None:
    transferer = env.transferer(max_retries=2)
    request = TransferRequest(url=f"http://127.0.0.1:{closed_port()}/x.tif", dest=env.dest())
    with pytest.raises(TransferError) as caught:
        transferer.fetch(request)
    assert caught.value.error_class == "connection"
    assert caught.value.retryable is True
    assert transferer.attempts == 3
    assert_nothing_left(env.dest())


# --------------------------------------------------------------------------- 7. local faults


def test_dest_parent_is_a_file(env: Env, tmp_path: Path) -> None:
    server = env.server()
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(MlhubSyncError) as caught:
        fetch(env, server, dest=blocker / "sub" / "image.tif")
    error = caught.value
    assert isinstance(error, TransferError | FatalLocalError)
    assert "cannot write" in error.message
    assert error.subject is not None and "blocker" in error.subject
    assert server.requests == []  # failed before any network traffic


def test_copy_or_link_hard_links(tmp_path: Path) -> None:
    source = tmp_path / "a" / "source.tif"
    source.parent.mkdir()
    source.write_bytes(b"payload" * 100)
    dest = tmp_path / "b" / "c" / "dest.tif"
    with Tree(tmp_path) as tree:
        copy_or_link(tree, source, dest)  # its folders are made on the way
        assert dest.read_bytes() == source.read_bytes()
        assert dest.stat().st_ino == source.stat().st_ino
        assert not part_of(dest).exists()

        other = tmp_path / "other.tif"
        other.write_bytes(b"other")
        copy_or_link(tree, other, dest)  # replaces an existing file
        assert dest.read_bytes() == b"other"
        assert source.read_bytes() == b"payload" * 100


def test_copy_or_link_into_a_file_raises_a_project_error(tmp_path: Path) -> None:
    source = tmp_path / "source.tif"
    source.write_bytes(b"x")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with Tree(tmp_path) as tree, pytest.raises(MlhubSyncError):
        copy_or_link(tree, source, blocker / "dest.tif")


# --------------------------------------------------------------------------- 8. cancellation


def test_stop_during_the_body_keeps_the_part(env: Env) -> None:
    big = random.Random(3).randbytes(8 << 20)
    path = "/blobs/ds/big.tif"
    env.add_blob(path, big)
    server = env.server(etag_style="md5")
    stop = threading.Event()
    started: list[tuple[str | None, int | None]] = []

    def on_started(req: TransferRequest, validator: str | None, total: int | None) -> None:
        started.append((validator, total))
        stop.set()

    dest = env.dest("big.tif")
    with pytest.raises(Cancelled):
        fetch(
            env,
            server,
            path=path,
            dest=dest,
            transferer=env.transferer(stop=stop, on_started=on_started),
        )
    etag = f'"{md5_hex(big)}"'
    assert started == [(etag, len(big))]
    assert not dest.exists()
    kept = part_of(dest).stat().st_size
    assert 0 < kept < len(big)
    assert big.startswith(part_of(dest).read_bytes())
    assert len(gets(server, path)) == 1

    # The next run resumes the part.
    result = fetch(env, server, path=path, dest=dest, resume_validator=etag)
    assert_complete(env, dest, big)
    assert gets(server, path)[-1].headers["range"] == f"bytes={kept}-"
    assert result.transferred == len(big) - kept


# --------------------------------------------------------------------------- 9. file:// URLs


def test_file_url_is_copied_and_verified(env: Env, tmp_path: Path) -> None:
    source = tmp_path / "local source" / "b%c.tif"  # a space and a percent sign to quote
    source.parent.mkdir()
    source.write_bytes(env.data)
    transferer = env.transferer()
    result = transferer.fetch(
        TransferRequest(url=source.as_uri(), dest=env.dest(), checksum=md5_multihash(env.data))
    )
    assert_complete(env)
    assert result.verified_by == "file:checksum"
    assert (result.size, result.transferred, result.attempts) == (SIZE, SIZE, 1)

    plain = transferer.fetch(TransferRequest(url=source.as_uri(), dest=env.dest("plain.tif")))
    assert plain.verified_by == "size"
    assert_complete(env, env.dest("plain.tif"))


def test_file_url_with_a_wrong_checksum(env: Env, tmp_path: Path) -> None:
    source = tmp_path / "source.tif"
    source.write_bytes(env.data)
    with pytest.raises(TransferError) as caught:
        env.transferer().fetch(
            TransferRequest(url=source.as_uri(), dest=env.dest(), checksum=md5_multihash(b"x"))
        )
    assert caught.value.error_class == "checksum-mismatch"
    assert_nothing_left(env.dest())


def test_file_url_required_checksum_without_one(env: Env, tmp_path: Path) -> None:
    source = tmp_path / "source.tif"
    source.write_bytes(env.data)
    request = TransferRequest(url=source.as_uri(), dest=env.dest(), checksum_mode="required")
    with pytest.raises(TransferError) as caught:
        env.transferer().fetch(request)
    assert caught.value.error_class == "no-checksum"
    assert_nothing_left(env.dest())


def test_file_url_missing_source(env: Env, tmp_path: Path) -> None:
    missing = tmp_path / "missing.tif"
    with pytest.raises(TransferError) as caught:
        env.transferer().fetch(TransferRequest(url=missing.as_uri(), dest=env.dest()))
    assert caught.value.error_class == "not-found"
    assert caught.value.retryable is False
    assert caught.value.subject == str(missing)
    assert_nothing_left(env.dest())


# --------------------------------------------------------------------------- HEAD


def test_head_gives_size_and_server_md5_and_retries(env: Env) -> None:
    server = env.server(etag_style="md5")
    server.add_fault(BLOB, Fault("status", status=503))
    size, server_md5 = env.transferer().head(server.url + BLOB)
    assert size == SIZE
    assert server_md5 is not None
    assert (server_md5.md5, server_md5.source) == (md5_hex(env.data), "s3-etag")
    records = [r for r in server.requests if r.path == BLOB]
    assert [(r.method, r.status) for r in records] == [("HEAD", 503), ("HEAD", 200)]
    assert records[-1].headers["user-agent"] == USER_AGENT


def test_pool_is_reused_across_fetches(env: Env) -> None:
    """One worker, one connection: a second fetch does not open a new one (keep-alive)."""
    second = env.add_blob("/blobs/ds/second.tif", env.data[::-1])
    server = env.server()
    transferer = env.transferer()
    fetch(env, server, transferer=transferer)
    fetch(env, server, transferer=transferer, path="/blobs/ds/second.tif", dest=env.dest("2.tif"))
    assert_complete(env, env.dest("2.tif"), second.read_bytes())
    assert len({r.client_port for r in server.requests}) == 1  # one kept-alive connection
    assert_complete(env)


def test_md5_looking_etag_that_is_not_an_md5_falls_back_to_size(env: Env) -> None:
    # S3 SSE-KMS/SSE-C ETags are 32 hex digits but not the MD5: the same bytes twice prove it
    # for that asset; after three different assets, the host's ETags are no longer used.
    server = env.server(etag_style="encrypted")
    transferer = env.transferer()
    names = [f"/blobs/ds/item/f{i}.tif" for i in range(4)]
    for i, name in enumerate(names):
        env.add_blob(name, env.data[i:] + env.data[:i])
    results = [
        fetch(env, server, transferer=transferer, path=name, dest=env.dest(name.rsplit("/")[-1]))
        for name in names
    ]
    assert [r.verified_by for r in results] == ["size"] * 4
    assert [len(gets(server, name)) for name in names] == [2, 2, 2, 1]


def test_identical_bytes_against_an_etag_are_never_claimed_as_checksum_verified(
    env: Env,
) -> None:
    # With only an ETag, the same wrong bytes twice cannot be told from an ETag that is not an
    # MD5: the file is kept, but recorded as verified by size only, never as "s3-etag".
    server = env.server(etag_style="md5")
    server.add_fault(BLOB, Fault("corrupt"), Fault("corrupt"))
    result = fetch(env, server)
    assert result.verified_by == "size"
    assert len(gets(server)) == 2


def test_a_corrupt_body_then_a_good_one_is_verified_by_etag(env: Env) -> None:
    server = env.server(etag_style="md5")
    server.add_fault(BLOB, Fault("corrupt"))
    result = fetch(env, server)
    assert_complete(env)
    assert result.verified_by == "s3-etag"


def test_a_corrupt_resume_twice_is_final_when_the_server_proved_its_etag_is_the_md5(
    env: Env,
) -> None:
    # The chaos soak's "served" host: Content-MD5 on full bodies, the MD5 as ETag. A body cut
    # half way is resumed; the 206 is corrupted (the same byte: the fault is deterministic)
    # and only the ETag can judge a 206: a mismatch, from zero. The new body is cut at the
    # same byte and resumed, corrupted the same way: the same MD5 twice against the ETag. The
    # ETag is not "weak evidence that is not an MD5" here: the 200s' Content-MD5 proved it is.
    server = env.server(etag_style="md5", md5_header="content-md5")
    half = Fault("truncate", after_bytes=-1)
    server.add_fault(BLOB, half, Fault("corrupt"), half, Fault("corrupt"))
    error = fetch_error(env, server)

    assert error.error_class == "checksum-mismatch"
    assert_nothing_left(env.dest())
    assert statuses(gets(server)) == [200, 206, 200, 206]
