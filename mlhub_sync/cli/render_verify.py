"""``verify``'s text and JSON (``format: mlhub-sync.verify/1``), as ``render`` formats the
other commands' (split from it to keep modules short)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlhub_sync.cli.failed import Failures, in_spec_order
from mlhub_sync.cli.render import count
from mlhub_sync.net.display import terminal_safe
from mlhub_sync.verify import VerifyResult

VERIFY_FORMAT = "mlhub-sync.verify/1"


def verify_text(results: Sequence[VerifyResult], deep: bool) -> str:
    """``verify`` for people."""
    out = []
    for r in results:
        how = "content (md5)" if deep else "size and mtime"
        out.append(
            f"{r.config.label}: {count(r.checked, 'file')} checked by {how}: {r.ok} ok, "
            f"{r.missing} missing, {r.changed} changed, {r.corrupt} corrupt"
            + (f", {r.unverifiable} without a recorded hash" if r.unverifiable else "")
        )
        out.extend(f"  {terminal_safe(path)}: {what}" for path, what in r.problems[:50])
    return terminal_safe("\n".join(out), keep_newlines=True)


def verify_json(
    results: Sequence[VerifyResult], deep: bool, failed: Failures = ()
) -> dict[str, Any]:
    """``verify`` as JSON (``format: mlhub-sync.verify/1``)."""
    entries = [
        {
            "id": r.config.id,
            "index": r.config.index,
            "checked": r.checked,
            "ok": r.ok,
            "missing": r.missing,
            "changed": r.changed,
            "corrupt": r.corrupt,
            "unverifiable": r.unverifiable,
            "problems": [{"path": p, "problem": w} for p, w in r.problems],
            "error": None,
        }
        for r in results
    ]
    return {"format": VERIFY_FORMAT, "deep": deep, "datasets": in_spec_order(entries, failed)}
