"""Prune: deleting the managed files the selection no longer wants, only when asked.

Never an untracked file (only paths in ``files``), never after a run with errors or with
unreadable catalog documents (the selection may be incomplete), never more than
``max_delete`` without ``force``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from mlhub_sync.errors import PruneRefusedError
from mlhub_sync.state.db import StateDB

log = logging.getLogger(__name__)

_PAGE = 1000


def prune_refusal(*, run_had_errors: bool, invalid_documents: int) -> str | None:
    """Why pruning must not happen after this run, or ``None`` when it may."""
    if run_had_errors:
        return "not pruning after a run with errors"
    if invalid_documents:
        return (
            f"not pruning: {invalid_documents} catalog documents could not be read, so the "
            "selection may be incomplete"
        )
    return None


def prune_files(db: StateDB, asset_dir: Path, max_delete: int, force: bool) -> int:
    """Delete managed files outside the selection (built first); return how many."""
    count = db.selection.not_desired_count()
    if count > max_delete and not force:
        raise PruneRefusedError(
            f"prune would delete {count} files, more than max_delete ({max_delete})",
            hint="raise max_delete in the spec, or pass --force",
        )
    deleted = 0
    last = ""
    while paths := db.selection.not_desired_after(last, _PAGE):
        last = paths[-1]
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(asset_dir / path)
            deleted += 1
            log.info("pruned %s", path)
        with db.transaction():
            db.delete_files(paths)
    return deleted
