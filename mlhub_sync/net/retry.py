"""Retry policy: which failures retry, and how long to wait. A pure value, no clock inside.

Connection errors, timeouts, truncated bodies and the statuses in :data:`RETRYABLE_STATUS`
retry with exponential backoff and *full jitter* (a uniform wait in ``[0, min(cap, base*2^n)]``,
which spreads a crowd of clients out better than a fixed schedule). A server's ``Retry-After``
(seconds or an HTTP-date) is honoured, up to ``max_retry_after``. Other statuses (400, 401,
403, 404, 410...) are final: retrying cannot change the answer. A name that does not resolve
is retried at most ``max_dns_retries`` times (a dead host's name rarely comes back in
seconds), and no wait is started that would end after the caller's deadline.
"""

from __future__ import annotations

import datetime
import email.utils
import math
from dataclasses import dataclass

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523,
                              524, 529})  # fmt: skip


def is_retryable_status(status: int) -> bool:
    """True for statuses a later attempt may change (throttling, server trouble)."""
    return status in RETRYABLE_STATUS or (status >= 500 and status not in (501, 505))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or ``None``."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # str.isdigit alone accepts "²", which float rejects
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # asctime and "-0000" dates: HTTP-dates are always GMT, not local
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how patiently to retry one transfer.

    ``max_retries`` counts attempts after the first. An attempt that makes progress (the part
    grows past its longest so far) resets the count: progress proves the server works, and a
    long file on a flaky link must not run out; bytes that are thrown away are no progress.
    """

    max_retries: int = 8
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 300.0
    max_dns_retries: int = 1

    def should_retry(self, failures_in_a_row: int) -> bool:
        """True while failures without progress stay within the budget."""
        return failures_in_a_row <= self.max_retries

    def delay(self, failures_in_a_row: int, retry_after: float | None, jitter: float) -> float:
        """Seconds to wait before the next attempt.

        ``failures_in_a_row`` >= 1; ``jitter`` in [0, 1) from the caller's random source.
        """
        exponent = min(failures_in_a_row - 1, 62)
        ceiling = min(self.max_backoff, self.backoff * math.pow(2.0, exponent))
        wait = jitter * ceiling
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait

    def next_attempt(
        self,
        failures_in_a_row: int,
        *,
        retryable: bool,
        retry_after: float | None,
        jitter: float,
        name_resolution: bool = False,
        time_left: float = math.inf,
    ) -> float | None:
        """The one retry decision every retrying loop makes after a failure: seconds to wait
        before the next attempt, or ``None`` to give up: a final failure, the budget spent, a
        name that did not resolve ``max_dns_retries`` times (``name_resolution``), or a wait
        that would not end within ``time_left`` seconds (the caller's deadline).

        The loop shape it serves::

            failures = 0
            while True:
                outcome = attempt()
                if it worked: return outcome
                failures = 1 if it made progress else failures + 1
                wait = policy.next_attempt(failures, retryable=..., retry_after=..., jitter=...)
                if wait is None: give up (raise the failure)
                sleep(wait)
        """
        return self.decide(
            failures_in_a_row,
            retryable=retryable,
            retry_after=retry_after,
            jitter=jitter,
            name_resolution=name_resolution,
            time_left=time_left,
        )[0]

    def decide(
        self,
        failures_in_a_row: int,
        *,
        retryable: bool,
        retry_after: float | None,
        jitter: float,
        name_resolution: bool = False,
        time_left: float = math.inf,
    ) -> tuple[float | None, bool]:
        """:meth:`next_attempt`'s answer and whether it gave up only because ``time_left``
        ran out (so a caller words a deadline apart from a spent budget), in one call."""
        if not retryable or not self.should_retry(failures_in_a_row):
            return None, False
        if name_resolution and failures_in_a_row > self.max_dns_retries:
            return None, False
        wait = self.delay(failures_in_a_row, retry_after, jitter)
        return (wait, False) if wait < time_left else (None, True)

    def out_of_time(
        self,
        failures_in_a_row: int,
        *,
        retryable: bool,
        retry_after: float | None,
        jitter: float,
        name_resolution: bool = False,
        time_left: float,
    ) -> bool:
        """Whether :meth:`next_attempt` gives up only because ``time_left`` ran out (how a
        caller tells a deadline from a spent budget, for its message)."""
        return self.decide(
            failures_in_a_row,
            retryable=retryable,
            retry_after=retry_after,
            jitter=jitter,
            name_resolution=name_resolution,
            time_left=time_left,
        )[1]
