"""Building the plan: the selection streamed against the ``files``/``partials`` records and one
``stat`` per path; non-keep steps are kept in ``temp.plan_steps`` and read back in href order
(a shared href is fetched once). Memory stays flat."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from mlhub_sync.plan.decide import Action, Desired, DiskState, Reason, decide
from mlhub_sync.stac.href import href_identity
from mlhub_sync.state.db import FileRecord, PartialRecord, StateDB

MAX_SAMPLE = 20


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
