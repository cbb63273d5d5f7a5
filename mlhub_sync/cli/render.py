"""Turning results into text for people and JSON for machines (the CLI prints them).

JSON documents carry a ``format`` field (``mlhub-sync.plan/1`` ...) that changes only when
their shape changes incompatibly (``json.dumps`` escapes control characters). A dataset that
failed (its catalog unreachable, say) keeps its place in ``datasets[]``, in spec order, with
its ``error`` (``cli/failed.py``); every other entry has ``"error": null``. Text for people
has every control character escaped (:func:`~mlhub_sync.net.display.terminal_safe`): ids, keys
and paths from a catalog in full, the text as a whole but its newlines, so a hostile catalog
cannot send escape sequences to the terminal or forge a line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from mlhub_sync.cli.failed import Failures, in_spec_order
from mlhub_sync.net.display import terminal_safe
from mlhub_sync.net.redact import redact_url
from mlhub_sync.plan.build import Tally
from mlhub_sync.plan.decide import Action
from mlhub_sync.progress import binary_size as human_bytes  # 1536 -> 1.5 KiB
from mlhub_sync.session import ApplyOutcome, DatasetPlan
from mlhub_sync.status import DatasetStatus

PLAN_FORMAT = "mlhub-sync.plan/1"


APPLY_FORMAT = "mlhub-sync.apply/1"


STATUS_FORMAT = "mlhub-sync.status/1"


_ORDER = (Action.DOWNLOAD, Action.RESUME, Action.REPLACE, Action.VERIFY, Action.KEEP)


def _size(t: Tally) -> str:
    text = human_bytes(t.bytes)
    if t.unknown:
        text += f" + {t.unknown} of unknown size" if t.bytes else " (size unknown)"
    return text


def _shown(text: str) -> str:
    """A value from a catalog (an id, a path, an href) on one line, controls escaped."""
    return terminal_safe(text)


def count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``: a number with its noun, singular for one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _lines(text: str) -> str:
    """Text for people, its controls escaped but newlines."""
    return terminal_safe(text, keep_newlines=True)


def plan_line(p: DatasetPlan) -> str:
    """One line per dataset: what apply would do (and, below it, where a source came from)."""
    via = p.config.resolved_via
    return _lines(_plan_line(p) + (f"\n  resolved via {via}" if via else ""))


def _plan_line(p: DatasetPlan) -> str:
    cfg = p.config
    if cfg.catalog_only:
        items, assets = count(p.catalog.items, "item"), count(p.catalog.assets, "asset")
        return f"{cfg.id}: catalog only ({items}, {assets})"
    parts = []
    for action in _ORDER[:-1]:
        t = p.plan.tally(action)
        if t.files:
            parts.append(f"{action.value} {t.files} ({_size(t)})")
    keep = p.plan.tally(Action.KEEP).files
    work = ", ".join(parts) if parts else "nothing to do"
    return f"{cfg.id}: {work}; {keep} up to date [{p.selection.selected} selected]"


def plan_text(plans: Sequence[DatasetPlan]) -> str:
    """The full plan for people."""
    out: list[str] = []
    for p in plans:
        cfg, sel = p.config, p.selection
        out.append(f"{cfg.label} -> {cfg.dataset_dir}")
        if cfg.resolved_via:
            out.append(f"  resolved via {cfg.resolved_via}")
        if cfg.asset_dir != cfg.dataset_dir:
            out.append(f"  assets -> {cfg.asset_dir}")
        state = "rebuilt" if p.catalog.reindexed else "up to date"
        out.append(
            f"  catalog: {count(p.catalog.items, 'item')}, {count(p.catalog.assets, 'asset')} "
            f"(index {state})"
        )
        changes = p.catalog.changes
        if changes is not None and changes.any:
            out.append(
                f"  items since the last index: {changes.added} added, "
                f"{changes.changed} changed, {changes.removed} removed"
            )
            for kind, found in changes.samples.items():
                out.extend(f"    {kind}: {_shown(c)}/{_shown(i)}" for c, i in found[:5])
        if p.catalog.rejected:
            out.append(
                f"  left out of the index: {count(p.catalog.rejected, 'asset')} with unusable hrefs"
            )
        if p.catalog.invalid_documents:
            out.append(
                f"  unreadable catalog documents: {p.catalog.invalid_documents} (skipped; "
                "prune is held back while any remain)"
            )
            out.extend(f"    {_shown(h)}: {_shown(w)}" for h, w in p.catalog.unreadable[:10])
        if n := p.catalog.unmatched_keys:  # a flat tree's keys (s3, azure)
            out.append(f"  {count(n, 'key')} match{'es' * (n == 1)} no template (not synced)")
            out.extend(f"    {_shown(key)}" for key in p.catalog.unmatched_sample[:10])
        if cfg.catalog_only:
            out.append("  catalog_only: no assets will be downloaded")
            out.append("")
            continue
        filters = cfg.filters.describe()
        out.append(f"  filters: {'; '.join(filters) if filters else 'none (every asset)'}")
        if p.drift is not None:
            out.append(f"  lock: {'DRIFT: ' if p.drift.drifted else ''}{p.drift.describe()}")
            out.extend(f"    {_shown(line)}" for line in p.drift.samples or [])
        size = _size(Tally(sel.selected, sel.selected_bytes, sel.unknown_size))
        out.append(f"  selected: {count(sel.selected, 'file')}, {size}")
        if sel.selected == 0 and filters:
            out.append("  note: the filters select nothing; check them against the catalog")
        for reason, n in sorted(sel.excluded_items.items(), key=lambda kv: kv[0].value):
            out.append(f"  excluded: {count(n, 'item')} {reason.value}")
        for action in _ORDER:
            t = p.plan.tally(action)
            if not t.files:
                continue
            reasons = ", ".join(
                f"{r.value} {tt.files}"
                for (a, r), tt in sorted(p.plan.counts.items(), key=lambda kv: kv[0][1].value)
                if a is action
            )
            out.append(f"  {action.value:<9}{count(t.files, 'file')}, {_size(t)} ({reasons})")
        if p.plan.not_desired:
            out.append(
                f"  not desired: {count(p.plan.not_desired, 'managed file')} outside the "
                f"selection (kept{'; prune is on' if cfg.prune else ''})"
            )
            out.extend(f"    {_shown(path)}" for path in p.plan.not_desired_sample)
        if sel.conflict_count:
            out.append(
                f"  conflicts: {sel.conflict_count} paths claimed by two hrefs "
                "(the first in the catalog wins)"
            )
            out.extend(
                f"    {_shown(c.path)}: kept {_shown(redact_url(c.kept))}, "
                f"skipped {_shown(redact_url(c.dropped))} ({_shown(c.dropped_from)})"
                for c in sel.conflicts[:10]
            )
        out.append("")
    pending = sum(p.pending for p in plans)
    out.append(f"{pending} changes pending" if pending else "No changes: everything is in sync.")
    return _lines("\n".join(out))


def _tally_json(t: Tally) -> dict[str, int]:
    return {"files": t.files, "bytes": t.bytes, "unknown_size": t.unknown}


def plan_json(plans: Sequence[DatasetPlan], failed: Failures = ()) -> dict[str, Any]:
    """The plan as a JSON document (``format: mlhub-sync.plan/1``)."""
    return {
        "format": PLAN_FORMAT,
        "datasets": in_spec_order([_plan_dataset_json(p) for p in plans], failed),
        "pending": sum(p.pending for p in plans),
    }


def _plan_dataset_json(p: DatasetPlan) -> dict[str, Any]:
    """One dataset's plan as JSON."""
    cfg, sel = p.config, p.selection
    actions: dict[str, Any] = {}
    for action in _ORDER:
        entry: dict[str, Any] = _tally_json(p.plan.tally(action))
        entry["reasons"] = {
            r.value: _tally_json(t)
            for (a, r), t in sorted(p.plan.counts.items(), key=lambda kv: kv[0][1].value)
            if a is action
        }
        actions[action.value] = entry
    return {
        "id": cfg.id,
        "index": cfg.index,
        "dataset_dir": str(cfg.dataset_dir),
        "asset_dir": str(cfg.asset_dir),
        "catalog_only": cfg.catalog_only,
        "resolved_via": cfg.resolved_via,
        "catalog": {
            "reindexed": p.catalog.reindexed,
            "items": p.catalog.items,
            "assets": p.catalog.assets,
            "rejected": p.catalog.rejected,
            "invalid_documents": p.catalog.invalid_documents,
            "unreadable_documents": [
                {"href": href, "why": why} for href, why in p.catalog.unreadable
            ],
            "item_changes": None
            if p.catalog.changes is None
            else {
                "added": p.catalog.changes.added,
                "changed": p.catalog.changes.changed,
                "removed": p.catalog.changes.removed,
                "samples": {
                    kind: [{"collection": c, "item": i} for c, i in found]
                    for kind, found in p.catalog.changes.samples.items()
                },
            },
            **p.catalog.unmatched_entry(),
        },
        "filters": cfg.filters.describe(),
        "selection": {
            "files": sel.selected,
            "bytes": sel.selected_bytes,
            "unknown_size": sel.unknown_size,
            "excluded_assets": sel.excluded_assets,
            "excluded_items": {r.name.lower(): n for r, n in sel.excluded_items.items()},
            "conflicts": sel.conflict_count,
            "conflict_samples": [
                {
                    "path": c.path,
                    "kept": redact_url(c.kept),
                    "dropped": redact_url(c.dropped),
                    "from": c.dropped_from,
                }
                for c in sel.conflicts
            ],
        },
        "actions": actions,
        "not_desired": {"files": p.plan.not_desired, "sample": p.plan.not_desired_sample},
        "pending": p.pending,
        "lock": None
        if p.drift is None
        else {
            "drifted": p.drift.drifted,
            "missing_from_lock": p.drift.missing_from_lock,
            "catalog_changed": p.drift.catalog_changed,
            "added": p.drift.added,
            "removed": p.drift.removed,
            "changed": p.drift.changed,
            "samples": p.drift.samples or [],
        },
        "error": None,
    }


def apply_line(o: ApplyOutcome) -> str:
    """One line per dataset after apply."""
    return _lines(_apply_line(o))


def _apply_line(o: ApplyOutcome) -> str:
    st, cfg = o.stats, o.planned.config
    if cfg.catalog_only:
        return f"{cfg.id}: catalog saved to {cfg.dataset_dir} (catalog_only)"
    done = [
        f"{n} {name}"
        for name, n in (
            ("downloaded", st.downloaded),
            ("resumed", st.resumed),
            ("replaced", st.replaced),
            ("adopted", st.adopted),
            ("linked", st.linked),
        )
        if n
    ]
    keep = o.planned.plan.tally(Action.KEEP).files
    text = f"{cfg.id}: {', '.join(done) or 'nothing to do'}; {keep} up to date"
    if st.transferred:
        rate = human_bytes(int(st.transferred / max(st.seconds, 1e-9)))
        text += f"; {human_bytes(st.transferred)} in {st.seconds:.1f}s ({rate}/s)"
    if st.failed:
        text += f"; {st.failed} FAILED (see {o.report})"
    if o.left_out:
        text += f"; {o.left_out} left out: unusable hrefs (see {o.report})"
    if st.fatal is not None:
        text += f"; STOPPED: {st.fatal}"
    if st.interrupted:
        text += "; interrupted (partial downloads kept for resume)"
    if o.pruned:
        text += f"; pruned {o.pruned}"
    if o.prune_refused:
        text += f"; prune skipped: {o.prune_refused}"
    return text


def kept_line(partials: int, spec: str) -> str:
    """What an interrupted apply kept, and what to do next."""
    again = f"run `mlhub-sync apply {spec}` again"
    if partials:
        return f"{count(partials, 'partial file')} kept; {again} to resume"
    return f"the files finished so far are kept; {again} for the rest"


def apply_json(outcomes: Sequence[ApplyOutcome], failed: Failures = ()) -> dict[str, Any]:
    """Apply results as JSON (``format: mlhub-sync.apply/1``)."""
    datasets = []
    for o in outcomes:
        st = o.stats
        entry = _plan_dataset_json(o.planned)
        entry["result"] = {
            "downloaded": st.downloaded,
            "resumed": st.resumed,
            "replaced": st.replaced,
            "adopted": st.adopted,
            "linked": st.linked,
            "failed": st.failed,
            "bytes_transferred": st.transferred,
            "seconds": round(st.seconds, 3),
            "interrupted": st.interrupted,
            "fatal": str(st.fatal) if st.fatal else None,
            "report": str(o.report) if o.report else None,
            "pruned": o.pruned,
            "left_out": o.left_out,
            "prune_refused": o.prune_refused,
        }
        datasets.append(entry)
    return {
        "format": APPLY_FORMAT,
        "datasets": in_spec_order(datasets, failed),
        "failed": sum(o.failed for o in outcomes),
    }


def status_text(statuses: Sequence[DatasetStatus]) -> str:
    """``status`` for people."""
    out = []
    for s in statuses:
        p, cfg = s.planned, s.planned.config
        if not s.synced and s.why:
            out.append(f"{cfg.label}: not synced yet by mlhub-sync: {s.why}")
            continue
        if not s.synced:
            out.append(f"{cfg.label}: not synced yet ({cfg.dataset_dir} has no state db)")
            continue
        when = (
            dt.datetime.fromtimestamp(s.last_sync, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            if s.last_sync
            else "never"
        )
        keep = p.plan.tally(Action.KEEP)
        out.append(f"{cfg.label} -> {cfg.dataset_dir}")
        if cfg.resolved_via:
            out.append(f"  resolved via {cfg.resolved_via}")
        out.append(
            f"  selected {count(p.selection.selected, 'file')}; in sync {keep.files} "
            f"({human_bytes(keep.bytes)}); last sync {when}"
        )
        for (action, reason), t in sorted(p.plan.counts.items(), key=lambda kv: kv[0][1].value):
            if action is not Action.KEEP:
                files = count(t.files, "file")
                out.append(f"  {reason.value}: {files} (apply will {action.value})")
        if p.plan.not_desired:
            out.append(
                f"  not desired: {count(p.plan.not_desired, 'managed file')} outside the selection"
            )
        if s.report_rows:
            out.append(f"  last run failures: {s.report_rows} (mlhub_errors.csv)")
    return _lines("\n".join(out))


def status_json(statuses: Sequence[DatasetStatus], failed: Failures = ()) -> dict[str, Any]:
    """``status`` as JSON (``format: mlhub-sync.status/1``)."""
    datasets = []
    for s in statuses:
        entry = _plan_dataset_json(s.planned)
        entry.update(
            {"synced": s.synced, "last_sync": s.last_sync, "last_run_failures": s.report_rows}
        )
        datasets.append(entry)
    return {
        "format": STATUS_FORMAT,
        "datasets": in_spec_order(datasets, failed),
        "pending": sum(s.planned.pending for s in statuses),
    }
