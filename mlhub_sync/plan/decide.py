"""The plan: for every selected path, what to do and why. The decision is a pure function.

=========  ====================  ==========================================================
action     reasons               meaning
=========  ====================  ==========================================================
download   missing               nothing at the path: fetch it
resume     partial               a ``.part`` we recorded is there: continue with a Range GET
replace    size-mismatch,        the file is wrong (its size differs from what we verified
           checksum-mismatch,    or the catalog says) or the catalog now points elsewhere
           upstream-changed
verify     modified-locally,     a file is there but we cannot vouch for it by ``stat`` alone:
           untracked             hash it (or ask the server with HEAD), then keep or replace
keep       up-to-date            recorded, same size and mtime: nothing to do
=========  ====================  ==========================================================

``if_exists`` (the Python API's) changes two rows: ``skip`` keeps any file that is there,
unchecked; ``overwrite`` replaces it (reason ``requested``). No action deletes anything:
deleting is prune's, and only when asked. ``build`` applies :func:`decide` to every path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mlhub_sync.stac.checksum import UnknownMultihashError, parse_multihash
from mlhub_sync.stac.href import href_identity
from mlhub_sync.state.db import FileRecord, PartialRecord


class Action(StrEnum):
    """What apply will do with one path."""

    DOWNLOAD = "download"
    RESUME = "resume"
    REPLACE = "replace"
    VERIFY = "verify"
    KEEP = "keep"


class Reason(StrEnum):
    """Why."""

    MISSING = "missing"
    PARTIAL = "partial"
    SIZE_MISMATCH = "size-mismatch"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    UPSTREAM_CHANGED = "upstream-changed"
    MODIFIED_LOCALLY = "modified-locally"
    UNTRACKED = "untracked"
    UP_TO_DATE = "up-to-date"
    REQUESTED = "requested"  # if_exists="overwrite"


@dataclass(frozen=True)
class Desired:
    """A selected asset at its path."""

    path: str
    href: str
    size: int | None
    checksum: str | None
    collection_id: str
    item_id: str | None
    asset_key: str


@dataclass(frozen=True)
class DiskState:
    """What ``stat`` says about a path."""

    size: int
    mtime_ns: int
    is_file: bool


def checksum_agrees(desired: str | None, record: FileRecord) -> bool:
    """True unless the catalog's checksum now contradicts what the file was verified as."""
    if desired is None or desired == record.checksum:
        return True
    try:
        claim = parse_multihash(desired)
    except (UnknownMultihashError, ValueError):
        return True  # nothing we can check it against; the transfer reports it
    return claim.name == "md5" and record.md5 == claim.digest


def _same_algorithm(claim: str | None, recorded: str | None) -> bool:
    try:
        return (
            claim is not None
            and recorded is not None
            and parse_multihash(claim).code == parse_multihash(recorded).code
        )
    except ValueError:
        return False


def decide(
    desired: Desired,
    record: FileRecord | None,
    partial: PartialRecord | None,
    disk: DiskState | None,
    part_size: int | None,
    mode: str = "resume",
) -> tuple[Action, Reason]:
    """The action for one path, from what we want and what we observed.

    ``mode`` is the API's ``if_exists``: ``resume`` (reconcile), ``skip`` (keep any file that
    is there, unchecked) or ``overwrite`` (fetch everything again).
    """
    present = disk is not None and disk.is_file
    if present and mode == "skip":
        return Action.KEEP, Reason.UP_TO_DATE
    if present and mode == "overwrite":
        return Action.REPLACE, Reason.REQUESTED
    if disk is None or not disk.is_file:
        if (
            partial is not None
            and part_size
            and href_identity(partial.href) == href_identity(desired.href)
        ):
            return Action.RESUME, Reason.PARTIAL
        return Action.DOWNLOAD, Reason.MISSING
    if record is None:
        return Action.VERIFY, Reason.UNTRACKED
    if record.verified_by == "corrupt":  # marked by `verify --deep`
        return Action.REPLACE, Reason.CHECKSUM_MISMATCH
    if href_identity(record.href) != href_identity(desired.href):
        return Action.REPLACE, Reason.UPSTREAM_CHANGED
    if not checksum_agrees(desired.checksum, record):
        # A new claim in the same algorithm as before means new content; a claim we could
        # not compare (none before, or another algorithm) is checked by hashing the file.
        if _same_algorithm(desired.checksum, record.checksum):
            return Action.REPLACE, Reason.UPSTREAM_CHANGED
        return Action.VERIFY, Reason.UPSTREAM_CHANGED
    if desired.size is not None and desired.size != record.size:
        return Action.REPLACE, Reason.UPSTREAM_CHANGED
    if disk.size != record.size:
        return Action.REPLACE, Reason.SIZE_MISMATCH
    if disk.mtime_ns != record.mtime_ns:
        return Action.VERIFY, Reason.MODIFIED_LOCALLY
    return Action.KEEP, Reason.UP_TO_DATE
