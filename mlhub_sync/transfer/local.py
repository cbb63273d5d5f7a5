"""Local files: ``file:`` hrefs copied (and verified like a download), hard links for hrefs
shared by several paths (:func:`copy_or_link`), and output folders made once per worker.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from mlhub_sync.errors import TransferError
from mlhub_sync.net.headers import Headers
from mlhub_sync.stac.checksum import Multihash, hash_file
from mlhub_sync.transfer import checks
from mlhub_sync.transfer.ops import TransferRequest, TransferResult
from mlhub_sync.transfer.sink import Hashes, discard, local_error

_MAX_CACHED_DIRS = 50_000


def ensure_dir(folder: Path, known: set[str]) -> None:
    """Create ``folder`` unless ``known`` (a worker's cache: a mkdir per file adds up) has it."""
    key = str(folder)
    if key in known:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise local_error(exc, folder) from exc
    if len(known) > _MAX_CACHED_DIRS:
        known.clear()
    known.add(key)


def copy_local(req: TransferRequest, claim: Multihash | None) -> TransferResult:
    """Copy the ``file:`` URL ``req.url`` to ``req.dest`` through a ``.part``, verified."""
    source = Path(url2pathname(urlsplit(req.url).path))
    part = Path(f"{req.dest}.part")
    hashes = Hashes(claim, req.checksum_mode != "off", req.digests)
    try:
        with source.open("rb") as src, part.open("wb") as out:
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
    try:
        os.replace(part, req.dest)
        stat = os.stat(req.dest)
    except OSError as exc:
        raise local_error(exc, req.dest) from exc
    return TransferResult(
        stat.st_size, stat.st_mtime_ns, outcome.md5, None, outcome.by, size, 1, False, req.url,
        digests=hashes.extra_hex(),
    )  # fmt: skip


def copy_or_link(source: Path, dest: Path) -> None:
    """Place ``source``'s bytes at ``dest`` (whose folder exists): a hard link when possible,
    else a copy."""
    tmp = Path(f"{dest}.part")
    discard(tmp)
    try:
        os.link(source, tmp)
    except OSError:
        try:
            shutil.copyfile(source, tmp)
        except OSError as exc:
            discard(tmp)
            raise local_error(exc, dest) from exc
    try:
        os.replace(tmp, dest)
    except OSError as exc:
        raise local_error(exc, dest) from exc
