"""Staging and installing an unpacked catalog tree: a fresh staging folder inside the dataset
folder, moved into place with renames; our own bookkeeping names and managed assets are never
overwritten.

Every folder and file is reached from the dataset folder without following links
(``tree.py``): a link where a catalog folder should be is refused (:class:`SymlinkError`, so
the previous index stays), a link where a catalog file should be is replaced itself, and
links planted inside the staging folder are left behind."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from mlhub_sync.errors import CatalogError, FatalLocalError, SymlinkError
from mlhub_sync.state.db import DB_NAME
from mlhub_sync.state.lock import LOCK_NAME
from mlhub_sync.tree import Folder, Tree, is_link, opened
from mlhub_sync.tree import remove_tree as remove_below

log = logging.getLogger(__name__)

STAGING_PREFIX = ".mlhub-staging"


def staging_dir(dataset_dir: Path) -> Path:
    """A fresh staging folder inside ``dataset_dir`` (leftovers of a killed run removed)."""
    name = f"{STAGING_PREFIX}-{os.getpid()}"
    try:
        with opened(dataset_dir, create=True) as folder:
            for entry in folder.names():
                if entry.name.startswith(STAGING_PREFIX):
                    with contextlib.suppress(OSError):
                        remove_below(folder, entry.name)
            os.mkdir(name, dir_fd=folder.fd)
    except OSError as exc:
        raise FatalLocalError(
            f"cannot make the staging folder: {exc.strerror or exc}",
            subject=str(dataset_dir / name),
            hint="free disk space or fix the dataset folder's permissions, then run again",
        ) from exc
    return dataset_dir / name


def catalog_root(staging: Path) -> Path:
    """The folder of the staged tree that holds the root ``catalog.json``.

    Archives put everything under one top folder (normally the dataset id, but any name
    works); an archive without a top folder is taken as it is.
    """
    with opened(staging) as folder:
        if folder.lstat("catalog.json") is not None:
            return staging
        entries = folder.names()
    if len(entries) == 1 and entries[0].is_dir(follow_symlinks=False):
        return staging / entries[0].name
    return staging


def install(root: Path, dataset_dir: Path, protected: Callable[[str], bool]) -> int:
    """Move the staged tree under ``root`` (inside ``dataset_dir``, as staging always is) into
    ``dataset_dir``; return the entries moved.

    A staged folder whose target does not exist yet (every folder, on a first sync) moves
    whole, with one rename: no per-file moves, and nothing left to delete. Elsewhere files
    move one by one. A staged file whose path is an asset we manage (``protected``) is not
    moved: an archive that ships a copy of an asset must not overwrite the verified download.
    Nor is anything whose top-level name is one of ours (the state db, the lock, the kept
    archive, staging). A target folder that is a link raises :class:`SymlinkError`.
    """
    if dataset_dir not in root.parents:
        raise ValueError(f"the staged tree {root} is not inside {dataset_dir}")
    moved = 0
    pending = [""]  # folders (relative) whose target exists, left for later (very deep ones)
    with Tree(dataset_dir) as tree:
        while pending:
            moved += _install_below(tree, root, dataset_dir, pending.pop(), protected, pending)
    return moved


_RESERVED = "the name is reserved"

_WINDOW = 16  # levels install descends into at once (three fds each); deeper ones wait


def _install_below(
    tree: Tree,
    root: Path,
    dataset_dir: Path,
    top: str,
    protected: Callable[[str], bool],
    pending: list[str],
) -> int:
    """Move the entries of the staged folder ``top`` (relative), descending into each staged
    folder whose target exists as its listing reaches it: a folder of 100,000 item folders
    is gone through in one pass, never held as a list. Below :data:`_WINDOW` levels, such
    folders go to ``pending`` instead (fds stay bounded however deep the tree)."""
    moved = 0
    frames: list[tuple[str, Folder, Folder, Iterator[os.DirEntry[str]]]] = []

    src_top, dst_top = os.fspath(root), os.fspath(dataset_dir)

    def enter(rel: str) -> None:
        # plain strings: a Path interns each of its parts for good (100,000 item names)
        src = tree.hold(f"{src_top}/{rel}" if rel else src_top)
        try:
            dst = tree.hold(f"{dst_top}/{rel}" if rel else dst_top, create=True)
        except BaseException:
            tree.release(src)
            raise
        frames.append((rel, src, dst, os.scandir(src.fd)))

    enter(top)
    try:
        while frames:
            rel, src, dst, entries = frames[-1]
            descend = None
            for entry in entries:
                name = entry.name
                sub = f"{rel}/{name}" if rel else name
                if entry.is_dir(follow_symlinks=False):
                    if not rel and is_bookkeeping(name):
                        log.warning("not installing %s/ from the catalog: %s", name, _RESERVED)
                    elif _move_folder(src, dst, name, sub, protected):
                        moved += 1
                    elif len(frames) < _WINDOW:
                        descend = sub
                        break
                    else:
                        pending.append(sub)
                elif entry.is_file(follow_symlinks=False):
                    if not rel and is_bookkeeping(name):
                        log.warning("not installing %s from the catalog: %s", name, _RESERVED)
                    elif not protected(sub):
                        _move_file(src, dst, name, sub)
                        moved += 1
            if descend is not None:
                enter(descend)
                continue
            _leave(tree, frames.pop())
    finally:
        while frames:
            _leave(tree, frames.pop())
    return moved


def _leave(tree: Tree, frame: tuple[str, Folder, Folder, Iterator[os.DirEntry[str]]]) -> None:
    _, src, dst, entries = frame
    entries.close()  # type: ignore[attr-defined]
    tree.release(dst)
    tree.release(src)


def _move_folder(
    src: Folder, dst: Folder, name: str, rel: str, protected: Callable[[str], bool]
) -> bool:
    """Move a staged folder whole when nothing is at its target; False: descend into it."""
    target = dst.lstat(name)
    if is_link(target):
        raise SymlinkError(dst.child(name), "folder")
    if target is not None and not stat.S_ISDIR(target.st_mode) and not protected(rel):
        dst.unlink(name)  # the catalog turned a file into a folder
        target = None
    if target is not None:
        return False
    src.replace(name, dst, name)  # nothing of ours below it: move it whole
    return True


def _move_file(src: Folder, dst: Folder, name: str, rel: str) -> None:
    target = dst.lstat(name)
    if target is not None and stat.S_ISDIR(target.st_mode):
        raise CatalogError(
            f"the new catalog has a file {rel!r} where a folder is on disk",
            subject=dst.child(name),
            hint="move that folder away (it may hold assets of the old catalog), then run again",
        )
    src.replace(name, dst, name)  # a link in its place is replaced, never written through


def is_bookkeeping(name: str) -> bool:
    """True for a top-level name in the dataset folder that mlhub-sync itself writes."""
    return name.startswith((DB_NAME, LOCK_NAME, STAGING_PREFIX)) or name.endswith(
        (".tar.gz", ".tar.gz.part")
    )


def remove_tree(path: Path) -> None:
    """Remove a staging folder, quietly (never through a link, at any depth)."""
    with contextlib.suppress(FileNotFoundError), opened(path.parent) as folder:
        remove_below(folder, path.name)
