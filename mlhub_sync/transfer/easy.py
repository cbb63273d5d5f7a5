"""One libcurl easy handle as the driver (``curl.py``) uses it: its options, its callbacks,
and what its failures mean.

The options carry the dataset's network limits (``NetSettings``): the connect timeout, and
the minimum rate as libcurl's low-speed limit (below ``min_rate`` bytes/s for ``read``
seconds, waiting for headers included, ends the attempt: ``CURLE_OPERATION_TIMEDOUT``).
libcurl follows redirects itself (http and https only, ten at most); every request it sends,
each redirect hop included, first passes :meth:`Conn.on_prereq`, libcurl's pre-request
callback, which sees the address the connection really reached and refuses a redirect from
another host into a private network (``net/redirects.py``) before the request goes out.

Credentials (a signer's headers) go to the request URL's origin only. libcurl sends custom
headers (``HTTPHEADER``) on every request of a transfer, redirects to other hosts included
(it holds back only ``Authorization`` and ``Cookie``), so the same callback stops a hop to
another origin before it is sent, and the driver re-issues that hop without the credentials
(:meth:`Conn.without_credentials`), judged as the redirect it is.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import pycurl

from mlhub_sync.errors import FatalLocalError, TransferError
from mlhub_sync.net import redirects
from mlhub_sync.net.client import USER_AGENT
from mlhub_sync.net.headers import Headers
from mlhub_sync.net.redact import redact_text, redact_url
from mlhub_sync.net.settings import NetSettings
from mlhub_sync.net.signing import origin
from mlhub_sync.transfer.ops import BodySink, Response

log = logging.getLogger("mlhub_sync.transfer")

# libcurl's receive buffer: the body reaches Python (write, hash) in blocks up to this size;
# libcurl's default of 16 KiB means 64 Python callbacks per MiB.
CURL_BUFFER = 1 << 20


MAX_REDIRECTS = 10


AWAITING, PAUSED, STREAMING, ENDED = range(4)  # where a handle's GET is


# libcurl result codes -> (error class, retryable)
_CURL_ERRORS = {
    1: ("bad-url", False),  # unsupported protocol (e.g. a redirect to ftp:)
    3: ("bad-url", False),  # malformed URL
    5: ("dns", True),  # could not resolve proxy
    6: ("dns", True),  # could not resolve host (retried max_dns_retries times)
    7: ("connection", True),  # could not connect
    18: ("truncated", True),  # the body ended before Content-Length
    28: ("timeout", True),  # connect timeout, or slower than min_rate for `read` seconds
    42: ("private-redirect", False),  # the pre-request callback refused a redirect
    47: ("redirect-loop", False),
    52: ("connection", True),  # empty reply
    55: ("connection", True),  # send error
    56: ("connection", True),  # receive error (a reset)
    61: ("bad-encoding", True),
}


def curl_error(code: int, message: str, url: str, refused: str | None = None) -> TransferError:
    """A libcurl failure as the :class:`TransferError` it means (``refused``: why the
    pre-request callback stopped it)."""
    kind, retryable = _CURL_ERRORS.get(code, ("connection", True))
    text = redact_text(str(message))
    hint = None
    if kind == "private-redirect":
        text, hint = refused or "refused a redirect", redirects.HINT
    elif kind == "redirect-loop":
        text = "too many redirects"
    elif kind == "bad-url":
        text = f"unusable URL or redirect: {text}"
    elif kind == "dns":
        text = f"the host name does not resolve: {text}"
    else:
        text = f"{kind} error: {text}"
    return TransferError(
        text, subject=redact_url(url), retryable=retryable, error_class=kind, hint=hint
    )


class Conn:
    """One easy handle, and where its current request is."""

    __slots__ = (
        "curl", "first_url", "guard", "guarded", "head", "lines", "origin", "paused", "phase",
        "plain", "prereq", "refused", "reissue", "sink", "task", "url",
    )  # fmt: skip

    def __init__(self, paused: list[Conn], net: NetSettings):
        self.paused = paused  # the driver's list of handles whose headers are in
        self.lines: list[bytes] = []
        self.sink: BodySink | None = None
        self.task: Any = None  # the driver's task using this handle
        self.phase = ENDED
        self.url = ""
        self.head = False
        self.guard = not net.allow_private_redirects
        self.origin: str | None = None  # the address the request's first URL reached
        self.refused: str | None = None  # why on_prereq stopped the request
        self.prereq = False  # on_prereq is installed
        self.guarded: str | None = None  # the origin the request's credentials are for
        self.plain: list[str] = []  # the request's headers without its credentials
        self.reissue: str | None = None  # a hop to another origin, to send without them
        self.first_url: str | None = None  # where a re-issued hop's redirects began
        self.curl = curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.FOLLOWLOCATION, 1)
        curl.setopt(pycurl.MAXREDIRS, MAX_REDIRECTS)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(net.connect * 1000)))
        # Slower than min_rate for `read` seconds (whole seconds: libcurl's granularity) ends
        # it, a silent server included; a paused transfer is not measured.
        curl.setopt(pycurl.LOW_SPEED_LIMIT, max(1, net.min_rate))
        curl.setopt(pycurl.LOW_SPEED_TIME, max(1, math.ceil(net.read)))
        curl.setopt(pycurl.HTTP_CONTENT_DECODING, 0)  # a sink unwraps what it must
        curl.setopt(pycurl.BUFFERSIZE, CURL_BUFFER)
        curl.setopt(pycurl.USERAGENT, USER_AGENT)
        curl.setopt(pycurl.HEADERFUNCTION, self.lines.append)
        curl.setopt(pycurl.WRITEFUNCTION, self.on_body)
        if self.guard:
            self._install_prereq("upgrade pycurl and libcurl, or set allow_private_redirects: true")

    def _install_prereq(self, hint: str) -> None:
        try:
            self.curl.setopt(pycurl.PREREQFUNCTION, self.on_prereq)
        except (AttributeError, pycurl.error) as exc:  # libcurl < 7.80, pycurl < 7.45.2
            raise FatalLocalError(
                f"this libcurl cannot judge redirects before they are followed ({exc})",
                hint=hint,
            ) from exc
        self.prereq = True

    def on_body(self, data: bytes) -> int | None:
        """libcurl's write callback: into the sink, or pause at the first block."""
        sink = self.sink
        if sink is not None:
            return sink.write(data)
        self.phase = PAUSED
        self.paused.append(self)
        return pycurl.WRITEFUNC_PAUSE

    def on_prereq(self, address: str, _local: str, _port: int, _local_port: int) -> int:
        """libcurl's pre-request callback: the request is about to go out on a connection to
        ``address``. The first URL's is where its redirects start from; a redirect hop (a
        3xx with a Location among the header lines so far) is judged before it is sent."""
        lines = self.lines
        if lines:
            hop = hop_url(self.url, lines)
            if hop is None:
                return pycurl.PREREQFUNC_OK
            if self.guarded is not None and origin(hop) != self.guarded:
                self.reissue = hop  # not with the credentials: the driver sends it without
                return pycurl.PREREQFUNC_ABORT
        elif self.first_url is not None:  # a hop re-issued without credentials
            hop = self.url
        else:  # the request's own URL (or libcurl retrying it on a fresh connection)
            if self.origin is None:
                self.origin = address
            return pycurl.PREREQFUNC_OK
        if not self.guard:
            return pycurl.PREREQFUNC_OK
        proxied = redirects.curl_proxied(hop, os.environ)
        first = self.first_url or self.url
        why = redirects.refusal(first, self.origin, hop, address, proxied=proxied)
        if why is None:
            return pycurl.PREREQFUNC_OK
        self.refused = why
        return pycurl.PREREQFUNC_ABORT

    def start(
        self,
        url: str,
        headers: dict[str, str],
        head: bool,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        """Set the handle up for a request (the driver adds it to the multi handle);
        ``credentials`` go to ``url``'s origin only."""
        curl = self.curl
        self.lines.clear()
        self.sink = None
        self.phase = AWAITING
        self.url = url
        self.head = head
        self.origin = self.refused = self.reissue = self.first_url = self.guarded = None
        curl.setopt(pycurl.URL, url)
        lines = [f"{k}: {v}" for k, v in headers.items() if k != "User-Agent"]
        if credentials:
            if not self.prereq:
                self._install_prereq("upgrade pycurl and libcurl to send credential headers")
            self.guarded, self.plain = origin(url), lines
            lines = lines + [f"{k}: {v}" for k, v in credentials.items()]
        curl.setopt(pycurl.HTTPHEADER, lines)
        if head:
            curl.setopt(pycurl.NOBODY, 1)

    def without_credentials(self) -> bool:
        """Set the handle up for the hop that :meth:`on_prereq` held back (to another origin),
        without the credentials; ``False`` when no hop was held back."""
        hop = self.reissue
        if hop is None:
            return False
        log.debug("%s: redirected to another host: without credentials", redact_url(hop))
        self.first_url = self.first_url or self.url
        self.url, self.reissue, self.guarded = hop, None, None
        self.lines.clear()
        self.phase = AWAITING
        self.curl.setopt(pycurl.URL, hop)
        self.curl.setopt(pycurl.HTTPHEADER, self.plain)
        return True

    def after_head(self) -> None:
        """Make the handle a GET handle again."""
        self.head = False
        self.curl.setopt(pycurl.NOBODY, 0)
        self.curl.setopt(pycurl.HTTPGET, 1)

    def response(self) -> Response:
        """The final response's status and headers, as a value."""
        status, headers = Headers.from_lines(self.lines)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %s", "HEAD" if self.head else "GET", redact_url(self.url), status)
        return Response(status, headers, self.curl.getinfo(pycurl.EFFECTIVE_URL))

    def error(self, code: int, message: str) -> TransferError:
        """How the current request failed, as a :class:`TransferError`."""
        refused = self.refused if code == pycurl.E_ABORTED_BY_CALLBACK else None
        return curl_error(code, message, self.url, refused)


def hop_url(url: str, lines: list[bytes]) -> str | None:
    """Where the redirects in ``lines`` (every response's header lines so far, in order) lead
    from ``url``; ``None`` when no response so far was a redirect."""
    current = url
    redirected = False
    status = 0
    for line in lines:
        if line.startswith(b"HTTP/"):
            fields = line.split(None, 2)
            status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        elif 300 <= status < 400 and line[:9].lower() == b"location:":
            location = line[9:].strip().decode("latin-1")
            if location:
                current, redirected = urljoin(current, location), True
    return current if redirected else None
