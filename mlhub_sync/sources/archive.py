"""Catalog archives: fetched over HTTP(S) with a conditional GET, or copied from a local file.

The archive is kept as ``{dataset_dir}/{dataset_id}.tar.gz``. A new version is written beside
it (``.part``) and only replaces it once extraction has verified it; the validators (ETag,
Last-Modified) of the kept copy make the next fetch a cheap 304.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlhub_sync.config.sources import ArchiveSource
from mlhub_sync.errors import CatalogError, FatalLocalError
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.sources.base import FetchedArchive, SourceContext
from mlhub_sync.state.db import StateDB


def archive_path(dataset_dir: Path, dataset_id: str) -> Path:
    """``{dataset_dir}/{dataset_id}.tar.gz``."""
    return dataset_dir / f"{dataset_id}.tar.gz"


def folder_url(url: str) -> str:
    """The URL of the folder holding ``url``, without query: where an archive "unpacks"."""
    parts = urlsplit(url)
    folder = parts.path.rsplit("/", 1)[0] + "/"
    return urlunsplit((parts.scheme, parts.netloc, folder, "", ""))


def fetch_remote(
    http: Http,
    url: str,
    kept: Path,
    db: StateDB,
    *,
    params: Mapping[str, str] | None = None,
    base_url: str | None = None,
    what: str = "fetch catalog",
    reporter: Reporter = NULL_REPORTER,
) -> FetchedArchive:
    """Fetch the archive at ``url``; a 304 (or an identical body) means unchanged.

    ``base_url`` is where relative hrefs in the archive resolve (default: beside ``url``).
    """
    source = redact_url(url)
    headers: dict[str, str] = {}
    known = (
        kept.exists()
        and db.get_meta("archive_source") == source
        and str(kept.stat().st_size) == db.get_meta("archive_size")
    )
    if known:
        if etag := db.get_meta("archive_etag"):
            headers["If-None-Match"] = etag
        if modified := db.get_meta("archive_last_modified"):
            headers["If-Modified-Since"] = modified
    part = kept.with_name(kept.name + ".part")
    kept.parent.mkdir(parents=True, exist_ok=True)
    fetched = http.fetch_file(
        url, part, params=params, headers=headers, what=what, reporter=reporter
    )
    base = base_url or folder_url(fetched.url)
    if fetched.status == 304:
        return FetchedArchive(kept, db.get_meta("archive_sha256") or "", False, base, False)
    assert fetched.sha256 is not None
    meta: dict[str, str | None] = {
        "archive_source": source,
        "archive_sha256": fetched.sha256,
        "archive_size": str(fetched.size),
        "archive_etag": fetched.etag,
        "archive_last_modified": fetched.last_modified,
    }
    changed = fetched.sha256 != db.get_meta("archive_sha256") or not kept.exists()
    return FetchedArchive(part, fetched.sha256, changed, base, False, meta)


def copy_local(source: Path, kept: Path, db: StateDB) -> FetchedArchive:
    """Take a local archive: copy it to ``kept`` when it changed (by size and mtime)."""
    try:
        stat = source.stat()
    except FileNotFoundError:
        raise CatalogError(
            "the catalog archive does not exist",
            subject=str(source),
            hint="check source.path in the spec (relative paths start at the spec's folder)",
        ) from None
    base = source.parent.resolve().as_uri() + "/"
    signature = f"{stat.st_size}:{stat.st_mtime_ns}"
    same_file = kept.exists() and os.path.samefile(source, kept)
    if (
        kept.exists()
        and db.get_meta("archive_source") == str(source)
        and db.get_meta("archive_signature") == signature
    ):
        return FetchedArchive(
            kept,
            db.get_meta("archive_sha256") or "",
            False,
            base,
            True,
            local_root=source.parent.resolve(),
        )
    kept.parent.mkdir(parents=True, exist_ok=True)
    target = kept if same_file else kept.with_name(kept.name + ".part")
    digest = hashlib.sha256()
    try:
        with source.open("rb") as src:
            if same_file:
                while block := src.read(1 << 20):
                    digest.update(block)
            else:
                with target.open("wb") as out:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
    except OSError as exc:
        if not same_file:
            target.unlink(missing_ok=True)
        raise FatalLocalError(
            f"cannot copy the archive: {exc.strerror or exc}", subject=str(source)
        ) from exc
    sha256 = digest.hexdigest()
    meta: dict[str, str | None] = {
        "archive_source": str(source),
        "archive_signature": signature,
        "archive_sha256": sha256,
        "archive_size": str(stat.st_size),
        "archive_etag": None,
        "archive_last_modified": None,
    }
    changed = sha256 != db.get_meta("archive_sha256")
    return FetchedArchive(
        target, sha256, changed, base, True, meta, local_root=source.parent.resolve()
    )


class ArchiveCatalog:
    """The ``archive`` source: a catalog archive at a local ``path`` or a remote ``url``."""

    def __init__(self, spec: ArchiveSource):
        self.spec = spec

    @property
    def refetch_damaged(self) -> bool:
        """A remote archive damaged on the way is fetched again; a local one would not heal."""
        return self.spec.url is not None

    def snapshot(self, ctx: SourceContext) -> FetchedArchive:
        """Copy the local archive when it changed, or fetch the remote one conditionally."""
        kept = archive_path(ctx.dataset_dir, ctx.dataset_id)
        if self.spec.path is not None:
            return copy_local(Path(self.spec.path), kept, ctx.db)
        assert self.spec.url is not None
        return fetch_remote(
            ctx.http,
            self.spec.url,
            kept,
            ctx.db,
            base_url=folder_url(self.spec.url),
            what=f"{ctx.dataset_id}: fetch catalog archive",
            reporter=ctx.reporter,
        )
