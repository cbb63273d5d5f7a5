"""One asset transfer: a resumable, verified GET into ``{path}.part``, then ``os.replace``.

Rules (DESIGN.md §2.3):

- ask for ``Accept-Encoding: identity`` so the hash covers the bytes as stored;
- resume an existing ``.part`` with ``Range: bytes=N-`` and ``If-Range`` (the validator
  recorded when the part was started); a 200 to a range request means start over; a 206 that
  starts elsewhere, or whose ETag differs from the validator, discards the part;
- hash while streaming (the existing part is hashed first when resuming);
- check the size (Content-Length / Content-Range / ``file:size``) and the best checksum known
  (``checksum.py``); a checksum mismatch restarts from zero once, then fails;
- ``fsync`` and ``os.replace``: a file under its final name is always complete and verified.

Retries follow :class:`~mlhub_sync.retry.RetryPolicy`; an attempt that grew the part past its
longest so far resets the failure count. 400/401/403/404/410 and other final answers raise a
non-retryable :class:`TransferError`. Disk full, read-only file system or permission denied on
the output raise :class:`FatalLocalError`, which stops the whole run.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import heapq
import itertools
import logging
import math
import os
import queue
import re
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

import urllib3

from mlhub_sync.errors import FatalLocalError, TransferError
from mlhub_sync.net.client import USER_AGENT
from mlhub_sync.net.redact import redact_text, redact_url
from mlhub_sync.net.retry import RetryPolicy, is_retryable_status, parse_retry_after
from mlhub_sync.stac.checksum import Multihash, ServerMd5, parse_multihash, server_md5

try:  # libcurl: the fast path for bulk transfers (see default_backend)
    import pycurl
except ImportError:  # pragma: no cover - the pure-Python path still works
    pycurl = None  # type: ignore[assignment]


log = logging.getLogger(__name__)


T = TypeVar("T")


CHUNK = 1 << 20


# A ``.part`` of a file smaller than this is recorded for resuming only when its transfer ends
# unfinished (fails, or the run stops): restarting it costs less than journaling every start.
RECORD_PARTIAL_FROM = 1 << 20


# libcurl's receive buffer: the body reaches Python (write, hash) in blocks up to this size;
# libcurl's default of 16 KiB means 64 Python callbacks per MiB.
CURL_BUFFER = 1 << 20


SLOW_SYNC_SECONDS = 0.0005  # an fsync slower than this on average moves to helper threads


SYNC_THREADS = 8


SYNC_POLL_SECONDS = 0.002  # how often a driver with fsyncs in flight looks for them


FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM})


ETAG_DISTRUST_AFTER = 3  # different assets whose ETag proved not to be their MD5


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)$")


_AZURE_HOST = ".blob.core.windows.net"


@dataclass(frozen=True)
class TransferRequest:
    """What to fetch, where to, and what we know about it beforehand."""

    url: str
    dest: Path
    size: int | None = None
    checksum: str | None = None  # STAC file:checksum (hex multihash)
    checksum_mode: str = "auto"  # auto | required | off
    resume_validator: str | None = None


@dataclass(frozen=True)
class TransferResult:
    """A verified file at ``dest``."""

    size: int
    mtime_ns: int
    md5: str | None
    validator: str | None
    verified_by: str
    transferred: int  # bytes received from the network in this run
    attempts: int
    resumed: bool


class Cancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The run is stopping; the ``.part`` file stays for the next run to resume."""


StartedCallback = Callable[[TransferRequest, str | None, int | None], None]


@dataclass(frozen=True)
class _Get:
    """GET ``url``; ``begin`` judges the final response's status and headers."""

    url: str
    headers: dict[str, str]
    begin: Callable[[int, urllib3.HTTPHeaderDict], _Sink]


@dataclass(frozen=True)
class _Head:
    """HEAD ``url``: answers ``(status, headers)`` or raises :class:`_NetworkFailure`."""

    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class _Sync:
    """Make a verified ``.part`` durable (fsync) before it is renamed into place."""

    path: Path


@dataclass(frozen=True)
class _Sleep:
    """Wait ``seconds`` (a backoff); a stopping run raises :class:`Cancelled` instead."""

    seconds: float


Op = _Get | _Head | _Sleep | _Sync


Steps = Generator[Op, Any, T]


class _Fsync:
    """Where a verified file's fsync runs.

    In the thread that received it while fsync is cheap (tmpfs, a fast SSD: microseconds).
    Where it is measured slow and a driver offers helper threads (``helpers``), the transfer
    yields a :class:`_Sync` step instead, so one slow disk does not stall every transfer of
    a driver thread.
    """

    def __init__(self, slow: float = SLOW_SYNC_SECONDS):
        self.slow = slow
        self.helpers = False
        self.average = 0.0  # moving average of the fsyncs done here

    def here(self, fd: int) -> bool:
        """fsync ``fd`` now and return True, or return False: the caller yields a _Sync."""
        if self.helpers and self.average >= self.slow:
            return False
        started = time.perf_counter()
        os.fsync(fd)
        self.average += (time.perf_counter() - started - self.average) / 8
        if self.helpers and self.average >= self.slow:
            log.debug("fsync takes %.2f ms here: syncing in helper threads", 1000 * self.average)
        return True


@dataclass
class FetchState:
    """What one fetch knows about itself, for its caller (one per concurrent transfer)."""

    attempts: int = 0
    # the start of a small file's body, reported only if its transfer ends unfinished
    deferred_start: tuple[TransferRequest, str | None, int | None] | None = None


def new_pool() -> urllib3.PoolManager:
    """A connection pool for one worker (one connection per host is all a worker uses)."""
    return urllib3.PoolManager(num_pools=16, maxsize=2, headers={"User-Agent": USER_AGENT})


class _Restart(Exception):  # noqa: N818 - internal control flow
    """Throw the part away and start from zero (counts as a failure unless ``free``)."""

    def __init__(self, why: str, free: bool = False):
        super().__init__(why)
        self.free = free


class _Hashes:
    """MD5 (always, for the state db and server MD5s) plus the catalog's algorithm if other."""

    def __init__(self, claim: Multihash | None, enabled: bool):
        self.enabled = enabled
        self.md5 = hashlib.md5() if enabled else None
        self.extra = claim.new() if enabled and claim is not None and claim.name != "md5" else None

    def update(self, data: bytes | memoryview) -> None:
        if self.md5 is not None:
            self.md5.update(data)
        if self.extra is not None:
            self.extra.update(data)

    def digest_for(self, claim: Multihash) -> str | None:
        if claim.name == "md5":
            return self.md5.hexdigest() if self.md5 is not None else None
        return self.extra.hexdigest() if self.extra is not None else None


class Transferer:
    """Fetches assets one at a time for one worker thread (it owns one connection pool)."""

    def __init__(
        self,
        *,
        policy: RetryPolicy,
        connect_timeout: float,
        read_timeout: float,
        stop: threading.Event,
        rand: Callable[[], float],
        on_started: StartedCallback | None = None,
        pool: urllib3.PoolManager | None = None,
        backend: str | None = None,
    ):
        self.policy = policy
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self.backend = backend or default_backend()
        self._curl = (
            _CurlConnection(connect_timeout, read_timeout) if self.backend == "curl" else None
        )
        self.stop = stop
        self.rand = rand
        self.on_started = on_started
        self.pool = pool or new_pool()
        self.attempts = 0  # attempts of the latest fetch, for the error report
        self.fsync = _Fsync()
        self._dirs: set[str] = set()
        # Hosts whose 32-hex ETags proved not to be MD5s (SSE-KMS / SSE-C uploads look alike).
        self._etag_not_md5: set[str] = set()
        # ...counted per host: one asset proves nothing (a proxy may mangle it the same way
        # twice), several different ones make a pattern.
        self._etag_misses: dict[str, set[str]] = {}

    def close(self) -> None:
        """Close this worker's connections."""
        self.pool.clear()
        if self._curl is not None:
            self._curl.close()

    # -- public ---------------------------------------------------------------------------------

    def fetch(self, req: TransferRequest) -> TransferResult:
        """Download ``req.url`` to ``req.dest`` (resuming a ``.part``), verified."""
        state = FetchState()
        try:
            return self.drive(self.fetch_steps(req, state))
        finally:
            self.attempts = state.attempts

    def head(self, url: str) -> tuple[int | None, ServerMd5 | None]:
        """``(Content-Length, server MD5)`` from a HEAD request (retried like a GET)."""
        return self.drive(self.head_steps(url))

    def fetch_steps(self, req: TransferRequest, state: FetchState) -> Steps[TransferResult]:
        """:meth:`fetch` as steps for a driver; ``state`` tells the caller how it went."""
        claim = self._claim(req)
        self.ensure_dir(req.dest.parent)
        if req.url.startswith("file:"):
            state.attempts = 1
            return self._copy_local(req, claim)
        try:
            return (yield from self._download(req, claim, state))
        except BaseException:
            # Unfinished: a small file's .part is worth resuming now (the next run will see it).
            deferred, state.deferred_start = state.deferred_start, None
            part_left = os.path.exists(f"{req.dest}.part")
            if deferred is not None and self.on_started is not None and part_left:
                self.on_started(*deferred)
            raise

    def head_steps(self, url: str) -> Steps[tuple[int | None, ServerMd5 | None]]:
        """:meth:`head` as steps for a driver."""
        failures = 0
        while True:
            try:
                status, headers = yield _Head(url, self._headers(url))
            except _NetworkFailure as exc:
                failure = exc.error
            else:
                if status == 200:
                    return self._head_result(url, headers)
                failure = _status_error(status, headers, url)
            failures += 1
            yield from self._backoff(failure, failures)

    def drive(self, steps: Steps[T]) -> T:
        """Run ``steps`` to the end in this thread, one operation at a time."""
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            value, error = None, None
            try:
                value = self.perform(op)
            except BaseException as exc:  # the steps decide what it means
                error = exc

    def perform(self, op: Op) -> Any:
        """Carry out one operation in this thread."""
        if isinstance(op, _Sleep):
            if self.stop.wait(op.seconds):
                raise Cancelled()
            return None
        if isinstance(op, _Sync):
            _sync_file(op.path)
            return None
        if isinstance(op, _Head):
            if self._curl is not None:
                return self._curl.head(op.url, op.headers)
            return self._urllib3_head(op)
        if self._curl is not None:
            return self._curl.get(op)
        return self._urllib3_get(op)

    def _head_result(
        self, url: str, headers: Mapping[str, str]
    ) -> tuple[int | None, ServerMd5 | None]:
        length = headers.get("Content-Length")
        size = int(length) if length and length.isdigit() else None
        trust = urlsplit(url).netloc not in self._etag_not_md5
        return size, server_md5(headers, full_body=True, trust_etag=trust)

    # -- internals ------------------------------------------------------------------------------

    def _headers(self, url: str) -> dict[str, str]:
        # Headers passed to ``request`` replace the pool's default headers (urllib3 does not
        # merge them), so the User-Agent has to be repeated here.
        return {
            "User-Agent": USER_AGENT,
            **self.pool.headers,
            "Accept-Encoding": "identity",
            **_host_headers(url),
        }

    def _claim(self, req: TransferRequest) -> Multihash | None:
        if req.checksum is None or req.checksum_mode == "off":
            return None
        try:
            return parse_multihash(req.checksum)
        except ValueError as exc:
            log.warning("%s: %s; verifying without it", req.dest.name, exc)
            return None

    def ensure_dir(self, folder: Path) -> None:
        """Create ``folder`` once per worker (a cache spares a mkdir per file)."""
        key = str(folder)
        if key in self._dirs:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _local_error(exc, folder) from exc
        if len(self._dirs) > 50_000:
            self._dirs.clear()
        self._dirs.add(key)

    def _backoff(self, failure: TransferError, failures: int) -> Steps[None]:
        if not failure.retryable or not self.policy.should_retry(failures):
            raise failure
        if self.stop.is_set():
            raise Cancelled()
        wait = self.policy.delay(failures, failure.retry_after, self.rand())
        log.debug("%s: %s; retry in %.2fs", failure.subject, failure.message, wait)
        yield _Sleep(wait)

    def _download(
        self, req: TransferRequest, claim: Multihash | None, state: FetchState
    ) -> Steps[TransferResult]:
        part = Path(f"{req.dest}.part")
        validator = req.resume_validator
        failures = attempts = transferred = 0
        checksum_restarted = False
        etag_mismatch_md5: str | None = None
        resumed = False
        high_water = 0  # the longest the part has been: only growing past it is progress
        while True:
            attempts += 1
            state.attempts = attempts
            # If-Range needs a strong ETag or a date: without one a resume could splice two
            # versions of the file, so start over.
            usable = validator is not None and not validator.startswith("W/")
            offset = _part_size(part) if usable else 0
            try:
                outcome = yield self._get(req, claim, part, offset, validator, state)
            except _Restart as restart:
                _discard(part)
                validator = None
                if restart.free:
                    continue
                failures += 1
                yield from self._backoff(
                    TransferError(
                        str(restart),
                        subject=redact_url(req.url),
                        retryable=True,
                        error_class="bad-response",
                    ),
                    failures,
                )
                continue
            except _Attempt as partial:
                transferred += partial.received
                validator = partial.validator or validator
                # The part grew past anything reached before: the server works, so the budget
                # starts again. Bytes that only rebuild a discarded part are no progress (else
                # a server that always fails half way would be retried forever).
                reached = _part_size(part)
                if partial.received and reached > high_water:
                    high_water = reached
                    failures = 1
                else:
                    failures += 1
                yield from self._backoff(partial.error, failures)
                continue
            transferred += outcome.received
            # A 200 to a range request starts over: only bytes kept from the part count.
            resumed = resumed or outcome.size > outcome.received
            try:
                verified_by, md5 = self._verify(req, claim, outcome)
            except _ChecksumMismatch as mismatch:
                if mismatch.source == "s3-etag" and mismatch.md5 == etag_mismatch_md5:
                    # The same bytes twice, still not the ETag: the ETag is not an MD5 here
                    # (an encrypted or multipart upload), not a corrupted body.
                    log.info("%s: its ETag is not its MD5; verified by size", req.dest.name)
                    host = urlsplit(req.url).netloc
                    misses = self._etag_misses.setdefault(host, set())
                    misses.add(req.url)
                    if len(misses) >= ETAG_DISTRUST_AFTER:
                        log.info("%s: ETags are not MD5s on this host; not using them", host)
                        self._etag_not_md5.add(host)
                    if not outcome.synced:
                        yield _Sync(part)
                    return self._finish(
                        req, part, outcome, "size", mismatch.md5, transferred, attempts, resumed
                    )
                _discard(part)
                validator = None
                etag_mismatch_md5 = mismatch.md5 if mismatch.source == "s3-etag" else None
                if checksum_restarted:
                    raise TransferError(
                        str(mismatch),
                        subject=redact_url(req.url),
                        retryable=False,
                        error_class="checksum-mismatch",
                        hint="the server keeps sending bytes that do not match the checksum",
                    ) from None
                checksum_restarted = True
                log.info("%s: %s; downloading again from zero", req.dest.name, mismatch)
                continue
            except TransferError:
                _discard(part)  # an HTML page or an unverifiable file: nothing worth resuming
                raise
            if not outcome.synced:
                yield _Sync(part)
            return self._finish(
                req, part, outcome, verified_by, md5, transferred, attempts, resumed
            )

    def _get(
        self,
        req: TransferRequest,
        claim: Multihash | None,
        part: Path,
        offset: int,
        validator: str | None,
        state: FetchState,
    ) -> _Get:
        """The request of one attempt (a range request when resuming)."""
        headers = self._headers(req.url)
        if offset:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = validator or ""

        def begin(status: int, got: urllib3.HTTPHeaderDict) -> _Sink:
            return self._begin(req, claim, part, offset, validator, status, got, state)

        return _Get(req.url, headers, begin)

    def _urllib3_get(self, op: _Get) -> _Outcome:
        try:
            response = self.pool.request(
                "GET",
                op.url,
                headers=op.headers,
                timeout=self.timeout,
                retries=_redirects(),
                preload_content=False,
                decode_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise _Attempt(_network_error(exc, op.url), 0, None) from None
        try:
            return self._receive(op, response)
        except BaseException:
            # The body may be unread (cancelled, restarted, failed): a pooled connection with
            # bytes still in flight would hand them to the next request.
            response.close()
            raise
        finally:
            response.release_conn()

    def _receive(self, op: _Get, response: urllib3.BaseHTTPResponse) -> _Outcome:
        if response.status not in (200, 206):
            response.drain_conn()
        sink = op.begin(response.status, urllib3.HTTPHeaderDict(response.headers))
        try:
            try:
                # read1 hands over what has arrived: a reset loses nothing already received,
                # whereas read(CHUNK) discards its partly filled buffer.
                while chunk := response.read1(CHUNK, decode_content=sink.decode):
                    sink.write(chunk)
            except urllib3.exceptions.HTTPError as exc:
                sink.fail(_network_error(exc, op.url))
            return sink.finish()
        finally:
            sink.close()

    def _urllib3_head(self, op: _Head) -> tuple[int, urllib3.HTTPHeaderDict]:
        try:
            response = self.pool.request(
                "HEAD",
                op.url,
                headers=op.headers,
                timeout=self.timeout,
                retries=_redirects(),
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise _NetworkFailure(_network_error(exc, op.url)) from None
        # An unread HEAD response leaves http.client "busy": the pooled connection would fail
        # the next request sent on it.
        response.drain_conn()
        response.release_conn()
        return response.status, urllib3.HTTPHeaderDict(response.headers)

    def _begin(
        self,
        req: TransferRequest,
        claim: Multihash | None,
        part: Path,
        offset: int,
        validator: str | None,
        status: int,
        headers: urllib3.HTTPHeaderDict,
        state: FetchState,
    ) -> _Sink:
        """Judge a response by its status and headers; open the ``.part`` for its body.

        Raises :class:`_Restart` (discard the part), :class:`_Attempt` (a failed attempt) or
        :class:`TransferError` (final) when the answer cannot be used.
        """
        if status not in (200, 206):
            if status == 416 and offset:
                if _part_is_whole_file(req, claim, headers, offset, validator):
                    # A run stopped between the last byte and the rename: verify the part as
                    # it is rather than fetching the file again.
                    hashes = _Hashes(claim, req.checksum_mode != "off")
                    return _Sink(
                        req,
                        part,
                        offset,
                        offset,
                        validator,
                        headers,
                        206,
                        False,
                        hashes,
                        self.stop,
                        self.fsync,
                    )
                raise _Restart("the part is larger than the remote file", free=True)
            raise _Attempt(_status_error(status, headers, req.url), 0, None)
        etag = headers.get("ETag")
        new_validator = etag or headers.get("Last-Modified")
        total = _total_size(headers, status)
        if status == 206:
            start = _range_start(headers)
            if not offset or start != offset:
                raise _Restart(
                    f"the server answered a range request for byte {offset} with bytes from {start}"
                )
            if validator and etag and _strong(validator) and etag != validator:
                raise _Restart(
                    "the file changed on the server since the part was started", free=True
                )
        else:
            offset = 0  # a 200 to a range request: the server restarts the file
        if req.size is not None and total is not None and total != req.size:
            # Not a transient fault: the catalog and the server disagree about the file.
            raise TransferError(
                f"the server says {total} bytes, the catalog's file:size says {req.size}",
                subject=redact_url(req.url),
                retryable=False,
                error_class="size-mismatch",
                hint="the catalog is out of date with the host; report it to the publisher",
            )
        encoding = headers.get("Content-Encoding", "identity").lower()
        decode = encoding not in ("identity", "")
        if decode:
            new_validator = None  # decoded bytes cannot be resumed by encoded offsets
        if self.on_started is not None:
            if total is not None and total < RECORD_PARTIAL_FROM:
                state.deferred_start = (req, new_validator, total)
            else:
                state.deferred_start = None
                self.on_started(req, new_validator, total)
        return _Sink(
            req,
            part,
            offset,
            total,
            new_validator,
            headers,
            status,
            decode,
            _Hashes(claim, req.checksum_mode != "off"),
            self.stop,
            self.fsync,
        )

    def _verify(
        self, req: TransferRequest, claim: Multihash | None, got: _Outcome
    ) -> tuple[str, str | None]:
        md5 = got.hashes.md5.hexdigest() if got.hashes.md5 is not None else None
        if req.size is not None and got.size != req.size:
            raise _ChecksumMismatch(f"size {got.size} differs from file:size {req.size}")
        if req.checksum_mode == "off":
            return "none", md5
        if claim is not None:
            digest = got.hashes.digest_for(claim)
            if digest != claim.digest:
                raise _ChecksumMismatch(f"{claim.name} {digest} differs from file:checksum")
            return "file:checksum", md5
        if not got.decoded:
            host = urlsplit(req.url).netloc
            trust_etag = host not in self._etag_not_md5
            server = server_md5(got.headers, full_body=got.status == 200, trust_etag=trust_etag)
            if server is not None:
                if server.md5 != md5:
                    raise _ChecksumMismatch(
                        f"md5 {md5} differs from {server.source}", server.source, md5
                    )
                return server.source, md5
        if req.checksum_mode == "required":
            raise TransferError(
                "no checksum is known for this asset (checksum: required)",
                subject=redact_url(req.url),
                retryable=False,
                error_class="no-checksum",
                hint="use checksum: auto to accept files verified by size only",
            )
        ctype = got.headers.get("Content-Type", "")
        if ctype.startswith("text/html") and not req.dest.suffix.lower().startswith(".htm"):
            raise TransferError(
                "the server sent an HTML page instead of the file (nothing to verify it by)",
                subject=redact_url(req.url),
                retryable=False,
                error_class="html-response",
            )
        length_checked = "Content-Length" in got.headers and not got.decoded
        return ("size" if req.size is not None or length_checked else "none"), md5

    def _finish(
        self,
        req: TransferRequest,
        part: Path,
        got: _Outcome,
        verified_by: str,
        md5: str | None,
        transferred: int,
        attempts: int,
        resumed: bool,
    ) -> TransferResult:
        try:
            os.replace(part, req.dest)
            stat = os.stat(req.dest)
        except OSError as exc:
            raise _local_error(exc, req.dest) from exc
        return TransferResult(
            stat.st_size,
            stat.st_mtime_ns,
            md5,
            got.validator,
            verified_by,
            transferred,
            attempts,
            resumed,
        )

    def _copy_local(self, req: TransferRequest, claim: Multihash | None) -> TransferResult:
        source = Path(url2pathname(urlsplit(req.url).path))
        part = Path(f"{req.dest}.part")
        hashes = _Hashes(claim, req.checksum_mode != "off")
        try:
            with source.open("rb") as src, part.open("wb") as out:
                while block := src.read(CHUNK):
                    out.write(block)
                    hashes.update(block)
                out.flush()
                os.fsync(out.fileno())
        except FileNotFoundError:
            _discard(part)
            raise TransferError(
                "the file does not exist",
                subject=str(source),
                retryable=False,
                error_class="not-found",
            ) from None
        except OSError as exc:
            _discard(part)
            if exc.filename == str(source):
                raise TransferError(
                    f"cannot read: {exc.strerror}",
                    subject=str(source),
                    retryable=False,
                    error_class="local-read",
                ) from exc
            raise _local_error(exc, part) from exc
        size = part.stat().st_size
        got = _Outcome(size, size, None, hashes, {"Content-Length": str(size)}, 200, False)
        try:
            verified_by, md5 = self._verify(req, claim, got)
        except _ChecksumMismatch as mismatch:
            _discard(part)
            raise TransferError(
                str(mismatch), subject=str(source), retryable=False, error_class="checksum-mismatch"
            ) from None
        except TransferError:
            _discard(part)
            raise
        return self._finish(req, part, got, verified_by, md5, size, 1, False)


def default_backend() -> str:
    """``curl`` (libcurl through pycurl) when available, else ``urllib3``.

    ``MLHUB_SYNC_HTTP=urllib3`` forces the pure-Python one (for debugging or comparison).
    """
    forced = os.environ.get("MLHUB_SYNC_HTTP")
    if forced in ("curl", "urllib3"):
        return forced
    return "curl" if pycurl is not None else "urllib3"


class _NetworkFailure(Exception):  # noqa: N818 - internal
    def __init__(self, error: TransferError):
        super().__init__(error.message)
        self.error = error


# libcurl result codes -> (error class, retryable)
_CURL_ERRORS = {
    1: ("bad-url", False),  # unsupported protocol (e.g. a redirect to ftp:)
    3: ("bad-url", False),  # malformed URL
    5: ("connection", True),  # could not resolve proxy
    6: ("connection", True),  # could not resolve host
    7: ("connection", True),  # could not connect
    18: ("truncated", True),  # the body ended before Content-Length
    28: ("timeout", True),
    47: ("redirect-loop", False),
    52: ("connection", True),  # empty reply
    55: ("connection", True),  # send error
    56: ("connection", True),  # receive error (a reset)
    61: ("bad-encoding", True),
}


class _CurlConnection:
    """One libcurl easy handle: one worker's connections, kept alive between transfers.

    libcurl does the HTTP and the socket I/O in C, without the GIL; Python sees headers and
    body chunks through callbacks, which feed the same :class:`_Sink` as the urllib3 path.
    libcurl is not asked to decode anything: an encoding sent anyway is unwrapped here.
    """

    def __init__(self, connect_timeout: float, read_timeout: float):
        assert pycurl is not None
        self.curl = curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.FOLLOWLOCATION, 1)
        curl.setopt(pycurl.MAXREDIRS, 10)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(connect_timeout * 1000)))
        # No progress for read_timeout seconds (whole seconds: libcurl's granularity) ends it.
        curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
        curl.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(read_timeout)))
        curl.setopt(pycurl.HTTP_CONTENT_DECODING, 0)
        curl.setopt(pycurl.BUFFERSIZE, CURL_BUFFER)
        curl.setopt(pycurl.USERAGENT, USER_AGENT)

    def close(self) -> None:
        """Close the handle and its connections."""
        self.curl.close()

    def head(self, url: str, headers: Mapping[str, str]) -> tuple[int, urllib3.HTTPHeaderDict]:
        """Status and headers of a HEAD request (raises :class:`_NetworkFailure`)."""
        pending = self.start_head(_Head(url, dict(headers)))
        return pending.complete(_perform(self.curl))

    def get(self, op: _Get) -> _Outcome:
        """GET, judged by ``op.begin``; the outcome, or the exception that ended it."""
        pending = self.start_get(op)
        return pending.complete(_perform(self.curl))

    def start_head(self, op: _Head) -> _CurlHead:
        """Set the handle up for ``op``; the caller performs it, then calls ``complete``."""
        reply = _Reply()
        self._prepare(op.url, op.headers, reply)
        self.curl.setopt(pycurl.NOBODY, 1)
        return _CurlHead(self.curl, op, reply)

    def start_get(self, op: _Get) -> _CurlGet:
        """Set the handle up for ``op``; the caller performs it, then calls ``complete``."""
        reply = _Reply()
        self._prepare(op.url, op.headers, reply)
        pending = _CurlGet(op, reply)
        self.curl.setopt(pycurl.WRITEFUNCTION, pending.on_body)
        return pending

    def _prepare(self, url: str, headers: Mapping[str, str], reply: _Reply) -> None:
        curl = self.curl
        curl.setopt(pycurl.URL, url)
        curl.setopt(
            pycurl.HTTPHEADER,
            [f"{k}: {v}" for k, v in headers.items() if k.lower() != "user-agent"],
        )
        curl.setopt(pycurl.HEADERFUNCTION, reply.on_header)


def _perform(curl: Any) -> Any:
    """Run ``curl`` to its end in this thread; the libcurl error it ended with, or ``None``."""
    try:
        curl.perform()
    except pycurl.error as exc:
        return exc
    return None


class _CurlHead:
    """A HEAD request on a curl handle, waiting for libcurl to carry it out."""

    def __init__(self, curl: Any, op: _Head, reply: _Reply):
        self.curl, self.op, self.reply = curl, op, reply

    def complete(self, error: Any) -> tuple[int, urllib3.HTTPHeaderDict]:
        """libcurl is done (``error``: how it failed, or ``None``): the answer, or raise."""
        self.abandon()
        if error is not None:
            raise _NetworkFailure(_curl_error(error, self.op.url)) from None
        _log_request("HEAD", self.op.url, self.op.headers, self.reply.status)
        return self.reply.status, self.reply.headers()

    def abandon(self) -> None:
        """Make the handle a GET handle again."""
        self.curl.setopt(pycurl.NOBODY, 0)
        self.curl.setopt(pycurl.HTTPGET, 1)


class _CurlGet:
    """A GET on a curl handle: its body goes through ``op.begin``'s sink as it arrives."""

    def __init__(self, op: _Get, reply: _Reply):
        self.op, self.reply = op, reply
        self.sink: _Sink | None = None
        self.decoder: Any = None
        self.failure: BaseException | None = None

    def on_body(self, data: bytes) -> int | None:
        """libcurl's write callback: an exception here is kept, and 0 aborts the transfer."""
        try:
            if self.sink is None:
                self.sink = self.op.begin(self.reply.status, self.reply.headers())
                self.decoder = _decoder(self.sink) if self.sink.decode else None
            sink = self.sink
            sink.write(self.decoder.decompress(data) if self.decoder is not None else data)
        except BaseException as exc:
            self.failure = exc
            return 0
        return None

    def complete(self, error: Any) -> _Outcome:
        """libcurl is done (``error``: how it failed, or ``None``): the outcome, or raise."""
        try:
            if error is not None:
                if self.failure is not None:
                    raise self.failure from None
                failure = _curl_error(error, self.op.url)
                if self.sink is None:
                    raise _Attempt(failure, 0, None) from None
                self.sink.fail(failure)
            _log_request("GET", self.op.url, self.op.headers, self.reply.status)
            if self.failure is not None:
                raise self.failure
            if self.sink is None:  # an answer without a body (304, 416, a HEAD-like 404)
                self.sink = self.op.begin(self.reply.status, self.reply.headers())
            elif self.decoder is not None:
                self.sink.write(self.decoder.flush())
            return self.sink.finish()
        finally:
            if self.sink is not None:
                self.sink.close()

    def abandon(self) -> None:
        """The transfer will not complete (the run stops): close the part file."""
        if self.sink is not None:
            self.sink.close()


@dataclass
class _Task:
    steps: Steps[Any]
    conn: _CurlConnection


class CurlMulti:
    """Many transfers at once on one libcurl multi handle, all driven by one thread.

    A task is a generator of steps (:meth:`Transferer.fetch_steps` and what calls it). It
    holds one easy handle while it lives; the handles share libcurl's connection cache, so
    connections stay alive across tasks. libcurl moves the bytes without the GIL, and no
    thread waits on another: at thousands of small files per second this is several times
    cheaper than one blocking transfer per thread. ``on_exit`` hears how each task ended
    (``None``, or the exception that escaped it).
    """

    def __init__(
        self,
        transferer: Transferer,
        slots: int,
        on_exit: Callable[[BaseException | None], None],
        *,
        inline_sync_below: float = SLOW_SYNC_SECONDS,
    ):
        assert pycurl is not None
        transferer.fsync.helpers = True
        transferer.fsync.slow = inline_sync_below
        self.stop = transferer.stop
        self.on_exit = on_exit
        self.multi = pycurl.CurlMulti()
        self._idle = [
            _CurlConnection(transferer.connect_timeout, transferer.read_timeout)
            for _ in range(max(1, slots))
        ]
        self._waiting: dict[int, tuple[_Task, _CurlGet | _CurlHead]] = {}  # by id(handle)
        self._sleeping: list[tuple[float, int, _Task]] = []
        self._order = itertools.count()
        self.active = 0
        # fsync runs in this thread while it is cheap (tmpfs, a fast SSD); on a disk where it
        # is slow it would stall every transfer here, so it moves to helpers (see _Fsync).
        self._sync_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._synced: queue.SimpleQueue[tuple[_Task, BaseException | None]] = queue.SimpleQueue()
        self._syncing = 0

    @property
    def free(self) -> int:
        """How many more tasks fit."""
        return len(self._idle)

    def submit(self, steps: Steps[Any]) -> None:
        """Start a task (there must be a free slot)."""
        task = _Task(steps, self._idle.pop())
        self.active += 1
        self._advance(task, None, None)

    def poll(self, timeout: float) -> None:
        """Move every task on; wait up to ``timeout`` seconds for the network first."""
        if self.stop.is_set():
            self.cancel_all()
            return
        wait = timeout
        libcurl_wants = self.multi.timeout()  # ms until libcurl has timers to run; -1: none
        if libcurl_wants >= 0:
            wait = min(wait, libcurl_wants / 1000)
        if self._sleeping:
            wait = max(0.0, min(wait, self._sleeping[0][0] - time.monotonic()))
        if self._syncing:
            wait = min(wait, SYNC_POLL_SECONDS)
        if self._waiting:
            self.multi.select(wait)
        elif wait > 0:
            self.stop.wait(wait)
        while True:
            code, _running = self.multi.perform()
            if code != pycurl.E_CALL_MULTI_PERFORM:
                break
        while True:
            queued, done, failed = self.multi.info_read()
            for curl in done:
                self._completed(curl, None)
            for curl, code, message in failed:
                self._completed(curl, pycurl.error(code, message))
            if not queued:
                break
        now = time.monotonic()
        while self._sleeping and self._sleeping[0][0] <= now:
            _, _, task = heapq.heappop(self._sleeping)
            self._advance(task, None, None)
        self._collect_synced(block=False)

    def _collect_synced(self, block: bool) -> None:
        while self._syncing:
            try:
                task, error = self._synced.get(timeout=1.0) if block else self._synced.get_nowait()
            except queue.Empty:
                return
            self._syncing -= 1
            self._advance(task, None, error)
            block = False

    def cancel_all(self) -> None:
        """The run stops: every task hears :class:`Cancelled` (their ``.part`` files stay).

        A file being synced has been verified: it finishes (renamed into place) first."""
        while self._waiting or self._sleeping or self._syncing:
            self._collect_synced(block=True)
            for key, (task, pending) in list(self._waiting.items()):
                del self._waiting[key]
                self.multi.remove_handle(task.conn.curl)
                pending.abandon()
                self._advance(task, None, Cancelled())
            while self._sleeping:
                _, _, task = heapq.heappop(self._sleeping)
                self._advance(task, None, Cancelled())

    def close(self) -> None:
        """Cancel what is left and free every handle."""
        self.cancel_all()
        if self._sync_pool is not None:
            self._sync_pool.shutdown(wait=True)
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        self.multi.close()

    def _sync(self, task: _Task, path: Path) -> None:
        """Hand ``path``'s fsync to a helper thread; poll() resumes the task after it."""
        if self._sync_pool is None:
            self._sync_pool = concurrent.futures.ThreadPoolExecutor(
                SYNC_THREADS, thread_name_prefix="mlhub-sync-fsync"
            )
        self._syncing += 1
        self._sync_pool.submit(self._sync_for, task, path)

    def _sync_for(self, task: _Task, path: Path) -> None:
        try:
            _sync_file(path)
        except BaseException as exc:  # handed to the task
            self._synced.put((task, exc))
        else:
            self._synced.put((task, None))

    def _completed(self, curl: Any, error: Any) -> None:
        task, pending = self._waiting.pop(id(curl))
        self.multi.remove_handle(curl)
        try:
            value = pending.complete(error)
        except BaseException as exc:  # the task's steps decide what it means
            self._advance(task, None, exc)
        else:
            self._advance(task, value, None)

    def _advance(self, task: _Task, value: Any, error: BaseException | None) -> None:
        """Send the task its last operation's result; start its next operation."""
        while True:
            try:
                op = task.steps.throw(error) if error is not None else task.steps.send(value)
            except StopIteration:
                self._end(task, None)
                return
            except BaseException as exc:  # handed to on_exit
                self._end(task, exc)
                return
            value, error = None, None
            if isinstance(op, _Sync):
                self._sync(task, op.path)
                return  # a helper thread syncs it; poll() picks the task up again
            if isinstance(op, _Sleep):
                if self.stop.is_set():
                    error = Cancelled()
                    continue
                wake = time.monotonic() + op.seconds
                heapq.heappush(self._sleeping, (wake, next(self._order), task))
                return
            try:
                conn = task.conn
                pending = conn.start_head(op) if isinstance(op, _Head) else conn.start_get(op)
                self.multi.add_handle(conn.curl)
            except BaseException as exc:  # the task's steps decide what it means
                error = exc
                continue
            self._waiting[id(conn.curl)] = (task, pending)
            return

    def _end(self, task: _Task, error: BaseException | None) -> None:
        self._idle.append(task.conn)
        self.active -= 1
        self.on_exit(error)


class _Reply:
    """Status and headers of the *final* response (redirects reset them)."""

    def __init__(self) -> None:
        self.status = 0
        self.lines: list[str] = []

    def on_header(self, line: bytes) -> None:
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text.startswith("HTTP/"):
            parts = text.split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.lines = []
        elif text and ":" in text:
            self.lines.append(text)

    def headers(self) -> urllib3.HTTPHeaderDict:
        result = urllib3.HTTPHeaderDict()
        for line in self.lines:
            name, _, value = line.partition(":")
            result.add(name.strip(), value.strip())
        return result


def _log_request(method: str, url: str, headers: Mapping[str, str], status: int) -> None:
    if log.isEnabledFor(logging.DEBUG):
        extra = f" ({headers['Range']})" if "Range" in headers else ""
        log.debug("%s %s%s -> %s", method, redact_url(url), extra, status)


def _decoder(sink: _Sink) -> Any:
    encoding = sink.headers.get("Content-Encoding", "").lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise TransferError(
        f"the server sent the body in an encoding we did not ask for ({encoding})",
        subject=redact_url(sink.req.url),
        retryable=False,
        error_class="bad-encoding",
    )


def _curl_error(exc: Any, url: str) -> TransferError:
    code = exc.args[0] if exc.args else 0
    message = exc.args[1] if len(exc.args) > 1 else str(exc)
    kind, retryable = _CURL_ERRORS.get(code, ("connection", True))
    text = redact_text(str(message))
    if kind == "redirect-loop":
        text = "too many redirects"
    elif kind == "bad-url":
        text = f"unusable URL or redirect: {text}"
    else:
        text = f"{kind} error: {text}"
    return TransferError(text, subject=redact_url(url), retryable=retryable, error_class=kind)


class _Sink:
    """The body of one response going into ``{path}.part``: written, hashed and counted.

    Backends feed it chunks (:meth:`write`); :meth:`finish` checks the length and returns the
    outcome; :meth:`fail` turns a network error into a failed attempt that keeps what arrived.
    """

    def __init__(
        self,
        req: TransferRequest,
        part: Path,
        offset: int,
        total: int | None,
        validator: str | None,
        headers: urllib3.HTTPHeaderDict,
        status: int,
        decode: bool,
        hashes: _Hashes,
        stop: threading.Event,
        fsync: _Fsync,
    ):
        self.req, self.part, self.offset, self.total = req, part, offset, total
        self.fsync = fsync
        self.validator, self.headers, self.status, self.decode = validator, headers, status, decode
        self.hashes, self.stop = hashes, stop
        self.received = 0
        self.fd: int | None = None
        if not offset:
            self.fd = _create_fresh(part)
            return
        try:
            self.fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _local_error(exc, part) from exc
        try:
            _hash_existing(part, offset, hashes)
            os.ftruncate(self.fd, offset)
            os.lseek(self.fd, offset, os.SEEK_SET)
        except BaseException:
            self.close()
            raise

    def write(self, chunk: bytes) -> None:
        """Append a chunk of the body (raises :class:`Cancelled` when the run stops)."""
        assert self.fd is not None
        _write_all(self.fd, chunk, self.part)
        self.hashes.update(chunk)
        self.received += len(chunk)
        if self.stop.is_set():
            raise Cancelled()

    def fail(self, error: TransferError) -> NoReturn:
        """The connection failed mid-body: keep what arrived for the next attempt."""
        if self.fd is not None:
            os.fsync(self.fd)
        raise _Attempt(error, self.received, self.validator) from None

    def finish(self) -> _Outcome:
        """The body is complete: check its length, and make it durable (or say it is not)."""
        assert self.fd is not None
        size = self.offset + self.received
        if not self.decode and self.total is not None and size != self.total:
            os.fsync(self.fd)  # kept for a resume: its bytes must be on disk
            raise _Attempt(
                TransferError(
                    f"got {size} of {self.total} bytes",
                    subject=redact_url(self.req.url),
                    retryable=True,
                    error_class="truncated",
                ),
                self.received,
                self.validator,
            )
        try:
            synced = self.fsync.here(self.fd)
        except OSError as exc:
            raise _local_error(exc, self.part) from exc
        return _Outcome(
            size,
            self.received,
            self.validator,
            self.hashes,
            self.headers,
            self.status,
            self.decode,
            synced,
        )

    def close(self) -> None:
        """Close the part file (idempotent)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass(frozen=True)
class _Outcome:
    size: int
    received: int
    validator: str | None
    hashes: _Hashes
    headers: Mapping[str, str]
    status: int
    decoded: bool
    synced: bool = True  # False: the caller must sync it (a _Sync step) before the rename


class _Attempt(Exception):  # noqa: N818 - internal: a failed attempt and what it achieved
    def __init__(self, error: TransferError, received: int, validator: str | None):
        super().__init__(error.message)
        self.error = error
        self.received = received
        self.validator = validator


class _ChecksumMismatch(Exception):  # noqa: N818 - internal
    def __init__(self, message: str, source: str = "", md5: str | None = None):
        super().__init__(message)
        self.source = source  # which evidence disagreed
        self.md5 = md5  # what we received


def _redirects() -> urllib3.Retry:
    # urllib3 follows up to 10 redirects; our own loop does every other retry.
    return urllib3.Retry(
        total=None,
        connect=0,
        read=0,
        status=0,
        other=0,
        redirect=10,
        raise_on_redirect=True,
        raise_on_status=False,
    )


def _host_headers(url: str) -> dict[str, str]:
    if _AZURE_HOST not in url.lower():
        return {}  # the common case, without parsing the URL
    host = urlsplit(url).hostname or ""
    # Old Azure storage versions answer open-ended Range requests with 200 (MLHUB_API.md).
    return {"x-ms-version": "2021-06-08"} if host.endswith(_AZURE_HOST) else {}


def _strong(validator: str) -> bool:
    return validator.startswith('"')


def _part_size(part: Path) -> int:
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def _sync_file(path: Path) -> None:
    """fsync the file at ``path`` (through a new descriptor: fsync applies to the inode)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _local_error(exc, path) from exc


def _create_fresh(part: Path) -> int:
    """Open a new, empty ``part`` on a fresh inode.

    Never truncate an existing one in place: a ``.part`` left by an interrupted hard link
    shares its inode with a good file elsewhere, which truncating would destroy.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        try:
            return os.open(part, flags, 0o644)
        except FileExistsError:
            _discard(part)
            return os.open(part, flags, 0o644)
    except OSError as exc:
        raise _local_error(exc, part) from exc


def _discard(part: Path) -> None:
    try:
        part.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _local_error(exc, part) from exc


def _hash_existing(part: Path, upto: int, hashes: _Hashes) -> None:
    if not hashes.enabled:
        return
    with part.open("rb") as existing:
        remaining = upto
        while remaining > 0:
            block = existing.read(min(CHUNK, remaining))
            if not block:
                raise _Restart("the part file shrank while resuming", free=True)
            hashes.update(block)
            remaining -= len(block)


def _write_all(fd: int, data: bytes, part: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        raise _local_error(exc, part) from exc


def _range_start(headers: Mapping[str, str]) -> int | None:
    match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _part_is_whole_file(
    req: TransferRequest,
    claim: Multihash | None,
    headers: Mapping[str, str],
    offset: int,
    validator: str | None,
) -> bool:
    """A 416 to ``Range: bytes={offset}-`` says the part may already be the whole file.

    Only when the server's size is exactly the part's, and there is evidence that it is the
    same version: the server's ETag equal to the part's (strong) validator, or a checksum
    that will verify the bytes. Anything else starts over, as before.
    """
    match = _UNSATISFIED_RANGE.match(headers.get("Content-Range", ""))
    if match is None or int(match.group(1)) != offset:
        return False
    if req.size is not None and req.size != offset:
        return False
    etag = headers.get("ETag")
    strong = validator is not None and _strong(validator)
    if etag and strong and etag != validator:
        return False  # the file changed since the part was written
    has_checksum = claim is not None and req.checksum_mode != "off"
    return bool(etag and strong) or has_checksum


def _total_size(headers: Mapping[str, str], status: int) -> int | None:
    """The whole file's size: from Content-Range on a 206, else Content-Length."""
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        if match and match.group(3) != "*":
            return int(match.group(3))
        return None
    if headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
        return None
    length = headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _status_error(status: int, headers: Mapping[str, str], url: str) -> TransferError:
    retryable = is_retryable_status(status)
    hint = None
    if status in (401, 403):
        hint = "the asset host refused access; the dataset may need a signed URL or a key"
    elif status in (404, 410):
        hint = "the catalog points at a file the host does not have"
    return TransferError(
        f"HTTP {status}",
        subject=redact_url(url),
        retryable=retryable,
        error_class=f"http-{status}",
        status=status,
        retry_after=parse_retry_after(headers.get("Retry-After"), time.time()),
        hint=hint,
    )


def _network_error(exc: BaseException, url: str) -> TransferError:
    reason: Any = getattr(exc, "reason", None) or exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(
        reason, urllib3.exceptions.ResponseError
    ):
        return TransferError(
            "too many redirects",
            subject=redact_url(url),
            retryable=False,
            error_class="redirect-loop",
        )
    if isinstance(reason, urllib3.exceptions.LocationValueError | ValueError) or isinstance(
        exc, urllib3.exceptions.LocationValueError
    ):
        return TransferError(
            f"unusable URL or redirect: {redact_text(str(reason))}",
            subject=redact_url(url),
            retryable=False,
            error_class="bad-url",
        )
    # NewConnectionError (refused, unreachable) subclasses ConnectTimeoutError in urllib3 2.
    timed_out = isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
        reason, urllib3.exceptions.NewConnectionError
    )
    kind = "timeout" if timed_out else "connection"
    text = redact_text(str(reason))
    return TransferError(
        f"{kind} error: {text}", subject=redact_url(url), retryable=True, error_class=kind
    )


def _local_error(exc: OSError, where: Path) -> Exception:
    text = exc.strerror or str(exc)
    if exc.errno in FATAL_ERRNOS:
        return FatalLocalError(
            f"cannot write: {text}",
            subject=str(where),
            hint="free disk space or fix the output folder's permissions, then run apply again",
        )
    return TransferError(
        f"cannot write: {text}", subject=str(where), retryable=False, error_class="local-write"
    )


def copy_or_link(source: Path, dest: Path) -> None:
    """Place ``source``'s bytes at ``dest`` (whose folder exists): a hard link when possible,
    else a copy."""
    tmp = Path(f"{dest}.part")
    _discard(tmp)
    try:
        os.link(source, tmp)
    except OSError:
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            _discard(tmp)
            raise _local_error(exc, dest) from exc
    try:
        os.replace(tmp, dest)
    except OSError as exc:
        raise _local_error(exc, dest) from exc
