"""HTTP for API and catalog requests (requests), with retries and secret-safe errors.

Downloads (assets and catalog archives) have their own engine (``transfer/``, on libcurl);
this module serves the few small JSON requests per dataset: ``/datasets/{id}`` and a static
catalog's documents. Its retries make the same decision as the transfer's
(:meth:`RetryPolicy.next_attempt`).

requests has no overall deadline (its read timeout is per read: a server that drips a byte
every few seconds holds it forever), so :meth:`Http.get` keeps its own: the whole call
(retries, redirects and body) has ``request_deadline`` seconds, and the body is read here,
in small reads, checking the clock and a size cap as it goes. Redirects are followed here
too, so that each hop can be judged (``net/redirects.py``): before the request goes out by the
addresses its host resolves to, and after by the address the connection really reached.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from mlhub_sync._version import __version__
from mlhub_sync.errors import CatalogError, SourceAuthError
from mlhub_sync.net import failures, redirects
from mlhub_sync.net.failures import excerpt
from mlhub_sync.net.redact import redact_url, scrub
from mlhub_sync.net.retry import RetryPolicy, is_retryable_status, parse_retry_after
from mlhub_sync.net.settings import DEFAULT_NET, NetSettings, human_size
from mlhub_sync.net.signing import SourceHeaders

log = logging.getLogger(__name__)


USER_AGENT = f"mlhub-sync/{__version__}"


MAX_BODY = 64 * 2**20  # an API object or a STAC document


MAX_REDIRECTS = 10


READ_BLOCK = 1 << 16


def new_session(pool_size: int = 4) -> requests.Session:
    """A session with our User-Agent (some hosts answer 403 without one) and a small pool."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class Reply:
    """A response whose body has been read (within the deadline and the size cap)."""

    status_code: int
    headers: Mapping[str, str]
    url: str  # after redirects
    content: bytes

    def json(self) -> Any:
        """The body parsed as JSON (UTF-8, -16 or -32); ``ValueError`` if it is not JSON."""
        return json.loads(self.content)

    def iter_content(self, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        """The body in chunks of ``chunk_size`` bytes."""
        for start in range(0, len(self.content), chunk_size):
            yield self.content[start : start + chunk_size]

    def close(self) -> None:
        """Nothing to release: the connection went back to the pool when the body was read."""

    def __enter__(self) -> Reply:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Retry(Exception):  # noqa: N818 - an attempt's outcome, handled inside Http.get
    """An attempt failed in a way a later one may not (``kind``: the error class)."""

    def __init__(
        self,
        problem: str,
        retry_after: float | None = None,
        kind: str = "connection",
        status: int | None = None,
    ):
        super().__init__(problem)
        self.problem, self.retry_after, self.kind, self.status = problem, retry_after, kind, status
        self.dns = kind == "dns"


@dataclass
class Http:
    """What a run needs for API and catalog requests: a session, the dataset's network limits
    (timeouts, deadlines, caps, redirects), retries, secrets, and the source's ``headers:``
    (``access``: sent to the source's own origins, each redirect hop judged afresh, so never
    to another host; their values are secrets too).

    ``sleep`` waits on an event so a shutdown can interrupt a backoff.
    """

    session: requests.Session = field(default_factory=new_session)
    net: NetSettings = DEFAULT_NET
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    secrets: tuple[str, ...] = ()
    stop: threading.Event = field(default_factory=threading.Event)
    rand: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic
    access: SourceHeaders = field(default_factory=SourceHeaders)

    def __post_init__(self) -> None:
        extra = [v for v in self.access.headers.values() if v and v not in self.secrets]
        self.secrets = (*self.secrets, *extra)

    @property
    def connect_timeout(self) -> float:
        """Seconds to connect."""
        return self.net.connect

    @property
    def read_timeout(self) -> float:
        """Seconds a response may stay silent."""
        return self.net.read

    def sleep(self, seconds: float) -> None:
        """Wait, unless the run is being stopped."""
        self.stop.wait(seconds)

    def describe(self, exc: BaseException) -> str:
        """An exception as words a person reads, secrets scrubbed: a request that failed
        says how (the name does not resolve, no connection within ``timeout.connect``...)
        rather than urllib3's chain of reprs."""
        return self.classify(exc)[1]

    def classify(self, exc: BaseException) -> tuple[str, str]:
        """``(error class, description)`` of a failed request (``net/failures.py``)."""
        return failures.classify(exc, self.net, self.secrets)

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        ok: Iterable[int] = (200,),
        what: str = "request",
        max_bytes: int = MAX_BODY,
        json_body: Any = None,
    ) -> Reply:
        """GET (a POST of ``json_body`` when one is given: a STAC API search) with retries on
        connection errors, timeouts and retryable statuses.

        Returns the response, its status in ``ok``, with its body read; raises
        :class:`CatalogError` (:class:`SourceAuthError` for 401/403) otherwise. The whole
        call has ``net.request_deadline`` seconds; a body over ``max_bytes`` is refused; a
        redirect from another host into a private network is refused (``net/redirects.py``).
        ``stream`` is accepted for callers that stream: the body is always read here, in
        small reads, so the deadline holds whatever the server does.
        """
        accepted = frozenset(ok)
        shown = redact_url(url)
        deadline = self.clock() + self.net.request_deadline
        failures = 0
        while True:
            try:
                return self._attempt(
                    url, params, headers, accepted, what, deadline, max_bytes, json_body
                )
            except _Retry as retry:
                failure = retry
            failures += 1
            time_left = deadline - self.clock()
            wait, late = self.policy.decide(
                failures,
                retryable=not self.stop.is_set(),
                retry_after=failure.retry_after,
                jitter=self.rand(),
                name_resolution=failure.dns,
                time_left=time_left,
            )
            if wait is None:
                within = f" within timeout.request ({self.net.request_deadline:g} s)"
                raise CatalogError(
                    f"{what} failed after {failures} attempt(s){within if late else ''}: "
                    f"{failure.problem}",
                    subject=shown,
                    status=failure.status,
                    error_class=failure.kind,
                )
            log.info("%s: %s; retrying in %.1fs", shown, failure.problem, wait)
            self.sleep(wait)

    def _attempt(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        accepted: frozenset[int],
        what: str,
        deadline: float,
        max_bytes: int,
        json_body: Any = None,
    ) -> Reply:
        """One attempt: the request and its redirects, then the body."""
        shown = redact_url(url)
        current, query, body = url, params, json_body
        origin: str | None = None  # the address the first URL reached
        for hop in range(MAX_REDIRECTS + 1):
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise self._late(what, shown)
            proxied = self._proxied(current)
            if hop:
                self._judge_before(url, origin, current, proxied, what)
            try:
                response = self.session.request(
                    "GET" if body is None else "POST",
                    current,
                    params=query,
                    json=body,
                    headers={**self.access.for_url(current), **(headers or {})},
                    stream=True,
                    timeout=(self.net.connect, min(self.net.read, remaining)),
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                kind, problem = self.classify(exc)
                raise _Retry(problem, kind=kind) from None
            except requests.RequestException as exc:
                raise CatalogError(f"{what} failed: {self.describe(exc)}", subject=shown) from None
            try:
                peer = _peer(response)
                if hop == 0:
                    origin = peer
                elif not self.net.allow_private_redirects:
                    why = redirects.refusal(url, origin, current, peer, proxied=proxied)
                    if why is not None:
                        raise CatalogError(f"{what}: {why}", subject=shown, hint=redirects.HINT)
                if response.is_redirect:
                    target = urljoin(response.url, response.headers["Location"])
                    if urlsplit(target).scheme not in ("http", "https"):
                        raise CatalogError(
                            f"{what} failed: unusable redirect to {redact_url(target)}",
                            subject=shown,
                        )
                    if response.status_code not in (307, 308):
                        body = None  # 301/302/303 turn a POST into a GET (RFC 9110 15.4)
                    current, query = target, None
                    continue
                return self._answer(response, accepted, what, shown, deadline, max_bytes)
            finally:
                response.close()
        raise CatalogError(f"{what} failed: too many redirects", subject=shown)

    def _answer(
        self,
        response: requests.Response,
        accepted: frozenset[int],
        what: str,
        shown: str,
        deadline: float,
        max_bytes: int,
    ) -> Reply:
        status = response.status_code
        if status not in accepted:
            body = scrub(_short_body(response), self.secrets)
            kind = f"http-{status}"
            if status in (401, 403):
                raise SourceAuthError(
                    f"{what} was refused (HTTP {status}){body}",
                    subject=shown,
                    hint="check the API key: spec api_key, $MLHUB_API_KEY or the profile "
                    "in ~/.mlhub/profiles",
                    status=status,
                    error_class=kind,
                )
            if not is_retryable_status(status):
                raise CatalogError(
                    f"{what} failed: HTTP {status}{body}",
                    subject=shown,
                    status=status,
                    error_class=kind,
                )
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            raise _Retry(f"HTTP {status}", retry_after, kind, status)
        content = self._body(response, what, shown, deadline, max_bytes)
        return Reply(status, response.headers, response.url, content)

    def _body(
        self, response: requests.Response, what: str, shown: str, deadline: float, limit: int
    ) -> bytes:
        """The body, read in small reads: over ``limit`` bytes or past ``deadline``, refused."""
        raw = response.raw
        read = getattr(raw, "read1", None) or raw.read  # read1: whatever has arrived
        data = bytearray()
        try:
            while True:
                if self.clock() > deadline:
                    raise self._late(what, shown)
                chunk = read(READ_BLOCK, decode_content=True)
                if not chunk:
                    return bytes(data)
                data += chunk
                if len(data) > limit:
                    raise CatalogError(
                        f"{what}: the response is larger than {human_size(limit)}", subject=shown
                    )
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise _Retry(
                f"the response broke off: {self.describe(exc)}", kind="truncated"
            ) from None

    def _late(self, what: str, shown: str) -> CatalogError:
        return CatalogError(
            f"{what} took longer than timeout.request ({self.net.request_deadline:g} s)",
            subject=shown,
            hint="the host is too slow or silent; timeout.request sets how long to wait",
        )

    def _proxied(self, url: str) -> bool:
        proxies = dict(self.session.proxies)
        if self.session.trust_env:
            proxies = {**requests.utils.get_environ_proxies(url), **proxies}
        return requests.utils.select_proxy(url, proxies) is not None

    def _judge_before(
        self, origin_url: str, origin: str | None, hop: str, proxied: bool, what: str
    ) -> None:
        """Refuse a redirect hop before it is sent, by what its host resolves to here (the
        connection may resolve it again: its real peer is judged after, too)."""
        if self.net.allow_private_redirects or _same_host(origin_url, hop):
            return  # the same host: its real peer is judged after (a rebinding name)
        for address in [None] if proxied else _addresses(hop):
            why = redirects.refusal(origin_url, origin, hop, address, proxied=proxied)
            if why is not None:
                raise CatalogError(
                    f"{what}: {why}", subject=redact_url(origin_url), hint=redirects.HINT
                )


def _same_host(a: str, b: str) -> bool:
    return (urlsplit(a).hostname or "") == (urlsplit(b).hostname or "")


def _addresses(url: str) -> list[str | None]:
    """The addresses ``url``'s host resolves to (``[None]``: it does not resolve here)."""
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return [None]
    return [str(info[4][0]) for info in infos] or [None]


def _peer(response: requests.Response) -> str | None:
    """The address the response's connection reached (``None``: not known)."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    try:
        return str(sock.getpeername()[0]) if sock is not None else None
    except (OSError, IndexError, TypeError):
        return None


def _short_body(response: requests.Response) -> str:
    """``": excerpt"`` of an error response's body: its words on one line, an HTML page's
    title (or its text without tags), cut at ``failures.EXCERPT`` characters, controls escaped."""
    try:
        data = response.raw.read(4096, decode_content=True) or b""
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError):
        return ""
    text = excerpt(data.decode(response.encoding or "utf-8", "replace"))
    return f": {text}" if text else ""
