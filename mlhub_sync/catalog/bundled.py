"""Files a catalog archive bundles: assets whose relative href names a member of the archive
(``./labels.tif`` beside the item's JSON, as MLHub collection archives ship them).

While the archive is indexed, such an asset waits in ``bundle_candidates`` (a relative href
may name a member that comes later in the archive). Once the whole archive is read,
:func:`resolve_bundled` looks each member up in the staged tree: one the archive has (a plain
file, which install moves into the dataset folder) makes the asset *bundled*, its href the
``file:`` URL of that member in the dataset folder (:func:`bundled_url`). It needs no
``allow_local``: it is the catalog's own file, not a file of this machine. A member the
archive lacks leaves the href as before: resolved beside the archive, and a ``file:`` one
checked against ``allow_local``.

In ``apply``, before the plan is carried out, :func:`place_bundled` puts each selected bundled
asset at its asset path: verified where it already is (the member *is* the asset path, as in
MLHub archives), else hard-linked there (copied only when the two folders are on different
file systems), through ``{path}.part`` and only renamed into place once verified like a
download: by ``file:checksum`` when the catalog has one, else by ``file:size``
(``verified_by`` says which; ``none`` when it has neither). Why this is safe although an
archive's bytes are otherwise no evidence for an asset (``plan/adopt.py``): there, the asset's
href names a host and the archive merely ships a file at its path, which could be anything;
here the href says the asset *is* that member, so the member is the source, as a host is for a
download, and it is checked against the catalog's claims the same way.

Every file is reached without following links (``tree.py``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from mlhub_sync.catalog.index import NO_COMMON, Indexer
from mlhub_sync.catalog.install import is_bookkeeping
from mlhub_sync.config.resolve import DatasetConfig
from mlhub_sync.errors import FatalLocalError, SymlinkError, TransferError
from mlhub_sync.selection.layout import asset_relpath
from mlhub_sync.stac.checksum import UnknownMultihashError, hash_file, parse_multihash
from mlhub_sync.stac.document import AssetFacts
from mlhub_sync.stac.href import LocalHrefs, check_local_href
from mlhub_sync.state.db import FileRecord, StateDB
from mlhub_sync.tree import Folder, Tree

log = logging.getLogger(__name__)

_PAGE = 5000


def bundled_prefix(dataset_dir: Path) -> str:
    """What every bundled href of ``dataset_dir`` starts with (its ``file:`` URL and ``/``)."""
    return dataset_dir.as_uri().rstrip("/") + "/"


def bundled_url(dataset_dir: Path, rel: str) -> str:
    """The href of the bundled file at ``rel`` (``/``-separated) in ``dataset_dir``."""
    return bundled_prefix(dataset_dir) + quote(rel, safe="/")


def resolve_bundled(
    db: StateDB,
    indexer: Indexer,
    staging: Path,
    prefix: str,
    dataset_dir: Path,
    local: LocalHrefs | None,
) -> int:
    """Turn ``bundle_candidates`` into assets (or refused assets); return how many are bundled.

    ``prefix`` is the folder of the staged tree that install moves into ``dataset_dir`` (``""``
    or ``"top/"``). Paths where a bundled file already is its own asset path are noted
    (``db.documents.in_place``): install may replace a file we manage there, since the catalog
    says the archive's file *is* that asset.
    """
    bundled = 0
    after = 0
    db.documents.reset_in_place()
    with Tree(staging) as tree:
        while page := db.documents.candidates(after, _PAGE):
            in_place: list[str] = []
            for row in page:
                rowid, item_pk, cid, item_id, key, href, media, size, checksum, member, written = (
                    row
                )
                after = rowid
                rel = _installed(tree, staging, prefix, member)
                if rel is not None:
                    facts = AssetFacts(key, bundled_url(dataset_dir, rel), media, size, checksum)
                    if asset_relpath(cid, item_id, key, facts.href, media, NO_COMMON) == rel:
                        in_place.append(rel)
                    bundled += 1
                else:
                    try:  # not the archive's: the href resolves beside it, as before
                        check_local_href(href, local, written)
                    except ValueError as exc:
                        indexer.add_rejected(cid, item_id, key, written[:200], str(exc))
                        continue
                    facts = AssetFacts(key, href, media, size, checksum)
                indexer.add_asset(item_pk, cid, item_id, facts)
            indexer.flush()
            db.documents.add_in_place(in_place)
    return bundled


def _installed(tree: Tree, staging: Path, prefix: str, member: str) -> str | None:
    """The path in the dataset folder where install puts ``member`` (a plain file of the
    staged tree), or ``None`` when it is not such a file or install leaves it out."""
    if not member.startswith(prefix):
        return None
    rel = member[len(prefix) :]
    if not rel or is_bookkeeping(rel.split("/", 1)[0]):
        return None
    folder_rel, _, name = member.rpartition("/")
    try:
        with tree.folder(staging / folder_rel if folder_rel else staging) as folder:
            found = folder.lstat(name)
    except (OSError, SymlinkError):
        return None
    return rel if found is not None and stat.S_ISREG(found.st_mode) else None


# -- placing them, in apply ---------------------------------------------------------------------


@dataclass(frozen=True)
class BundleFailure:
    """A bundled asset that could not be placed (it goes to the error report)."""

    path: str
    collection_id: str
    item_id: str | None
    asset_key: str
    href: str
    error: TransferError


@dataclass
class Placement:
    """What :func:`place_bundled` did."""

    verified: int = 0  # already at their asset path: checked and recorded
    linked: int = 0  # hard-linked (or copied) to their asset path
    failures: list[BundleFailure] = field(default_factory=list)

    @property
    def missing(self) -> bool:
        """Some of the archive's files are gone from the unpacked catalog (pruned, deleted):
        installing the catalog again brings them back."""
        return any(f.error.error_class == "missing-member" for f in self.failures)


@dataclass(frozen=True)
class _Asset:
    path: str  # in the asset folder
    href: str
    source: str  # the member, in the dataset folder
    size: int | None
    checksum: str | None


def place_bundled(db: StateDB, config: DatasetConfig) -> Placement:
    """Put every selected bundled asset at its asset path, verified and recorded; failures
    are left out of the selection (the executor never sees a bundled href) and returned."""
    result = Placement()
    prefix = bundled_prefix(config.dataset_dir)
    after = ("", "")
    placer: _Placer | None = None
    try:
        while rows := db.selection.with_href_prefix(prefix, after, _PAGE):
            placer = placer or _Placer(db, config)
            records: list[FileRecord] = []
            failed: list[str] = []
            for path, href, size, checksum, cid, item_id, key in rows:
                after = (href, path)
                asset = _Asset(path, href, unquote(href[len(prefix) :]), size, checksum)
                try:
                    record = placer.place(asset)
                except TransferError as exc:
                    result.failures.append(BundleFailure(path, cid, item_id, key, href, exc))
                    failed.append(path)
                    log.warning("%s: %s", path, exc.message)
                    continue
                if record is None:
                    continue
                records.append(record)
                if placer.share and asset.source == path:
                    result.verified += 1
                else:
                    result.linked += 1
            with db.transaction():
                db.put_files(records)
                db.selection.drop(failed)
    finally:
        if placer is not None:
            placer.close()
    return result


class _Placer:
    """Places bundled assets: sources read from the dataset folder, files written into the
    asset folder, both through a :class:`Tree` (no link followed)."""

    def __init__(self, db: StateDB, config: DatasetConfig):
        self.db, self.mode = db, config.checksum
        self.dataset_dir, self.asset_dir = config.dataset_dir, config.asset_dir
        self.share = config.asset_dir == config.dataset_dir
        self.sources = Tree(config.dataset_dir)
        self.dests = self.sources if self.share else Tree(config.asset_dir, create=True)

    def close(self) -> None:
        self.sources.close()
        self.dests.close()

    def place(self, asset: _Asset) -> FileRecord | None:
        """Place one asset: its record, or ``None`` when it is placed and unchanged."""
        src = self.dataset_dir / asset.source
        src_folder = self._hold(self.sources, src.parent, asset.path, create=False)
        try:
            src_stat = src_folder.lstat(src.name)
            if src_stat is None or not stat.S_ISREG(src_stat.st_mode):
                raise _failure(
                    asset,
                    f"the archive's file {asset.source} is not in the dataset folder",
                    "missing-member",
                )
            in_place = self.share and asset.source == asset.path
            if self.share and not in_place:
                owner = self.db.file(asset.source)  # install left a file of ours alone there
                if owner is not None and owner.href != asset.href:
                    raise _failure(
                        asset,
                        f"{asset.source} holds another asset, not the archive's file",
                        "not-found",
                    )
            if self._unchanged(asset, src_stat, in_place):
                return None
            if in_place:
                md5, how = _verify(src_folder, src.name, asset, self.mode)
                return self._record(asset, src_folder, src.name, md5, how)
            dest = self.asset_dir / asset.path
            into = self._hold(self.dests, dest.parent, asset.path, create=True)
            try:
                part = f"{dest.name}.part"
                _link_or_copy(src_folder, src.name, src_stat, into, part)
                try:
                    md5, how = _verify(into, part, asset, self.mode)
                    into.replace(part, into, dest.name)
                except BaseException:
                    with contextlib.suppress(OSError):
                        into.unlink(part)
                    raise
                return self._record(asset, into, dest.name, md5, how)
            finally:
                self.dests.release(into)
        except FileNotFoundError:  # gone while we looked: this asset's failure
            raise _failure(
                asset, f"the archive's file {asset.source} disappeared", "not-found"
            ) from None
        except OSError as exc:  # a disk that is full or read-only: the run's
            raise _local_error(exc, asset.path) from exc
        finally:
            self.sources.release(src_folder)

    def _unchanged(self, asset: _Asset, src_stat: os.stat_result, in_place: bool) -> bool:
        """Recorded for this href, and still the member's bytes (same size and mtime as the
        member: a link shares its inode, a copy took its mtime)."""
        record = self.db.file(asset.path)
        if record is None or record.href != asset.href or record.verified_by == "corrupt":
            return False
        here = src_stat if in_place else _lstat(self.dests, self.asset_dir / asset.path)
        facts = (src_stat.st_size, src_stat.st_mtime_ns)
        return (
            here is not None
            and (here.st_size, here.st_mtime_ns) == facts
            and (record.size, record.mtime_ns) == facts
        )

    def _record(self, asset: _Asset, folder: Folder, name: str, md5: str, how: str) -> FileRecord:
        found = folder.lstat(name)
        assert found is not None
        return FileRecord(
            asset.path, asset.href, found.st_size, found.st_mtime_ns, md5, asset.checksum, None, how
        )

    @staticmethod
    def _hold(tree: Tree, folder: Path, path: str, *, create: bool) -> Folder:
        try:
            return tree.hold(folder, create=create)
        except SymlinkError as exc:
            raise TransferError(
                f"{exc.path} is a symbolic link, and mlhub-sync never follows links under the "
                "output folder",
                subject=path,
                retryable=False,
                error_class="symlink",
            ) from None
        except (FileNotFoundError, NotADirectoryError):
            raise TransferError(
                f"the folder {folder} is not there",
                subject=path,
                retryable=False,
                error_class="not-found",
            ) from None
        except OSError as exc:
            raise _local_error(exc, str(folder)) from exc


def _link_or_copy(
    src: Folder, name: str, src_stat: os.stat_result, into: Folder, part: str
) -> None:
    """``part`` in ``into``: a hard link to the member, or (another file system) a copy that
    keeps its mtime, so a later run sees it is still the member's."""
    into.unlink(part)
    try:
        src.link(name, into, part)
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
    with (
        os.fdopen(src.open(name, os.O_RDONLY), "rb") as fin,
        os.fdopen(into.create(part), "wb") as out,
    ):
        while block := fin.read(1 << 20):
            out.write(block)
        out.flush()
        os.utime(out.fileno(), ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))


def _verify(folder: Folder, name: str, asset: _Asset, mode: str) -> tuple[str, str]:
    """Hash ``name`` and judge it by the catalog's claims: ``(md5, verified_by)``."""
    claim = None
    if asset.checksum is not None and mode != "off":
        with contextlib.suppress(UnknownMultihashError, ValueError):
            claim = parse_multihash(asset.checksum)
    md5 = hashlib.md5()
    other = claim.new() if claim is not None and claim.name != "md5" else None
    with os.fdopen(folder.open(name, os.O_RDONLY), "rb") as stream:
        got = hash_file(stream, md5, *([other] if other is not None else []))
    if asset.size is not None and got != asset.size:
        raise _failure(
            asset,
            f"the archive's file has {got} bytes, the catalog says {asset.size}",
            "size-mismatch",
        )
    if claim is not None:
        digest = (other or md5).hexdigest()
        if digest != claim.digest:
            raise _failure(
                asset,
                f"the archive's file does not match its file:checksum ({claim.name})",
                "checksum-mismatch",
            )
        return md5.hexdigest(), "file:checksum"
    if mode == "required":
        raise _failure(
            asset,
            "no checksum is known to verify the archive's file by (checksum: required)",
            "no-checksum",
        )
    return md5.hexdigest(), "size" if asset.size is not None else "none"


def _lstat(tree: Tree, path: Path) -> os.stat_result | None:
    with contextlib.suppress(OSError, SymlinkError), tree.folder(path.parent) as folder:
        return folder.lstat(path.name)
    return None


def _local_error(exc: OSError, where: str) -> FatalLocalError:
    return FatalLocalError(
        f"cannot place a file the archive bundles: {exc.strerror or exc}", subject=where
    )


def _failure(asset: _Asset, message: str, error_class: str) -> TransferError:
    return TransferError(message, subject=asset.path, retryable=False, error_class=error_class)
