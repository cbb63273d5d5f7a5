"""``retry.py``: the retry policy value and ``Retry-After`` parsing (pure, no clock inside)."""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlhub_sync.net.retry import RetryPolicy, is_retryable_status, parse_retry_after

NOW = float(calendar.timegm((2015, 10, 21, 7, 0, 0)))  # 2015-10-21 07:00:00 UTC


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 507, 520, 529, 599])
def test_retryable_statuses(status: int) -> None:
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [200, 206, 304, 400, 401, 403, 404, 410, 416, 451, 501, 505])
def test_final_statuses(status: int) -> None:
    assert not is_retryable_status(status)


# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("1", 1.0), (" 120 ", 120.0), ("86400", 86400.0)],
)
def test_retry_after_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:28:00 GMT",  # IMF-fixdate
        "Wednesday, 21-Oct-15 07:28:00 GMT",  # obsolete RFC 850
        "Wed Oct 21 07:28:00 2015",  # obsolete asctime: no zone, but GMT by definition
        "Wed, 21 Oct 2015 07:28:00 -0000",  # "-0000": parsed without a zone
    ],
)
def test_retry_after_http_date(value: str) -> None:
    assert parse_retry_after(value, NOW) == pytest.approx(28 * 60)


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """Run with a local time zone far from UTC (a naive date must not be read as local)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.usefixtures("far_from_utc")
def test_retry_after_zoneless_dates_are_gmt_whatever_the_local_zone() -> None:
    assert parse_retry_after("Wed Oct 21 07:28:00 2015", NOW) == pytest.approx(28 * 60)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", NOW) == pytest.approx(28 * 60)


def test_retry_after_date_relative_to_now() -> None:
    now = time.time()
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30, abs=1)


def test_retry_after_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 06:00:00 GMT", NOW) == 0.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-5", "1.5", "²", "1e3", "Wed, 99"])
def test_retry_after_unparseable(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


# --------------------------------------------------------------------------- backoff


def ceiling(policy: RetryPolicy, failures: int) -> float:
    return float(min(policy.max_backoff, policy.backoff * 2 ** (failures - 1)))


policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(0, 20),
    backoff=st.floats(0.001, 10),
    max_backoff=st.floats(0.001, 120),
    max_retry_after=st.floats(0, 600),
)
jitters = st.floats(0, 1, exclude_max=True)


@given(policies, st.integers(1, 200), jitters)
def test_full_jitter_bounds(policy: RetryPolicy, failures: int, jitter: float) -> None:
    wait = policy.delay(failures, None, jitter)
    assert 0.0 <= wait <= ceiling(policy, failures)


@given(policies, st.integers(1, 200), jitters, st.floats(0, 10_000))
def test_retry_after_is_respected_and_capped(
    policy: RetryPolicy, failures: int, jitter: float, retry_after: float
) -> None:
    wait = policy.delay(failures, retry_after, jitter)
    assert wait >= min(retry_after, policy.max_retry_after)
    assert wait <= max(ceiling(policy, failures), policy.max_retry_after)


def test_jitter_spans_the_window() -> None:
    policy = RetryPolicy(backoff=0.5, max_backoff=30)
    assert policy.delay(1, None, 0.0) == 0.0
    assert policy.delay(1, None, 0.5) == pytest.approx(0.25)
    assert policy.delay(3, None, 0.999) == pytest.approx(0.999 * 2.0)
    assert policy.delay(50, None, 0.5) == pytest.approx(15.0)  # capped by max_backoff
    assert policy.delay(10**9, None, 0.5) == pytest.approx(15.0)  # no overflow


def test_retry_after_examples() -> None:
    policy = RetryPolicy(backoff=0.01, max_backoff=0.05, max_retry_after=300)
    assert policy.delay(1, 1.0, 0.5) == 1.0
    assert policy.delay(1, 10_000.0, 0.5) == 300.0
    assert policy.delay(1, 0.0, 0.5) == pytest.approx(0.005)  # the backoff still applies


@pytest.mark.parametrize("max_retries", [0, 1, 3, 8])
def test_should_retry_budget(max_retries: int) -> None:
    policy = RetryPolicy(max_retries=max_retries)
    allowed = [n for n in range(1, max_retries + 5) if policy.should_retry(n)]
    assert allowed == list(range(1, max_retries + 1))  # max_retries + 1 attempts in all


def test_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_retries = 1  # type: ignore[misc]
    assert policy == RetryPolicy()
