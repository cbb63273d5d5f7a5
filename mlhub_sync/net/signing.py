"""Per-request signing: what a request to an href carries besides the href itself.

The href stays **unsigned** everywhere it is kept (the index, the state db, the lock, the
report); each request asks a :class:`Signer` for the URL and the headers to send, so a token
that rotates never reaches a file, and a long run can renew it. A signer is shared by every
transfer of a run (all driver threads), so it must be thread-safe.

The interface (three methods; each also takes the request's ``method``, ``GET`` or ``HEAD``:
a signature that covers the method, an S3 presigned URL's, is good for that one only):

- :meth:`Signer.cached` ``(url) -> Signed | None``: a signature usable *now* without any I/O
  (the transfer's hot path: one dict lookup), or ``None``: then the caller asks :meth:`sign`
  somewhere it may block (off the libcurl loop: ``transfer/signing.py``). A signer that knows
  a token's expiry answers ``None`` once it is close (``renew before``), so it is renewed
  before it expires, not after a refusal.
- :meth:`Signer.sign` ``(url) -> Signed``: may block on I/O (a token request); many callers
  waiting for the same token cause one request. Raises :class:`TransferError`.
- :meth:`Signer.renew` ``(url, refused) -> Signed``: the host answered 401/403 to ``refused``;
  a fresh signature (one request for many refused callers: a token renewed since ``refused``
  was handed out is returned as is). Raises :class:`TransferError`.

:class:`Signed` ``headers`` are credentials: they are sent to the URL's own origin (scheme,
host, port) only, never across a redirect to another one (``transfer/easy.py``,
``net/client.py``).

Signers here: :class:`SourceHeaders` (the spec's ``headers:``, for the source's own hosts),
:class:`SasSigner` (a fixed SAS token appended as the query: the Azure source's
``sas_token``), :class:`Chain` (several in turn). ``net/planetary.py`` renews Planetary
Computer tokens; ``net/sigv4.py`` presigns an S3 bucket's URLs (AWS Signature Version 4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Signed:
    """What to send for one request: the URL (the href, perhaps with a token appended) and
    credential headers (sent to ``url``'s origin only)."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


class Signer(Protocol):
    """Signs requests (see the module doc); thread-safe, shared by a run's transfers."""

    def cached(self, url: str, method: str = "GET") -> Signed | None:
        """A signature usable now, without I/O; ``None``: call :meth:`sign` (off the loop)."""
        ...

    def sign(self, url: str, method: str = "GET") -> Signed:
        """A signature for ``url`` (may block on a token request)."""
        ...

    def renew(self, url: str, refused: Signed, method: str = "GET") -> Signed:
        """The host refused ``refused`` (401/403): a fresh signature (may block)."""
        ...


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, lower-cased, the default port made explicit: what
    "the same host" means for credentials (``http`` and ``https`` are different origins)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = 0
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class SourceHeaders:
    """The spec's ``headers:``: sent to the source's own origins, nowhere else."""

    origins: frozenset[str] = frozenset()
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, urls: Iterable[str], headers: Mapping[str, str]) -> SourceHeaders:
        """Headers for the origins of ``urls``."""
        return cls(frozenset(origin(u) for u in urls), dict(headers))

    def __bool__(self) -> bool:
        return bool(self.headers and self.origins)

    def for_url(self, url: str) -> Mapping[str, str]:
        """The headers a request to ``url`` carries (none for another origin)."""
        if self.headers and origin(url) in self.origins:
            return self.headers
        return {}

    def cached(self, url: str, method: str = "GET") -> Signed:
        """``url`` with the headers its origin gets."""
        return Signed(url, self.for_url(url))

    def sign(self, url: str, method: str = "GET") -> Signed:
        """As :meth:`cached`: nothing to fetch."""
        return self.cached(url)

    def renew(self, url: str, refused: Signed, method: str = "GET") -> Signed:
        """Nothing to renew: the same headers."""
        return self.cached(url)


def with_query(url: str, token: str) -> str:
    """``url`` with ``token`` (``a=1&b=2``, a leading ``?`` allowed) added to its query."""
    token = token.lstrip("?")
    if not token:
        return url
    base, _, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}{token}"
    return f"{joined}#{fragment}" if fragment else joined


@dataclass(frozen=True)
class SasSigner:
    """A fixed SAS token (``sv=...&sig=...``) appended to every URL under one of
    ``prefixes`` (a container's: ``https://acct.blob.core.windows.net/container/``; empty:
    every URL). Nothing to renew: a refusal renews to the same token (and then fails)."""

    token: str
    prefixes: tuple[str, ...] = ()

    def cached(self, url: str, method: str = "GET") -> Signed:
        """``url`` with the token appended (other URLs as they are)."""
        if self.prefixes and not url.startswith(self.prefixes):
            return Signed(url)
        return Signed(with_query(url, self.token))

    def sign(self, url: str, method: str = "GET") -> Signed:
        """As :meth:`cached`."""
        return self.cached(url)

    def renew(self, url: str, refused: Signed, method: str = "GET") -> Signed:
        """As :meth:`cached`: a fixed token cannot be renewed."""
        return self.cached(url)


@dataclass(frozen=True)
class Chain:
    """Signers applied in turn: each signs the URL the one before produced; headers merge."""

    signers: tuple[Signer, ...]

    def cached(self, url: str, method: str = "GET") -> Signed | None:
        """Every signer's cached signature, or ``None`` if one has none."""
        headers: dict[str, str] = {}
        for signer in self.signers:
            signed = signer.cached(url, method)
            if signed is None:
                return None
            url, headers = signed.url, {**headers, **signed.headers}
        return Signed(url, headers)

    def sign(self, url: str, method: str = "GET") -> Signed:
        """Every signer's signature in turn."""
        headers: dict[str, str] = {}
        for signer in self.signers:
            signed = signer.sign(url, method)
            url, headers = signed.url, {**headers, **signed.headers}
        return Signed(url, headers)

    def renew(self, url: str, refused: Signed, method: str = "GET") -> Signed:
        """Every signer renewed (each decides whether ``refused`` still holds its part)."""
        headers: dict[str, str] = {}
        for signer in self.signers:
            signed = signer.renew(url, refused, method)
            url, headers = signed.url, {**headers, **signed.headers}
        return Signed(url, headers)


def chain(*signers: Signer | None) -> Signer | None:
    """One signer for the given ones (``None`` and empty ones left out); ``None`` if none."""
    kept = tuple(
        s for s in signers if s is not None and not (isinstance(s, SourceHeaders) and not s)
    )
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else Chain(kept)
