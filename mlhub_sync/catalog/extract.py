"""The catalog: safe extraction of the archive and a streaming index of its items and assets.

An archive is read once, as a stream: each member is checked, written into a staging folder
beside the dataset, and (for STAC JSON) parsed and indexed into the state db in the same pass.
Only when the whole archive proved sound (every member acceptable, the gzip CRC and length
verified at the end) is the staging folder installed over the dataset folder and the index
committed. A bad archive leaves the previous catalog, archive and index as they were.

Refused, with the archive and member named: absolute names, ``..``, links (symbolic or hard)
that point outside the archive, devices and FIFOs, duplicate names, a file and a folder of one
name, more members or more unpacked bytes than the limits (a decompression bomb), a name
component longer than a file system takes (:data:`MAX_NAME_BYTES`), paths nested deeper than
:data:`MAX_DEPTH` folders or longer than :data:`MAX_PATH_BYTES` in all. Also refused:
a damaged member header (tarfile alone would end the archive there without a word) and a gzip
stream whose CRC or length does not match. Skipped: macOS debris (``._*``, ``.DS_Store``,
``__MACOSX/``), links that stay inside (a catalog never needs them), and, when installing,
top-level names that are our own bookkeeping (state db, lock, kept archive).

Members are written into staging through a :class:`~mlhub_sync.tree.Tree` rooted at the
dataset folder: folders made one by one, never through a link, without recursion.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import gzip
import logging
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote

from mlhub_sync.config.models import DEFAULT_LIMITS, ExtractLimits
from mlhub_sync.errors import CatalogError, DamagedArchiveError, FatalLocalError, SymlinkError
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.stac.document import Document
from mlhub_sync.tree import Tree

log = logging.getLogger(__name__)


_DEBRIS = frozenset({".DS_Store", "__MACOSX", "Thumbs.db"})


MAX_NAME_BYTES = 255  # NAME_MAX of every common file system


MAX_DEPTH = 64  # folders in a member's path; real catalogs nest a handful


MAX_PATH_BYTES = 1024  # a member's whole path, leaving room under PATH_MAX for the folder


def is_debris(parts: list[str]) -> bool:
    """macOS / Windows metadata that real archives carry and nobody wants."""
    return any(part in _DEBRIS or part.startswith("._") for part in parts)


def member_parts(archive: str, name: str) -> list[str]:
    """The safe path components of a member name, or :class:`CatalogError` saying why not."""
    if "\x00" in name:
        raise _refuse(archive, name, "its name contains a NUL byte")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise _refuse(archive, name, "its path is absolute")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, name, "its path contains '..'")
    if len(parts) > MAX_DEPTH + 1:
        raise _refuse(archive, name, f"is nested {len(parts) - 1} folders deep (over {MAX_DEPTH})")
    sizes = [len(p.encode("utf-8", "surrogateescape")) for p in parts]
    if any(size > MAX_NAME_BYTES for size in sizes):
        raise _refuse(archive, name, f"has a name longer than {MAX_NAME_BYTES} bytes")
    if sum(sizes) + len(sizes) > MAX_PATH_BYTES:
        raise _refuse(archive, name, f"has a path longer than {MAX_PATH_BYTES} bytes")
    return parts


def _shown(member: str) -> str:
    """A member name for a message: whole, or its two ends when it is very long."""
    if len(member) <= 300:
        return repr(member)
    return f"{member[:160]!r}...{member[-80:]!r} ({len(member)} characters)"


def _refuse(archive: str, member: str, why: str) -> CatalogError:
    return CatalogError(
        f"refusing the archive: member {_shown(member)} {why}",
        subject=archive,
        hint="the archive is damaged or hostile; nothing was extracted and the previous "
        "catalog is unchanged",
    )


def extract_archive(
    archive: Path,
    staging: Path,
    base_url: str,
    limits: ExtractLimits = DEFAULT_LIMITS,
    reporter: Reporter = NULL_REPORTER,
) -> Iterator[Document]:
    """Extract ``archive`` into ``staging``; yield its ``.json`` members as they pass.

    The generator must run to its end: the gzip trailer (CRC32 and length) is verified last,
    and a failure there raises :class:`CatalogError` like any other refusal.
    """
    shown = str(archive)
    unpacked = 0
    members = 0
    with (
        _open_kept(archive) as raw,
        Tree(staging.parent) as tree,  # staging is a folder of the dataset folder
        reporter.stage(f"unarchive {archive.name.removesuffix('.part')}", unit="files") as stage,
    ):
        byte_cap = limits.byte_cap(os.fstat(raw.fileno()).st_size)
        gz = gzip.GzipFile(fileobj=raw, mode="rb")
        tap = _Tap(gz)
        try:
            # The tap only reads: all that tarfile's stream mode ("r|") ever asks of it.
            with tarfile.open(fileobj=tap, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    # tarfile keeps every TarInfo in tar.members, even when streaming: drop
                    # them, or memory grows with the archive (~250 MB at a million members).
                    tar.members.clear()
                    members += 1
                    if members > limits.max_members:
                        raise _refuse(shown, member.name, f"is beyond {limits.max_members} members")
                    parts = member_parts(shown, member.name)
                    if not parts or is_debris(parts):
                        continue
                    rel = "/".join(parts)
                    if member.isdir():
                        continue
                    if member.issym() or member.islnk():
                        _check_link(shown, member, parts)
                        log.debug("%s: skipping link member %s", shown, rel)
                        continue
                    if not member.isfile():
                        raise _refuse(shown, member.name, "is a device, FIFO or other special file")
                    unpacked += member.size
                    if unpacked > byte_cap:
                        raise _refuse(
                            shown,
                            member.name,
                            f"takes the unpacked size beyond {byte_cap} bytes "
                            "(a decompression bomb?)",
                        )
                    source = tar.extractfile(member)
                    assert source is not None
                    data = _stage_file(shown, tree, staging, rel, source, member.size)
                    stage.update()
                    if data is not None:
                        yield Document(rel, data, base_url + quote(rel, safe="/"))
                _check_end(shown, tap, tar.offset)
            # tarfile stops at the end-of-archive blocks; read on so gzip checks its trailer.
            while gz.read(1 << 20):
                pass
        except CatalogError:
            raise
        except (gzip.BadGzipFile, zlib.error, EOFError, tarfile.TarError, OSError) as exc:
            raise DamagedArchiveError(
                f"the catalog archive is damaged or not a .tar.gz ({_explain(exc, archive)})",
                subject=shown,
                hint="fetch it again; if the source serves an error page, check the URL and key",
            ) from exc


def _open_kept(archive: Path) -> IO[bytes]:
    """The kept archive (ours, in the dataset folder), never read through a link."""
    try:
        return open(os.open(archive, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SymlinkError(str(archive), "catalog archive") from None
        raise


def _explain(exc: BaseException, archive: Path) -> str:
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, EOFError):
        return "it is truncated: " + text
    if isinstance(exc, gzip.BadGzipFile) and "CRC" in text:
        return "its gzip checksum does not match: " + text
    if isinstance(exc, gzip.BadGzipFile):
        with contextlib.suppress(OSError, SymlinkError), _open_kept(archive) as raw:
            head = raw.read(64).lstrip().lower()
            if head.startswith(b"<"):
                return "it is an HTML or XML page, not an archive (an error page?)"
            if head.startswith((b"{", b"[")):
                return "it is JSON, not an archive (an API error?)"
    return text


class _Tap:
    """Reads through to a stream, remembering the last few chunks read.

    tarfile ends its iteration quietly at a damaged member header, exactly as at the proper
    end of the archive; the remembered bytes let :func:`_check_end` tell the two apart.
    """

    def __init__(self, source: gzip.GzipFile):
        self.source = source
        self.position = 0
        self.chunks: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=4)

    def read(self, size: int = -1) -> bytes:
        """Read from the source, remembering what was read."""
        data = self.source.read(size)
        if data:
            self.chunks.append((self.position, data))
            self.position += len(data)
        return data

    def block_at(self, offset: int) -> bytes | None:
        """The (up to 512) bytes read at ``offset``, or ``None`` when no longer remembered."""
        if not self.chunks:
            return b"" if offset >= self.position else None
        first = self.chunks[0][0]
        if offset < first:
            return None
        window = b"".join(chunk for _, chunk in self.chunks)
        return window[offset - first : offset - first + tarfile.BLOCKSIZE]


def _check_end(archive: str, tap: _Tap, offset: int) -> None:
    """Refuse an archive whose member list ended at anything but zeros or the end of data."""
    block = tap.block_at(offset)
    if block is None or not block.strip(b"\0"):
        return
    raise DamagedArchiveError(
        f"the catalog archive is damaged: the member header at byte {offset} of the tar "
        "stream is not valid, so the archive ends early",
        subject=archive,
        hint="fetch it again; the previous catalog is unchanged",
    )


def _check_link(archive: str, member: tarfile.TarInfo, parts: list[str]) -> None:
    target = member.linkname.replace("\\", "/")  # read as member names are
    outside = _refuse(archive, member.name, f"links to {member.linkname!r}, outside the archive")
    if target.startswith("/") or "\x00" in target or (len(target) > 1 and target[1] == ":"):
        raise outside
    # A symbolic link resolves from its own folder, a hard link from the top of the archive.
    folder = parts[:-1] if member.issym() else []
    joined = posixpath.normpath(posixpath.join(*folder, target) if folder else target)
    if joined == ".." or joined.startswith("../"):
        raise outside


_CLASH_FOLDER = "needs a folder where another member is a file"


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _stage_file(
    archive: str, tree: Tree, staging: Path, rel: str, source: IO[bytes], size: int
) -> bytes | None:
    """Write one member into ``staging`` (folders through ``tree``); return its bytes when it
    is a JSON document."""
    parent, name = posixpath.split(rel)
    keep = rel.lower().endswith(".json") and size <= 64 * 2**20
    try:
        with tree.folder(staging / parent if parent else staging, create=True) as folder:
            try:
                fd = os.open(name, _NEW_FILE, 0o644, dir_fd=folder.fd)
            except FileExistsError:
                there = folder.lstat(name)
                if there is not None and stat.S_ISDIR(there.st_mode):
                    why = "is a file where another member is a folder"
                    raise _refuse(archive, rel, why) from None
                raise _refuse(archive, rel, "appears twice in the archive") from None
    except NotADirectoryError:
        raise _refuse(archive, rel, _CLASH_FOLDER) from None
    except OSError as exc:
        raise _local_failure(staging, exc) from exc
    chunks: list[bytes] = []
    with os.fdopen(fd, "wb", buffering=0) as out:
        # Read errors (a damaged stream) go to the caller; write errors are local failures.
        while block := source.read(1 << 20):
            view = memoryview(block)
            try:
                while view:
                    view = view[out.write(view) :]
            except OSError as exc:
                raise _local_failure(staging, exc) from exc
            if keep:
                chunks.append(block)
    return b"".join(chunks) if keep else None


def _local_failure(staging: Path, exc: OSError) -> FatalLocalError:
    return FatalLocalError(
        f"cannot write the unpacked catalog: {exc.strerror or exc}", subject=str(staging)
    )
