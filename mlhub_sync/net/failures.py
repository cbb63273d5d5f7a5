"""What a failed request means, in words a person reads: requests' exceptions classified as
the transfer report names them (``dns``, ``timeout``, ``connection``) rather than urllib3's
chain of reprs, and an error page cut to a line for a message (:func:`excerpt`).
"""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import requests
import urllib3

from mlhub_sync.net.display import terminal_safe
from mlhub_sync.net.redact import scrub
from mlhub_sync.net.settings import NetSettings


def classify(exc: BaseException, net: NetSettings, secrets: Sequence[str] = ()) -> tuple[str, str]:
    """``(error class, description)`` of a failed request: ``("dns", "the host name x does
    not resolve")``, a connect or read timeout with the setting that bounds it, ``cannot
    connect: Connection refused``; else the exception's own text, secrets scrubbed."""
    if is_dns(exc):
        request = getattr(exc, "request", None)
        host = urlsplit(getattr(request, "url", None) or "").hostname
        return (
            "dns",
            f"the host name {host} does not resolve" if host else "a host name does not resolve",
        )
    if isinstance(exc, requests.ConnectTimeout):
        return "timeout", f"no connection within timeout.connect ({net.connect:g} s)"
    if isinstance(exc, requests.Timeout):
        return "timeout", f"no answer within timeout.read ({net.read:g} s)"
    reason = os_error(exc) if isinstance(exc, requests.ConnectionError) else None
    if reason is not None:
        return "connection", f"cannot connect: {reason}"
    return "connection", scrub(f"{exc.__class__.__name__}: {exc}", tuple(secrets))


def is_dns(exc: BaseException) -> bool:
    """Whether a requests failure is a host name that did not resolve."""
    name_error = getattr(urllib3.exceptions, "NameResolutionError", socket.gaierror)
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        error = stack.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, socket.gaierror | name_error):
            return True
        linked = [*error.args, getattr(error, "reason", None), error.__cause__, error.__context__]
        stack.extend(e for e in linked if isinstance(e, BaseException))
    return False


def os_error(exc: BaseException) -> str | None:
    """The words of the OS error under a failed connection (``Connection refused``)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        error = getattr(error, "reason", None) or error.__cause__ or error.__context__
    return None


EXCERPT = 120  # characters of an error page shown in a message


def excerpt(body: str, limit: int = EXCERPT) -> str:
    """An error response's body as a short line for a message: its words on one line, an
    HTML page's title (or its text without tags), cut at ``limit`` characters, controls
    escaped."""
    title = _TITLE.search(body)
    if title:
        body = title.group(1)
    elif "<" in body:
        body = _TAG.sub(" ", _SCRIPT.sub(" ", body))
    text = " ".join(html.unescape(body).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return terminal_safe(text)


_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


_TAG = re.compile(r"<[^>]*>")
