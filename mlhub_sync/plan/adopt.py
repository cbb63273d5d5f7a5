"""Adopting a file already on disk (a ``verify`` step): the policy, as a pure function.

The executor asks :func:`adopt` what to do with the file at a desired path, gathers the
evidence it asks for (hashing the file, a HEAD request), asks again, and applies the verdict:
:class:`Adopt` (record the file as it is) or :class:`Replace` (download it). The rules, in
order:

1. No file, or a size other than the catalog's ``file:size``: replace.
2. A usable ``file:checksum`` (and ``checksum`` not ``off``): adopt iff the file hashes to it.
3. A file touched since it was synced, with an MD5 on record: adopt iff it still hashes to it.
4. A ``file:`` href: replace (a local copy is cheaper than reasoning about it).
5. Otherwise ask the host (HEAD). No answer, or a size other than the file's: replace.
6. The host vouches for an MD5 (and ``checksum`` not ``off``): adopt iff the file hashes to it.
7. ``checksum: required`` with nothing to check against: replace.
8. A file that may be the catalog's own copy (``from_catalog``: the archive shipped a member at
   the asset's path, or so it may have): replace. An archive's bytes are evidence for an
   asset only through a checksum match (rule 2 or 6), never through a size a HEAD confirms.
9. Else adopt, verified by size (hashed anyway, so ``verify --deep`` can notice later damage).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlhub_sync.plan.decide import Desired, Reason
from mlhub_sync.stac.checksum import Multihash, ServerMd5, parse_multihash


@dataclass(frozen=True)
class Evidence:
    """What is known so far about the file at the path (``size`` ``None``: there is none)."""

    size: int | None
    hashed: bool = False  # md5 (and claimed_digest) below are the file's
    md5: str | None = None
    claimed_digest: str | None = None  # in the file:checksum's algorithm, when not MD5
    asked_host: bool = False  # head_size / server_md5 below are the HEAD's answer
    head_size: int | None = None  # None: no answer, or no Content-Length
    server_md5: ServerMd5 | None = None
    from_catalog: bool = False  # the bytes may be the catalog's, not the host's (rule 8)


@dataclass(frozen=True)
class Adopt:
    """Keep the file; ``evidence`` is its ``verified_by``."""

    evidence: str
    md5: str | None


@dataclass(frozen=True)
class Replace:
    """Download the file again."""

    why: str


@dataclass(frozen=True)
class HashFile:
    """Hash the file (MD5, and in ``claim``'s algorithm too when given), then ask again."""

    claim: Multihash | None = None


@dataclass(frozen=True)
class AskHost:
    """Send a HEAD for the href, then ask again."""


Verdict = Adopt | Replace | HashFile | AskHost


def adopt(
    desired: Desired,
    *,
    checksum_mode: str,
    reason: Reason,
    record_md5: str | None,
    evidence: Evidence,
) -> Verdict:
    """The next step for the file at ``desired.path`` given ``evidence`` (see the module doc)."""
    ev = evidence
    if ev.size is None:
        return Replace("there is no file")
    if desired.size is not None and ev.size != desired.size:
        return Replace(f"its size {ev.size} is not the catalog's {desired.size}")
    claim = None
    if desired.checksum is not None and checksum_mode != "off":
        try:
            claim = parse_multihash(desired.checksum)
        except ValueError:
            claim = None
    if claim is not None:
        if not ev.hashed:
            return HashFile(None if claim.name == "md5" else claim)
        digest = ev.md5 if claim.name == "md5" else ev.claimed_digest
        if digest == claim.digest:
            return Adopt("file:checksum", ev.md5)
        return Replace("it does not match its file:checksum")
    if reason is Reason.MODIFIED_LOCALLY and record_md5:
        if not ev.hashed:
            return HashFile()
        if ev.md5 == record_md5:
            return Adopt("md5", ev.md5)
        return Replace("it changed since it was synced")
    if desired.href.startswith("file:"):
        return Replace("a local source is copied rather than compared")
    if not ev.asked_host:
        return AskHost()
    if ev.head_size is None or ev.head_size != ev.size:
        return Replace("the host does not vouch for its size")
    if ev.server_md5 is not None and checksum_mode != "off":
        if not ev.hashed:
            return HashFile()
        if ev.md5 == ev.server_md5.md5:
            return Adopt(ev.server_md5.source, ev.md5)
        return Replace(f"it does not match the host's {ev.server_md5.source}")
    if checksum_mode == "required":
        return Replace("no checksum is known to verify it by (checksum: required)")
    if ev.from_catalog:
        return Replace("it may be the catalog archive's copy, and no checksum vouches for it")
    if not ev.hashed:
        return HashFile()  # so `verify --deep` can notice later damage
    return Adopt("size", ev.md5)
