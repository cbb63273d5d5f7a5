"""A real HTTP/1.1 server on 127.0.0.1 for exercising the downloader in tests.

The server is stdlib only (``ThreadingHTTPServer`` + ``BaseHTTPRequestHandler``) and serves:

* blob files under ``<root>/blobs`` at ``/blobs/<rel>`` with Range, ETag, Last-Modified,
  conditional requests and optional MD5 headers (see :class:`TestServer`);
* JSON routes, redirects and extra file routes registered by the test;
* API-key and User-Agent checks;
* scripted faults (:class:`Fault`), FIFO per path, or random faults at a seeded rate;
* streamed bodies the test writes itself (:meth:`TestServer.add_stream_route`): chunked,
  close-delimited or with a Content-Length of the test's choosing, as slow or as endless as
  its generator (a drip, a body longer than the catalog says, a decompression bomb).

Every GET/HEAD request is recorded exactly once in a thread-safe log of
:class:`RequestRecord` entries.  Reading the log waits (bounded) until requests already being
answered have been recorded, so a test that has received a response always sees its record.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import itertools
import json
import mimetypes
import random
import re
import socket
import socketserver
import struct
import sys
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Final
from urllib.parse import parse_qsl, unquote

__all__ = ["ETAG_STYLES", "FAULT_KINDS", "MD5_HEADERS", "Fault", "RequestRecord", "TestServer"]

FAULT_KINDS: Final[frozenset[str]] = frozenset(
    {
        "status",
        "reset",
        "truncate",
        "corrupt",
        "ignore_range",
        "wrong_range",
        "etag_change",
        "stall",
        "html",
        "gzip",
        "long_body",
    }
)
"""Every fault kind understood by :class:`Fault`."""

ETAG_STYLES: Final[frozenset[str]] = frozenset({"md5", "opaque", "multipart", "encrypted", "none"})
"""Accepted values of ``TestServer(etag_style=...)``."""

MD5_HEADERS: Final[frozenset[str]] = frozenset({"content-md5", "azure"})
"""Accepted non-None values of ``TestServer(md5_header=...)``."""

CHUNK_SIZE: Final = 64 * 1024
LONG_BODY_EXTRA: Final = 100
DEFAULT_FAULT_BODY: Final = b"fault"
DEFAULT_HTML_BODY: Final = b"<html><body>Error</body></html>"

_BLOB_PREFIX: Final = "/blobs/"
_SETTLE_TIMEOUT: Final = 2.0
_POLL_INTERVAL: Final = 0.01  # bounds how long stop() waits for serve_forever to notice
_JOIN_TIMEOUT: Final = 5.0
_RANGE_RE: Final = re.compile(r"bytes=(\d*)-(\d*)")
_CONNECTION_ERRORS: Final = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
_Chunks = Generator[bytes, None, None]
_RANGE_BLIND_FAULTS: Final = frozenset({"ignore_range", "gzip"})
_REPLACING_FAULTS: Final = frozenset({"status", "html"})


# --------------------------------------------------------------------------- public records


@dataclass(frozen=True)
class RequestRecord:
    """One request as seen by the server.

    ``path`` is percent-decoded and has no query string.  ``status`` is 0 when no status line
    was sent (a stall, or a connection lost before the headers went out).  ``body_bytes`` counts
    the body bytes actually written to the socket.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    body_bytes: int
    client_port: int = 0  # the same port on two records: the same (kept-alive) connection


@dataclass(frozen=True)
class Fault:
    """A scripted misbehaviour for one request.

    ``kind`` is one of :data:`FAULT_KINDS`.  ``status``/``retry_after``/``body`` apply to
    ``"status"`` (``body`` also to ``"html"``); ``after_bytes`` to ``"reset"`` and
    ``"truncate"`` (a negative value means "half of the body"); ``seconds`` to ``"stall"``,
    which sends nothing at all, or, with ``after_bytes > 0``, the headers and that many body
    bytes before it goes silent.
    """

    kind: str
    status: int = 503
    retry_after: str | None = None
    after_bytes: int = 0
    seconds: float = 0.0
    body: bytes | None = None

    def __post_init__(self) -> None:
        """Reject unknown kinds and nonsensical parameters early, in the test that made them."""
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"fault status {self.status} is not an HTTP status code")
        if self.seconds < 0:
            raise ValueError("fault seconds must be >= 0")


# --------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class _Body:
    """A response body: in-memory bytes or a window of a file, streamed in chunks."""

    length: int
    data: bytes = b""
    file: Path | None = None
    offset: int = 0

    @classmethod
    def of(cls, data: bytes) -> _Body:
        """Body holding ``data``."""
        return cls(length=len(data), data=data)

    @classmethod
    def window(cls, file: Path, offset: int, length: int) -> _Body:
        """Body streaming ``length`` bytes of ``file`` starting at ``offset``."""
        return cls(length=length, file=file, offset=offset)

    def chunks(self) -> _Chunks:
        """Yield the body in chunks of at most :data:`CHUNK_SIZE` bytes."""
        if self.file is None:
            for start in range(0, self.length, CHUNK_SIZE):
                yield self.data[start : start + CHUNK_SIZE]
            return
        with self.file.open("rb") as handle:
            handle.seek(self.offset)
            remaining = self.length
            while remaining > 0:
                chunk = handle.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    def read_all(self) -> bytes:
        """The whole body as bytes."""
        return b"".join(self.chunks())


_EMPTY: Final = _Body.of(b"")


@dataclass(frozen=True)
class _Response:
    """Status, headers (Content-Length excluded; it is derived from the body) and body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: _Body = _EMPTY


@dataclass(frozen=True)
class _Request:
    """The parts of a request that routing and logging need."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


def _bodyless(status: int) -> bool:
    """Whether a response with this status never carries a body (nor Content-Length)."""
    return 100 <= status < 200 or status in (204, 304)


def _json_response(status: int, obj: object) -> _Response:
    """A JSON response."""
    body = json.dumps(obj).encode()
    return _Response(status, {"Content-Type": "application/json"}, _Body.of(body))


def _fault_response(fault: Fault) -> _Response:
    """The response that replaces the normal one for ``"status"`` and ``"html"`` faults."""
    if fault.kind == "html":
        body = DEFAULT_HTML_BODY if fault.body is None else fault.body
        return _Response(200, {"Content-Type": "text/html"}, _Body.of(body))
    headers = {"Content-Type": "text/plain"}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    body = DEFAULT_FAULT_BODY if fault.body is None else fault.body
    return _Response(fault.status, headers, _EMPTY if _bodyless(fault.status) else _Body.of(body))


def _gzipped(response: _Response) -> _Response:
    """``response`` with a gzip-compressed body and ``Content-Encoding: gzip``."""
    if _bodyless(response.status):
        return response
    data = gzip.compress(response.body.read_all(), mtime=0)
    headers = {**response.headers, "Content-Encoding": "gzip"}
    return replace(response, headers=headers, body=_Body.of(data))


# --------------------------------------------------------------------------- body faults


def _break_point(fault: Fault, length: int) -> int:
    """How many body bytes a ``"reset"``/``"truncate"`` fault lets through."""
    if fault.after_bytes < 0:
        return length // 2
    return min(fault.after_bytes, length)


def _take_bytes(chunks: _Chunks, limit: int) -> _Chunks:
    """The first ``limit`` bytes of ``chunks`` (closing ``chunks`` early, releasing its file)."""
    with closing(chunks):
        remaining = limit
        for chunk in chunks:
            if remaining <= 0:
                return
            piece = chunk[:remaining]
            remaining -= len(piece)
            yield piece


def _flip_byte(chunks: _Chunks, index: int) -> _Chunks:
    """``chunks`` with the byte at absolute position ``index`` inverted."""
    position = 0
    for chunk in chunks:
        if position <= index < position + len(chunk):
            mutable = bytearray(chunk)
            mutable[index - position] ^= 0xFF
            yield bytes(mutable)
        else:
            yield chunk
        position += len(chunk)


def _append(chunks: _Chunks, extra: bytes) -> _Chunks:
    """``chunks`` followed by ``extra``."""
    yield from chunks
    yield extra


def _faulty_chunks(body: _Body, fault: Fault | None) -> _Chunks:
    """The chunks to write for ``body``, altered as ``fault`` requires."""
    kind = fault.kind if fault is not None else None
    chunks = body.chunks()
    if fault is not None and (
        kind in ("reset", "truncate") or (kind == "stall" and fault.after_bytes > 0)
    ):
        chunks = _take_bytes(chunks, _break_point(fault, body.length))
    elif kind == "corrupt":
        chunks = _flip_byte(chunks, body.length // 2)
    elif kind == "long_body":
        chunks = _append(chunks, b"X" * LONG_BODY_EXTRA)
    yield from chunks


# --------------------------------------------------------------------------- validators


class _RangeOutcome(Enum):
    """Non-window results of evaluating a Range header."""

    FULL = "full"
    UNSATISFIABLE = "unsatisfiable"


_RangeChoice = tuple[int, int] | _RangeOutcome


def _parse_http_date(value: str) -> float | None:
    """POSIX timestamp of an HTTP-date, or None when ``value`` is not one."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _opaque_tag(tag: str) -> str:
    """An entity tag without its weak prefix, for weak comparison."""
    return tag.strip().removeprefix("W/")


def _is_not_modified(headers: dict[str, str], etag: str | None, mtime: int) -> bool:
    """RFC 9110 If-None-Match / If-Modified-Since evaluation for GET and HEAD."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        wanted = None if etag is None else _opaque_tag(etag)
        return any(_opaque_tag(tag) == wanted for tag in if_none_match.split(","))
    since = _parse_http_date(headers.get("if-modified-since", ""))
    return since is not None and mtime <= since


def _if_range_matches(value: str, etag: str | None, mtime: int) -> bool:
    """Whether an If-Range validator still matches, i.e. the Range may be honoured."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        return etag is not None and value == etag
    since = _parse_http_date(value)
    return since is not None and mtime <= since


def _parse_range(value: str, size: int) -> _RangeChoice:
    """Evaluate a single-range ``bytes=`` header against a representation of ``size`` bytes."""
    match = _RANGE_RE.fullmatch(value.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return _RangeOutcome.FULL
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return _RangeOutcome.UNSATISFIABLE
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return _RangeOutcome.FULL
    if start >= size:
        return _RangeOutcome.UNSATISFIABLE
    return start, min(int(last), size - 1) if last else size - 1


def _shift_range(window: tuple[int, int], size: int) -> _RangeChoice:
    """The window one byte later than requested (the ``"wrong_range"`` fault)."""
    start, end = window
    if start + 1 >= size:
        return _RangeOutcome.FULL
    return start + 1, min(end + 1, size - 1)


# --------------------------------------------------------------------------- blobs


@dataclass(frozen=True)
class _FileInfo:
    """Size, modification time and (when needed) MD5 digest of a served file."""

    size: int
    mtime_ns: int
    md5: bytes | None

    @property
    def mtime(self) -> int:
        """Modification time in whole seconds, the precision of HTTP-dates."""
        return self.mtime_ns // 1_000_000_000

    @property
    def md5_base64(self) -> str:
        """Base64 MD5 of the whole file, as used by Content-MD5."""
        assert self.md5 is not None
        return base64.b64encode(self.md5).decode()


class _BlobResponder:
    """Builds file responses: validators, conditionals, ranges and MD5 headers."""

    def __init__(self, etag_style: str, md5_header: str | None) -> None:
        """Remember the validator flavour; digests are cached per (path, size, mtime)."""
        self._etag_style = etag_style
        self._md5_header = md5_header
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, int, int], bytes] = {}
        self._changes = itertools.count(1)

    def respond(self, file: Path, request: _Request, fault: Fault | None) -> _Response:
        """The response to a GET/HEAD of ``file``."""
        info = self._info(file)
        changed = fault is not None and fault.kind == "etag_change"
        etag = self._changed_etag() if changed else self._etag(info)
        headers = self._entity_headers(file, info, etag)
        if _is_not_modified(request.headers, etag, info.mtime):
            return _Response(304, headers)
        choice = self._choose_range(request.headers, info, etag, fault)
        if choice is _RangeOutcome.UNSATISFIABLE:
            headers["Content-Range"] = f"bytes */{info.size}"
            return _Response(416, headers)
        if choice is _RangeOutcome.FULL:
            self._add_md5(headers, info, partial=False)
            return _Response(200, headers, _Body.window(file, 0, info.size))
        start, end = choice
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
        self._add_md5(headers, info, partial=True)
        return _Response(206, headers, _Body.window(file, start, end - start + 1))

    def _info(self, file: Path) -> _FileInfo:
        """Stat ``file`` and compute its MD5 if any header needs it."""
        stat = file.stat()
        needs_md5 = (
            self._etag_style in ("md5", "multipart", "encrypted") or self._md5_header is not None
        )
        digest = self._digest(file, stat.st_size, stat.st_mtime_ns) if needs_md5 else None
        return _FileInfo(stat.st_size, stat.st_mtime_ns, digest)

    def _digest(self, file: Path, size: int, mtime_ns: int) -> bytes:
        """MD5 digest of ``file``, cached while its size and mtime are unchanged."""
        key = (str(file), size, mtime_ns)
        with self._lock:
            cached = self._digests.get(key)
        if cached is not None:
            return cached
        digest = hashlib.md5(usedforsecurity=False)
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
                digest.update(chunk)
        with self._lock:
            self._digests[key] = digest.digest()
        return digest.digest()

    def _etag(self, info: _FileInfo) -> str | None:
        """The quoted ETag for ``info`` in the configured style (None for ``"none"``)."""
        if self._etag_style == "none":
            return None
        if self._etag_style == "opaque":
            token = f"{info.size}:{info.mtime_ns}".encode()
            return f'"{hashlib.sha1(token, usedforsecurity=False).hexdigest()}"'
        assert info.md5 is not None
        if self._etag_style == "md5":
            return f'"{info.md5.hex()}"'
        if self._etag_style == "encrypted":  # S3 SSE-KMS: 32 hex digits that are not the MD5
            return f'"{hashlib.md5(b"sse" + info.md5, usedforsecurity=False).hexdigest()}"'
        return f'"{hashlib.md5(info.md5, usedforsecurity=False).hexdigest()}-3"'

    def _changed_etag(self) -> str:
        """A fresh ETag that matches nothing a client has seen."""
        with self._lock:
            return f'"changed-{next(self._changes)}"'

    @staticmethod
    def _entity_headers(file: Path, info: _FileInfo, etag: str | None) -> dict[str, str]:
        """Headers describing the representation, common to every file response."""
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        headers = {
            "Content-Type": content_type,
            "Accept-Ranges": "bytes",
            "Last-Modified": formatdate(info.mtime, usegmt=True),
        }
        if etag is not None:
            headers["ETag"] = etag
        return headers

    @staticmethod
    def _choose_range(
        headers: dict[str, str], info: _FileInfo, etag: str | None, fault: Fault | None
    ) -> _RangeChoice:
        """Which part of the file to send, honouring If-Range and range-related faults."""
        kind = fault.kind if fault is not None else None
        value = headers.get("range")
        if value is None or kind in _RANGE_BLIND_FAULTS:
            return _RangeOutcome.FULL
        if_range = headers.get("if-range")
        if if_range is not None and (
            kind == "etag_change" or not _if_range_matches(if_range, etag, info.mtime)
        ):
            return _RangeOutcome.FULL
        choice = _parse_range(value, info.size)
        if kind == "wrong_range" and isinstance(choice, tuple):
            return _shift_range(choice, info.size)
        return choice

    def _add_md5(self, headers: dict[str, str], info: _FileInfo, *, partial: bool) -> None:
        """Add the configured whole-file MD5 header, if any."""
        if self._md5_header is None:
            return
        name = "x-ms-blob-content-md5" if partial and self._md5_header == "azure" else "Content-MD5"
        headers[name] = info.md5_base64


# --------------------------------------------------------------------------- application


@dataclass(frozen=True)
class _JsonRoute:
    status: int
    body: bytes


@dataclass(frozen=True)
class _RedirectRoute:
    status: int
    location: str


@dataclass(frozen=True)
class _FileRoute:
    file: Path


Chunks = Callable[[threading.Event], Iterable[bytes]]
"""A streamed body: called with the server's ``stopping`` event, yields the body's blocks."""


FRAMINGS: Final = frozenset({"chunked", "close", "length"})


@dataclass(frozen=True)
class _StreamRoute:
    chunks: Chunks
    headers: dict[str, str]
    framing: str
    length: int | None
    status: int


Handler = Callable[[dict[str, str], dict[str, str]], tuple[int, object]]
"""A scripted route: called with a request's query and (lower-cased) headers, it answers
``(status, a JSON value)``; it may count, change its answer over time, or refuse."""


Gate = Callable[[dict[str, str], dict[str, str]], int | None]
"""A check in front of a path prefix: ``None`` lets the request through, a status refuses it."""


@dataclass(frozen=True)
class _HandlerRoute:
    handler: Handler


_Route = _JsonRoute | _RedirectRoute | _FileRoute | _StreamRoute | _HandlerRoute


class _App:
    """Routing, faults and the request log, shared by all handler threads."""

    def __init__(self, root: Path, blobs: _BlobResponder, require_user_agent: bool) -> None:
        """Create empty routing tables; all mutable state is guarded by one lock."""
        self._blob_dir = root / "blobs"
        self._blobs = blobs
        self._require_user_agent = require_user_agent
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._routes: dict[str, _Route] = {}
        self._keys: dict[str, str] = {}
        self._gates: dict[str, Gate] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._rng: random.Random | None = None
        self._fault_rate = 0.0
        self._fault_kinds: tuple[str, ...] = ()
        self._log: list[RequestRecord] = []
        self._inflight = 0
        self.stopping = threading.Event()

    # configuration ---------------------------------------------------------------------

    def add_route(self, path: str, route: _Route) -> None:
        """Serve ``route`` at exactly ``path``."""
        with self._lock:
            self._routes[path] = route

    def require_key(self, path_prefix: str, key: str) -> None:
        """Demand ``?key=<key>`` on every path under ``path_prefix``."""
        with self._lock:
            self._keys[path_prefix] = key

    def add_gate(self, path_prefix: str, gate: Gate) -> None:
        """Ask ``gate`` about every request under ``path_prefix``."""
        with self._lock:
            self._gates[path_prefix] = gate

    def add_faults(self, path: str, faults: Sequence[Fault]) -> None:
        """Queue ``faults`` for ``path``."""
        with self._lock:
            self._faults.setdefault(path, deque()).extend(faults)

    def set_fault_rate(self, rate: float, seed: int, kinds: Sequence[str]) -> None:
        """Fault blob requests at random with probability ``rate``."""
        with self._lock:
            self._rng = random.Random(seed)
            self._fault_rate = rate
            self._fault_kinds = tuple(kinds)

    # request log -----------------------------------------------------------------------

    def begin(self) -> None:
        """Note that a request is being answered (the log is unsettled until it is recorded)."""
        with self._lock:
            self._inflight += 1

    def record(self, entry: RequestRecord) -> None:
        """Append ``entry`` and mark its request as answered."""
        with self._settled:
            self._log.append(entry)
            self._inflight -= 1
            self._settled.notify_all()

    def records(self) -> list[RequestRecord]:
        """A copy of the log, once requests in progress are recorded (bounded wait)."""
        with self._settled:
            self._settled.wait_for(lambda: self._inflight == 0, timeout=_SETTLE_TIMEOUT)
            return list(self._log)

    def clear_log(self) -> None:
        """Forget all records (after requests in progress are recorded)."""
        with self._settled:
            self._settled.wait_for(lambda: self._inflight == 0, timeout=_SETTLE_TIMEOUT)
            self._log.clear()

    # answering -------------------------------------------------------------------------

    def stream_route(self, path: str) -> _StreamRoute | None:
        """The streamed body registered at ``path``, if any."""
        with self._lock:
            route = self._routes.get(path)
        return route if isinstance(route, _StreamRoute) else None

    def take_fault(self, path: str) -> Fault | None:
        """Pop the next scripted fault for ``path``, else maybe draw a random one."""
        with self._lock:
            queue = self._faults.get(path)
            if queue:
                return queue.popleft()
            if not path.startswith(_BLOB_PREFIX) or self._rng is None:
                return None
            if self._rng.random() >= self._fault_rate:
                return None
            kind = self._rng.choice(self._fault_kinds)
        return Fault(kind=kind, status=503, retry_after="0", after_bytes=-1)

    def respond(self, request: _Request, fault: Fault | None) -> _Response:
        """The response for ``request`` with ``fault`` applied (except stalls and body faults)."""
        if fault is not None and fault.kind in _REPLACING_FAULTS:
            return _fault_response(fault)
        response = self._denial(request) or self._route(request, fault)
        if fault is not None and fault.kind == "gzip":
            return _gzipped(response)
        return response

    def _denial(self, request: _Request) -> _Response | None:
        """403/401 when the User-Agent or API-key requirements are not met."""
        if self._require_user_agent and not request.headers.get("user-agent"):
            return _json_response(403, {"detail": "A User-Agent header is required."})
        with self._lock:
            keys = list(self._keys.items())
        supplied = request.query.get("key", "").encode()
        for prefix, key in keys:
            if request.path.startswith(prefix) and not hmac.compare_digest(supplied, key.encode()):
                return _json_response(401, {"detail": "Missing or invalid API key."})
        with self._lock:
            gates = [
                gate for prefix, gate in self._gates.items() if request.path.startswith(prefix)
            ]
        for gate in gates:
            status = gate(request.query, request.headers)
            if status is not None:
                return _json_response(status, {"detail": "refused by the test's gate"})
        return None

    def _route(self, request: _Request, fault: Fault | None) -> _Response:
        """Dispatch to a registered route or a blob; 404 otherwise."""
        with self._lock:
            route = self._routes.get(request.path)
        match route:
            case _JsonRoute(status=status, body=body):
                return _Response(status, {"Content-Type": "application/json"}, _Body.of(body))
            case _RedirectRoute(status=status, location=location):
                return _Response(status, {"Location": location})
            case _FileRoute(file=file):
                return self._file(file, request, fault)
            case _HandlerRoute(handler=handler):
                status, obj = handler(request.query, request.headers)
                return _json_response(status, obj)
        if request.path.startswith(_BLOB_PREFIX):
            blob = self._resolve_blob(request.path.removeprefix(_BLOB_PREFIX))
            if blob is not None:
                return self._file(blob, request, fault)
        return _json_response(404, {"detail": "Not Found"})

    def _file(self, file: Path, request: _Request, fault: Fault | None) -> _Response:
        """A file response, or 404 if the file cannot be read."""
        try:
            return self._blobs.respond(file, request, fault)
        except OSError:
            return _json_response(404, {"detail": "Not Found"})

    def _resolve_blob(self, relative: str) -> Path | None:
        """The regular file under the blob directory named by ``relative``, if any."""
        try:
            base = self._blob_dir.resolve()
            candidate = (base / relative).resolve()
            if candidate.is_relative_to(base) and candidate.is_file():
                return candidate
        except (OSError, ValueError):
            pass
        return None


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class _Exchange:
    """Per-request progress, turned into exactly one :class:`RequestRecord`."""

    app: _App
    request: _Request
    status: int = 0
    body_bytes: int = 0
    logged: bool = False
    client_port: int = 0

    def log(self) -> None:
        """Record the request (idempotent)."""
        if self.logged:
            return
        self.logged = True
        request = self.request
        self.app.record(
            RequestRecord(
                method=request.method,
                path=request.path,
                query=request.query,
                headers=request.headers,
                status=self.status,
                body_bytes=self.body_bytes,
                client_port=self.client_port,
            )
        )


class _HTTPServer(ThreadingHTTPServer):
    """Threading server that tracks connections so that stopping never waits on clients."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, app: _App) -> None:
        """Bind an ephemeral port on 127.0.0.1."""
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse-DNS lookup of the host name."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.socket.getsockname()[1]

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        """Track the connection, then hand it to a handler thread."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        """Forget the connection, then close it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection so blocked handler threads return at once."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        """Stay quiet about clients that went away; report anything else."""
        if isinstance(sys.exc_info()[1], (*_CONNECTION_ERRORS, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Parses requests and writes responses, applying wire-level faults."""

    protocol_version = "HTTP/1.1"
    server_version = "mlhub-sync-test/1.0"
    timeout = 30
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def version_string(self) -> str:
        """The Server header value (without the Python version)."""
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default per-request stderr logging."""

    def do_GET(self) -> None:
        """Answer GET."""
        self._serve()

    def do_HEAD(self) -> None:
        """Answer HEAD (headers of the equivalent GET, no body)."""
        self._serve()

    def _serve(self) -> None:
        """Answer one request and record it exactly once."""
        app = self.server.app
        exchange = _Exchange(app, self._parse_request(), client_port=self.client_address[1])
        app.begin()
        try:
            self._discard_request_body()
            self._answer(app, exchange)
        except _CONNECTION_ERRORS:
            self.close_connection = True
        finally:
            exchange.log()

    def _parse_request(self) -> _Request:
        """Split the request target and normalise headers."""
        target = self.path.partition("#")[0]
        path, _, query = target.partition("?")
        return _Request(
            method=self.command,
            path=unquote(path),
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
        )

    def _discard_request_body(self) -> None:
        """Read and drop a request body so the connection stays usable."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length > 0:
            self.rfile.read(length)

    def _answer(self, app: _App, exchange: _Exchange) -> None:
        """Pick the fault, build the response and put it on the wire."""
        stream = app.stream_route(exchange.request.path)
        if stream is not None:
            self._stream(app, exchange, stream)
            return
        fault = app.take_fault(exchange.request.path)
        if fault is not None and fault.kind == "stall" and fault.after_bytes <= 0:
            self._stall(app, exchange, fault.seconds)
            return
        response = app.respond(exchange.request, fault)
        self._send_head(response, exchange)
        if exchange.request.method != "HEAD" and not _bodyless(response.status):
            self._send_body(response.body, fault, exchange)
            if fault is not None and fault.kind == "stall":  # silent mid-body
                self.wfile.flush()
                self._stall(app, exchange, fault.seconds)
                return
        self._end_connection_if_faulted(fault)

    def _stream(self, app: _App, exchange: _Exchange, route: _StreamRoute) -> None:
        """Send a streamed body as its generator yields it, framed as the route says."""
        self.send_response(route.status)
        for name, value in route.headers.items():
            self.send_header(name, value)
        if route.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif route.framing == "length":
            self.send_header("Content-Length", str(route.length))
        else:  # close-delimited: the end of the body is the end of the connection
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        exchange.status = route.status
        if exchange.request.method == "HEAD":
            return
        chunked = route.framing == "chunked"
        for block in route.chunks(app.stopping):
            if app.stopping.is_set():
                self.close_connection = True
                return
            if block:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                exchange.body_bytes += len(block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _stall(self, app: _App, exchange: _Exchange, seconds: float) -> None:
        """Send nothing until ``seconds`` pass or the server stops, then close."""
        exchange.log()
        app.stopping.wait(seconds)
        self.close_connection = True

    def _send_head(self, response: _Response, exchange: _Exchange) -> None:
        """Write the status line and headers."""
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if not _bodyless(response.status):
            self.send_header("Content-Length", str(response.body.length))
        self.end_headers()
        exchange.status = response.status

    def _send_body(self, body: _Body, fault: Fault | None, exchange: _Exchange) -> None:
        """Write the body chunk by chunk (altered by body faults)."""
        chunks = _faulty_chunks(body, fault)
        with closing(chunks):
            for chunk in chunks:
                self.wfile.write(chunk)
                exchange.body_bytes += len(chunk)

    def _end_connection_if_faulted(self, fault: Fault | None) -> None:
        """Reset, or cleanly close, the connection after faults that break framing."""
        if fault is None:
            return
        if fault.kind == "reset":
            self._abort_connection()
        elif fault.kind in ("truncate", "long_body"):
            self.close_connection = True

    def _abort_connection(self) -> None:
        """Close with SO_LINGER (1, 0) so the kernel sends RST instead of FIN."""
        self.close_connection = True
        linger = struct.pack("ii", 1, 0)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        self.rfile.close()  # drop the makefile() reference so close() really closes the fd
        self.connection.close()


# --------------------------------------------------------------------------- public server


class TestServer:
    """Real HTTP/1.1 server on 127.0.0.1 serving ``<root>/blobs`` plus scripted routes.

    ``etag_style``: ``"md5"`` (S3 single-part: quoted hex MD5 of the file), ``"opaque"``
    (quoted SHA-1 of size and mtime), ``"multipart"`` (quoted ``<hex>-3``) or ``"none"``.
    ``md5_header``: None, ``"content-md5"`` (whole-file base64 MD5 as Content-MD5 on 200 and
    206) or ``"azure"`` (Content-MD5 on 200, ``x-ms-blob-content-md5`` on 206).
    ``require_user_agent``: answer 403 to requests without a User-Agent.

    Use as a context manager; ``stop()`` returns promptly even with stalled requests or idle
    keep-alive clients.  Order of evaluation per request: scripted/random fault is popped;
    ``"stall"``, ``"status"`` and ``"html"`` replace the response outright (before User-Agent
    and key checks, like a failing proxy in front of the service); otherwise User-Agent and key
    checks, then routes (exact path), then blobs, then 404.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        root: Path,
        *,
        etag_style: str = "md5",
        md5_header: str | None = None,
        require_user_agent: bool = False,
    ) -> None:
        """Configure the server; nothing listens until :meth:`start`."""
        if etag_style not in ETAG_STYLES:
            raise ValueError(f"etag_style must be one of {sorted(ETAG_STYLES)}")
        if md5_header is not None and md5_header not in MD5_HEADERS:
            raise ValueError(f"md5_header must be None or one of {sorted(MD5_HEADERS)}")
        self._app = _App(Path(root), _BlobResponder(etag_style, md5_header), require_user_agent)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> TestServer:
        """Start the server."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def start(self) -> None:
        """Bind 127.0.0.1 on a free port and serve from a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("TestServer is already running")
        self._app.stopping.clear()
        httpd = _HTTPServer(self._app)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"TestServer:{httpd.server_port}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread

    def stop(self) -> None:
        """Release stalls, stop accepting, drop open connections and join the thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        self._app.stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        thread.join(_JOIN_TIMEOUT)

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` without a trailing slash."""
        if self._httpd is None:
            raise RuntimeError("TestServer is not running")
        return f"http://127.0.0.1:{self._httpd.server_port}"

    # routes ----------------------------------------------------------------------------

    def add_json(self, path: str, obj: object, status: int = 200) -> None:
        """Answer GET/HEAD ``path`` with ``obj`` serialised to JSON now (a snapshot)."""
        self._app.add_route(path, _JsonRoute(status, json.dumps(obj).encode()))

    def add_redirect(self, path: str, location: str, status: int = 302) -> None:
        """Redirect ``path`` to ``location`` (absolute URL or path, sent verbatim)."""
        self._app.add_route(path, _RedirectRoute(status, location))

    def add_file_route(self, path: str, file: Path) -> None:
        """Serve ``file`` at exactly ``path`` with blob semantics (Range, ETag, faults)."""
        self._app.add_route(path, _FileRoute(Path(file)))

    def add_stream_route(
        self,
        path: str,
        chunks: Chunks,
        *,
        framing: str = "chunked",
        length: int | None = None,
        headers: dict[str, str] | None = None,
        status: int = 200,
    ) -> None:
        """Answer GET ``path`` with the blocks ``chunks(stopping)`` yields, written as they
        come (a generator may sleep on ``stopping`` between blocks: a drip). ``framing``:
        ``"chunked"``, ``"close"`` (no length; the connection closes after the body) or
        ``"length"`` (``Content-Length: length``, whatever the generator sends). Faults do not
        apply; ``body_bytes`` counts what reached the socket."""
        if framing not in FRAMINGS or (framing == "length") != (length is not None):
            raise ValueError(f"framing must be one of {sorted(FRAMINGS)}; length only with length")
        route = _StreamRoute(chunks, dict(headers or {}), framing, length, status)
        self._app.add_route(path, route)

    def require_key(self, path_prefix: str, key: str) -> None:
        """Answer 401 JSON to requests under ``path_prefix`` lacking ``?key=<key>``."""
        self._app.require_key(path_prefix, key)

    def add_handler(self, path: str, handler: Handler) -> None:
        """Answer GET ``path`` with what ``handler(query, headers)`` says, per request (a
        token endpoint that counts, one whose answer changes). Faults apply first."""
        self._app.add_route(path, _HandlerRoute(handler))

    def add_gate(self, path_prefix: str, gate: Gate) -> None:
        """Ask ``gate(query, headers)`` before answering any request under ``path_prefix``:
        a status it returns is sent instead (an asset host that checks a token or a header)."""
        self._app.add_gate(path_prefix, gate)

    # faults ----------------------------------------------------------------------------

    def add_fault(self, path: str, *faults: Fault) -> None:
        """Queue faults for the exact (decoded) ``path``; each request there pops one."""
        self._app.add_faults(path, faults)

    def set_fault_rate(self, rate: float, seed: int, kinds: Sequence[str]) -> None:
        """Fault ``/blobs/`` requests at random with probability ``rate``.

        The kind is drawn from ``kinds`` by a ``random.Random(seed)``; parameters are the
        defaults except ``status=503``, ``retry_after="0"`` and reset/truncate after half the
        body (so a random ``"stall"`` closes the connection at once without a response).
        Scripted faults take precedence and do not consume random draws; draws are
        deterministic for sequential requests.  ``rate=0`` turns random faults off.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        unknown = set(kinds) - FAULT_KINDS
        if unknown or (rate > 0 and not kinds):
            raise ValueError(f"kinds must be a non-empty subset of {sorted(FAULT_KINDS)}")
        self._app.set_fault_rate(rate, seed, kinds)

    # log -------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, in completion order."""
        return self._app.records()

    def count(self, prefix: str = "", method: str | None = None, status: int | None = None) -> int:
        """Number of logged requests whose path starts with ``prefix`` and that match."""
        return sum(
            1
            for record in self.requests
            if record.path.startswith(prefix)
            and (method is None or record.method == method)
            and (status is None or record.status == status)
        )

    def clear_log(self) -> None:
        """Empty the request log."""
        self._app.clear_log()
