"""Refresh a dataset's catalog: take its source's snapshot and bring the index up to date.

The index is rebuilt only when the archive changed (or the index or unpacked catalog is
missing). Rebuilding happens in one transaction together with installing the unpacked tree
and the new archive: a failure anywhere leaves the previous archive, catalog and index.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mlhub_sync.catalog.bundled import resolve_bundled
from mlhub_sync.catalog.extract import extract_archive
from mlhub_sync.catalog.index import Indexer
from mlhub_sync.catalog.install import catalog_root, install, remove_tree, staging_dir
from mlhub_sync.config.models import ExtractLimits
from mlhub_sync.config.resolve import DatasetConfig
from mlhub_sync.errors import CatalogError, DamagedArchiveError, FatalLocalError
from mlhub_sync.net.client import Http
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.sources.archive import archive_path
from mlhub_sync.sources.base import CrawledCatalog, FetchedArchive, SourceContext, Unreadable
from mlhub_sync.sources.registry import source_for
from mlhub_sync.stac.document import Document
from mlhub_sync.stac.href import LocalHrefs
from mlhub_sync.state.db import StateDB
from mlhub_sync.state.index import ItemChanges

log = logging.getLogger(__name__)


CATALOG_FILES_SINCE = "catalog_files_since_ns"
"""Meta key: when the catalog was first unpacked into the asset folder (the ctime of its
staging folder, on the file system's own clock). An untracked file at an asset path that
appeared since may be a member of the catalog, not the host's bytes (``plan.adopt``)."""


LOCAL_HREFS = "local_hrefs"
"""Meta key: the :class:`LocalHrefs` (allow_local) an archive's index was built under."""


REWRITES = "href_rewrites"
"""Meta key: the ``rewrite`` rules an archive's index was built under (JSON), so changing
them re-indexes the same archive."""


DOCUMENTS_INDEXED = "documents_indexed"
"""Meta key: the index has the ``documents`` and ``links`` tables filled (older ones do not:
they are built again once)."""


CATALOG_INSTALLED = "catalog_installed_ns"
"""Meta key: when the catalog was last installed (a new one needs its documents rewritten)."""


UNREADABLE = "unreadable_documents"
"""Meta key: the documents the index could not read, as JSON ``[[href, why], ...]``."""


def forget_unpacked(db: StateDB) -> None:
    """Make the next refresh extract and install the catalog again (files of the unpacked
    catalog are gone: a bundled file pruned, a document deleted)."""
    with db.transaction():
        db.set_meta({DOCUMENTS_INDEXED: None})


def catalog_files_since(db: StateDB) -> int | None:
    """The :data:`CATALOG_FILES_SINCE` of ``db``, or ``None``."""
    value = db.get_meta(CATALOG_FILES_SINCE)
    return int(value) if value else None


@dataclass(frozen=True)
class CatalogStatus:
    """The index after resolving: whether it was rebuilt, and its size."""

    reindexed: bool
    items: int
    assets: int
    rejected: int
    invalid_documents: int = 0
    unreadable: tuple[tuple[str, str], ...] = ()  # (href, why) of the first ones
    bundled: int = 0  # assets whose file the archive bundles
    changes: ItemChanges | None = None  # what a re-index found added, changed, removed
    unmatched_keys: int | None = None  # a flat tree's keys that no template reads (else None)
    unmatched_sample: tuple[str, ...] = ()  # the first of them

    def unmatched_entry(self) -> dict[str, object]:
        """``{"unmatched_keys": {"count", "sample"}}`` for a flat tree, else nothing (the
        plan's JSON has the field for the sources that have such keys)."""
        if self.unmatched_keys is None:
            return {}
        return {
            "unmatched_keys": {"count": self.unmatched_keys, "sample": [*self.unmatched_sample]}
        }


def refresh_catalog(
    config: DatasetConfig,
    db: StateDB,
    http: Http,
    environ: Mapping[str, str],
    reporter: Reporter = NULL_REPORTER,
    limits: ExtractLimits | None = None,
) -> CatalogStatus:
    """Make the index and the unpacked catalog match the source's current catalog.

    ``limits`` default to the dataset's ``archive_limits``.
    """
    limits = limits or config.archive_limits
    dataset_dir = config.dataset_dir
    dataset_dir.mkdir(parents=True, exist_ok=True)
    source = source_for(config.source)
    context = SourceContext(
        config.id,
        dataset_dir,
        db,
        http,
        environ,
        reporter,
        filters=config.filters,
        strict=config.strict,
    )
    failures = 0
    while True:
        try:
            snapshot = source.snapshot(context)  # a damaged download surfaces here too
            if isinstance(snapshot, CrawledCatalog):
                status = _refresh_crawled(config, db, snapshot)
                if snapshot.unmatched is None:
                    return status
                return dataclasses.replace(
                    status,
                    unmatched_keys=snapshot.unmatched.count,
                    unmatched_sample=tuple(snapshot.unmatched.shown),
                )
            return _refresh_archive(config, db, snapshot, reporter, limits)
        except DamagedArchiveError as exc:
            # A flipped byte, an HTML error page or a cut connection on the way: like any
            # transient fault, fetch again (a local archive would only fail the same way).
            failures += 1
            wait = http.policy.next_attempt(
                failures,
                retryable=source.refetch_damaged and not http.stop.is_set(),
                retry_after=None,
                jitter=http.rand(),
            )
            if wait is None:
                raise
            log.warning("%s: %s; fetching it again in %.1fs", config.id, exc.message, wait)
            http.sleep(wait)


def _unchanged(
    config: DatasetConfig, db: StateDB, digest: str, local: LocalHrefs | None
) -> CatalogStatus | None:
    """The index as it is, when it was built from ``digest`` (an archive's sha256, a flat
    tree's listing digest) under the same rules and is whole; else ``None`` (index again)."""
    root_catalog = db.get_meta("root_catalog")
    up_to_date = (
        db.get_meta("indexed_digest") == digest
        and db.count("items") + db.count("assets") > 0
        and (root_catalog is None or (config.dataset_dir / root_catalog).exists())
        # the file: hrefs it accepted were judged under this spec's allow_local
        and (local is None or db.get_meta(LOCAL_HREFS) == local.key)
        and db.get_meta(DOCUMENTS_INDEXED) == "1"
        and db.get_meta(REWRITES) == _rewrites_key(config)
    )
    if not up_to_date:
        return None
    shown = json.loads(db.get_meta(UNREADABLE) or "[]")
    status = CatalogStatus(
        False,
        db.count("items"),
        db.count("assets"),
        db.count("rejected"),
        int(db.get_meta("invalid_documents") or 0),
        tuple((str(href), str(why)) for href, why in shown),
        int(db.get_meta("bundled_assets") or 0),
    )
    if config.strict and status.invalid_documents:  # indexed before, without strict
        raise _strict_error(config, Unreadable(status.invalid_documents, list(status.unreadable)))
    return status


def _refresh_crawled(config: DatasetConfig, db: StateDB, crawled: CrawledCatalog) -> CatalogStatus:
    """Index a crawled catalog; one that gives a digest first (``prepare``: a flat tree's
    listing) is kept as indexed when the digest is the index's."""
    meta: dict[str, str | None] = {"indexed_digest": None}
    staging = None
    if crawled.prepare is not None:
        staging = staging_dir(config.dataset_dir)
        try:
            digest = crawled.prepare(staging)
            kept = _unchanged(config, db, digest, None)
        except BaseException:
            remove_tree(staging)
            raise
        if kept is not None:
            remove_tree(staging)
            log.info("%s: the listing is the one indexed; the index is kept", config.id)
            return kept
        meta = {"indexed_digest": digest, REWRITES: _rewrites_key(config)}
    return _reindex(
        config,
        db,
        crawled.documents,
        allow_file_hrefs=crawled.allow_file_hrefs,
        local=LocalHrefs.of(config.allow_local, crawled.local_root),
        meta=meta,
        unreadable=crawled.unreadable,
        own_paths=crawled.asset_paths,
        staging=staging,
    )


def _refresh_archive(
    config: DatasetConfig,
    db: StateDB,
    fetched: FetchedArchive,
    reporter: Reporter,
    limits: ExtractLimits,
) -> CatalogStatus:
    local = LocalHrefs.of(config.allow_local, fetched.local_root)
    kept = _unchanged(config, db, fetched.sha256, local if fetched.allow_file_hrefs else None)
    if kept is not None:
        if fetched.pending:  # same bytes fetched again (e.g. no validators): keep the new copy
            os.replace(fetched.path, archive_path(config.dataset_dir, config.id))
            with db.transaction():
                db.set_meta(fetched.meta)
        return kept
    log.info("%s: indexing catalog %s", config.id, fetched.path.name)
    try:
        return _reindex(
            config,
            db,
            lambda staging: extract_archive(
                fetched.path, staging, fetched.base_url, limits, reporter
            ),
            allow_file_hrefs=fetched.allow_file_hrefs,
            local=local,
            meta={
                **fetched.meta,
                "indexed_digest": fetched.sha256,
                LOCAL_HREFS: local.key,
                REWRITES: _rewrites_key(config),
            },
            install_archive=fetched.path if fetched.pending else None,
            members_base=fetched.base_url,
        )
    finally:
        if fetched.pending:
            with contextlib.suppress(FileNotFoundError):
                fetched.path.unlink()


def _rewrites(config: DatasetConfig) -> tuple[tuple[str, str], ...]:
    return tuple((rule.from_, rule.to) for rule in config.source.rewrite)


def _rewrites_key(config: DatasetConfig) -> str | None:
    rules = _rewrites(config)
    return json.dumps(rules) if rules else None


def _reindex(
    config: DatasetConfig,
    db: StateDB,
    documents: Callable[[Path], Iterator[Document]],
    *,
    allow_file_hrefs: bool,
    meta: dict[str, str | None],
    local: LocalHrefs | None = None,
    install_archive: Path | None = None,
    unreadable: Unreadable | None = None,
    members_base: str | None = None,
    own_paths: bool = False,
    staging: Path | None = None,
) -> CatalogStatus:
    """Index ``documents`` (an archive's members when ``members_base``), install them and
    record the index, all in one transaction. ``staging``: a staging folder already made
    (and prepared), else a fresh one."""
    dataset_dir = config.dataset_dir
    staging = staging if staging is not None else staging_dir(dataset_dir)
    share_tree = config.asset_dir == dataset_dir
    since = db.get_meta(CATALOG_FILES_SINCE) or (
        str(staging.stat().st_ctime_ns) if share_tree else None
    )  # the earliest unpack: a member of an older catalog may still lie at an asset path
    unreadable = unreadable if unreadable is not None else Unreadable()
    try:
        with db.transaction():
            db.index.clear()
            db.documents.clear()
            indexer = Indexer(
                db,
                allow_file_hrefs=allow_file_hrefs,
                local=local,
                members_base=members_base,
                unreadable=unreadable,
                rewrites=_rewrites(config),
                own_paths=own_paths,
            )
            for doc in documents(staging):
                indexer.add(doc)
            indexer.flush()
            changes = db.index.changes()
            root = catalog_root(staging)
            prefix = "" if root == staging else root.relative_to(staging).as_posix() + "/"
            if prefix:
                db.documents.strip_prefix(prefix)  # install leaves the top folder out
            bundled = 0
            if members_base is not None:
                bundled = resolve_bundled(db, indexer, staging, prefix, dataset_dir, local)
            if config.strict and unreadable.count:
                raise _strict_error(config, unreadable)
            has_root_catalog = (root / "catalog.json").exists()
            try:
                # A file we manage is not overwritten by the catalog's copy, unless the catalog
                # says that file *is* the asset (it bundles it at its asset path).
                install(
                    root,
                    dataset_dir,
                    lambda rel: (
                        share_tree and db.file(rel) is not None and not db.documents.in_place(rel)
                    ),
                )
                if install_archive is not None:
                    os.replace(install_archive, archive_path(dataset_dir, config.id))
            except OSError as exc:
                raise FatalLocalError(
                    f"cannot install the unpacked catalog: {exc.strerror or exc}",
                    subject=str(dataset_dir),
                    hint="free disk space or fix the folder's permissions; the previous "
                    "index is kept and the next run installs the catalog again",
                ) from exc
            db.set_meta(
                {
                    **meta,
                    "root_catalog": "catalog.json" if has_root_catalog else None,
                    "invalid_documents": str(unreadable.count),
                    UNREADABLE: json.dumps(unreadable.shown) if unreadable.shown else None,
                    "bundled_assets": str(bundled) if bundled else None,
                    DOCUMENTS_INDEXED: "1",
                    CATALOG_INSTALLED: str(time.time_ns()),
                    CATALOG_FILES_SINCE: since,
                }
            )
    finally:
        remove_tree(staging)
    log.info(
        "%s: indexed %d items, %d assets (%d left out, %d unreadable documents)",
        config.id,
        indexer.items,
        indexer.assets,
        indexer.rejected,
        unreadable.count,
    )
    return CatalogStatus(
        True,
        indexer.items,
        indexer.assets,
        indexer.rejected,
        unreadable.count,
        tuple(unreadable.shown),
        bundled,
        changes,
    )


def _strict_error(config: DatasetConfig, unreadable: Unreadable) -> CatalogError:
    href, why = unreadable.shown[0] if unreadable.shown else ("a document", "unreadable")
    more = f" (and {unreadable.count - 1} more)" if unreadable.count > 1 else ""
    return CatalogError(
        f"strict: a catalog document could not be read: {href}: {why}{more}",
        subject=f"dataset {config.id}",
        hint="fix the catalog, or run without --strict (and strict: true in the spec) to skip "
        "unreadable documents, sync the rest and hold prune back; the previous index is kept",
    )
