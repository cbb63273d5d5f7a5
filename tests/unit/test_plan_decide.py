"""``decide()``: one action and reason per path, from what we want and what we observed.

The table is the module docstring's, case by case; the properties are the design's: the plan
is total, idempotent after a successful apply, and never deletes.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlhub_sync.plan.decide import Action, Desired, DiskState, Reason, decide
from mlhub_sync.state.schema import FileRecord, PartialRecord

HREF = "https://host/blobs/c/i/B02.tif?sv=2021&sig=abc"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
MD5_CLAIM = "d50110" + MD5
SHA_CLAIM = "1220" + "ab" * 32


def desired(size: int | None = 10, checksum: str | None = None, href: str = HREF) -> Desired:
    return Desired("c/i/B02.tif", href, size, checksum, "c", "i", "B02")


def record(
    size: int = 10,
    mtime_ns: int = 5,
    md5: str | None = MD5,
    checksum: str | None = None,
    verified_by: str = "content-md5",
    href: str = HREF,
) -> FileRecord:
    return FileRecord("c/i/B02.tif", href, size, mtime_ns, md5, checksum, '"etag"', verified_by)


def disk(size: int = 10, mtime_ns: int = 5, is_file: bool = True) -> DiskState:
    return DiskState(size, mtime_ns, is_file)


PARTIAL = PartialRecord("c/i/B02.tif", HREF, '"etag"', 10)

CASES = [
    # (what is there, desired, record, partial, disk, part size, mode) -> (action, reason)
    ("nothing at all", desired(), None, None, None, None, "resume",
     Action.DOWNLOAD, Reason.MISSING),
    ("a folder at the path", desired(), None, None, disk(is_file=False), None, "resume",
     Action.DOWNLOAD, Reason.MISSING),
    ("a recorded part", desired(), None, PARTIAL, None, 4, "resume", Action.RESUME, Reason.PARTIAL),
    ("a recorded part, re-signed href", desired(href=HREF.replace("abc", "xyz")), None, PARTIAL,
     None, 4, "resume", Action.RESUME, Reason.PARTIAL),
    ("a recorded part, empty", desired(), None, PARTIAL, None, 0, "resume",
     Action.DOWNLOAD, Reason.MISSING),
    ("a part record, no part file", desired(), None, PARTIAL, None, None, "resume",
     Action.DOWNLOAD, Reason.MISSING),
    ("a part of another href", desired(href="https://host/other.tif"), None, PARTIAL, None, 4,
     "resume", Action.DOWNLOAD, Reason.MISSING),
    ("an untracked file", desired(), None, None, disk(), None, "resume",
     Action.VERIFY, Reason.UNTRACKED),
    ("a file marked corrupt", desired(), record(verified_by="corrupt"), None, disk(), None,
     "resume", Action.REPLACE, Reason.CHECKSUM_MISMATCH),
    ("the catalog points elsewhere", desired(href="https://host/new.tif"), record(), None, disk(),
     None, "resume", Action.REPLACE, Reason.UPSTREAM_CHANGED),
    ("only the signature rotated", desired(href=HREF.replace("abc", "xyz")), record(), None,
     disk(), None, "resume", Action.KEEP, Reason.UP_TO_DATE),
    ("a new checksum, same algorithm", desired(checksum=SHA_CLAIM),
     record(checksum="1220" + "cd" * 32), None, disk(), None, "resume",
     Action.REPLACE, Reason.UPSTREAM_CHANGED),
    ("a first checksum, another algorithm", desired(checksum=SHA_CLAIM), record(), None, disk(),
     None, "resume", Action.VERIFY, Reason.UPSTREAM_CHANGED),
    ("an md5 claim matching what we hashed", desired(checksum=MD5_CLAIM), record(), None, disk(),
     None, "resume", Action.KEEP, Reason.UP_TO_DATE),
    ("an unparseable claim", desired(checksum="zz"), record(), None, disk(), None, "resume",
     Action.KEEP, Reason.UP_TO_DATE),
    ("the catalog's size changed", desired(size=11), record(), None, disk(), None, "resume",
     Action.REPLACE, Reason.UPSTREAM_CHANGED),
    ("the file shrank on disk", desired(), record(), None, disk(size=4), None, "resume",
     Action.REPLACE, Reason.SIZE_MISMATCH),
    ("the file was touched", desired(), record(), None, disk(mtime_ns=6), None, "resume",
     Action.VERIFY, Reason.MODIFIED_LOCALLY),
    ("all as recorded", desired(), record(), None, disk(), None, "resume",
     Action.KEEP, Reason.UP_TO_DATE),
    ("size unknown to the catalog", desired(size=None), record(), None, disk(), None, "resume",
     Action.KEEP, Reason.UP_TO_DATE),
    ("skip: any file is kept", desired(), None, None, disk(size=1), None, "skip",
     Action.KEEP, Reason.UP_TO_DATE),
    ("skip: a missing file is still fetched", desired(), None, None, None, None, "skip",
     Action.DOWNLOAD, Reason.MISSING),
    ("overwrite: a good file is replaced", desired(), record(), None, disk(), None, "overwrite",
     Action.REPLACE, Reason.REQUESTED),
    ("overwrite: a part still resumes", desired(), None, PARTIAL, None, 4, "overwrite",
     Action.RESUME, Reason.PARTIAL),
]  # fmt: skip


@pytest.mark.parametrize(
    ("want", "rec", "partial", "seen", "part_size", "mode", "action", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(
    want: Desired,
    rec: FileRecord | None,
    partial: PartialRecord | None,
    seen: DiskState | None,
    part_size: int | None,
    mode: str,
    action: Action,
    reason: Reason,
) -> None:
    assert decide(want, rec, partial, seen, part_size, mode) == (action, reason)


def test_every_action_and_reason_of_the_table_is_reachable() -> None:
    actions = {case[-2] for case in CASES}
    reasons = {case[-1] for case in CASES}
    assert actions == set(Action)
    assert reasons == set(Reason)


sizes = st.one_of(st.none(), st.integers(0, 2**40))
hrefs = st.sampled_from([HREF, HREF.replace("abc", "xyz"), "https://host/other.tif"])
checksums = st.sampled_from([None, MD5_CLAIM, SHA_CLAIM, "1220" + "cd" * 32, "zz"])
desireds = st.builds(desired, size=sizes, checksum=checksums, href=hrefs)
records = st.one_of(
    st.none(),
    st.builds(
        record,
        size=st.integers(0, 2**40),
        mtime_ns=st.integers(0, 10),
        md5=st.sampled_from([None, MD5]),
        checksum=checksums,
        verified_by=st.sampled_from(["file:checksum", "size", "corrupt"]),
        href=hrefs,
    ),
)
partials = st.one_of(st.none(), st.just(PARTIAL))
disks = st.one_of(
    st.none(),
    st.builds(disk, size=st.integers(0, 2**40), mtime_ns=st.integers(0, 10), is_file=st.booleans()),
)
modes = st.sampled_from(["resume", "skip", "overwrite"])


@given(desireds, records, partials, disks, st.one_of(st.none(), st.integers(0, 100)), modes)
def test_decide_is_total_and_never_deletes(
    want: Desired,
    rec: FileRecord | None,
    partial: PartialRecord | None,
    seen: DiskState | None,
    part_size: int | None,
    mode: str,
) -> None:
    action, reason = decide(want, rec, partial, seen, part_size, mode)
    assert action in set(Action) and reason in set(Reason)  # no delete among them


@given(desireds, st.integers(0, 2**40), st.integers(0, 2**62), st.sampled_from([None, MD5]))
def test_after_a_successful_apply_the_next_plan_keeps_the_path(
    want: Desired, written: int, mtime_ns: int, md5: str | None
) -> None:
    # What the executor records when it verified a file is exactly what the next stat sees.
    size = want.size if want.size is not None else written
    done = FileRecord(want.path, want.href, size, mtime_ns, md5, want.checksum, None, "size")
    assert decide(want, done, None, DiskState(size, mtime_ns, True), None) == (
        Action.KEEP,
        Reason.UP_TO_DATE,
    )
