"""Building the plan: the selection streamed against the ``files``/``partials`` records and one
``stat`` per path, decided path by path (``decide``). The result is a :class:`Plan` value:
totals per action and reason, the managed files no longer desired, and the steps with work to
do, kept in the state db and streamed back in href order (a shared href is fetched once).
Memory stays flat however many assets there are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mlhub_sync.plan.decide import Action, Desired, DiskState, Reason, decide
from mlhub_sync.stac.href import href_identity
from mlhub_sync.state.db import StateDB
from mlhub_sync.state.schema import FileRecord, PartialRecord

MAX_SAMPLE = 20
_BATCH = 5000
_PAGE = 1000


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


@dataclass(frozen=True)
class Step:
    """One path's step, with what the executor needs to carry it out."""

    desired: Desired
    action: Action
    reason: Reason
    record_md5: str | None = None
    partial_validator: str | None = None
    part_size: int | None = None


def _no_steps() -> Iterator[Step]:
    return iter(())


@dataclass(frozen=True)
class Plan:
    """What apply would do: one decision per selected path.

    ``counts`` has the files and bytes per (action, reason); ``steps()`` streams the steps
    with work to do (all but *keep*) in href order; ``not_desired`` counts the managed files
    the selection no longer wants (prune deletes them, only when asked).
    """

    counts: Mapping[tuple[Action, Reason], Tally] = field(
        default_factory=lambda: MappingProxyType({})
    )
    not_desired: int = 0
    not_desired_sample: tuple[str, ...] = ()
    _steps: Callable[[], Iterator[Step]] = field(default=_no_steps, repr=False, compare=False)

    def steps(self) -> Iterator[Step]:
        """The steps with work to do, in href order (read from the state db as they go)."""
        return self._steps()

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

    @property
    def pending_bytes(self) -> int | None:
        """Bytes the pending steps move, or ``None`` when some sizes are unknown."""
        tallies = [self.tally(a) for a in Action if a is not Action.KEEP]
        if any(t.unknown for t in tallies):
            return None
        return sum(t.bytes for t in tallies)


def _stat(path: str) -> DiskState | None:
    try:
        st = os.lstat(path)  # a link is not a file of ours: it is replaced, never followed
    except (FileNotFoundError, NotADirectoryError):
        return None
    return DiskState(st.st_size, st.st_mtime_ns, (st.st_mode & 0o170000) == 0o100000)


def build_plan(db: StateDB, asset_dir: str, mode: str = "resume") -> Plan:
    """Decide every selected path (the selection must be built); see :class:`Plan`."""
    store = db.plan
    store.reset()
    counts: dict[tuple[Action, Reason], Tally] = {}
    base = asset_dir.rstrip("/") + "/"
    batch: list[tuple[object, ...]] = []
    for row in store.desired():
        desired = Desired(*row[0:7])
        record = FileRecord(*row[7:15]) if row[7] is not None else None
        partial = PartialRecord(*row[15:19]) if row[15] is not None else None
        disk = _stat(base + desired.path)
        part = _stat(base + desired.path + ".part") if partial is not None else None
        part_size = part.size if part is not None and part.is_file else None
        action, reason = decide(desired, record, partial, disk, part_size, mode)
        counts.setdefault((action, reason), Tally()).add(desired.size)
        if action is Action.KEEP:
            continue
        same_href = partial is not None and href_identity(partial.href) == href_identity(
            desired.href
        )
        batch.append(
            (
                *row[0:7],
                action.value,
                reason.value,
                record.md5 if record else None,
                partial.validator if partial is not None and same_href else None,
                part_size,
            )
        )
        if len(batch) >= _BATCH:
            store.add(batch)
            batch.clear()
    store.add(batch)
    store.finish()
    return Plan(
        counts=MappingProxyType(counts),
        not_desired=db.selection.not_desired_count(),
        not_desired_sample=tuple(db.selection.not_desired_after("", MAX_SAMPLE)),
        _steps=lambda: iter_steps(db),
    )


def iter_steps(db: StateDB) -> Iterator[Step]:
    """The stored steps with work to do, in href order (a shared href's paths come together)."""
    href, path = "", ""
    while rows := db.plan.steps_after(href, path, _PAGE):
        for row in rows:
            yield Step(
                desired=Desired(*row[0:7]),
                action=Action(row[7]),
                reason=Reason(row[8]),
                record_md5=row[9],
                partial_validator=row[10],
                part_size=row[11],
            )
        href, path = rows[-1][1], rows[-1][0]
