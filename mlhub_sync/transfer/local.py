"""Local files: ``file:`` hrefs copied (and verified like a download), hard links for hrefs
shared by several paths (:func:`copy_or_link`), and an asset's folder (:func:`asset_folder`).

Everything goes through a worker's :class:`~mlhub_sync.tree.Tree`: folders are opened (and
made) without following links, files by name in them (``tree.py``'s rule). A link where an
asset's folder should be fails that asset (error class ``symlink``), not the run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from mlhub_sync.errors import SymlinkError, TransferError
from mlhub_sync.net.headers import Headers
from mlhub_sync.stac.checksum import Multihash, hash_file
from mlhub_sync.transfer import checks
from mlhub_sync.transfer.ops import TransferRequest, TransferResult
from mlhub_sync.transfer.sink import Hashes, create_fresh, discard, local_error, publish
from mlhub_sync.tree import Entry, Folder, Tree


def asset_folder(tree: Tree, folder: Path) -> Folder:
    """``folder`` (an asset's), held in ``tree`` and made when missing; give it back with
    ``tree.release``. A link in its place fails this asset only (``symlink``); other local
    failures are :func:`local_error`\\ s."""
    try:
        return tree.hold(folder, create=True)
    except SymlinkError as exc:
        raise symlink_failure(exc) from None
    except OSError as exc:
        raise local_error(exc, folder) from exc


def symlink_failure(exc: SymlinkError) -> TransferError:
    """A link where an asset's folder or file should be, as that asset's failure (the
    report shows the message, so it names the link)."""
    return TransferError(
        f"the {exc.what} {exc.path} is a symbolic link, and mlhub-sync never follows links "
        "under the output folder",
        subject=exc.path,
        retryable=False,
        error_class="symlink",
        hint=exc.hint,
    )


def copy_local(req: TransferRequest, claim: Multihash | None, folder: Folder) -> TransferResult:
    """Copy the ``file:`` URL ``req.url`` to ``req.dest`` (in ``folder``) through a ``.part``,
    verified."""
    source = Path(url2pathname(urlsplit(req.url).path))
    part = folder.entry(f"{req.dest.name}.part")
    hashes = Hashes(claim, req.checksum_mode != "off", req.digests)
    try:
        with source.open("rb") as src, os.fdopen(create_fresh(part), "wb") as out:
            size = hash_file(src, *hashes.hashers, copy=out.write)
            out.flush()
            os.fsync(out.fileno())
    except FileNotFoundError:
        discard(part)
        raise TransferError(
            "the file does not exist", subject=str(source), retryable=False, error_class="not-found"
        ) from None
    except OSError as exc:
        discard(part)
        if exc.filename == str(source):
            raise TransferError(
                f"cannot read: {exc.strerror}",
                subject=str(source),
                retryable=False,
                error_class="local-read",
            ) from exc
        raise local_error(exc, part) from exc
    headers = Headers({"Content-Length": str(size)})
    outcome = checks.verify(
        req, claim, hashes, size, headers, full_body=True, decoded=False, trust_etag=False
    )
    if not isinstance(outcome, checks.Verified):
        discard(part)
        if isinstance(outcome, TransferError):
            raise outcome
        raise TransferError(
            outcome.message, subject=str(source), retryable=False, error_class="checksum-mismatch"
        )
    stat = publish(part, req.dest.name)
    return TransferResult(
        stat.st_size, stat.st_mtime_ns, outcome.md5, None, outcome.by, size, 1, False, req.url,
        digests=hashes.extra_hex(),
    )  # fmt: skip


def copy_or_link(tree: Tree, source: Path, dest: Path) -> os.stat_result:
    """Place ``source``'s bytes (a file of ``tree``) at ``dest``: a hard link when possible,
    else a copy, through ``{dest}.part``; ``dest``'s folder is made. The stat of ``dest``."""
    src = asset_folder(tree, source.parent)
    try:
        into = asset_folder(tree, dest.parent)
        try:
            tmp = into.entry(f"{dest.name}.part")
            discard(tmp)
            try:
                src.link(source.name, into, tmp.name)
            except OSError:
                _copy(src, source.name, tmp, dest)
            return publish(tmp, dest.name)
        finally:
            tree.release(into)
    finally:
        tree.release(src)


def _copy(src: Folder, name: str, tmp: Entry, dest: Path) -> None:
    try:
        with (
            os.fdopen(src.open(name, os.O_RDONLY), "rb") as fin,
            os.fdopen(create_fresh(tmp), "wb") as out,
        ):
            shutil.copyfileobj(fin, out, 1 << 20)
    except SymlinkError as exc:  # the source was swapped for a link since it was written
        discard(tmp)
        raise symlink_failure(exc) from None
    except OSError as exc:
        discard(tmp)
        raise local_error(exc, dest) from exc
