"""``verify``: managed files re-checked against their records, by size and mtime or (``deep``)
by their MD5; a deep check marks corrupt files so the next plan replaces them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from mlhub_sync.config.resolve import DatasetConfig
from mlhub_sync.stac.checksum import hash_file
from mlhub_sync.state.db import StateDB
from mlhub_sync.state.lock import DatasetLock


@dataclass
class VerifyResult:
    """``verify``: managed files checked against their records."""

    config: DatasetConfig
    checked: int = 0
    ok: int = 0
    missing: int = 0
    changed: int = 0  # size or mtime differ (fast mode)
    corrupt: int = 0  # content differs from the recorded hash (deep mode)
    unverifiable: int = 0  # deep mode, no hash recorded
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bad(self) -> int:
        """Files that are not as recorded."""
        return self.missing + self.changed + self.corrupt


def verify_dataset(config: DatasetConfig, *, deep: bool) -> VerifyResult:
    """Check every managed file: by size and mtime, or (``deep``) by its hash.

    A deep check that finds the content wrong marks the record ``corrupt`` (the next plan
    replaces the file); one that finds it right after a touch refreshes the recorded mtime.
    """
    result = VerifyResult(config)
    base = str(config.asset_dir) + "/"
    StateDB.open(config.dataset_dir, create=False).close()  # not synced: say so, create nothing
    with DatasetLock(config.dataset_dir), StateDB.open(config.dataset_dir, create=False) as db:
        last = ""
        while True:
            page = db.execute(
                "SELECT path, size, mtime_ns, md5, verified_by FROM files WHERE path > ? "
                "ORDER BY path LIMIT 1000",
                (last,),
            ).fetchall()
            if not page:
                break
            last = page[-1][0]
            refreshed: list[tuple[int, str]] = []
            corrupt: list[tuple[str]] = []
            for path, size, mtime_ns, md5, verified_by in page:
                result.checked += 1
                problem = _check_file(
                    base + path,
                    size,
                    mtime_ns,
                    md5,
                    verified_by,
                    deep,
                    refreshed,
                    corrupt,
                    path,
                    result,
                )
                if problem:
                    if len(result.problems) < 100:
                        result.problems.append((path, problem))
                else:
                    result.ok += 1
            with db.transaction():
                db.conn.executemany("UPDATE files SET mtime_ns = ? WHERE path = ?", refreshed)
                db.conn.executemany(
                    "UPDATE files SET verified_by = 'corrupt' WHERE path = ?", corrupt
                )
    return result


def _check_file(
    full: str,
    size: int,
    mtime_ns: int,
    md5: str | None,
    verified_by: str,
    deep: bool,
    refreshed: list[tuple[int, str]],
    corrupt: list[tuple[str]],
    path: str,
    result: VerifyResult,
) -> str | None:
    try:
        st = os.stat(full)
    except FileNotFoundError:
        result.missing += 1
        return "missing"
    if st.st_size != size:
        result.changed += 1
        return f"size {st.st_size}, recorded {size}"
    if verified_by == "corrupt":
        result.corrupt += 1
        return "marked corrupt by an earlier verify"
    if not deep:
        if st.st_mtime_ns != mtime_ns:
            result.changed += 1
            return "modified since it was synced (mtime)"
        return None
    if md5 is None:
        result.unverifiable += 1
        return None
    digest = hashlib.md5()
    try:
        with open(full, "rb") as source:
            hash_file(source, digest)
    except OSError as exc:
        result.changed += 1
        return f"cannot read it: {exc.strerror or exc}"
    if digest.hexdigest() != md5:
        result.corrupt += 1
        corrupt.append((path,))
        return "content differs from the recorded md5"
    if st.st_mtime_ns != mtime_ns:
        refreshed.append((st.st_mtime_ns, path))
    return None
