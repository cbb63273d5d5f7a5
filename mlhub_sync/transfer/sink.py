"""``.part`` files: where a body goes, and what the bytes hash to.

A :class:`Sink` is the one thing a driver touches during a body: :meth:`Sink.write` appends a
block, hashes it, counts it, and answers ``0`` to stop the body (a write failed, the encoding
is broken, or the body ran past its limit), ``None`` to go on. It never raises into a driver:
what went wrong stays in ``failure`` / ``overflowed`` for the transfer to judge.

A fresh part is always a new inode (:func:`create_fresh`): a ``.part`` left by an interrupted
hard link shares its inode with a good file elsewhere, which truncating would destroy. A
resumed part is hashed up to the resume offset first, so the digest covers the whole file.

A part is an :class:`~mlhub_sync.tree.Entry` (a name in an open folder), never a path: it is
opened with ``O_NOFOLLOW`` and renamed with ``dir_fd`` (``tree.py``'s rule). A ``.part`` that
is a symbolic link (or a hard link, or not a regular file) is never resumed: it is unlinked
and started afresh, so no byte goes to whatever it points to.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import zlib
from pathlib import Path
from typing import Any

from mlhub_sync.errors import FatalLocalError, SymlinkError, TransferError
from mlhub_sync.stac.checksum import Multihash, hash_file
from mlhub_sync.transfer import space
from mlhub_sync.transfer.ops import Progress
from mlhub_sync.tree import Entry

FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM})


DECODE_BLOCK = 1 << 20  # the most decoded bytes held at once (gzip/deflate bodies)


class Hashes:
    """MD5 (always, for the state db and server MD5s), the catalog's algorithm if other, and
    any extra digests the request asked for (``sha256`` for a catalog archive)."""

    def __init__(self, claim: Multihash | None, enabled: bool, extra: tuple[str, ...] = ()):
        self.md5 = hashlib.md5() if enabled else None
        self.claimed = (
            claim.new() if enabled and claim is not None and claim.name != "md5" else None
        )
        self.extra = {name: hashlib.new(name) for name in extra}
        hashers = [h for h in (self.md5, self.claimed) if h is not None]
        self.hashers: tuple[Any, ...] = (*hashers, *self.extra.values())
        self.updates = tuple(h.update for h in self.hashers)

    def digest_for(self, claim: Multihash) -> str | None:
        """The hex digest in ``claim``'s algorithm (``None`` when hashing is off)."""
        if claim.name == "md5":
            return self.md5.hexdigest() if self.md5 is not None else None
        return self.claimed.hexdigest() if self.claimed is not None else None

    def md5_hex(self) -> str | None:
        """The MD5 so far (``None`` when hashing is off)."""
        return self.md5.hexdigest() if self.md5 is not None else None

    def extra_hex(self) -> dict[str, str]:
        """The extra digests, by name."""
        return {name: h.hexdigest() for name, h in self.extra.items()}


class Sink:
    """One response's body going into ``{path}.part`` at ``offset``: written, hashed, counted.

    ``decode`` unwraps a gzip/deflate Content-Encoding sent although we asked for identity;
    ``limit`` is the most body bytes accepted (beyond it the body stops: ``overflowed``).
    Open one with :func:`open_sink`.
    """

    def __init__(
        self,
        part: Entry,
        fd: int,
        offset: int,
        hashes: Hashes,
        decode: str | None = None,
        limit: int | None = None,
    ):
        self.part, self.fd, self.offset, self.hashes, self.limit = part, fd, offset, hashes, limit
        self.decoder: Any = None
        if decode in ("gzip", "x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif decode == "deflate":
            self.decoder = zlib.decompressobj()
        self._updates = hashes.updates
        self.received = 0
        self.failure: TransferError | FatalLocalError | None = None
        self.overflowed = False

    @property
    def size(self) -> int:
        """The part's size now."""
        return self.offset + self.received

    def write(self, data: bytes) -> int | None:
        """Append a block of the body; ``0`` stops the body (see ``failure``, ``overflowed``).

        A gzip/deflate body is unwrapped :data:`DECODE_BLOCK` bytes at a time: a small block
        that inflates to gigabytes (a decompression bomb) never sits in memory whole, and its
        decoded bytes stop at ``limit`` like any other body's. Every :data:`space.CHECK_EVERY`
        bytes the disk's free space is looked at: below its reserve, the body stops
        (``failure`` is the :class:`FatalLocalError` that stops the run).
        """
        decoder = self.decoder
        if decoder is None:
            return self._append(data)
        try:
            while data:
                out = decoder.decompress(data, DECODE_BLOCK)
                data = decoder.unconsumed_tail
                if out and self._append(out) == 0:
                    return 0
        except zlib.error as exc:
            self.failure = TransferError(
                f"the body's encoding is broken: {exc}",
                subject=str(self.part),
                retryable=True,
                error_class="bad-encoding",
            )
            return 0
        return None

    def _append(self, data: bytes) -> int | None:
        received = self.received
        if self.limit is not None and received + len(data) > self.limit:
            self.overflowed = True
            return 0
        if (received + len(data)) // space.CHECK_EVERY != received // space.CHECK_EVERY:
            try:
                stat = os.fstatvfs(self.fd)
            except OSError:
                pass  # cannot tell: the writes will say
            else:
                if space.available(stat) < space.reserve(stat):
                    kept = space.reserve(stat)
                    self.failure = space.nearly_full(str(self.part), space.available(stat), 0, kept)
                    return 0
        try:
            written = os.write(self.fd, data)
            while written < len(data):  # a short write (a signal, a nearly full disk)
                written += os.write(self.fd, memoryview(data)[written:])
        except OSError as exc:
            self.failure = local_error(exc, self.part)
            return 0
        for update in self._updates:
            update(data)
        self.received = received + len(data)
        return None

    def finish(self) -> None:
        """The body is complete: write what the decoder still holds."""
        if self.decoder is not None and self.failure is None:
            tail, self.decoder = self.decoder.flush(), None
            if tail:
                self.write(tail)

    def keep(self) -> None:
        """The attempt failed: make what arrived durable, for the next attempt to resume."""
        if self.fd >= 0:
            try:
                os.fsync(self.fd)
            except OSError as exc:
                raise local_error(exc, self.part) from exc

    def close(self) -> None:
        """Close the part file (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ReportingSink(Sink):
    """A sink that also tells a :class:`Progress` about each block (a catalog archive)."""

    progress: Progress

    def write(self, data: bytes) -> int | None:
        """As :meth:`Sink.write`, then report the block."""
        stop = super().write(data)
        if stop is None:
            self.progress.update(len(data))
        return stop


def open_sink(
    part: Entry,
    offset: int,
    hashes: Hashes,
    *,
    decode: str | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> Sink | None:
    """A sink writing at ``offset`` of ``part`` (0: a fresh part), or ``None`` when the part
    cannot be resumed: shorter than ``offset`` (it shrank since it was measured), gone, or
    not a plain file of ours (a symbolic or hard link, a FIFO): start over.

    Raises the local error (:func:`local_error`) when the part cannot be opened.
    """
    if not offset:
        fd = create_fresh(part)
    else:
        try:
            fd = part.folder.open(part.name, os.O_RDWR)
        except (SymlinkError, FileNotFoundError):
            return None
        except OSError as exc:
            raise local_error(exc, part) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size < offset:
                os.close(fd)
                return None
            if hashes.hashers:
                with open(fd, "rb", closefd=False) as stream:  # the fd stays open
                    if hash_file(stream, *hashes.hashers, limit=offset) < offset:
                        os.close(fd)
                        return None
            os.ftruncate(fd, offset)
            os.lseek(fd, offset, os.SEEK_SET)
        except OSError as exc:
            os.close(fd)
            raise local_error(exc, part) from exc
    if progress is None:
        return Sink(part, fd, offset, hashes, decode, limit)
    sink = ReportingSink(part, fd, offset, hashes, decode, limit)
    sink.progress = progress
    return sink


def create_fresh(part: Entry) -> int:
    """Open a new, empty ``part`` on a fresh inode (never truncate one in place, never write
    through a link: whatever had the name is unlinked first)."""
    try:
        return part.folder.create(part.name)
    except OSError as exc:
        raise local_error(exc, part) from exc


def discard(part: Entry) -> None:
    """Remove ``part`` if it exists (a link is removed itself)."""
    try:
        part.folder.unlink(part.name)
    except OSError as exc:
        raise local_error(exc, part) from exc


def part_size(part: Entry) -> int:
    """The size of ``part`` (0 when there is none, or it is not a plain file: a link is
    never resumed)."""
    st = part.folder.lstat(part.name)
    return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else 0


def publish(part: Entry, name: str) -> os.stat_result:
    """Rename ``part`` to ``name`` in its folder (a link there is replaced, not followed);
    the stat of the file under its final name."""
    folder = part.folder
    try:
        folder.replace(part.name, folder, name)
        return os.stat(name, dir_fd=folder.fd, follow_symlinks=False)
    except OSError as exc:
        raise local_error(exc, folder.entry(name)) from exc


def local_error(exc: OSError, where: Path | Entry) -> TransferError | FatalLocalError:
    """An OS error on our side: fatal for the run when no other file could fare better."""
    text = exc.strerror or str(exc)
    if exc.errno in FATAL_ERRNOS:
        return FatalLocalError(
            f"cannot write: {text}",
            subject=str(where),
            hint="free disk space or fix the output folder's permissions, then run apply again",
        )
    return TransferError(
        f"cannot write: {text}", subject=str(where), retryable=False, error_class="local-write"
    )
