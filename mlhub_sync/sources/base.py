"""The seam between where a catalog comes from and what we do with it.

A :class:`Source` turns its spec model into a :data:`Snapshot` of the catalog as it is
upstream, and the catalog stage (``catalog.refresh``) indexes and installs it:

- :class:`FetchedArchive`: a catalog archive on disk (``mlhub``: the API's ``/catalog/{id}``;
  ``archive``: a local or remote ``.tar.gz``), extracted safely by the catalog stage, which
  skips the work when its sha256 is the one already indexed;
- :class:`CrawledCatalog`: documents that arrive one by one (``stac``: a static
  ``catalog.json`` crawled through its links), each staged in the dataset layout as it comes;
  a flat tree (``s3``, ``azure``) lists first and gives the listing's digest (``prepare``), so
  the catalog stage skips the work when it is the one already indexed.

Adding a source is one module in this package (a class with ``snapshot``), its spec model in
``config/sources.py`` and one line in ``registry.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mlhub_sync.net.client import Http
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.selection.filters import FilterSet
from mlhub_sync.stac.document import Document
from mlhub_sync.state.db import StateDB
from mlhub_sync.tree import Tree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedArchive:
    """A catalog archive ready to read.

    ``path`` is the file to read: the kept archive when nothing changed, else a freshly
    fetched ``.part`` that :func:`mlhub_sync.catalog.refresh.refresh_catalog` installs as the
    archive once it has proved sound. ``meta`` holds the validators to record on success.
    """

    path: Path
    sha256: str
    base_url: str
    allow_file_hrefs: bool
    meta: dict[str, str | None] = field(default_factory=dict)
    local_root: Path | None = None  # relative file: hrefs stay inside it (see stac.href)

    @property
    def pending(self) -> bool:
        """True when ``path`` is a new download still to be installed."""
        return self.path.name.endswith(".part")


MAX_UNREADABLE_SHOWN = 100


@dataclass
class Unreadable:
    """The catalog documents that could not be read or used, counted, with the first
    :data:`MAX_UNREADABLE_SHOWN` kept as ``(href, why)`` (hrefs redacted) for the plan."""

    count: int = 0
    shown: list[tuple[str, str]] = field(default_factory=list)

    def add(self, href: str, why: str) -> None:
        """One more unreadable document."""
        self.count += 1
        if len(self.shown) < MAX_UNREADABLE_SHOWN:
            self.shown.append((href, why))


@dataclass
class Unmatched:
    """The keys of a flat tree that match no path template, counted, with the first
    :data:`MAX_UNREADABLE_SHOWN` kept for the plan (they are not synced)."""

    count: int = 0
    shown: list[str] = field(default_factory=list)

    def add(self, key: str) -> None:
        """One more key that matches no template."""
        self.count += 1
        if len(self.shown) < MAX_UNREADABLE_SHOWN:
            self.shown.append(key)


@dataclass(frozen=True)
class CrawledCatalog:
    """A catalog that arrives as documents.

    ``documents(staging)`` fetches them, stages each under ``staging`` at its place in the
    layout and yields it for the indexer; the linked documents it could not read (gone,
    refused, not JSON) go to ``unreadable``: they are reported, and they stop prune.
    ``file:`` hrefs are allowed only when ``allow_file_hrefs``, only into the spec's
    ``allow_local`` folders, and relative ones only inside ``local_root``
    (:class:`~mlhub_sync.stac.href.LocalHrefs`). ``asset_paths``: the source wrote each
    asset's path in the ``mirror`` layout as ``mlhub:path`` (an object-store listing's key);
    the indexer honours it only then. A flat tree (``sources/flat.py``) also counts its
    ``unmatched`` keys.

    ``prepare``, when given, is a first phase the catalog stage calls with the staging folder
    before ``documents``: it gathers all the documents will be made from (a flat tree's whole
    listing, into a scratch table there) and returns a digest of it. When the index was built
    from the same digest, ``documents`` is not called and the index, the installed catalog
    and the synced catalog stay as they are (as for an unchanged archive); else
    ``documents(staging)`` continues from what ``prepare`` gathered.
    """

    documents: Callable[[Path], Iterator[Document]]
    allow_file_hrefs: bool
    local_root: Path | None = None
    unreadable: Unreadable = field(default_factory=Unreadable)
    unmatched: Unmatched | None = None  # a flat tree's keys that no template reads
    asset_paths: bool = False  # the assets carry their own layout path (``mlhub:path``)
    prepare: Callable[[Path], str] | None = None  # staging -> the digest of what is listed


Snapshot = FetchedArchive | CrawledCatalog


@dataclass(frozen=True)
class SourceContext:
    """What a source may use: the dataset's id and folder, its state db (the last fetch's
    validators live in ``meta``), the run's API client, the environment, progress, and
    whether unreadable documents are fatal (``strict``)."""

    dataset_id: str
    dataset_dir: Path
    db: StateDB
    http: Http
    environ: Mapping[str, str]
    reporter: Reporter = NULL_REPORTER
    filters: FilterSet = field(default_factory=FilterSet)  # a search source pushes them down
    strict: bool = False  # an unreadable linked document stops the crawl


class Source(Protocol):
    """One way a catalog reaches us."""

    @property
    def refetch_damaged(self) -> bool:
        """Whether a damaged archive from here is worth fetching again (it was damaged on the
        way), or would only fail the same way (a local file)."""

    def snapshot(self, ctx: SourceContext) -> Snapshot:
        """The catalog as it is now (conditionally fetched where the source allows)."""


class Stager:
    """Documents staged one after another under ``staging`` (see :func:`stage_document`),
    with the folders they go to held open between them: a STAC API's 100,000 items land in
    one collection folder, opened once rather than walked down to for each item. A context
    manager (closing the folders); one thread."""

    def __init__(self, staging: Path):
        self.staging = staging
        self.tree = Tree(staging.parent)

    def __enter__(self) -> Stager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.tree.close()

    def stage(self, rel: str, data: bytes) -> bool:
        """:func:`stage_document` through the folders held."""
        if "" not in (parts := rel.split("/")) and "." not in parts:  # what a Path keeps as is:
            # a plain string (a Path interns each of its parts for good: 100,000 item names)
            folder_path, _, name = f"{self.staging}/{rel}".rpartition("/")
        else:
            path = self.staging / rel
            folder_path, name = str(path.parent), path.name
        try:
            with self.tree.folder(folder_path, create=True) as folder:
                fd = folder.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            log.warning("two STAC documents map to %s; keeping the first", rel)
            return False
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return True


def stage_document(staging: Path, rel: str, data: bytes) -> bool:
    """Write a document at its place ``rel`` under ``staging`` (a folder of the dataset
    folder: from there on no link is followed, ``tree.py``); ``False`` when another document
    already took that place (the first one wins, with a warning)."""
    with Stager(staging) as stager:
        return stager.stage(rel, data)
