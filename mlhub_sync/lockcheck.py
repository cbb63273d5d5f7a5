"""A dataset's selection against its lock file: what ``mlhub-sync lock`` pins (the header and
the assets) and what ``--locked`` finds changed (:class:`~mlhub_sync.lockfile.Drift`).

The selection must be built first (``selection.desired.select_assets``). Hrefs are compared as
the lock records them (:func:`lock_href`), so a rotated signature is not a change and a local
file locks as a path relative to the spec's folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from mlhub_sync.lockfile import Asset, Drift, Key, LockFile, selection_digest
from mlhub_sync.net.redact import redact_url
from mlhub_sync.stac.checksum import md5_multihash
from mlhub_sync.stac.href import href_identity
from mlhub_sync.state.db import StateDB


def lock_href(href: str | None, base: Path) -> str:
    """An href as a lock records it: no rotating signatures, no secrets, and a local file as a
    path relative to the spec's folder (so a repository checked out anywhere locks alike)."""
    if not href:
        return ""
    if href.startswith("file:"):
        local = url2pathname(urlsplit(href).path)
        return "file:" + Path(os.path.relpath(local, base)).as_posix()
    return redact_url(href_identity(href))


def lock_assets(db: StateDB, spec_dir: Path) -> Iterator[Asset]:
    """The selected assets as a lock lists them, by path: the catalog's checksum, else the MD5
    we verified when we downloaded that very href, else none."""
    for path, href, size, checksum, md5, file_href, verified_by in db.pins.selected():
        identity = lock_href(href, spec_dir)
        if checksum is not None:
            yield path, identity, size, checksum, "catalog"
        elif md5 and verified_by != "corrupt" and lock_href(file_href, spec_dir) == identity:
            yield path, identity, size, md5_multihash(md5), "download"
        else:
            yield path, identity, size, None, None


def lock_header(db: StateDB, key: Key, spec_dir: Path) -> dict[str, Any]:
    """The dataset's lock header (catalog pins, counts, selection digest)."""
    count, total, unknown = db.selection.totals()
    return {
        "id": key[0],
        "output_dir": key[1],
        "catalog": {
            "sha256": db.get_meta("indexed_digest"),
            "etag": db.get_meta("archive_etag"),
        },
        "selection": {
            "assets": count,
            "bytes": total,
            "unknown_size": unknown,
            "digest": selection_digest(lock_assets(db, spec_dir)),
        },
    }


def check_lock(db: StateDB, lock: LockFile, key: Key, spec_dir: Path) -> Drift:
    """Compare the current catalog and selection with the lock (flat memory: the lock's assets
    go into the state db and the differences are counted there)."""
    locked = lock.datasets.get(key)
    if locked is None:
        return Drift(missing_from_lock=True)
    db.pins.load(lock.assets(key))
    drift = Drift(
        catalog_changed=locked.archive_sha256 is not None
        and locked.archive_sha256 != db.get_meta("indexed_digest")
    )
    if selection_digest(lock_assets(db, spec_dir)) == locked.digest:
        return drift
    drift.added, drift.removed, drift.changed, drift.samples = db.pins.drift(
        lambda href: lock_href(href, spec_dir)
    )
    return drift
