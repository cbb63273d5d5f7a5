"""Prune: deleting the managed files the selection no longer wants, only when asked.

Never an untracked file (only paths in ``files``), never after a run with errors or with
unreadable catalog documents (the selection may be incomplete), never more than
``max_delete`` without ``force``.

Never through a link (``tree.py``): each file is unlinked by name in its folder, and its
folders are opened without following links. A link where one of its folders should be is
skipped with a warning and the file stays tracked: it was not deleted, and it is deleted once
the folder is a real one again (or forgotten once it is gone). A link in the file's own place
is removed itself; what it points to is untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlhub_sync.errors import PruneRefusedError, SymlinkError
from mlhub_sync.state.db import StateDB
from mlhub_sync.tree import Tree

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
    with Tree(asset_dir) as tree:
        while paths := db.selection.not_desired_after(last, _PAGE):
            last = paths[-1]
            gone = [path for path in paths if _delete(tree, asset_dir, path)]
            deleted += len(gone)
            with db.transaction():
                db.delete_files(gone)
    return deleted


def _delete(tree: Tree, asset_dir: Path, rel: str) -> bool:
    """Unlink ``rel`` without following a link; True when it is gone (or was already)."""
    path = asset_dir / rel
    try:
        with tree.folder(path.parent) as folder:
            folder.unlink(path.name)
    except SymlinkError as exc:
        log.warning("not pruning %s: %s is a symbolic link (never followed)", rel, exc.subject)
        return False
    except (FileNotFoundError, NotADirectoryError):
        pass  # its folder is gone (or a file now): so is the file
    log.info("pruned %s", rel)
    return True
