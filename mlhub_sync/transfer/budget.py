"""One transfer's patience: failures in a row and its deadline, both renewed by progress.

Progress is the part growing past its longest so far by at least ``min_rate`` bytes per second
of the time since the previous attempt ended (its backoff included). It resets the failure
count and moves the deadline ``asset_deadline`` seconds on: a large file on a flaky link that
keeps moving never runs out, whatever its size. Bytes that only rebuild a discarded part are no
progress, and neither is a trickle: a server that sends 100 bytes per connection, or one byte
every ten seconds, is out of patience after ``max_retries`` attempts or ``asset_deadline``
seconds, whichever comes first. The decision itself is :meth:`RetryPolicy.next_attempt`'s; the
deadline only stops new attempts from starting, never an attempt in progress (the minimum rate
ends those that stall).
"""

from __future__ import annotations

from collections.abc import Callable

from mlhub_sync.errors import TransferError
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import NetSettings


class Budget:
    """The retry state of one transfer (or one HEAD)."""

    def __init__(
        self,
        policy: RetryPolicy,
        net: NetSettings,
        clock: Callable[[], float],
        rand: Callable[[], float],
    ):
        self.policy, self.net, self.clock, self.rand = policy, net, clock, rand
        self.failures = 0
        self.high_water = 0  # the longest the part has been
        self.started = self.since = clock()  # since: when the previous attempt ended
        self.deadline = self.started + net.asset_deadline
        self.attempts = 0

    def failed(self, part_size: int | None = None) -> None:
        """An attempt failed, the part ``part_size`` bytes long after it (``None``: it was
        not written to). Progress (see the module doc) resets the count and the deadline."""
        now = self.clock()
        grown = 0 if part_size is None else part_size - self.high_water
        if grown > 0:
            self.high_water = part_size or 0
        if grown > 0 and grown >= self.net.min_rate * (now - self.since):
            self.failures = 1
            self.deadline = now + self.net.asset_deadline
        else:
            self.failures += 1
        self.since = now

    def begin(self) -> int:
        """An attempt starts; its number (1 for the first)."""
        self.attempts += 1
        return self.attempts

    def wait(self, failure: TransferError) -> float:
        """Seconds to wait before the next attempt, or raise ``failure`` (final, or out of
        patience; out of time, it says so)."""
        now = self.clock()
        wait, late = self.policy.decide(
            self.failures,
            retryable=failure.retryable,
            retry_after=failure.retry_after,
            jitter=self.rand(),
            name_resolution=failure.error_class == "dns",
            time_left=self.deadline - now,
        )
        if wait is not None:
            return wait
        if late:
            raise TransferError(
                f"{failure.message} (gave up after {self.attempts} attempts in "
                f"{now - self.started:.0f} s without progress; timeout.asset is "
                f"{self.net.asset_deadline:g} s)",
                subject=failure.subject,
                retryable=False,
                error_class=failure.error_class,
                status=failure.status,
                hint=failure.hint
                or "the host is too slow or silent; timeout.asset and timeout.min_rate set how "
                "long to wait",
            ) from failure
        raise failure
