"""AWS Signature Version 4 for S3 ``GET`` and ``HEAD`` requests, as presigned URLs.

A presigned URL carries its authentication in the query (AWS, "Authenticating Requests:
Using Query Parameters"): ``X-Amz-Algorithm=AWS4-HMAC-SHA256``, ``X-Amz-Credential`` (the
access key id and the scope ``{date}/{region}/s3/aws4_request``), ``X-Amz-Date``,
``X-Amz-Expires``, ``X-Amz-SignedHeaders=host``, ``X-Amz-Security-Token`` with temporary
credentials, and ``X-Amz-Signature``, the HMAC-SHA256 of the string to sign under the key
derived from the secret, the date, the region and the service. The body is not signed
(``UNSIGNED-PAYLOAD``, what S3 expects of a presigned URL), and the one signed header is
``host``, so the transfer's own headers (``Range``, ``If-Range``...) need no signature.

Why presigned URLs rather than an ``Authorization`` header: the URL is the whole request, so
it travels through the transfer seam as it is (``net/signing.py``: a :class:`Signed` URL,
the href unsigned everywhere else), nothing rides along on a redirect to another host, and
``requests`` and libcurl send it unchanged.

Canonical forms, and why the URL that is sent is built from them: S3 recomputes the
signature from the request as it arrives, so what is signed must be what is sent.

- The path is taken as it is in the URL, already percent-encoded (``sources/s3.py`` encodes
  a key's bytes as AWS does: everything but ``A-Za-z0-9-._~``), never encoded again: an
  escape stays an escape (its hex upper-cased), and only a character no URL may carry raw
  (a space, a non-ASCII letter) is encoded. ``%2F`` and ``%2E`` stay as they are.
- The query's parameters are decoded once (``%XX``; a ``+`` is a plus sign, not a space:
  the query strings we sign are ours, built with ``%20``) and encoded again the AWS way,
  sorted by name then value; the URL sent carries exactly that string, then the signature.
- ``host`` is the URL's ``host[:port]`` in lower case, the port left out when it is the
  scheme's default (as libcurl and ``requests`` write the ``Host`` header).

Everything here is pure but :class:`S3Presigner`'s clock (injectable) and its credentials'
reload on a refusal (a callback, ``config/aws.py``).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from mlhub_sync.net.signing import Signed

ALGORITHM = "AWS4-HMAC-SHA256"

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

DEFAULT_EXPIRES = 3600  # seconds a presigned URL is valid (S3 allows 1 s to 7 days)

MAX_EXPIRES = 7 * 24 * 3600

REQUEST_PAYER = ("x-amz-request-payer", "requester")  # a Requester Pays bucket's flag

# Query parameters a presigned URL adds: an earlier signature's are dropped before signing.
AUTH_PARAMS = frozenset(
    {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "x-amz-security-token",
        "x-amz-signature",
    }
)

_DEFAULT_PORTS = {"http": "80", "https": "443"}

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class Credentials:
    """An access key (``access_key_id`` and its ``secret_access_key``), with the
    ``session_token`` of temporary credentials. ``source`` says where they were found
    (``$AWS_ACCESS_KEY_ID``, a file and profile), for messages. The secret and the token
    never appear in a ``repr``."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    source: str = ""

    @property
    def secrets(self) -> list[str]:
        """The values to scrub wherever text is shown (the key id is not one: AWS prints it
        in its own error messages)."""
        return [s for s in (self.secret_access_key, self.session_token) if s]


def uri_encode(text: str) -> str:
    """AWS's ``UriEncode``: each UTF-8 byte but ``A-Za-z0-9-._~`` as ``%XX`` (upper-case
    hex), ``/`` included; a space is ``%20``, never ``+``."""
    return quote(text, safe="~")


def canonical_path(path: str) -> str:
    """The canonical URI of a path that is already percent-encoded: its escapes kept (hex
    upper-cased), anything else a URL may not carry raw encoded, ``/`` kept; ``/`` when
    empty. Never decoded and encoded again: ``%2F`` in a key is not a ``/``."""
    out, pos = [], 0
    for match in _ESCAPE.finditer(path):
        out.append(quote(path[pos : match.start()], safe="/~"))
        out.append(match.group().upper())
        pos = match.end()
    out.append(quote(path[pos:], safe="/~"))
    return "".join(out) or "/"


def query_pairs(query: str) -> list[tuple[str, str]]:
    """A query string's ``(name, value)`` pairs, each decoded once (``+`` stays a plus)."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """The canonical query string: names and values encoded, sorted by name then value."""
    encoded = sorted((uri_encode(name), uri_encode(value)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_host(scheme: str, netloc: str) -> str:
    """The ``host`` header's value: ``host[:port]`` lower-cased, a default port left out."""
    host = netloc.rpartition("@")[2].lower()
    name, colon, port = host.rpartition(":")
    if colon and "]" not in port and port == _DEFAULT_PORTS.get(scheme.lower()):
        return name
    return host


def amz_date(now: float) -> str:
    """``now`` (seconds since the epoch) as ``YYYYMMDDTHHMMSSZ``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


@functools.lru_cache(maxsize=16)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The key of one day, region and service: four HMACs from the secret (cached: it
    changes once a day)."""
    key = hmac.digest(("AWS4" + secret).encode(), date.encode(), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def string_to_sign(timestamp: str, scope: str, canonical_request: str) -> str:
    """What the signature is the HMAC of."""
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def presign(
    method: str,
    url: str,
    credentials: Credentials,
    region: str,
    now: float,
    *,
    expires: int = DEFAULT_EXPIRES,
    params: Iterable[tuple[str, str]] = (),
    service: str = "s3",
) -> str:
    """``url`` presigned for ``method`` at ``now``, valid ``expires`` seconds: its path in
    canonical form, its query (an earlier signature's parameters dropped, ``params`` added)
    sorted and encoded as signed, then ``X-Amz-Signature``; a ``#fragment`` kept (no client
    sends it)."""
    if not 1 <= expires <= MAX_EXPIRES:
        raise ValueError(f"expires must be 1 to {MAX_EXPIRES} seconds, not {expires}")
    parts = urlsplit(url)
    timestamp = amz_date(now)
    date = timestamp[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    pairs = [(k, v) for k, v in query_pairs(parts.query) if k.lower() not in AUTH_PARAMS]
    pairs += params
    pairs += [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{credentials.access_key_id}/{scope}"),
        ("X-Amz-Date", timestamp),
        ("X-Amz-Expires", str(expires)),
        ("X-Amz-SignedHeaders", "host"),
    ]
    if credentials.session_token:
        pairs.append(("X-Amz-Security-Token", credentials.session_token))
    query = canonical_query(pairs)
    path = canonical_path(parts.path)
    host = canonical_host(parts.scheme, parts.netloc)
    request = f"{method.upper()}\n{path}\n{query}\nhost:{host}\n\nhost\n{UNSIGNED_PAYLOAD}"
    key = signing_key(credentials.secret_access_key, date, region, service)
    signature = hmac.new(key, string_to_sign(timestamp, scope, request).encode(), "sha256")
    signed_query = f"{query}&X-Amz-Signature={signature.hexdigest()}"
    return urlunsplit((parts.scheme, parts.netloc, path, signed_query, parts.fragment))


class S3Presigner:
    """The :class:`~mlhub_sync.net.signing.Signer` of one bucket's requests: a URL under one
    of ``prefixes`` (the bucket's URL: ``{endpoint}/{bucket}/`` or its virtual-hosted
    address) is presigned for the request's method; any other URL is left as it is, so the
    bucket's credentials sign nothing of another host or bucket.

    :meth:`cached` presigns afresh at every call, with the clock's time: no I/O and no
    per-URL cache (a presign is a few microseconds of hashing, the same cost the first time
    as every time), so the signature an attempt carries is always seconds old and never
    near its expiry, however long the run and its retries take. :meth:`renew` (the host
    refused a presign: 401/403) re-reads the credentials through ``reload`` when given (a
    credentials file that a tool refreshes with new temporary keys) and presigns again.
    Thread-safe: the credentials are swapped under a lock."""

    def __init__(
        self,
        credentials: Credentials,
        region: str,
        prefixes: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
        expires: int = DEFAULT_EXPIRES,
        request_payer: bool = False,
        reload: Callable[[], Credentials | None] | None = None,
    ):
        self._credentials = credentials
        self.region = region
        self.prefixes = tuple(prefixes)
        self.clock = clock
        self.expires = expires
        self.params = (REQUEST_PAYER,) if request_payer else ()
        self._reload = reload
        self._lock = threading.Lock()

    @property
    def credentials(self) -> Credentials:
        """The credentials presigns are made with now."""
        return self._credentials

    def covers(self, url: str) -> bool:
        """Whether ``url`` is one of the bucket's (and so gets signed)."""
        return url.startswith(self.prefixes)

    def presign(self, url: str, method: str = "GET") -> str:
        """``url`` presigned now (see :func:`presign`), whatever its host: the caller knows
        it is the bucket's (the listing's own requests)."""
        return presign(
            method,
            url,
            self._credentials,
            self.region,
            self.clock(),
            expires=self.expires,
            params=self.params,
        )

    def cached(self, url: str, method: str = "GET") -> Signed:
        """A fresh presign of a URL of the bucket; any other URL as it is."""
        return Signed(self.presign(url, method) if self.covers(url) else url)

    def sign(self, url: str, method: str = "GET") -> Signed:
        """As :meth:`cached`: nothing to fetch."""
        return self.cached(url, method)

    def renew(self, url: str, refused: Signed, method: str = "GET") -> Signed:
        """The host refused ``refused``: the credentials re-read (when they can be) and
        ``url`` presigned again."""
        if self._reload is not None and self.covers(url):
            fresh = self._reload()
            if fresh is not None:
                with self._lock:
                    self._credentials = fresh
        return self.cached(url, method)
