"""The transfer rules (``transfer/rules.py``), one scripted exchange at a time, no sockets.

Each scenario: what is on disk before, the replies the scripted server gives, and what must
follow: the requests' Range / If-Range headers, the bytes on disk, and the outcome.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import random
import threading
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.errors import FatalLocalError, TransferError
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import NetSettings
from mlhub_sync.transfer.curl import Cancelled
from mlhub_sync.transfer.ops import FetchState, TransferRequest, TransferResult
from mlhub_sync.transfer.rules import RECORD_PARTIAL_FROM, Transfers
from mlhub_sync.transfer.scripted import Reply, ScriptedDriver
from mlhub_sync.transfer.sink import Hashes, open_sink
from mlhub_sync.tree import Tree

DATA = random.Random(1).randbytes(1000)
MD5 = hashlib.md5(DATA).hexdigest()
ETAG = f'"{MD5}"'  # an S3-style ETag: the MD5
OPAQUE = '"v1"'  # an ETag that is not an MD5
CONTENT_MD5 = base64.b64encode(bytes.fromhex(MD5)).decode()  # a Content-MD5 header's form
URL = "https://host.example/blobs/a.tif"
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


def ok(body: bytes = DATA, etag: str | None = ETAG, **headers: str) -> Reply:
    fields = {"Content-Length": str(len(body)), **headers}
    if etag:
        fields["ETag"] = etag
    return Reply(200, fields, body)


def partial(start: int, body: bytes = DATA, etag: str | None = ETAG, **headers: str) -> Reply:
    fields = {
        "Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}",
        "Content-Length": str(len(body) - start),
        **headers,
    }
    if etag:
        fields["ETag"] = etag
    return Reply(206, fields, body[start:])


def status(code: int, **headers: str) -> Reply:
    return Reply(code, headers, b"error page")


def flipped(data: bytes, at: int) -> bytes:
    """``data`` with the byte at ``at`` inverted (the test server's ``corrupt`` fault)."""
    damaged = bytearray(data)
    damaged[at] ^= 0xFF
    return bytes(damaged)


# The chaos soak's "served" host (Content-MD5 on full bodies, the MD5 as ETag, whole-file
# Content-MD5 on a 206 too): a 200 cut half way, and a 206 for the rest damaged in the same
# byte every time (a deterministic fault).
SERVED = {"ETag": ETAG, "Content-MD5": CONTENT_MD5}
CUT_HALF_WAY = Reply(200, {"Content-Length": "1000", **SERVED}, DATA, fail_after=500)
DAMAGED_REST = Reply(
    206,
    {"Content-Range": "bytes 500-999/1000", "Content-Length": "500", **SERVED},
    flipped(DATA, 750)[500:],
)


ZEROS_GZ = gzip.compress(bytes(8 << 20))  # 8 MiB of zeros in a few KiB


def md5_claim(data: bytes) -> str:
    return "d50110" + hashlib.md5(data).hexdigest()


@dataclass
class Case:
    """A scenario and what must follow from it."""

    replies: list[Reply]
    part: bytes | None = None  # a .part on disk before the transfer
    request: dict[str, Any] = field(default_factory=dict)
    ranges: list[tuple[str | None, str | None]] = field(default_factory=list)  # (Range, If-Range)
    on_disk: bytes | None = DATA  # None: nothing may be left (no file, no part)
    error: str | None = None  # the error_class of a final failure
    verified_by: str | None = None
    resumed: bool | None = None
    transferred: int | None = None
    sleeps: int | None = None  # backoffs waited


CASES = {
    "a plain GET asks for identity and no range": Case(
        [ok()], ranges=[(None, None)], verified_by="s3-etag", resumed=False, transferred=1000
    ),
    "a part with a validator resumes with Range and If-Range": Case(
        [partial(400)],
        part=DATA[:400],
        request={"resume_validator": ETAG},
        ranges=[("bytes=400-", ETAG)],
        verified_by="s3-etag",
        resumed=True,
        transferred=600,
    ),
    "a Last-Modified validator resumes too": Case(
        [partial(400, etag=None)],
        part=DATA[:400],
        request={"resume_validator": LAST_MODIFIED, "size": 1000},
        ranges=[("bytes=400-", LAST_MODIFIED)],
        verified_by="size",
        resumed=True,
    ),
    "a weak validator does not resume": Case(
        [ok()],
        part=b"x" * 400,
        request={"resume_validator": 'W/"weak"'},
        ranges=[(None, None)],
        resumed=False,
    ),
    "a 200 to a range request starts over, free": Case(
        [ok()],
        part=DATA[:400],
        request={"resume_validator": ETAG},
        ranges=[("bytes=400-", ETAG)],
        resumed=False,
        transferred=1000,
        sleeps=0,
    ),
    "a 206 at the wrong offset discards the part (a failed attempt)": Case(
        [partial(401), ok()],
        part=DATA[:400],
        request={"resume_validator": ETAG},
        ranges=[("bytes=400-", ETAG), (None, None)],
        resumed=False,
        sleeps=1,
    ),
    "a 206 with another ETag means the file changed: from zero, free": Case(
        [partial(400, etag='"other"'), ok()],
        part=DATA[:400],
        request={"resume_validator": ETAG},
        ranges=[("bytes=400-", ETAG), (None, None)],
        sleeps=0,
    ),
    "a 416 with a complete part of the same ETag keeps the part": Case(
        [Reply(416, {"Content-Range": "bytes */1000", "ETag": ETAG})],
        part=DATA,
        request={"resume_validator": ETAG},
        ranges=[("bytes=1000-", ETAG)],
        resumed=True,
        transferred=0,
        verified_by="s3-etag",
    ),
    "a 416 with a part larger than the file starts over, free": Case(
        [Reply(416, {"Content-Range": "bytes */1000", "ETag": ETAG}), ok()],
        part=DATA + b"junk",
        request={"resume_validator": ETAG},
        ranges=[("bytes=1004-", ETAG), (None, None)],
        sleeps=0,
    ),
    "a 416 with a complete part but no evidence fetches again": Case(
        [Reply(416, {"Content-Range": "bytes */1000"}), ok(etag=None)],
        part=DATA,
        request={"resume_validator": LAST_MODIFIED},
        ranges=[("bytes=1000-", LAST_MODIFIED), (None, None)],
    ),
    "a size other than file:size is final": Case(
        [ok()], request={"size": 999}, on_disk=None, error="size-mismatch", sleeps=0
    ),
    "a body shorter than Content-Length resumes where it stopped": Case(
        [Reply(200, {"Content-Length": "1000", "ETag": ETAG}, DATA[:600]), partial(600)],
        ranges=[(None, None), ("bytes=600-", ETAG)],
        resumed=True,
        transferred=1000,
    ),
    "a connection reset mid-body resumes from what arrived": Case(
        [Reply(200, {"Content-Length": "1000", "ETag": ETAG}, DATA, fail_after=300), partial(300)],
        ranges=[(None, None), ("bytes=300-", ETAG)],
        resumed=True,
    ),
    "a stall mid-body (a timeout) is retried like a reset": Case(
        [
            Reply(
                200, {"Content-Length": "1000", "ETag": ETAG}, DATA, fail_after=0, fail="timeout"
            ),
            ok(),
        ],
        ranges=[(None, None), (None, None)],
    ),
    "a checksum mismatch restarts from zero once": Case(
        [ok(DATA[::-1], etag=OPAQUE), ok(etag=OPAQUE)],
        request={"checksum": md5_claim(DATA)},
        ranges=[(None, None), (None, None)],
        verified_by="file:checksum",
        transferred=2000,
    ),
    "a second checksum mismatch is final and leaves nothing": Case(
        [ok(DATA[::-1], etag=OPAQUE), ok(DATA[::-1], etag=OPAQUE)],
        request={"checksum": md5_claim(DATA)},
        on_disk=None,
        error="checksum-mismatch",
    ),
    "identical bytes twice against an S3 ETag are kept, verified by size": Case(
        [ok(DATA, etag='"' + "0" * 32 + '"'), ok(DATA, etag='"' + "0" * 32 + '"')],
        verified_by="size",
    ),
    "the same wrong resumed bytes twice are final once a Content-MD5 proved the ETag": Case(
        [CUT_HALF_WAY, DAMAGED_REST, CUT_HALF_WAY, DAMAGED_REST],
        ranges=[(None, None), ("bytes=500-", ETAG)] * 2,
        on_disk=None,
        error="checksum-mismatch",
    ),
    "a Content-MD5 mismatch twice is final": Case(
        [ok(DATA[::-1], etag=OPAQUE, **{"Content-MD5": "2ay6pRbiv0tBPbPSXU0R5A=="})] * 2,
        on_disk=None,
        error="checksum-mismatch",
    ),
    "a gzip body despite identity is stored decoded, not resumable": Case(
        [Reply(200, {"Content-Encoding": "gzip", "ETag": ETAG}, gzip.compress(DATA))],
        request={"checksum": md5_claim(DATA)},
        verified_by="file:checksum",
    ),
    "an HTML page instead of the file is final": Case(
        [ok(b"<html>login</html>", etag=OPAQUE, **{"Content-Type": "text/html"})],
        on_disk=None,
        error="html-response",
    ),
    "checksum required with nothing known is final": Case(
        [ok(etag=OPAQUE)], request={"checksum_mode": "required"}, on_disk=None, error="no-checksum"
    ),
    "checksum off verifies nothing": Case(
        [ok()], request={"checksum_mode": "off", "checksum": md5_claim(b"x")}, verified_by="none"
    ),
    "503 is retried after a backoff": Case(
        [status(503, **{"Retry-After": "0"}), ok()], ranges=[(None, None)] * 2, sleeps=1
    ),
    "404 is final, without a backoff": Case(
        [status(404)], on_disk=None, error="http-404", sleeps=0
    ),
    "no response at all is retried, then fails": Case(
        [Reply(0)] * 3, on_disk=None, error="connection", sleeps=2
    ),
    "a host name that does not resolve is retried once, not the whole budget": Case(
        [Reply(0, fail="dns")] * 2, on_disk=None, error="dns", sleeps=1
    ),
    "a chunked body longer than file:size stops there, final, not downloaded again": Case(
        [Reply(200, {"ETag": OPAQUE}, [DATA, DATA, DATA])],  # no Content-Length
        request={"size": 1000},
        on_disk=None,
        error="size-mismatch",
        sleeps=0,
    ),
    "a body of unknown size stops at the cap, final": Case(
        [Reply(200, {"ETag": OPAQUE}, [DATA] * 5)],
        request={"max_size": 2500},
        on_disk=None,
        error="too-large",
        sleeps=0,
    ),
    "a gzip bomb stops at file:size of decoded bytes, final": Case(
        [Reply(200, {"Content-Encoding": "gzip"}, gzip.compress(bytes(8 << 20)))],
        request={"size": 1000},
        on_disk=None,
        error="size-mismatch",
        sleeps=0,
    ),
    "a gzip bomb of unknown size stops at the cap": Case(
        [Reply(200, {"Content-Encoding": "gzip", "Content-Length": "9000"}, ZEROS_GZ)],
        request={"max_size": 1 << 20},
        on_disk=None,
        error="too-large",
        sleeps=0,
    ),
}


def run_case(
    tmp_path: Path, case: Case, transfers: Transfers | None = None
) -> tuple[ScriptedDriver, TransferResult | TransferError | FatalLocalError]:
    dest = tmp_path / "out" / "a.tif"
    if case.part is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{dest}.part").write_bytes(case.part)
    driver = ScriptedDriver(case.replies)
    transfers = transfers or Transfers(policy=RetryPolicy(max_retries=2), rand=lambda: 0.0)
    request = TransferRequest(url=URL, dest=dest, **case.request)
    try:
        return driver, driver.run(transfers.fetch(request, FetchState()))
    except (TransferError, FatalLocalError) as exc:
        return driver, exc


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_transfer_rules(tmp_path: Path, case: Case) -> None:
    driver, outcome = run_case(tmp_path, case)
    dest = tmp_path / "out" / "a.tif"

    gets = [r for r in driver.requests if r.method == "GET"]
    assert all(r.header("accept-encoding") == "identity" for r in gets)
    if case.ranges:
        assert [(r.header("range"), r.header("if-range")) for r in gets] == case.ranges
    assert driver.unused == 0  # every scripted reply was asked for
    if case.error is not None:
        assert isinstance(outcome, TransferError), outcome
        assert outcome.error_class == case.error
    else:
        assert isinstance(outcome, TransferResult), outcome
        assert driver.syncs == 1  # fsynced before the rename
    if case.on_disk is None:
        assert not dest.exists() and not Path(f"{dest}.part").exists()
    elif case.error is None:
        assert dest.read_bytes() == case.on_disk
        assert not Path(f"{dest}.part").exists()
    if isinstance(outcome, TransferResult):
        if case.verified_by is not None:
            assert outcome.verified_by == case.verified_by
        if case.resumed is not None:
            assert outcome.resumed is case.resumed
        if case.transferred is not None:
            assert outcome.transferred == case.transferred
        if case.request.get("checksum_mode") != "off":  # off: nothing is hashed
            assert outcome.md5 == hashlib.md5(dest.read_bytes()).hexdigest()
    if case.sleeps is not None:
        assert len(driver.sleeps) == case.sleeps


def test_a_gzip_body_records_no_validator(tmp_path: Path) -> None:
    case = CASES["a gzip body despite identity is stored decoded, not resumable"]
    _, outcome = run_case(tmp_path, case)
    assert isinstance(outcome, TransferResult) and outcome.validator is None


def test_azure_blob_hosts_get_a_recent_x_ms_version(tmp_path: Path) -> None:
    driver = ScriptedDriver([ok()])
    request = TransferRequest(
        url="https://acct.blob.core.windows.net/c/a.tif", dest=tmp_path / "a.tif"
    )
    driver.run(Transfers(policy=RetryPolicy(), rand=lambda: 0.0).fetch(request, FetchState()))
    assert driver.requests[0].header("x-ms-version") == "2021-06-08"
    plain = ScriptedDriver([ok()])
    plain.run(
        Transfers(policy=RetryPolicy(), rand=lambda: 0.0).fetch(
            TransferRequest(url=URL, dest=tmp_path / "b.tif"), FetchState()
        )
    )
    assert plain.requests[0].header("x-ms-version") is None


def test_a_host_whose_etags_are_not_md5s_is_distrusted_after_three_assets(tmp_path: Path) -> None:
    transfers = Transfers(policy=RetryPolicy(), rand=lambda: 0.0)
    not_md5 = '"' + "0" * 32 + '"'
    replies = []
    for i in range(4):
        replies.extend([ok(etag=not_md5)] * (2 if i < 3 else 1))
    driver = ScriptedDriver(replies)
    results = [
        driver.run(
            transfers.fetch(
                TransferRequest(url=f"{URL}?{i}", dest=tmp_path / f"{i}.tif"), FetchState()
            )
        )
        for i in range(4)
    ]
    assert [r.verified_by for r in results] == ["size"] * 4
    assert len(driver.requests) == 7  # twice each for three assets, then once: not trusted


def test_progress_resets_the_retry_budget_but_thrown_away_bytes_do_not(tmp_path: Path) -> None:
    cut = {"Content-Length": "1000", "ETag": ETAG}
    growing = (
        [Reply(200, cut, DATA, fail_after=200)]
        + [
            Reply(206, {**cut, "Content-Range": f"bytes {s}-999/1000"}, DATA[s:], fail_after=200)
            for s in (200, 400, 600)
        ]
        + [partial(800)]
    )
    transfers = Transfers(policy=RetryPolicy(max_retries=1), rand=lambda: 0.0)
    driver, outcome = run_case(tmp_path, Case(growing), transfers)
    assert isinstance(outcome, TransferResult)  # four failures, each one progress

    same = [
        Reply(200, cut, DATA, fail_after=200),
        partial(201),
        Reply(200, cut, DATA, fail_after=200),
    ]
    strict = Transfers(policy=RetryPolicy(max_retries=2), rand=lambda: 0.0)
    driver, outcome = run_case(tmp_path / "again", Case(same), strict)
    assert isinstance(outcome, TransferError) and outcome.retryable
    assert len(driver.requests) == 3  # the second 200 bytes rebuilt a discarded part: no progress


def test_a_fresh_part_never_truncates_a_hard_linked_inode(tmp_path: Path) -> None:
    good = tmp_path / "good.tif"
    good.write_bytes(b"a good file elsewhere")
    dest = tmp_path / "out" / "a.tif"
    dest.parent.mkdir()
    os.link(good, f"{dest}.part")  # an interrupted hard link left this .part
    driver = ScriptedDriver([ok()])
    driver.run(
        Transfers(policy=RetryPolicy(), rand=lambda: 0.0).fetch(
            TransferRequest(url=URL, dest=dest), FetchState()
        )
    )
    assert dest.read_bytes() == DATA
    assert good.read_bytes() == b"a good file elsewhere"


@pytest.mark.parametrize(
    ("size", "reported_at_start"), [(1000, False), (RECORD_PARTIAL_FROM, True)]
)
def test_a_small_file_reports_its_part_only_if_it_ends_unfinished(
    tmp_path: Path, size: int, reported_at_start: bool
) -> None:
    body = bytes(size)
    started: list[tuple[str | None, int | None]] = []
    transfers = Transfers(
        policy=RetryPolicy(max_retries=0),
        rand=lambda: 0.0,
        on_started=lambda req, validator, total: started.append((validator, total)),
    )
    cut = Reply(200, {"Content-Length": str(size), "ETag": OPAQUE}, body, fail_after=10)
    driver = ScriptedDriver([cut])
    with pytest.raises(TransferError):
        driver.run(transfers.fetch(TransferRequest(url=URL, dest=tmp_path / "a.tif"), FetchState()))
    assert started == [(OPAQUE, size)]  # reported either way, once

    started.clear()
    driver = ScriptedDriver([ok(body, etag=OPAQUE)])
    driver.run(transfers.fetch(TransferRequest(url=URL, dest=tmp_path / "b.tif"), FetchState()))
    assert started == ([(OPAQUE, size)] if reported_at_start else [])


def test_a_304_to_a_conditional_get_writes_nothing(tmp_path: Path) -> None:
    driver = ScriptedDriver([Reply(304, {"ETag": ETAG})])
    dest = tmp_path / "a.tar.gz"
    request = TransferRequest(
        url=URL, dest=dest, if_none_match=ETAG, if_modified_since=LAST_MODIFIED
    )
    result = driver.run(
        Transfers(policy=RetryPolicy(), rand=lambda: 0.0).fetch(request, FetchState())
    )
    assert result.not_modified and result.etag == ETAG
    assert driver.requests[0].header("if-none-match") == ETAG
    assert driver.requests[0].header("if-modified-since") == LAST_MODIFIED
    assert not dest.exists() and not Path(f"{dest}.part").exists()


def test_extra_digests_are_computed_over_the_whole_resumed_file(tmp_path: Path) -> None:
    case = Case(
        [partial(400)], part=DATA[:400], request={"resume_validator": ETAG, "digests": ("sha256",)}
    )
    _, outcome = run_case(tmp_path, case)
    assert isinstance(outcome, TransferResult)
    assert outcome.digests == {"sha256": hashlib.sha256(DATA).hexdigest()}


def test_a_stopped_run_cancels_before_the_next_request(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    driver = ScriptedDriver([ok()], stop=stop)
    with pytest.raises(Cancelled):
        driver.run(
            Transfers(policy=RetryPolicy(), rand=lambda: 0.0).fetch(
                TransferRequest(url=URL, dest=tmp_path / "a.tif"), FetchState()
            )
        )
    assert driver.requests == []


# -- patience: the deadline and what counts as progress (on the script's clock) ---------------


PATIENT = RetryPolicy(max_retries=100, backoff=0.5, max_backoff=30.0)
LIMITS = NetSettings(min_rate=1024, asset_deadline=120.0)


def fetch_on_the_clock(
    tmp_path: Path, replies: list[Reply], policy: RetryPolicy = PATIENT
) -> tuple[ScriptedDriver, TransferResult | TransferError]:
    driver = ScriptedDriver(replies)
    transfers = Transfers(policy=policy, rand=lambda: 0.5, net=LIMITS, clock=driver.clock)
    request = TransferRequest(url=URL, dest=tmp_path / "a.tif")
    try:
        return driver, driver.run(transfers.fetch(request, FetchState()))
    except TransferError as exc:
        return driver, exc


def test_a_host_that_times_out_every_time_is_given_up_at_the_deadline(tmp_path: Path) -> None:
    silent = Reply(0, fail="timeout", seconds=30.0)  # each attempt waits out the window
    driver, outcome = fetch_on_the_clock(tmp_path, [silent] * 20)
    assert isinstance(outcome, TransferError) and outcome.error_class == "timeout"
    assert not outcome.retryable
    assert "gave up after 4 attempts" in outcome.message and "timeout.asset" in str(outcome.hint)
    assert 120 <= driver.clock() <= 120 + 30  # no attempt started after the deadline
    assert len(driver.requests) == 4  # not the 101 the retry budget would allow


def test_a_large_file_that_keeps_moving_is_never_cut_by_the_deadline(tmp_path: Path) -> None:
    big = random.Random(2).randbytes(1_000_000)
    # ten connections, each dropped after 100 kB in 60 s (1.7 kB/s, above min_rate): 600 s
    replies = [
        Reply(
            206 if start else 200,
            {
                "Content-Length": str(len(big) - start),
                "ETag": OPAQUE,
                **({"Content-Range": f"bytes {start}-{len(big) - 1}/{len(big)}"} if start else {}),
            },
            big[start:],
            fail_after=100_000 if start < 900_000 else None,
            seconds=60.0,
        )
        for start in range(0, len(big), 100_000)
    ]
    driver, outcome = fetch_on_the_clock(tmp_path, replies, RetryPolicy(max_retries=2))
    assert isinstance(outcome, TransferResult), outcome
    assert (tmp_path / "a.tif").read_bytes() == big
    assert driver.clock() > 5 * LIMITS.asset_deadline


def test_a_trickle_is_no_progress_even_though_the_part_grows(tmp_path: Path) -> None:
    # 100 bytes per connection, a second each (100 B/s, below min_rate): the budget runs out
    replies = [
        Reply(
            206 if start else 200,
            {
                "Content-Length": str(1000 - start),
                "ETag": OPAQUE,
                **({"Content-Range": f"bytes {start}-999/1000"} if start else {}),
            },
            DATA[start:],
            fail_after=100,
            seconds=1.0,
        )
        for start in range(0, 1000, 100)
    ]
    driver, outcome = fetch_on_the_clock(tmp_path, replies, RetryPolicy(max_retries=3))
    assert isinstance(outcome, TransferError) and outcome.error_class == "connection"
    assert len(driver.requests) == 4  # max_retries + 1: no attempt reset the budget


# -- the sink: no byte past the limit reaches the disk, a bomb never sits in memory -----------


def test_a_gzip_bomb_stops_at_the_limit_and_never_sits_in_memory_whole(tmp_path: Path) -> None:
    part = tmp_path / "a.part"
    limit = 3 << 20
    tree = Tree(tmp_path)
    with tree.folder(tmp_path) as folder:
        sink = open_sink(folder.entry(part.name), 0, Hashes(None, True), decode="gzip", limit=limit)
    assert sink is not None
    bomb = gzip.compress(bytes(32 << 20), compresslevel=1)  # 32 MiB of zeros in 140 KB
    tracemalloc.start()
    try:
        stopped = sink.write(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sink.close()
        tree.close()
    assert stopped == 0 and sink.overflowed
    assert part.stat().st_size == sink.received == limit  # decoded bytes, counted on disk
    assert peak < 8 << 20  # 32 MiB decoded, never held whole
