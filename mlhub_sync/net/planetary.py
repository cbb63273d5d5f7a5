"""``sign: planetary-computer``: Planetary Computer SAS tokens for its blob storage hrefs.

An href on ``{account}.blob.core.windows.net/{container}/...`` is sent with the container's
SAS token appended (``?se=...&sig=...``); other hrefs are sent as they are, and so is an href
that already carries a SAS (``se``/``sp``/``st`` in its query). The token comes from the token
endpoint, ``GET {sas_url}/{account}/{container}`` answering
``{"msft:expiry": "<RFC 3339>", "token": "<query>"}``; ``sas_url`` is ``$PC_SDK_SAS_URL``
(default :data:`DEFAULT_SAS_URL`) and ``$PC_SDK_SUBSCRIPTION_KEY``, when set, goes along as
``Ocp-Apim-Subscription-Key``: the ``planetary-computer`` package's own settings, read from the
run's environment.

Tokens are cached per (account, container), shared by every transfer of the run:

- **renewed before they expire**: at the earlier of ``msft:expiry`` and the token's ``se=``,
  less :data:`RENEW_BEFORE` (but at most half its lifetime, so a short-lived token is not
  fetched again for every file);
- **renewed once on a refusal** (:meth:`renew`): a 403 to a token that is still the cached one
  fetches a new one; a token already renewed by another transfer is reused;
- **one request at a time**: many transfers waiting for the same token cause one request, and
  token requests never overlap (the endpoint rate-limits). A 429 is waited out with its
  ``Retry-After`` by the run's :class:`~mlhub_sync.net.client.Http` (its retries, deadline,
  redirect guard and redaction), not answered with more requests; a request that failed
  anyway is remembered for :data:`FAILED_HOLD` seconds, so the transfers behind it fail (and
  back off) without asking again.

Why not the ``planetary-computer`` package: its ``get_token`` makes the request on its own
``requests`` session (its own retries, no deadline, no private-redirect guard, no redaction of
the subscription key), keeps a process-wide cache without a lock (concurrent transfers would
each fetch), and its settings load ``~/.planetarycomputer/settings.env`` into ``os.environ``.
What it offers beyond that is a two-field response model, so it is not a dependency.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from mlhub_sync.errors import MlhubSyncError, TransferError
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.net.signing import Signed, with_query

DEFAULT_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"


BLOB_SUFFIX = ".blob.core.windows.net"


PUBLIC_ACCOUNTS = frozenset({"ai4edatasetspublicassets"})  # thumbnails: not to be signed


RENEW_BEFORE = 300.0  # seconds before a token's expiry it is renewed


FAILED_HOLD = 5.0  # seconds a failed token request answers for its container


KEY_HEADER = "Ocp-Apim-Subscription-Key"


@dataclass(frozen=True, slots=True)
class Token:
    """A container's SAS token and when to fetch the next one (``clock`` seconds)."""

    query: str
    renew_at: float


class PlanetaryComputer:
    """The :class:`~mlhub_sync.net.signing.Signer` for ``sign: planetary-computer``.

    ``clock`` is wall time (expiries are dates); ``suffix`` the blob host suffix (default
    :data:`BLOB_SUFFIX`; another Azure cloud's)."""

    def __init__(
        self,
        http: Http,
        environ: Mapping[str, str],
        *,
        clock: Callable[[], float] = time.time,
        renew_before: float = RENEW_BEFORE,
        suffix: str | None = None,
    ):
        self.http = http
        self.sas_url = (environ.get("PC_SDK_SAS_URL") or DEFAULT_SAS_URL).rstrip("/")
        self.key = environ.get("PC_SDK_SUBSCRIPTION_KEY") or None
        if self.key and self.key not in http.secrets:
            http.secrets = (*http.secrets, self.key)
        self.clock = clock
        self.renew_before = renew_before
        self.suffix = suffix or BLOB_SUFFIX  # read now: a test points it at a loopback name
        self.requests = 0  # token requests made (for the log and tests)
        self._tokens: dict[tuple[str, str], Token] = {}
        self._failed: dict[tuple[str, str], tuple[float, TransferError]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()  # the dict of locks
        self._one_request = threading.Lock()  # token requests never overlap

    def container(self, url: str) -> tuple[str, str] | None:
        """``(account, container)`` of a blob href that needs a token, else ``None``."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host.endswith(self.suffix) or parts.scheme not in ("http", "https"):
            return None
        account = host[: -len(self.suffix)]
        container = parts.path.lstrip("/").split("/", 1)[0]
        if not account or "." in account or not container or account in PUBLIC_ACCOUNTS:
            return None
        if {"se", "sp", "st"} & set(parse_qs(parts.query)):
            return None  # already signed upstream
        return account, container

    def cached(self, url: str, method: str = "GET") -> Signed | None:
        """``url`` with its container's token while that is fresh; ``None``: :meth:`sign`."""
        key = self.container(url)
        if key is None:
            return Signed(url)
        token = self._tokens.get(key)
        if token is None or self.clock() >= token.renew_at:
            return None
        return Signed(with_query(url, token.query))

    def sign(self, url: str, method: str = "GET") -> Signed:
        """``url`` with a fresh token, fetched if the cached one is due (one request for all
        the callers waiting)."""
        key = self.container(url)
        if key is None:
            return Signed(url)
        with self._lock(key):
            token = self._tokens.get(key)
            if token is None or self.clock() >= token.renew_at:
                token = self._fetch(key, url)
        return Signed(with_query(url, token.query))

    def renew(self, url: str, refused: Signed, method: str = "GET") -> Signed:
        """A new token unless the cached one is no longer the refused one (renewed since)."""
        key = self.container(url)
        if key is None:
            return Signed(url)
        with self._lock(key):
            token = self._tokens.get(key)
            if token is None or token.query in refused.url:  # the refused one: renew
                token = self._fetch(key, url)
        return Signed(with_query(url, token.query))

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _fetch(self, key: tuple[str, str], url: str) -> Token:
        """A new token for ``key`` (called holding its lock)."""
        failed = self._failed.get(key)
        if failed is not None and self.clock() < failed[0]:
            raise failed[1]
        endpoint = f"{self.sas_url}/{key[0]}/{key[1]}"
        with self._one_request:
            self.requests += 1
            try:
                reply = self.http.get(
                    endpoint,
                    headers={KEY_HEADER: self.key} if self.key else None,
                    what="Planetary Computer token request",
                )
                token = parse_token(reply.json(), self.clock(), self.renew_before)
            except (MlhubSyncError, ValueError) as exc:
                error = TransferError(
                    f"no SAS token for {key[0]}/{key[1]}: {exc}",
                    subject=redact_url(url),
                    retryable=True,
                    error_class="signing",
                    hint="check $PC_SDK_SAS_URL and $PC_SDK_SUBSCRIPTION_KEY "
                    f"(token endpoint {redact_url(endpoint)})",
                )
                self._failed[key] = (self.clock() + FAILED_HOLD, error)
                raise error from None
        self._failed.pop(key, None)
        self._tokens[key] = token
        return token


def parse_token(data: object, now: float, renew_before: float = RENEW_BEFORE) -> Token:
    """The token endpoint's answer as a :class:`Token` (``ValueError`` if it is not one).

    It expires at the earlier of ``msft:expiry`` and the token's own ``se=``; with neither,
    it is used until refused."""
    if not isinstance(data, dict) or not isinstance(data.get("token"), str) or not data["token"]:
        raise ValueError("the token endpoint's answer has no token")
    query = data["token"].lstrip("?")
    expiries = [_timestamp(data.get("msft:expiry"))]
    for value in parse_qs(query).get("se", []):
        expiries.append(_timestamp(unquote(value)))
    known = [e for e in expiries if e is not None]
    if not known:
        return Token(query, float("inf"))
    expires = min(known)
    margin = min(renew_before, max(0.0, expires - now) / 2)
    return Token(query, expires - margin)


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()
