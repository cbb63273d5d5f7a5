"""The plan: for every selected path, what to do and why. The decision is a pure function.

=========  ====================  ==========================================================
action     reasons               meaning
=========  ====================  ==========================================================
download   missing               nothing at the path: fetch it
resume     partial               a ``.part`` we recorded is there: continue with a Range GET
replace    size-mismatch,        the file is wrong (its size differs from what we verified
           checksum-mismatch,    or the catalog says) or the catalog now points elsewhere
           upstream-changed
verify     modified-locally,     a file is there but we cannot vouch for it by ``stat`` alone:
           untracked             hash it (or ask the server with HEAD), then keep or replace
keep       up-to-date            recorded, same size and mtime: nothing to do
=========  ====================  ==========================================================

``build_plan`` streams the selection against the ``files``/``partials`` records and one
``stat`` per path; steps other than *keep* go to a TEMP table ``plan_steps`` that the executor
reads back in href order (so a shared href is fetched once). Memory stays flat.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .checksum import UnknownMultihashError, parse_multihash
from .state import FileRecord, PartialRecord, StateDB

MAX_SAMPLE = 20


class Action(StrEnum):
    """What apply will do with one path."""

    DOWNLOAD = "download"
    RESUME = "resume"
    REPLACE = "replace"
    VERIFY = "verify"
    KEEP = "keep"


class Reason(StrEnum):
    """Why."""

    MISSING = "missing"
    PARTIAL = "partial"
    SIZE_MISMATCH = "size-mismatch"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    UPSTREAM_CHANGED = "upstream-changed"
    MODIFIED_LOCALLY = "modified-locally"
    UNTRACKED = "untracked"
    UP_TO_DATE = "up-to-date"
    REQUESTED = "requested"  # if_exists="overwrite"


@dataclass(frozen=True)
class Desired:
    """A selected asset at its path."""

    path: str
    href: str
    size: int | None
    checksum: str | None
    collection_id: str
    item_id: str | None
    asset_key: str


@dataclass(frozen=True)
class DiskState:
    """What ``stat`` says about a path."""

    size: int
    mtime_ns: int
    is_file: bool


# Query parameters that rotate with every signed URL and say nothing about the object.
_SIGNATURE_PARAMS = frozenset(
    {"sig", "se", "st", "sp", "sv", "sr", "spr", "skoid", "sktid", "skt", "ske", "sks", "skv",
     "signature", "expires", "key-pair-id", "policy", "token"}
)  # fmt: skip


def href_identity(href: str) -> str:
    """``href`` without rotating signature parameters (SAS, presigned S3/GCS, CloudFront).

    Two hrefs with the same identity name the same object, so a fresh SAS token in a new
    catalog does not make every file look changed.
    """
    parts = urlsplit(href)
    if not parts.query:
        return href
    kept = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in _SIGNATURE_PARAMS and not k.lower().startswith(("x-amz-", "x-goog-"))
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), ""))


def checksum_agrees(desired: str | None, record: FileRecord) -> bool:
    """True unless the catalog's checksum now contradicts what the file was verified as."""
    if desired is None or desired == record.checksum:
        return True
    try:
        claim = parse_multihash(desired)
    except (UnknownMultihashError, ValueError):
        return True  # nothing we can check it against; the transfer reports it
    return claim.name == "md5" and record.md5 == claim.digest


def _same_algorithm(claim: str | None, recorded: str | None) -> bool:
    try:
        return (
            claim is not None
            and recorded is not None
            and parse_multihash(claim).code == parse_multihash(recorded).code
        )
    except ValueError:
        return False


def decide(
    desired: Desired,
    record: FileRecord | None,
    partial: PartialRecord | None,
    disk: DiskState | None,
    part_size: int | None,
    mode: str = "resume",
) -> tuple[Action, Reason]:
    """The action for one path, from what we want and what we observed.

    ``mode`` is the API's ``if_exists``: ``resume`` (reconcile), ``skip`` (keep any file that
    is there, unchecked) or ``overwrite`` (fetch everything again).
    """
    present = disk is not None and disk.is_file
    if present and mode == "skip":
        return Action.KEEP, Reason.UP_TO_DATE
    if present and mode == "overwrite":
        return Action.REPLACE, Reason.REQUESTED
    if disk is None or not disk.is_file:
        if (
            partial is not None
            and part_size
            and href_identity(partial.href) == href_identity(desired.href)
        ):
            return Action.RESUME, Reason.PARTIAL
        return Action.DOWNLOAD, Reason.MISSING
    if record is None:
        return Action.VERIFY, Reason.UNTRACKED
    if record.verified_by == "corrupt":  # marked by `verify --deep`
        return Action.REPLACE, Reason.CHECKSUM_MISMATCH
    if href_identity(record.href) != href_identity(desired.href):
        return Action.REPLACE, Reason.UPSTREAM_CHANGED
    if not checksum_agrees(desired.checksum, record):
        # A new claim in the same algorithm as before means new content; a claim we could
        # not compare (none before, or another algorithm) is checked by hashing the file.
        if _same_algorithm(desired.checksum, record.checksum):
            return Action.REPLACE, Reason.UPSTREAM_CHANGED
        return Action.VERIFY, Reason.UPSTREAM_CHANGED
    if desired.size is not None and desired.size != record.size:
        return Action.REPLACE, Reason.UPSTREAM_CHANGED
    if disk.size != record.size:
        return Action.REPLACE, Reason.SIZE_MISMATCH
    if disk.mtime_ns != record.mtime_ns:
        return Action.VERIFY, Reason.MODIFIED_LOCALLY
    return Action.KEEP, Reason.UP_TO_DATE


@dataclass
class Tally:
    """Files and bytes (``unknown``: files whose size the catalog does not give)."""

    files: int = 0
    bytes: int = 0
    unknown: int = 0

    def add(self, size: int | None) -> None:
        """Count one file."""
        self.files += 1
        if size is None:
            self.unknown += 1
        else:
            self.bytes += size


@dataclass
class PlanSummary:
    """Counts per (action, reason) and the managed files the selection no longer wants."""

    counts: dict[tuple[Action, Reason], Tally] = field(default_factory=dict)
    not_desired: int = 0
    not_desired_sample: list[str] = field(default_factory=list)

    def tally(self, action: Action) -> Tally:
        """All files of one action."""
        total = Tally()
        for (act, _), t in self.counts.items():
            if act is action:
                total.files += t.files
                total.bytes += t.bytes
                total.unknown += t.unknown
        return total

    @property
    def pending(self) -> int:
        """Steps with work to do (all but keep)."""
        return sum(t.files for (a, _), t in self.counts.items() if a is not Action.KEEP)


@dataclass(frozen=True)
class Step:
    """One path's step, with what the executor needs to carry it out."""

    desired: Desired
    action: Action
    reason: Reason
    record_md5: str | None = None
    partial_validator: str | None = None
    part_size: int | None = None


def _stat(path: str) -> DiskState | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return DiskState(st.st_size, st.st_mtime_ns, (st.st_mode & 0o170000) == 0o100000)


_PLAN_COLUMNS = (
    "path, href, size, checksum, collection_id, item_id, asset_key, action, reason, "
    "record_md5, partial_validator, part_size"
)


def build_plan(db: StateDB, asset_dir: str, mode: str = "resume") -> PlanSummary:
    """Decide every selected path; store non-keep steps in ``temp.plan_steps``."""
    conn = db.conn
    conn.executescript(
        "DROP TABLE IF EXISTS temp.plan_steps;"
        "CREATE TEMP TABLE plan_steps (path TEXT PRIMARY KEY, href TEXT NOT NULL, size INTEGER,"
        " checksum TEXT, collection_id TEXT NOT NULL, item_id TEXT, asset_key TEXT NOT NULL,"
        " action TEXT NOT NULL, reason TEXT NOT NULL, record_md5 TEXT, partial_validator TEXT,"
        " part_size INTEGER) WITHOUT ROWID;"
    )
    summary = PlanSummary()
    base = asset_dir.rstrip("/") + "/"
    batch: list[tuple[object, ...]] = []
    cursor = conn.cursor()
    cursor.execute(
        "SELECT s.path, s.href, s.size, s.checksum, s.collection_id, s.item_id, s.asset_key, "
        "f.path, f.href, f.size, f.mtime_ns, f.md5, f.checksum, f.validator, f.verified_by, "
        "p.path, p.href, p.validator, p.total_size "
        "FROM temp.selection s LEFT JOIN files f ON f.path = s.path "
        "LEFT JOIN partials p ON p.path = s.path"
    )
    for row in cursor:
        desired = Desired(*row[0:7])
        record = FileRecord(*row[7:15]) if row[7] is not None else None
        partial = PartialRecord(*row[15:19]) if row[15] is not None else None
        disk = _stat(base + desired.path)
        part = _stat(base + desired.path + ".part") if partial is not None else None
        part_size = part.size if part is not None and part.is_file else None
        action, reason = decide(desired, record, partial, disk, part_size, mode)
        summary.counts.setdefault((action, reason), Tally()).add(desired.size)
        if action is not Action.KEEP:
            batch.append(
                (
                    *row[0:7],
                    action.value,
                    reason.value,
                    record.md5 if record else None,
                    partial.validator
                    if partial and href_identity(partial.href) == href_identity(desired.href)
                    else None,
                    part_size,
                )
            )
            if len(batch) >= 5000:
                conn.executemany(
                    f"INSERT INTO temp.plan_steps ({_PLAN_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    batch,
                )
                batch.clear()
    conn.executemany(
        f"INSERT INTO temp.plan_steps ({_PLAN_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch,
    )
    conn.execute("CREATE INDEX temp.plan_by_href ON plan_steps(href, path)")
    summary.not_desired = int(
        conn.execute(
            "SELECT COUNT(*) FROM files WHERE path NOT IN (SELECT path FROM temp.selection)"
        ).fetchone()[0]
    )
    summary.not_desired_sample = [
        row[0]
        for row in conn.execute(
            "SELECT path FROM files WHERE path NOT IN (SELECT path FROM temp.selection) "
            f"ORDER BY path LIMIT {MAX_SAMPLE}"
        )
    ]
    return summary


def iter_steps(db: StateDB, page: int = 1000) -> Iterator[Step]:
    """The stored non-keep steps, in href order (a shared href's paths come together).

    Read page by page (keyset pagination), so no statement stays open while the caller
    commits its journal on the same connection.
    """
    last = ("", "")
    while True:
        rows = db.conn.execute(
            f"SELECT {_PLAN_COLUMNS} FROM temp.plan_steps WHERE (href, path) > (?, ?) "
            f"ORDER BY href, path LIMIT {int(page)}",
            last,
        ).fetchall()
        if not rows:
            return
        for row in rows:
            yield Step(
                desired=Desired(*row[0:7]),
                action=Action(row[7]),
                reason=Reason(row[8]),
                record_md5=row[9],
                partial_validator=row[10],
                part_size=row[11],
            )
        last = (rows[-1][1], rows[-1][0])
