"""Turning results into text for people and JSON for machines (the CLI prints them).

JSON documents carry a ``format`` field (``mlhub-sync.plan/1`` ...) that changes only when
their shape changes incompatibly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .engine import DatasetPlan
from .plan import Action, Tally
from .redact import redact_url

PLAN_FORMAT = "mlhub-sync.plan/1"

_ORDER = (Action.DOWNLOAD, Action.RESUME, Action.REPLACE, Action.VERIFY, Action.KEEP)


def human_bytes(n: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _size(t: Tally) -> str:
    text = human_bytes(t.bytes)
    if t.unknown:
        text += f" + {t.unknown} of unknown size" if t.bytes else " (size unknown)"
    return text


def plan_line(p: DatasetPlan) -> str:
    """One line per dataset: what apply would do."""
    cfg = p.config
    if cfg.catalog_only:
        return f"{cfg.id}: catalog only ({p.catalog.items} items, {p.catalog.assets} assets)"
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
        if cfg.asset_dir != cfg.dataset_dir:
            out.append(f"  assets -> {cfg.asset_dir}")
        state = "rebuilt" if p.catalog.reindexed else "up to date"
        out.append(f"  catalog: {p.catalog.items} items, {p.catalog.assets} assets (index {state})")
        if p.catalog.rejected:
            out.append(f"  left out of the index: {p.catalog.rejected} assets with unusable hrefs")
        if cfg.catalog_only:
            out.append("  catalog_only: no assets will be downloaded")
            out.append("")
            continue
        filters = cfg.filters.describe()
        out.append(f"  filters: {'; '.join(filters) if filters else 'none (every asset)'}")
        size = _size(Tally(sel.selected, sel.selected_bytes, sel.unknown_size))
        out.append(f"  selected: {sel.selected} files, {size}")
        if sel.selected == 0 and filters:
            out.append("  note: the filters select nothing; check them against the catalog")
        for reason, n in sorted(sel.excluded_items.items(), key=lambda kv: kv[0].value):
            out.append(f"  excluded: {n} items {reason.value}")
        for action in _ORDER:
            t = p.plan.tally(action)
            if not t.files:
                continue
            reasons = ", ".join(
                f"{r.value} {tt.files}"
                for (a, r), tt in sorted(p.plan.counts.items(), key=lambda kv: kv[0][1].value)
                if a is action
            )
            out.append(f"  {action.value:<9}{t.files} files, {_size(t)} ({reasons})")
        if p.plan.not_desired:
            out.append(
                f"  not desired: {p.plan.not_desired} managed files are outside the "
                f"selection (kept{'; prune is on' if cfg.prune else ''})"
            )
            out.extend(f"    {path}" for path in p.plan.not_desired_sample)
        if sel.conflict_count:
            out.append(
                f"  conflicts: {sel.conflict_count} paths claimed by two hrefs "
                "(the first in the catalog wins)"
            )
            out.extend(
                f"    {c.path}: kept {redact_url(c.kept)}, skipped {redact_url(c.dropped)}"
                f" ({c.dropped_from})"
                for c in sel.conflicts[:10]
            )
        out.append("")
    pending = sum(p.pending for p in plans)
    out.append(f"{pending} changes pending" if pending else "No changes: everything is in sync.")
    return "\n".join(out)


def _tally_json(t: Tally) -> dict[str, int]:
    return {"files": t.files, "bytes": t.bytes, "unknown_size": t.unknown}


def plan_json(plans: Sequence[DatasetPlan]) -> dict[str, Any]:
    """The plan as a JSON document (``format: mlhub-sync.plan/1``)."""
    datasets = []
    for p in plans:
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
        datasets.append(
            {
                "id": cfg.id,
                "index": cfg.index,
                "dataset_dir": str(cfg.dataset_dir),
                "asset_dir": str(cfg.asset_dir),
                "catalog_only": cfg.catalog_only,
                "catalog": {
                    "reindexed": p.catalog.reindexed,
                    "items": p.catalog.items,
                    "assets": p.catalog.assets,
                    "rejected": p.catalog.rejected,
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
            }
        )
    return {"format": PLAN_FORMAT, "datasets": datasets, "pending": sum(p.pending for p in plans)}
