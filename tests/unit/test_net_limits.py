"""The network limits as values: the spec's knobs, the retry decision with a deadline and a
name-resolution limit, which redirects may be followed, the free-space reserve, and the
progress heartbeat (issue 11, sections 2, 3 and 5)."""

from __future__ import annotations

import itertools
import logging
import os
import textwrap
import time
from pathlib import Path

import pytest

from mlhub_sync.config.resolve import load_spec
from mlhub_sync.errors import FatalLocalError, SpecError
from mlhub_sync.net import redirects
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import GIB, NetSettings, human_size
from mlhub_sync.progress import LogReporter
from mlhub_sync.transfer.easy import hop_url
from mlhub_sync.transfer.space import FreeSpace

# -- the spec's knobs ----------------------------------------------------------------------------


def load_one(tmp_path: Path, body: str) -> NetSettings:
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(body).lstrip("\n"))
    [dataset] = load_spec(spec, {}).datasets
    return dataset.net


def test_the_defaults_report_every_failing_asset_within_a_few_minutes(tmp_path: Path) -> None:
    net = load_one(tmp_path, "version: 1\ndatasets: [{id: a}]\n")
    assert net == NetSettings()
    assert (net.min_rate, net.read) == (1024, 30.0)  # below 1 KiB/s for 30 s: a timeout
    assert net.asset_deadline + net.read <= 180  # silent or dripping: given up in 3 minutes
    assert (net.max_asset_size, net.max_archive_size) == (50 * GIB, 64 * GIB)
    assert not net.allow_private_redirects


def test_every_limit_is_set_in_the_spec_sizes_human_friendly(tmp_path: Path) -> None:
    net = load_one(
        tmp_path,
        """
        version: 1
        defaults:
          timeout: {connect: 2, read: 5, min_rate: 10 KiB, asset: 60, request: 20, progress: 2}
          max_asset_size: 2 TiB
          allow_private_redirects: true
          archive_limits: {max_unpacked_gib: 0.5}
        datasets: [{id: a}]
        """,
    )
    assert net == NetSettings(
        connect=2, read=5, min_rate=10240, asset_deadline=60, request_deadline=20,
        max_asset_size=2 * 2**40, max_archive_size=GIB // 2, allow_private_redirects=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("setting", "value", "fragment"),
    [
        ("max_asset_size", "lots", "could not parse value and unit"),
        ("max_asset_size", "0", "greater than 0"),
        ("timeout: {min_rate", "1 parsec}", "could not interpret byte unit: parsec"),
        ("timeout: {asset", "0}", "greater than 0"),
    ],
)
def test_a_bad_limit_is_a_spec_error_at_its_line(
    tmp_path: Path, setting: str, value: str, fragment: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"version: 1\ndatasets:\n  - id: a\n    {setting}: {value}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(spec, {})
    assert f"{spec}:4:" in str(caught.value) and fragment in str(caught.value)


def test_sizes_read_as_people_write_them() -> None:
    assert [human_size(n) for n in (12, 2048, 1536 * 2**20, 50 * GIB)] == [
        "12 bytes", "2 KiB", "1.5 GiB", "50 GiB",
    ]  # fmt: skip


# -- the one retry decision: name resolution and the deadline --------------------------------


def test_a_name_that_does_not_resolve_is_retried_max_dns_retries_times() -> None:
    policy = RetryPolicy(max_retries=8, max_dns_retries=1)
    decide = {"retryable": True, "retry_after": None, "jitter": 0.0}
    assert policy.next_attempt(1, **decide, name_resolution=True) == 0.0  # type: ignore[arg-type]
    assert policy.next_attempt(2, **decide, name_resolution=True) is None  # type: ignore[arg-type]
    assert policy.next_attempt(2, **decide) == 0.0  # type: ignore[arg-type]  # other failures


def test_no_wait_starts_that_would_end_after_the_deadline() -> None:
    policy = RetryPolicy(backoff=10.0, max_backoff=10.0)
    decide = {"retryable": True, "retry_after": None, "jitter": 0.5}  # a 5 s wait
    assert policy.next_attempt(1, **decide, time_left=6.0) == 5.0  # type: ignore[arg-type]
    assert policy.next_attempt(1, **decide, time_left=4.0) is None  # type: ignore[arg-type]
    assert policy.out_of_time(1, **decide, time_left=4.0)  # type: ignore[arg-type]
    assert not policy.out_of_time(9, **decide, time_left=4.0)  # type: ignore[arg-type]  # spent


# -- redirects: which addresses are private, and which hops are refused ----------------------

KINDS = {
    "127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback",
    "::ffff:127.0.0.1": "loopback", "10.1.2.3": "private", "172.16.0.1": "private",
    "192.168.1.1": "private", "169.254.169.254": "link-local", "fe80::1%eth0": "link-local",
    "fd00::1": "unique-local", "0.0.0.0": "unspecified", "100.64.0.1": "reserved",
    "8.8.8.8": None, "2606:4700::1111": None, "::ffff:8.8.8.8": None, "not an ip": None,
}  # fmt: skip


@pytest.mark.parametrize(("address", "kind"), KINDS.items(), ids=KINDS.keys())
def test_which_addresses_are_not_public(address: str, kind: str | None) -> None:
    assert redirects.address_kind(address) == kind


LITERALS = {
    "127.0.0.1": "127.0.0.1", "[::1]": "::1", "2130706433": "127.0.0.1", "0x7f.1": "127.0.0.1",
    "localhost": "127.0.0.1", "db.localhost.": "127.0.0.1", "example.com": None, "1e100.net": None,
}  # fmt: skip


@pytest.mark.parametrize(("host", "address"), LITERALS.items(), ids=LITERALS.keys())
def test_the_address_a_host_names_by_itself(host: str, address: str | None) -> None:
    assert redirects.literal_address(host) == address


ORIGIN = "https://catalog.example/a"
PUBLIC = "93.184.216.34"
HOPS = {  # hop URL, the address it reached, proxied -> refused?
    "to another public host": ("https://cdn.example/x", "151.101.1.1", False, False),
    "to a name that resolves to loopback": ("http://evil.example/x", "127.0.0.1", False, True),
    "to a metadata service": ("http://169.254.169.254/latest", "169.254.169.254", False, True),
    "to a private v6 address": ("http://[fd00::5]/x", "fd00::5", False, True),
    "within the same host": ("https://catalog.example/b", PUBLIC, False, False),
    "to the same name, now private": ("https://catalog.example/b", "10.0.0.1", False, True),
    "through a proxy, to a private literal": ("http://10.0.0.1/x", "10.9.9.9", True, True),
    "through a proxy, to a name": ("http://intranet.example/x", "10.9.9.9", True, False),
}  # fmt: skip


@pytest.mark.parametrize(("hop", "address", "proxied", "refused"), HOPS.values(), ids=HOPS.keys())
def test_which_redirects_are_refused(hop: str, address: str, proxied: bool, refused: bool) -> None:
    why = redirects.refusal(ORIGIN, PUBLIC, hop, address, proxied=proxied)
    assert (why is not None) == refused, why


def test_a_loopback_origin_may_redirect_within_its_own_host_only() -> None:
    origin = "http://127.0.0.1:8000/catalog"
    assert redirects.refusal(origin, "127.0.0.1", "http://127.0.0.1:9000/x", "127.0.0.1") is None
    why = redirects.refusal(origin, "127.0.0.1", "http://localhost:9000/x", "127.0.0.1")
    assert why == (
        "refused a redirect to http://localhost:9000/x: it leads to 127.0.0.1, a loopback address"
    )


def test_the_proxy_variables_libcurl_reads() -> None:
    env = {"https_proxy": "http://proxy:3128", "no_proxy": "internal.example,.corp"}
    assert redirects.curl_proxied("https://cdn.example/x", env)
    assert not redirects.curl_proxied("http://cdn.example/x", env)  # no http_proxy
    assert not redirects.curl_proxied("https://a.internal.example/x", env)
    assert not redirects.curl_proxied("https://x.corp/x", env)
    assert not redirects.curl_proxied("http://x/", {"HTTP_PROXY": "http://p"})  # lower case only
    assert not redirects.curl_proxied("https://x/", {"ALL_PROXY": "http://p", "NO_PROXY": "*"})


HEADER_LINES = {
    "no redirect yet": ([], None),
    "an absolute Location": (
        [b"HTTP/1.1 302 Found\r\n", b"Location: http://b.example/x\r\n", b"\r\n"],
        "http://b.example/x",
    ),
    "relative Locations, hop after hop": (
        [b"HTTP/1.1 301 Moved\r\n", b"location: /one\r\n", b"\r\n",
         b"HTTP/1.1 307 Temporary\r\n", b"LOCATION: two?x=1\r\n", b"\r\n"],
        "http://a.example/two?x=1",
    ),
    "a Location on a 200 is no redirect": (
        [b"HTTP/1.1 200 OK\r\n", b"Location: http://b.example/\r\n", b"\r\n"], None
    ),
}  # fmt: skip


@pytest.mark.parametrize(("lines", "hop"), HEADER_LINES.values(), ids=HEADER_LINES.keys())
def test_where_the_redirects_so_far_lead(lines: list[bytes], hop: str | None) -> None:
    assert hop_url("http://a.example/start", lines) == hop


# -- free space --------------------------------------------------------------------------------


def disk(free: int, size: int = 100 * GIB) -> os.statvfs_result:
    block = 4096
    return os.statvfs_result((block, block, size // block, free // block, free // block,
                              0, 0, 0, 0, 255))  # fmt: skip


def test_a_body_starts_only_when_the_disk_keeps_its_reserve(tmp_path: Path) -> None:
    free = [3 * GIB]
    looks: list[Path] = []

    def statvfs(path: Path) -> os.statvfs_result:
        looks.append(path)
        return disk(free[0])

    now = [0.0]
    space = FreeSpace(clock=lambda: now[0], statvfs=statvfs)
    space.claim(tmp_path, GIB)
    space.claim(tmp_path, GIB)  # within a second: no new look, the claims add up
    assert len(looks) == 1
    space.claim(tmp_path, GIB - GIB // 8)  # the estimate says no; a fresh look says yes
    assert len(looks) == 2
    free[0] = GIB + GIB // 8  # the bodies wrote what they claimed
    now[0] += 1.0  # the next look
    with pytest.raises(FatalLocalError) as caught:
        space.claim(tmp_path, GIB)  # 128 MiB would be left, but 256 MiB are kept free
    assert len(looks) == 3
    assert str(caught.value).startswith(f"{tmp_path}: stopping before the disk is full")
    assert caught.value.hint and caught.value.hint.startswith("free disk space")


def test_a_small_disk_keeps_one_percent_free(tmp_path: Path) -> None:
    space = FreeSpace(statvfs=lambda _path: disk(free=900 * 1024, size=1 << 20))
    space.claim(tmp_path, 880 * 1024)  # 20 KiB left: more than 1% of 1 MiB
    with pytest.raises(FatalLocalError):
        FreeSpace(statvfs=lambda _path: disk(free=900 * 1024, size=1 << 20)).claim(
            tmp_path, 895 * 1024
        )


# -- the progress heartbeat ----------------------------------------------------------------------


def line_times(records: list[logging.LogRecord]) -> list[float]:
    return [r.created for r in records if r.name == "mlhub_sync.progress"]


def test_a_heartbeat_line_comes_at_least_every_interval_when_nothing_moves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mlhub_sync.progress")
    reporter = LogReporter(interval=0.4)
    started = time.time()
    with reporter.heartbeat("apply"):
        time.sleep(0.7)  # the catalog fetch: no stage yet
        with reporter.stage("download assets", total=3, unit="files") as stage:
            time.sleep(0.7)  # every transfer stalled: no update
            stage.update(1)
        time.sleep(0.2)
    times = [started, *line_times(caplog.records), time.time()]
    texts = [r.getMessage() for r in caplog.records]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 0.4, (times, texts)
    assert "apply: still working (0 s)" in texts
    assert "download assets: 0/3 files (0.0 files/s)" in texts


def test_the_heartbeat_ends_with_the_last_stage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlhub_sync.progress")
    reporter = LogReporter(interval=0.1)
    with reporter.stage("crawl STAC catalog", unit="docs"):
        time.sleep(0.25)
    ended = len(caplog.records)
    time.sleep(0.3)
    assert ended >= 2 and len(caplog.records) == ended
