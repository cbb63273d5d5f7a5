"""Catalog archives: fetched over HTTP(S) by the transfer engine (a conditional, resumable,
verified GET), or copied from a local file.

The archive is kept as ``{dataset_dir}/{dataset_id}.tar.gz``. A new version is written beside
it (``.part``) and only replaces it once extraction has verified it; the validators (ETag,
Last-Modified) of the kept copy make the next fetch a cheap 304. Both are reached without
following links (``tree.py``): a link in either place is no kept copy, and is replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat as st
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

from mlhub_sync.config.sources import ArchiveSource
from mlhub_sync.errors import (
    CatalogError,
    DamagedArchiveError,
    FatalLocalError,
    SourceAuthError,
    TransferError,
)
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.net.signing import chain
from mlhub_sync.progress import NULL_REPORTER, Reporter, Stage
from mlhub_sync.sources.base import FetchedArchive, SourceContext
from mlhub_sync.stac.checksum import hash_file
from mlhub_sync.state.db import StateDB
from mlhub_sync.transfer.curl import Cancelled, CurlDriver
from mlhub_sync.transfer.ops import FetchState, Progress, TransferRequest
from mlhub_sync.transfer.rules import Transfers
from mlhub_sync.tree import Tree, opened


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
    """Fetch the archive at ``url`` into ``{kept}.part``; a 304 means unchanged.

    The transfer engine does it, as for an asset: a conditional GET from the kept copy's
    validators, a resume of the ``.part`` a killed run left (its validator is recorded when
    its body starts), size and server-MD5 checks, the retry policy, gzip unwrapped, sha256.
    ``params`` (the API key) go into the query of this request only: redirects do not carry
    them, and messages show the URL redacted. ``base_url`` is where relative hrefs in the
    archive resolve (default: beside the URL the archive came from, after redirects).
    """
    source = redact_url(url)
    kept_stat = kept_file(kept)
    known = (
        kept_stat is not None
        and db.get_meta("archive_source") == source
        and str(kept_stat.st_size) == db.get_meta("archive_size")
    )
    resuming = db.get_meta("archive_part_source") == source
    fetched = kept.with_name(kept.name + ".part")
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FatalLocalError(
            f"cannot create the dataset folder: {exc.strerror or exc}", subject=str(kept.parent)
        ) from exc
    progress = _StageProgress(reporter, what)
    request = TransferRequest(
        url=_with_query(url, params),
        dest=fetched,
        resume_validator=db.get_meta("archive_part_validator") if resuming else None,
        if_none_match=db.get_meta("archive_etag") if known else None,
        if_modified_since=db.get_meta("archive_last_modified") if known else None,
        digests=("sha256",),
        progress=progress,
        max_size=http.net.max_archive_size,
        max_size_setting="archive_limits.max_unpacked_gib",
    )

    def started(_req: TransferRequest, validator: str | None, _total: int | None) -> None:
        with db.transaction():  # what lets the next run resume this part
            db.set_meta({"archive_part_source": source, "archive_part_validator": validator})

    tree = Tree(kept.parent)  # the .part is written, resumed and renamed in it, by name
    transfers = Transfers(  # the source's headers: for the archive's host only
        policy=http.policy, rand=http.rand, on_started=started, tree=tree, net=http.net,
        signer=chain(http.access),
    )  # fmt: skip
    driver = CurlDriver(1, stop=http.stop, net=http.net)
    state = FetchState()
    try:
        result = driver.run(transfers.fetch(request, state))
    except TransferError as exc:
        # exc.subject is the URL as requested, its key redacted (key=***)
        raise _catalog_error(exc, what, exc.subject or source, state.attempts) from None
    except Cancelled:
        raise CatalogError(f"{what} was interrupted", subject=source) from None
    finally:
        driver.close()
        progress.close()
        tree.close()
    base = base_url or folder_url(result.url)
    if result.not_modified:
        return FetchedArchive(kept, db.get_meta("archive_sha256") or "", base, False)
    meta: dict[str, str | None] = {
        "archive_source": source,
        "archive_sha256": result.digests["sha256"],
        "archive_size": str(result.size),
        "archive_etag": result.etag,
        "archive_last_modified": result.last_modified,
        "archive_part_source": None,
        "archive_part_validator": None,
    }
    return FetchedArchive(fetched, result.digests["sha256"], base, False, meta)


def _with_query(url: str, params: Mapping[str, str] | None) -> str:
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


def _catalog_error(exc: TransferError, what: str, source: str, attempts: int) -> CatalogError:
    """A failed archive transfer as a catalog error; a damaged body is worth fetching again."""
    if exc.status in (401, 403):
        return SourceAuthError(
            f"{what} was refused (HTTP {exc.status})",
            subject=source,
            hint="check the API key: spec api_key, $MLHUB_API_KEY or the profile in "
            "~/.mlhub/profiles",
        )
    if exc.error_class in ("html-response", "checksum-mismatch", "bad-encoding"):
        return DamagedArchiveError(f"{what}: {exc.message}", subject=source, hint=exc.hint)
    tries = f" after {attempts} attempt(s)" if attempts > 1 else ""
    return CatalogError(
        f"{what} failed{tries}: {exc.message}",
        subject=source,
        hint=exc.hint,
        status=exc.status,
        error_class=exc.error_class,
    )


class _StageProgress(Progress):
    """The archive's bytes as a progress stage (one per attempt that has a body)."""

    def __init__(self, reporter: Reporter, what: str):
        self.reporter, self.what = reporter, what
        self.stage: Stage | None = None

    def begin(self, total: int | None) -> None:
        self.close()
        self.stage = self.reporter.stage(self.what, total=total, unit="B")

    def update(self, n: int) -> None:
        if self.stage is not None:
            self.stage.update(n)

    def close(self) -> None:
        if self.stage is not None:
            self.stage.close()
            self.stage = None


def kept_file(kept: Path) -> os.stat_result | None:
    """The kept copy's own stat, when it is a plain file (a link is no kept copy)."""
    with contextlib.suppress(FileNotFoundError), opened(kept.parent) as folder:
        found = folder.lstat(kept.name)
        return found if found is not None and st.S_ISREG(found.st_mode) else None
    return None


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
    kept_stat = kept_file(kept)
    same_file = kept_stat is not None and (kept_stat.st_dev, kept_stat.st_ino) == (
        stat.st_dev,
        stat.st_ino,
    )
    if (
        kept_stat is not None
        and db.get_meta("archive_source") == str(source)
        and db.get_meta("archive_signature") == signature
    ):
        return FetchedArchive(
            kept,
            db.get_meta("archive_sha256") or "",
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
                hash_file(src, digest)
            else:  # a fresh inode: a link planted as the .part is removed, not written through
                with (
                    opened(kept.parent) as folder,
                    os.fdopen(folder.create(target.name), "wb") as out,
                ):
                    hash_file(src, digest, copy=out.write)
    except OSError as exc:
        if not same_file:
            with contextlib.suppress(OSError), opened(kept.parent) as folder:
                folder.unlink(target.name)
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
    return FetchedArchive(target, sha256, base, True, meta, local_root=source.parent.resolve())


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
