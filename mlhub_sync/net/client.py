"""HTTP for API and catalog requests (requests), with retries and secret-safe errors.

Downloads (assets and catalog archives) have their own engine (``transfer/``, on libcurl);
this module serves the few small JSON requests per dataset: ``/datasets/{id}`` and a static
catalog's documents. Its retries make the same decision as the transfer's
(:meth:`RetryPolicy.next_attempt`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import requests

from mlhub_sync._version import __version__
from mlhub_sync.errors import CatalogError, SourceAuthError
from mlhub_sync.net.redact import redact_url, scrub
from mlhub_sync.net.retry import RetryPolicy, is_retryable_status, parse_retry_after

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
            wait = self.policy.next_attempt(
                failures,
                retryable=not self.stop.is_set(),
                retry_after=retry_after,
                jitter=self.rand(),
            )
            if wait is None:
                raise CatalogError(
                    f"{what} failed after {failures} attempt(s): {problem}", subject=shown
                )
            log.info("%s: %s; retrying in %.1fs", shown, problem, wait)
            self.sleep(wait)


def _short_body(response: requests.Response) -> str:
    try:
        text = response.text[:200].strip()
    except (requests.RequestException, UnicodeDecodeError):
        return ""
    return f": {text}" if text else ""
