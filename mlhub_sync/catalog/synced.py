"""The synced catalog: every STAC document in the dataset folder rewritten for where it lies
and what is on disk (:func:`write_synced_catalog`), so the folder is a self-contained
catalog that STAC tools open offline.

The shape comes from the index (``documents``, ``links``: the tree of
``DocumentTables.build_tree``), the asset hrefs from the selection and the file records,
and :func:`~mlhub_sync.catalog.localize.localize` (a pure function) turns each document
into its synced form. This module is the edge that reads and writes the files: through a
:class:`~mlhub_sync.tree.Tree` rooted at the dataset folder (no link followed), each
document replaced whole (``{name}.part``, then a rename), and only when its bytes change.

It runs after the catalog is installed and the selection made (``plan``, ``lock``,
``catalog_only``) and again after ``apply``: an asset href points at a file only once that
file is on disk and recorded. Documents, the tree and the asset records are streamed in key
order (two cursors merged by item), so memory stays flat; a fingerprint of what the rewrite
depends on (the catalog installed, the filters, the file records) skips it when nothing
changed. Items the filters leave out are not linked (their documents stay in the folder,
rewritten like the others, so a wider filter links them again without a new fetch).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from urllib.parse import unquote

from mlhub_sync.catalog.bundled import bundled_prefix
from mlhub_sync.catalog.install import is_bookkeeping
from mlhub_sync.catalog.localize import AssetPlace, Place, Target
from mlhub_sync.catalog.refresh import CATALOG_INSTALLED, forget_unpacked
from mlhub_sync.catalog.rewrite import rewrite_streamed, rewrite_whole
from mlhub_sync.config.resolve import DatasetConfig
from mlhub_sync.config.sources import StacSource
from mlhub_sync.errors import FatalLocalError, SymlinkError
from mlhub_sync.stac.href import href_identity
from mlhub_sync.state.db import StateDB
from mlhub_sync.state.documents import AssetStateRow
from mlhub_sync.tree import Tree

log = logging.getLogger(__name__)


SYNCED = "synced_catalog"
"""Meta key: the fingerprint of what the documents were last rewritten from."""


@dataclass
class SyncedCatalog:
    """What a rewrite did."""

    rewritten: int = 0
    unchanged: int = 0
    missing: int = 0  # indexed documents not in the folder (or not readable): reinstalled
    skipped: bool = False  # nothing it depends on changed since the last rewrite


def write_synced_catalog(db: StateDB, config: DatasetConfig, *, selected: bool) -> SyncedCatalog:
    """Rewrite the documents of ``config``'s dataset folder (see the module doc).

    ``selected``: the run's selection tables exist (after ``select_assets``); without them
    (``catalog_only``) every asset keeps its upstream href and every document is linked.
    """
    key = _fingerprint(db, config, selected)
    if db.get_meta(SYNCED) == key:
        return SyncedCatalog(skipped=True)
    with db.transaction():
        root = db.documents.build_tree()
    result = SyncedCatalog()
    if root is not None:
        _Rewrite(db, config, selected).run(db.documents.path_of(root), result)
    with db.transaction():
        db.set_meta({SYNCED: None if result.missing else key})
    if result.missing:  # an archive's catalog is installed again by the next run
        forget_unpacked(db)
    if result.missing:
        log.warning(
            "%s: %d catalog documents are missing from the dataset folder; the next run "
            "installs the catalog again",
            config.id,
            result.missing,
        )
    return result


def _fingerprint(db: StateDB, config: DatasetConfig, selected: bool) -> str:
    f = config.filters
    return json.dumps(
        [
            db.get_meta(CATALOG_INSTALLED),
            selected,
            str(config.asset_dir),
            sorted((cid, sorted(keys)) for cid, keys in (f.collections or {}).items())
            if f.collections is not None
            else None,
            repr(f.time),
            f.bbox,
            f.intersects,
            sorted(config.common_asset_keys),
            db.documents.files_fingerprint() if selected else None,
        ],
        default=str,
    )


class _Rewrite:
    def __init__(self, db: StateDB, config: DatasetConfig, selected: bool):
        self.db, self.config, self.selected = db, config, selected
        self.top = str(config.dataset_dir)
        self.filters = config.filters
        self.by_item = selected and (self.filters.time is not None or self.filters.spatial)
        self.moved = isinstance(config.source, StacSource)  # crawled: staged in the layout
        self.bundled = bundled_prefix(config.dataset_dir)
        relpath = os.path.relpath(config.asset_dir, config.dataset_dir)
        self.asset_prefix = "" if relpath == "." else Path(relpath).as_posix() + "/"
        self.tree = Tree(config.dataset_dir)
        self.collection_assets: dict[str, dict[str, AssetPlace]] = {}

    def run(self, root: str, result: SyncedCatalog) -> None:
        documents = self.db.documents
        items = groupby(
            documents.asset_states(selected=self.selected, items=True), key=lambda r: r[0]
        )
        pending: tuple[int, list[AssetStateRow]] | None = None
        with self.tree as tree:
            self.collection_assets = self._collection_assets()
            for row in documents.placed(by_item=self.by_item):
                doc_pk, path, url, kind, cid, item_pk, parent, collection, _, managed = row
                assets: dict[str, AssetPlace] = {}
                if kind == "item" and item_pk is not None:
                    while pending is None or pending[0] < item_pk:
                        group = next(items, None)
                        if group is None:
                            pending = (1 << 62, [])
                            break
                        pending = (group[0], list(group[1]))
                    if pending[0] == item_pk:
                        assets = {r[2]: self._asset(r) for r in pending[1]}
                elif kind == "collection" and cid is not None:
                    assets = self.collection_assets.get(cid, {})
                if managed or is_bookkeeping(path.split("/", 1)[0]):
                    continue  # an asset we manage lies there, or install left it out
                place = Place(
                    path=path,
                    url=url,
                    root=root,
                    parent=Target(parent) if parent is not None else None,
                    collection=Target(collection) if collection is not None else None,
                    moved=self.moved,
                )
                children = self._children(doc_pk) if kind != "item" else None
                try:
                    self._rewrite(tree, place, assets, children, result)
                finally:
                    if children is not None:
                        children.close()  # its cursor, even when the document was unreadable

    def _children(self, doc_pk: int) -> Generator[tuple[str, Target]]:
        """The links to write to the documents placed under ``doc_pk``, from a cursor."""
        for path, url, kind, cid, admitted in self.db.documents.children(
            doc_pk, by_item=self.by_item
        ):
            if self.selected and (
                not admitted or (kind != "catalog" and not self.filters.admits_collection(cid))
            ):
                continue  # left out by the filters: not linked (its document stays)
            yield ("item" if kind == "item" else "child", Target(path, url))

    def _collection_assets(self) -> dict[str, dict[str, AssetPlace]]:
        found: dict[str, dict[str, AssetPlace]] = {}
        for row in self.db.documents.asset_states(selected=self.selected, items=False):
            found.setdefault(row[1], {})[row[2]] = self._asset(row)
        return found

    def _asset(self, row: AssetStateRow) -> AssetPlace:
        _, _, _, href, path, recorded, verified_by = row
        synced = None
        if (
            path is not None
            and recorded is not None
            and verified_by != "corrupt"
            and (recorded == href or href_identity(recorded) == href_identity(href))
        ):
            synced = self.asset_prefix + path
        bundled = unquote(href[len(self.bundled) :]) if href.startswith(self.bundled) else None
        if bundled is not None and synced is None and not self._exists(bundled):
            bundled = None  # pruned from the unpacked catalog: no relative href to nothing
        return AssetPlace(upstream=href, synced=synced, bundled=bundled)

    def _exists(self, rel: str) -> bool:
        folder, _, name = rel.rpartition("/")
        try:
            with self.tree.folder(f"{self.top}/{folder}" if folder else self.top) as held:
                return held.lstat(name) is not None
        except (OSError, SymlinkError):
            return False

    def _rewrite(
        self,
        tree: Tree,
        place: Place,
        assets: dict[str, AssetPlace],
        children: Iterator[tuple[str, Target]] | None,
        result: SyncedCatalog,
    ) -> None:
        """Rewrite one document: an item whole, in memory; a document that links others
        (``children``) streamed, its links from the cursor into the file."""
        folder_rel, _, name = place.path.rpartition("/")
        folder_path = f"{self.top}/{folder_rel}" if folder_rel else self.top
        try:
            with tree.folder(folder_path) as folder:
                try:
                    stream = os.fdopen(folder.open(name, os.O_RDONLY), "rb")
                except (FileNotFoundError, SymlinkError):
                    result.missing += 1
                    return
                with stream:
                    if children is None:
                        written = rewrite_whole(folder, name, stream, place, assets)
                    else:
                        written = rewrite_streamed(folder, name, stream, place, assets, children)
                if written is None:
                    result.missing += 1
                elif written:
                    result.rewritten += 1
                else:
                    result.unchanged += 1
        except (FileNotFoundError, NotADirectoryError, SymlinkError):
            result.missing += 1
        except OSError as exc:
            raise FatalLocalError(
                f"cannot rewrite the synced catalog: {exc.strerror or exc}",
                subject=str(self.config.dataset_dir / place.path),
                hint="free disk space or fix the folder's permissions, then run again",
            ) from exc
