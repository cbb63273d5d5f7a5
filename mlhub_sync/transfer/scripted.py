"""A synchronous driver that plays recorded responses to a transfer, without sockets.

It answers each GET/HEAD with the next :class:`Reply` of a script (status, headers, body
chunks; a connection that fails or stalls after N bytes; no response at all) and records every
request (:class:`Sent`: method, URL, headers), backoff and fsync. The same generator the libcurl
driver runs sees the same values, so the transfer rules can be tested (and explored) one
scripted exchange at a time. Bodies go through the real :class:`Sink` onto the real disk.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlhub_sync.errors import TransferError
from mlhub_sync.net.headers import Headers
from mlhub_sync.net.redact import redact_url
from mlhub_sync.transfer.curl import Cancelled
from mlhub_sync.transfer.ops import (
    BodyEnd,
    Drop,
    Failure,
    Get,
    Head,
    Receive,
    Response,
    Sign,
    Sleep,
    Steps,
    Sync,
)

T = TypeVar("T")

# How a scripted connection can fail, and whether a retry may help (as libcurl reports them).
FAILURES = {
    "connection": True,  # refused, reset
    "dns": True,  # the host name does not resolve
    "timeout": True,  # a stall longer than the read timeout
    "truncated": True,  # the body ended before Content-Length
    "redirect-loop": False,
    "bad-url": False,
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    ``status`` 0 means no response at all (the connection failed: ``fail``). Otherwise the
    ``body`` (bytes, or a sequence of chunks as they arrive) is sent; ``fail_after`` cuts it
    after that many bytes with the failure ``fail`` (``"timeout"`` for a stall).
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | Sequence[bytes] = b""
    fail_after: int | None = None
    fail: str = "connection"
    url: str | None = None  # the final URL, when redirects were followed
    seconds: float = 0.0  # how long the exchange takes on the driver's clock (a slow body)

    def chunks(self) -> Iterable[bytes]:
        """The body as it arrives."""
        return (self.body,) if isinstance(self.body, bytes) else self.body


@dataclass(frozen=True)
class Sent:
    """A request as it went out."""

    method: str
    url: str
    headers: Mapping[str, str]

    def header(self, name: str) -> str | None:
        """A request header, by case-insensitive name."""
        return Headers(self.headers).get(name)


class ScriptedDriver:
    """Runs transfers synchronously against ``script`` (a list of replies in order, or one
    list per URL). ``requests``, ``sleeps`` and ``syncs`` record what the transfer did.

    :meth:`clock` is the time the script has taken: each backoff and each reply's ``seconds``
    move it on (give it to ``Transfers(clock=...)`` to test deadlines without waiting)."""

    def __init__(
        self,
        script: Sequence[Reply] | Mapping[str, Sequence[Reply]],
        *,
        stop: threading.Event | None = None,
    ):
        if isinstance(script, Mapping):
            self._by_url: dict[str, deque[Reply]] | None = {
                url: deque(replies) for url, replies in script.items()
            }
            self._queue: deque[Reply] = deque()
        else:
            self._by_url = None
            self._queue = deque(script)
        self.stop = stop or threading.Event()
        self.requests: list[Sent] = []
        self.sleeps: list[float] = []
        self.syncs = 0
        self.now = 0.0

    def clock(self) -> float:
        """Seconds of scripted time so far."""
        return self.now

    @property
    def unused(self) -> int:
        """Replies the transfer never asked for."""
        if self._by_url is not None:
            return sum(len(q) for q in self._by_url.values())
        return len(self._queue)

    def run(self, steps: Steps[T]) -> T:
        """Run ``steps`` to the end: the value it returns, or raise what escaped it
        (:class:`Cancelled` when ``stop`` is set before a request or a backoff)."""
        value: Any = None
        pending: Reply | None = None
        while True:
            try:
                op = steps.send(value)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            value = None
            if isinstance(op, Get | Head | Sleep | Sign) and self.stop.is_set():
                steps.close()
                raise Cancelled()
            if isinstance(op, Get | Head):
                method = "GET" if isinstance(op, Get) else "HEAD"
                self.requests.append(Sent(method, op.url, {**op.headers, **(op.credentials or {})}))
                reply = self._next(op.url)
                self.now += reply.seconds
                if reply.status == 0:
                    value = Failure(_failure(reply.fail, op.url))
                    continue
                value = Response(reply.status, Headers(reply.headers), reply.url or op.url)
                pending = reply if isinstance(op, Get) else None
            elif isinstance(op, Receive):
                assert pending is not None, "Receive without a pending GET"
                value = _stream(pending, op.sink, op.sink.write)
                pending = None
            elif isinstance(op, Drop):
                pending = None
            elif isinstance(op, Sign):
                value = op()  # a synchronous driver has no loop to keep moving
            elif isinstance(op, Sleep):
                self.sleeps.append(op.seconds)
                self.now += op.seconds
            elif isinstance(op, Sync):
                self.syncs += 1
                try:
                    os.fsync(op.fd)
                except OSError as exc:
                    value = exc
            else:  # pragma: no cover - every operation is handled above
                raise AssertionError(f"unknown operation {op!r}")

    def _next(self, url: str) -> Reply:
        queue = self._queue if self._by_url is None else self._by_url.get(url)
        if not queue:
            raise AssertionError(f"the script has no reply left for {url}")
        return queue.popleft()


def _stream(reply: Reply, sink: Any, write: Any) -> BodyEnd:
    """Feed ``reply``'s body to ``write`` the way a connection would."""
    budget = reply.fail_after
    url = reply.url or ""
    for chunk in reply.chunks():
        if budget is not None and len(chunk) >= budget:
            if budget and write(chunk[:budget]) == 0:
                return BodyEnd(sink.received, _failure("connection", url))
            return BodyEnd(sink.received, _failure(reply.fail, url))
        if budget is not None:
            budget -= len(chunk)
        if chunk and write(chunk) == 0:  # the sink stopped the body
            return BodyEnd(sink.received, _failure("connection", url))
    if budget is not None:  # cut at (or after) the end of what was scripted
        return BodyEnd(sink.received, _failure(reply.fail, url))
    return BodyEnd(sink.received, None)


def _failure(kind: str, url: str) -> TransferError:
    return TransferError(
        f"{kind} error (scripted)",
        subject=redact_url(url),
        retryable=FAILURES.get(kind, True),
        error_class=kind,
    )
