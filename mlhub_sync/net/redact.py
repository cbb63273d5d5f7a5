"""Keeping secrets out of everything a person or a file could see.

Two layers: :func:`redact_url` removes credentials from a URL by *shape* (userinfo, and query
parameters whose names mean a secret: the MLHub ``key``, SAS signatures, S3 presigned
credentials...); :class:`SecretFilter` is a logging filter that scrubs known secret *values*
from every record as a second line of defence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

MASK = "***"


# Lower-cased query parameter names whose values are credentials.
SECRET_QUERY_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "token",
        "access_token",
        "auth",
        "password",
        "secret",
        "sig",  # Azure SAS signature
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
    }
)


def _decoded(text: str) -> str:
    """``text`` percent-decoded (``+`` as a space) until it stops changing: a name encoded
    twice (``%2573ig``) is still ``sig`` to a server that decodes twice."""
    for _ in range(4):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def param_name(name: str) -> str:
    """A query parameter's name as a server reads it: decoded, trimmed, lower-cased, so
    ``%73ig`` and ``SIG`` are both ``sig``."""
    return _decoded(name).strip().lower()


def is_secret_param(name: str) -> bool:
    """True when a query parameter called ``name`` (as written: encoded or not) holds a
    credential."""
    return param_name(name) in SECRET_QUERY_PARAMS


def query_params(query: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a query string, split on ``&`` *and* ``;`` (servers
    differ, so redaction takes the stricter reading) and decoded once, as ``parse_qsl`` does."""
    pairs = []
    for segment in _SEPARATOR.split(query):
        if segment:
            name, _, value = segment.partition("=")
            pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


_SEPARATOR = re.compile(r"[&;]")


_MAX_NESTING = 3  # a URL in a query in a URL in a query...


def redact_url(url: str) -> str:
    """Return ``url`` with userinfo and secret query parameter values replaced by ``***``.

    Parameters are split on ``&`` and ``;`` and judged by their decoded name; a value that
    decodes to a URL or a query (a signed URL passed as ``?url=...``) is redacted in turn and
    re-encoded. What needs no redaction is returned exactly as given; anything that does not
    parse as a URL is returned unchanged (it holds no query to redact).
    """
    if "?" not in url and "@" not in url and "#" not in url:
        return url  # the common case, fast (a lock file redacts every href)
    return _redact_url(url, 0)


def _redact_url(url: str, depth: int) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = _redact_query(parts.query, depth) if parts.query else parts.query
    fragment = _redact_query(parts.fragment, depth) if "=" in parts.fragment else parts.fragment
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _redact_query(query: str, depth: int) -> str:
    """``query`` with secret values masked; other segments kept exactly as written."""
    pieces = _SEPARATOR.split(query)
    seps = _SEPARATOR.findall(query)
    changed = False
    for i, segment in enumerate(pieces):
        name, eq, value = segment.partition("=")
        if not eq:
            continue
        if is_secret_param(name):
            redacted = f"{name}={MASK}"
        else:
            redacted = f"{name}={_redact_value(value, depth)}"
        if redacted != segment:
            pieces[i] = redacted
            changed = True
    if not changed:
        return query
    return "".join(p + s for p, s in zip(pieces, [*seps, ""], strict=True))


def _redact_value(value: str, depth: int) -> str:
    """A parameter's value with whatever it nests (a URL, a query) redacted, re-encoded."""
    if depth >= _MAX_NESTING or ("%" not in value and "=" not in value and "@" not in value):
        return value
    decoded = _decoded(value)
    if "://" in decoded or "?" in decoded or decoded.startswith("//"):
        redacted = _redact_url(decoded, depth + 1)
    elif "=" in decoded:
        redacted = _redact_query(decoded, depth + 1)
    else:
        return value
    return value if redacted == decoded else quote(redacted, safe="*/:@")


# A query parameter inside free text: a separator (``?``, ``&``, ``;``, ``#``, or one of them
# percent-encoded, as in a URL nested in another's query), a name (percent-encoded bytes
# allowed, but not an encoded separator or ``=``), ``=`` (or ``%3D``), and the value.
_ENCODED = r"%(?!3[dDfFbB]|26)[0-9A-Fa-f]{2}"
_PARAM_IN_TEXT = re.compile(
    r"(?P<lead>(?:[?&;#]|%3[fF]|%26|%3[bB])(?P<name>(?:[^=?&;#%\s\"'<>]|" + _ENCODED + r")+)"
    r"(?:=|%3[dD]))(?P<value>[^&;#\s\"'<>]*)"
)


_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@\"'<>]+@")


def redact_text(text: str) -> str:
    """Mask secret query parameters in any URL inside free text (log lines, exceptions), by
    decoded name and through nested encoded URLs, and the userinfo of any URL."""
    if "=" in text or "%3" in text.upper():
        text = _PARAM_IN_TEXT.sub(_redact_match, text)
    if "@" in text:
        text = _USERINFO_IN_TEXT.sub(lambda m: m.group("scheme") + MASK + "@", text)
    return text


def _redact_match(match: re.Match[str]) -> str:
    if is_secret_param(match.group("name")):
        return match.group("lead") + MASK
    return match.group("lead") + _redact_value(match.group("value"), 0)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Mask secret query parameters by shape, then every known secret value."""
    text = redact_text(text)
    for secret in secrets:
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, MASK)
    return text


class SecretFilter(logging.Filter):
    """A logging filter that scrubs known secret values from the formatted message.

    Install it on the handlers the CLI configures; library code never needs it because it
    only logs redacted URLs, but a secret must not leak through a message we did not foresee.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = tuple(s for s in secrets if s)

    @property
    def values(self) -> tuple[str, ...]:
        """The secrets being scrubbed."""
        return self._secrets

    def add(self, secret: str | None) -> None:
        """Also scrub ``secret`` from now on."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def filter(self, record: logging.LogRecord) -> bool:
        # By shape always (urllib3 logs request lines with their query), by value when known.
        record.msg = scrub(record.getMessage(), self._secrets)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(
                logging.Formatter().formatException(record.exc_info), self._secrets
            )
            record.exc_info = None
        return True
