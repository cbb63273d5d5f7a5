"""``verify``: managed files re-checked against their records, by size and mtime or (``deep``)
by their MD5; a deep check marks corrupt files so the next plan replaces them."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from mlhub_sync.config.resolve import DatasetConfig
from mlhub_sync.stac.checksum import hash_file
from mlhub_sync.state.db import StateDB
from mlhub_sync.state.lock import DatasetLock
from mlhub_sync.state.schema import FileRecord


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
        while page := db.files_after(last):
            last = page[-1].path
            mtimes: list[tuple[str, int]] = []
            corrupt: list[str] = []
            for record in page:
                result.checked += 1
                finding = check_file(base + record.path, record, deep)
                if finding.kind is not None:
                    setattr(result, finding.kind, getattr(result, finding.kind) + 1)
                if finding.problem is None:
                    result.ok += 1  # an unverifiable file is fine as far as we can tell
                elif len(result.problems) < MAX_PROBLEMS:
                    result.problems.append((record.path, finding.problem))
                if finding.new_mtime_ns is not None:
                    mtimes.append((record.path, finding.new_mtime_ns))
                if finding.kind == "corrupt" and record.verified_by != "corrupt":
                    corrupt.append(record.path)
            with db.transaction():
                db.set_mtimes(mtimes)
                db.mark_corrupt(corrupt)
    return result


MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Finding:
    """What one file's check found: ``kind`` names the :class:`VerifyResult` counter
    (``None``: fine), ``problem`` says it for people, ``new_mtime_ns`` is an intact file's
    new mtime to record."""

    kind: str | None = None
    problem: str | None = None
    new_mtime_ns: int | None = None


def check_file(full: str, record: FileRecord, deep: bool) -> Finding:
    """Check the file at ``full`` against its record."""
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return Finding("missing", "missing")
    if st.st_size != record.size:
        return Finding("changed", f"size {st.st_size}, recorded {record.size}")
    if record.verified_by == "corrupt":
        return Finding("corrupt", "marked corrupt by an earlier verify")
    if not deep:
        if st.st_mtime_ns != record.mtime_ns:
            return Finding("changed", "modified since it was synced (mtime)")
        return Finding()
    if record.md5 is None:
        return Finding("unverifiable")
    try:
        md5 = file_md5(full)
    except OSError as exc:
        return Finding("changed", f"cannot read it: {exc.strerror or exc}")
    if md5 != record.md5:
        return Finding("corrupt", "content differs from the recorded md5")
    refreshed = st.st_mtime_ns if st.st_mtime_ns != record.mtime_ns else None
    return Finding(new_mtime_ns=refreshed)


def file_md5(path: str) -> str:
    """The MD5 of the file at ``path``."""
    digest = hashlib.md5()
    hash_file(Path(path), digest)
    return digest.hexdigest()
