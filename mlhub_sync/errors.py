"""The error tree of mlhub-sync.

Every error a user can meet is an :class:`MlhubSyncError`: a short message, the offending thing
(a path, a URL with secrets redacted, a spec field) and a hint that names the fix. Library code
raises them; only the CLI prints them, and it maps each branch to an exit code:

====================  =====  =============================================================
branch                exit   when
====================  =====  =============================================================
SpecError             64     the spec (or a command line) is invalid
FilterMatchesNothing  64     a ``collection_filter`` names nothing the catalog has
StateError            3      the state db is locked, corrupt or from a newer version
CatalogError          1      the catalog could not be fetched, verified or indexed
SourceUnavailable     1      the source cannot serve the dataset (its host does not resolve,
                             or it has no such dataset): said on one line, hint included
TransferError         1      one asset could not be transferred (``retryable`` says if a
                             retry may help); aggregated into :class:`ApplyError`
FatalLocalError       1      a local failure that stops the whole run (disk full, read-only)
SymlinkError          1      a link under an output folder where a folder or file of ours
                             should be (a FatalLocalError; one asset's failure in a transfer)
ApplyError            1      a run finished and some assets failed (the report has them)
====================  =====  =============================================================

The exit codes themselves are :class:`ExitCode`. Exceptions from requests, libcurl, sqlite3 and
the OS are mapped to these at one boundary each and chained with ``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """The process exit codes of ``mlhub-sync`` (the README's table)."""

    OK = 0
    FAILURES = 1  # a run finished with failed assets, or a catalog/local failure
    CHANGES = 2  # changes pending (``plan --detailed-exitcode``)
    STATE = 3  # the state db is locked or too new, or ``--locked`` found drift
    USAGE = 64  # EX_USAGE: a bad spec or command line
    INTERNAL = 70  # EX_SOFTWARE: a bug in mlhub-sync
    INTERRUPTED = 130  # 128 + SIGINT: stopped by Ctrl-C or SIGTERM; partial files kept


class MlhubSyncError(Exception):
    """Base class: a message a person can act on.

    ``subject`` names the offending thing (file, URL, field); ``hint`` says how to fix it.
    """

    exit_code: int = ExitCode.FAILURES

    def __init__(self, message: str, *, subject: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.subject = subject
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.subject:
            text = f"{self.subject}: {text}"
        if self.hint:
            text = f"{text}\n  hint: {self.hint}"
        return text


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec: where (``file:line``), which field, and what is wrong."""

    location: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class SpecError(MlhubSyncError):
    """The spec is invalid. Carries every issue found, one line each."""

    exit_code: int = ExitCode.USAGE

    def __init__(self, issues: Sequence[SpecIssue], *, hint: str | None = None):
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues), hint=hint)


class UsageError(MlhubSyncError):
    """The command line or an API call was used wrongly."""

    exit_code: int = ExitCode.USAGE


class FilterMatchesNothingError(MlhubSyncError):
    """No entry of a dataset's ``collection_filter`` matches an asset of its catalog: the
    spec is wrong for this catalog (a misspelt id or key), found only once it is indexed."""

    exit_code: int = ExitCode.USAGE


class StateError(MlhubSyncError):
    """The state db cannot be used (corrupt, newer schema, unwritable)."""

    exit_code: int = ExitCode.STATE


class StateLockedError(StateError):
    """Another process holds the dataset folder's lock."""

    def __init__(self, lock_path: Path, holder: str):
        super().__init__(
            f"another mlhub-sync ({holder}) is working on this dataset folder",
            subject=str(lock_path),
            hint="wait for it to finish, or stop that process; the lock is released when it exits",
        )
        self.holder = holder


class CatalogError(MlhubSyncError):
    """The catalog could not be fetched, verified, extracted or indexed.

    ``status`` is the HTTP status of the server's final answer when there was one (a 404),
    ``error_class`` the kind of failure as the transfer report names it (``dns``,
    ``connection``, ``timeout``, ``http-404``...) when known: a source reads them to say what
    happened in its own words (``sources/mlhub.py``).
    """

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        hint: str | None = None,
        status: int | None = None,
        error_class: str | None = None,
    ):
        super().__init__(message, subject=subject, hint=hint)
        self.status = status
        self.error_class = error_class


class SourceUnavailableError(CatalogError):
    """The source cannot serve the dataset at all: its host does not resolve or cannot be
    reached, or it has no such dataset (the Radiant MLHub API, retired in 2023, is the common
    case). Often the first message a new user meets, so it reads as one line: what happened,
    then (after ``;``) what to do."""

    def __str__(self) -> str:
        text = f"{self.subject}: {self.message}" if self.subject else self.message
        return f"{text}; {self.hint}" if self.hint else text


class DamagedArchiveError(CatalogError):
    """The archive's bytes are broken (CRC, truncation, not gzip): fetching again may help."""


class SourceAuthError(CatalogError):
    """The catalog source refused our credentials (HTTP 401/403)."""


class TransferError(MlhubSyncError):
    """One transfer failed. ``retryable`` says whether trying again may help.

    ``status`` is the HTTP status when the server answered, else ``None``; ``error_class`` names
    the kind of failure for the report (``http-404``, ``connection``, ``checksum-mismatch``...).
    """

    def __init__(
        self,
        message: str,
        *,
        subject: str | None = None,
        retryable: bool,
        error_class: str,
        status: int | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, subject=subject, hint=hint)
        self.retryable = retryable
        self.error_class = error_class
        self.status = status
        self.retry_after = retry_after


class FatalLocalError(MlhubSyncError):
    """A local failure that makes every further transfer pointless (disk full, read-only fs)."""


class SymlinkError(FatalLocalError):
    """A symbolic link where mlhub-sync expected one of its folders or files under an output
    folder: never followed (``tree.py``). Fatal for the dataset's own files (state db, lock,
    catalog tree); under an asset's folder the transfer makes it that asset's failure."""

    def __init__(self, path: str, what: str = "folder"):
        super().__init__(
            f"the {what} is a symbolic link, and mlhub-sync never follows links under the "
            "output folder",
            subject=path,
            hint=f"remove the link (or put a real {what} in its place), then run again",
        )
        self.path, self.what = path, what


class ApplyError(MlhubSyncError):
    """A run finished with failed assets; ``report_paths`` lists the error reports written."""

    def __init__(self, failed: int, report_paths: Sequence[Path]):
        paths = ", ".join(str(p) for p in report_paths)
        super().__init__(
            f"{failed} asset(s) failed",
            subject=paths or None,
            hint="the report lists each failure with its reason; re-run apply to retry them",
        )
        self.failed = failed
        self.report_paths = tuple(report_paths)


class NotSyncedError(StateError):
    """There is no state db yet (``status`` says so instead of failing)."""


class ForeignStateError(NotSyncedError):
    """The state db's name holds another tool's db (radiant-mlhub's): not synced by us yet."""


class LockDriftError(StateError):
    """``--locked`` and the catalog or selection no longer match the lock file."""


class PruneRefusedError(MlhubSyncError):
    """Prune would delete more files than ``max_delete`` allows."""
