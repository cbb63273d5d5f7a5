"""HTTP for API and catalog requests (requests), with retries and secret-safe errors.

Bulk asset transfers have their own engine (``transfer.py``); this module serves the few
requests per dataset that talk to the API or fetch a catalog: ``/datasets/{id}``,
``/catalog/{id}`` (a 302 to blob storage), a remote archive, a static catalog's JSON.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3

from mlhub_sync._version import __version__
from mlhub_sync.errors import CatalogError, FatalLocalError, SourceAuthError
from mlhub_sync.net.redact import redact_url, scrub
from mlhub_sync.net.retry import RetryPolicy, is_retryable_status, parse_retry_after
from mlhub_sync.progress import NULL_REPORTER, Reporter

log = logging.getLogger(__name__)


USER_AGENT = f"mlhub-sync/{__version__}"


def new_session(pool_size: int = 4) -> requests.Session:
    """A session with our User-Agent (some hosts answer 403 without one) and a small pool."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass
class Http:
    """What a run needs for API and catalog requests: a session, timeouts, retries, secrets.

    ``sleep`` waits on an event so a shutdown can interrupt a backoff.
    """

    session: requests.Session = field(default_factory=new_session)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    secrets: tuple[str, ...] = ()
    stop: threading.Event = field(default_factory=threading.Event)
    rand: Callable[[], float] = random.random

    def sleep(self, seconds: float) -> None:
        """Wait, unless the run is being stopped."""
        self.stop.wait(seconds)

    def describe(self, exc: BaseException) -> str:
        """An exception as text with secrets scrubbed (requests puts URLs in messages)."""
        return scrub(f"{exc.__class__.__name__}: {exc}", self.secrets)

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        ok: Iterable[int] = (200,),
        what: str = "request",
    ) -> requests.Response:
        """GET with retries on connection errors, timeouts and retryable statuses.

        Returns a response whose status is in ``ok``; raises :class:`CatalogError` (or
        :class:`SourceAuthError` for 401/403) otherwise. The caller closes the response.
        """
        accepted = frozenset(ok)
        failures = 0
        shown = redact_url(url)
        while True:
            retry_after: float | None = None
            try:
                response = self.session.get(
                    url,
                    params=params,
                    headers=dict(headers or {}),
                    stream=stream,
                    timeout=(self.connect_timeout, self.read_timeout),
                    allow_redirects=True,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = self.describe(exc)
            except requests.RequestException as exc:
                raise CatalogError(f"{what} failed: {self.describe(exc)}", subject=shown) from None
            else:
                if response.status_code in accepted:
                    return response
                status = response.status_code
                body = scrub(_short_body(response), self.secrets)
                response.close()
                if status in (401, 403):
                    raise SourceAuthError(
                        f"{what} was refused (HTTP {status}){body}",
                        subject=shown,
                        hint="check the API key: spec api_key, $MLHUB_API_KEY or the profile "
                        "in ~/.mlhub/profiles",
                    )
                if not is_retryable_status(status):
                    raise CatalogError(f"{what} failed: HTTP {status}{body}", subject=shown)
                problem = f"HTTP {status}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            failures += 1
            if not self.policy.should_retry(failures) or self.stop.is_set():
                raise CatalogError(
                    f"{what} failed after {failures} attempt(s): {problem}", subject=shown
                )
            wait = self.policy.delay(failures, retry_after, self.rand())
            log.info("%s: %s; retrying in %.1fs", shown, problem, wait)
            self.sleep(wait)

    def fetch_file(
        self,
        url: str,
        dest: Path,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "download",
        reporter: Reporter = NULL_REPORTER,
    ) -> FetchedFile:
        """Stream ``url`` into ``dest`` (the bytes as sent: no content decoding), hashing it.

        Conditional ``headers`` may produce a 304, returned without touching ``dest``. A body
        cut short is retried like a connection error.
        """
        failures = 0
        shown = redact_url(url)
        request_headers = {**(headers or {}), "Accept-Encoding": "identity"}
        while True:
            response = self.get(
                url, params=params, headers=request_headers, stream=True, ok=(200, 304), what=what
            )
            with response:
                etag = response.headers.get("ETag")
                modified = response.headers.get("Last-Modified")
                if response.status_code == 304:
                    return FetchedFile(304, response.url, etag=etag, last_modified=modified)
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                with reporter.stage(what, total=total, unit="B") as stage:
                    try:
                        sha256, size = _fetch_body(response, dest, stage.update)
                    except (
                        requests.RequestException,
                        urllib3.exceptions.HTTPError,
                        _ShortBodyError,
                    ) as exc:
                        problem = self.describe(exc)
                    else:
                        return FetchedFile(200, response.url, sha256, size, etag, modified)
            failures += 1
            if not self.policy.should_retry(failures) or self.stop.is_set():
                raise CatalogError(
                    f"{what} failed after {failures} attempt(s): {problem}", subject=shown
                )
            wait = self.policy.delay(failures, None, self.rand())
            log.info("%s: %s; retrying in %.1fs", shown, problem, wait)
            self.sleep(wait)


@dataclass(frozen=True)
class FetchedFile:
    """The outcome of :meth:`Http.fetch_file`: 200 (written) or 304 (unchanged)."""

    status: int
    url: str
    sha256: str | None = None
    size: int = 0
    etag: str | None = None
    last_modified: str | None = None


class _ShortBodyError(Exception):
    pass


def _fetch_body(
    response: requests.Response, dest: Path, stage_update: Callable[[int], None]
) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with dest.open("wb") as out:
            # We ask for identity; a server that encodes anyway sends the file wrapped in an
            # encoding (gzip over a .tar.gz): unwrap it, so the bytes kept are the file's.
            encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
            for chunk in response.raw.stream(1 << 20, decode_content=encoded):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                stage_update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        if isinstance(exc, urllib3.exceptions.HTTPError | requests.RequestException):
            raise
        raise FatalLocalError(
            f"cannot write {dest.name}: {exc.strerror or exc}", subject=str(dest.parent)
        ) from exc
    expected = response.headers.get("Content-Length")
    if not encoded and expected is not None and expected.isdigit() and int(expected) != size:
        raise _ShortBodyError(f"body has {size} bytes, Content-Length said {expected}")
    return digest.hexdigest(), size


def _short_body(response: requests.Response) -> str:
    try:
        text = response.text[:200].strip()
    except (requests.RequestException, UnicodeDecodeError):
        return ""
    return f": {text}" if text else ""
