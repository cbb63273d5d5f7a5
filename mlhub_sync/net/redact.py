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
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

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


def redact_url(url: str) -> str:
    """Return ``url`` with userinfo and secret query parameter values replaced by ``***``.

    Anything that does not parse as a URL is returned unchanged (it holds no query to redact).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in SECRET_QUERY_PARAMS for name, _ in pairs):
            query = "&".join(
                f"{quote(name, safe='')}="
                + (MASK if name.lower() in SECRET_QUERY_PARAMS else quote(value, safe=""))
                for name, value in pairs
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_SECRET_IN_TEXT = re.compile(
    r"([?&;](?:" + "|".join(re.escape(p) for p in sorted(SECRET_QUERY_PARAMS)) + r")=)[^&\s\"'<>]+",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """Mask secret query parameters in any URL inside free text (log lines, exceptions)."""
    return _SECRET_IN_TEXT.sub(lambda m: m.group(1) + MASK, text)


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
