"""The seam between a transfer and a driver: plain data in, plain results out.

A transfer (``rules.py``) is a generator. It yields an operation; the driver carries it out and
sends back a result value; nothing raises across the seam. The conversation of one GET:

==============================  =========================================================
the transfer yields             the driver sends back
==============================  =========================================================
:class:`Get`                    :class:`Response` (status, headers, final URL) once the
                                headers are in, or :class:`Failure` (no response at all)
:class:`Receive` (a sink)       :class:`BodyEnd` once the body has streamed into the sink
  or :data:`DROP`               (a GET's body is not wanted: the driver abandons it) ``None``
:class:`Head`                   :class:`Response` or :class:`Failure`
:class:`Sleep`                  ``None`` after the wait
:class:`Sign` (signer, URL)     :class:`Signed` (the URL and credential headers to send), or
                                :class:`Failure`: the signer's I/O (a token request) runs
                                where it cannot hold up other transfers (a helper thread)
:class:`Sync` (a descriptor)    ``None`` once fsynced, or the ``OSError`` it raised
==============================  =========================================================

A stopping run ends a transfer by closing its generator (``GeneratorExit`` at its ``yield``:
its ``finally`` blocks clean up); the driver then reports it as cancelled.

This module also holds what callers hand the engine (:class:`TransferRequest`) and get back
(:class:`TransferResult`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mlhub_sync.errors import TransferError
from mlhub_sync.net.headers import Headers
from mlhub_sync.net.signing import Signed, Signer

T = TypeVar("T")


class BodySink(Protocol):
    """What a driver needs of where a body goes (``sink.Sink`` is the one there is)."""

    received: int

    def write(self, data: bytes) -> int | None:
        """Take a block of the body; ``0`` stops the body, ``None`` goes on."""
        ...


# -- operations (transfer -> driver) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Get:
    """Send a GET (redirects followed); answer with its final response's status and headers.

    ``credentials`` (a signer's headers) go to ``url``'s origin only: a redirect to another
    origin is followed without them."""

    url: str
    headers: dict[str, str]
    credentials: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Receive:
    """Stream the body of the pending GET into ``sink``; answer with a :class:`BodyEnd`."""

    sink: BodySink


@dataclass(frozen=True, slots=True)
class Drop:
    """Abandon the pending GET's body (an error page, a response that will not be used)."""


DROP = Drop()


@dataclass(frozen=True, slots=True)
class Head:
    """Send a HEAD; answer with a :class:`Response` or a :class:`Failure` (``credentials``
    as for :class:`Get`)."""

    url: str
    headers: dict[str, str]
    credentials: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` (a backoff)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Sync:
    """Make the file open at ``fd`` durable (fsync); the driver picks the thread."""

    fd: int


@dataclass(frozen=True, slots=True)
class Sign:
    """Ask ``signer`` for what to send to ``url`` (:meth:`~Signer.sign`, or with ``refused``
    :meth:`~Signer.renew`); answer with a :class:`Signed` or a :class:`Failure`. The call may
    block (a token request): a driver makes it off its loop."""

    signer: Signer
    url: str
    refused: Signed | None = None
    method: str = "GET"  # the request to be signed: GET, or HEAD

    def __call__(self) -> Signed | Failure:
        """Carry it out here (a driver's helper thread, or a synchronous driver)."""
        try:
            if self.refused is not None:
                return self.signer.renew(self.url, self.refused, self.method)
            return self.signer.sign(self.url, self.method)
        except TransferError as exc:
            return Failure(exc)


Op = Get | Receive | Drop | Head | Sleep | Sync | Sign


Steps = Generator[Op, Any, T]


# -- results (driver -> transfer) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    """The final response's status line and headers (after redirects)."""

    status: int
    headers: Headers
    url: str  # where the response came from (after redirects)


@dataclass(frozen=True, slots=True)
class Failure:
    """No response: the connection failed (refused, reset, timed out, a redirect loop)."""

    error: TransferError


@dataclass(frozen=True, slots=True)
class BodyEnd:
    """The body is over: ``received`` bytes reached the sink; ``error`` says how the connection
    failed before the end (``None``: the body is complete as far as the connection knows)."""

    received: int
    error: TransferError | None


# -- what callers hand the engine, and get back ------------------------------------------------


@dataclass(frozen=True)
class TransferRequest:
    """What to fetch, where to, and what we know about it beforehand."""

    url: str
    dest: Path
    size: int | None = None
    checksum: str | None = None  # STAC file:checksum (hex multihash)
    checksum_mode: str = "auto"  # auto | required | off
    resume_validator: str | None = None
    # A conditional GET: a 304 to these means the copy we hold is current.
    if_none_match: str | None = None
    if_modified_since: str | None = None
    digests: tuple[str, ...] = ()  # hashlib names to compute besides MD5 (e.g. "sha256")
    progress: Progress | None = None  # hears of the body's bytes (one archive, not bulk)
    # The cap on a body whose size nobody knows (None: the engine's max_asset_size), and the
    # setting that raises it, for the message.
    max_size: int | None = None
    max_size_setting: str = "max_asset_size"


class Progress:
    """Hears about a transfer's body: each attempt's ``begin(total)``, then ``update(n)``."""

    def begin(self, total: int | None) -> None:
        """A body starts (``total``: the whole file's size, if known)."""

    def update(self, n: int) -> None:
        """``n`` more bytes arrived."""


@dataclass(frozen=True)
class TransferResult:
    """A verified file at ``dest`` (or, for a 304, the copy held is current)."""

    size: int
    mtime_ns: int
    md5: str | None
    validator: str | None
    verified_by: str
    transferred: int  # bytes received from the network in this run
    attempts: int
    resumed: bool
    url: str = ""  # where the bytes came from (after redirects)
    last_modified: str | None = None
    digests: dict[str, str] = field(default_factory=dict)  # the request's extra digests
    not_modified: bool = False  # a 304 to a conditional GET: nothing was written
    etag: str | None = None

    @classmethod
    def not_modified_by(cls, headers: Headers, url: str, attempts: int) -> TransferResult:
        """The result of a 304 (with these headers, from ``url``): the copy held is current."""
        etag, modified = headers.get("ETag"), headers.get("Last-Modified")
        return cls(
            0, 0, None, etag or modified, "none", 0, attempts, False, url, modified,
            etag=etag, not_modified=True,
        )  # fmt: skip


StartedCallback = Callable[[TransferRequest, str | None, int | None], None]


@dataclass
class FetchState:
    """What one fetch knows about itself, for its caller (one per concurrent transfer)."""

    attempts: int = 0
    # the start of a small file's body, reported only if its transfer ends unfinished
    deferred_start: tuple[TransferRequest, str | None, int | None] | None = None
