"""Staging and installing an unpacked catalog tree: a fresh staging folder inside the dataset
folder, moved into place with renames; our own bookkeeping names and managed assets are never
overwritten."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from mlhub_sync.errors import CatalogError
from mlhub_sync.state.db import DB_NAME
from mlhub_sync.state.lock import LOCK_NAME

log = logging.getLogger(__name__)

STAGING_PREFIX = ".mlhub-staging"


def staging_dir(dataset_dir: Path) -> Path:
    """A fresh staging folder inside ``dataset_dir`` (leftovers of a killed run removed)."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    for old in dataset_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(old, ignore_errors=True)
    path = dataset_dir / f"{STAGING_PREFIX}-{os.getpid()}"
    path.mkdir()
    return path


def catalog_root(staging: Path) -> Path:
    """The folder of the staged tree that holds the root ``catalog.json``.

    Archives put everything under one top folder (normally the dataset id, but any name
    works); an archive without a top folder is taken as it is.
    """
    if (staging / "catalog.json").exists():
        return staging
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staging


def install(root: Path, dataset_dir: Path, protected: Callable[[str], bool]) -> int:
    """Move the staged tree under ``root`` into ``dataset_dir``; return the entries moved.

    A staged folder whose target does not exist yet (every folder, on a first sync) moves
    whole, with one rename: no per-file moves, and nothing left to delete. Elsewhere files
    move one by one. A staged file whose path is an asset we manage (``protected``) is not
    moved: an archive that ships a copy of an asset must not overwrite the verified download.
    Nor is anything whose top-level name is one of ours (the state db, the lock, the kept
    archive, staging).
    """
    moved = 0
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        if rel_folder == ".":
            for name in [d for d in dirs if is_bookkeeping(d)]:
                log.warning("not installing %s/ from the catalog: the name is reserved", name)
                dirs.remove(name)
            for name in [f for f in files if is_bookkeeping(f)]:
                log.warning("not installing %s from the catalog: the name is reserved", name)
                files.remove(name)
        target_folder = dataset_dir if rel_folder == "." else dataset_dir / rel_folder
        for name in list(dirs):
            target = target_folder / name
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if os.path.lexists(target) and not target.is_dir() and not protected(rel):
                target.unlink()  # the catalog turned a file into a folder
            if not os.path.lexists(target):  # nothing of ours below it: move it whole
                os.rename(os.path.join(folder, name), target)
                dirs.remove(name)
                moved += 1
        if files:
            target_folder.mkdir(parents=True, exist_ok=True)
        for name in files:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if protected(rel):
                continue
            if (target_folder / name).is_dir() and not (target_folder / name).is_symlink():
                raise CatalogError(
                    f"the new catalog has a file {rel!r} where a folder is on disk",
                    subject=str(target_folder / name),
                    hint="move that folder away (it may hold assets of the old catalog), "
                    "then run again",
                )
            os.replace(os.path.join(folder, name), target_folder / name)
            moved += 1
    return moved


def is_bookkeeping(name: str) -> bool:
    """True for a top-level name in the dataset folder that mlhub-sync itself writes."""
    return name.startswith((DB_NAME, LOCK_NAME, STAGING_PREFIX)) or name.endswith(
        (".tar.gz", ".tar.gz.part")
    )


def remove_tree(path: Path) -> None:
    """Remove a staging folder, quietly."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
