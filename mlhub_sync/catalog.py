"""The catalog: safe extraction of the archive and a streaming index of its items and assets.

An archive is read once, as a stream: each member is checked, written into a staging folder
beside the dataset, and (for STAC JSON) parsed and indexed into the state db in the same pass.
Only when the whole archive proved sound (every member acceptable, the gzip CRC and length
verified at the end) is the staging folder installed over the dataset folder and the index
committed. A bad archive leaves the previous catalog, archive and index as they were.

Refused, with the archive and member named: absolute names, ``..``, links (symbolic or hard)
that point outside the archive, devices and FIFOs, duplicate names, a file and a folder of one
name, more members or more unpacked bytes than the limits (a decompression bomb). Also refused:
a damaged member header (tarfile alone would end the archive there without a word) and a gzip
stream whose CRC or length does not match. Skipped: macOS debris (``._*``, ``.DS_Store``,
``__MACOSX/``), links that stay inside (a catalog never needs them), and, when installing,
top-level names that are our own bookkeeping (state db, lock, kept archive).
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import json
import logging
import os
import posixpath
import re
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from .errors import CatalogError, DamagedArchiveError, FatalLocalError
from .layout import CommonLayout, asset_relpath
from .progress import NULL_REPORTER, Reporter
from .stacdoc import AssetFacts, asset_facts, document_kind, fallback_collection_id, parse_item
from .state import DB_NAME, LOCK_NAME, StateDB

log = logging.getLogger(__name__)

STAGING_PREFIX = ".mlhub-staging"
NO_COMMON = CommonLayout()

BATCH = 5000


@dataclass(frozen=True)
class ExtractLimits:
    """Caps against decompression bombs: members, and unpacked bytes (absolute and a ratio)."""

    max_members: int = 10_000_000
    max_unpacked_bytes: int = 64 * 2**30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 256 * 2**20  # small archives may expand more than max_ratio

    def byte_cap(self, archive_size: int) -> int:
        """The most unpacked bytes an archive of ``archive_size`` bytes may hold."""
        by_ratio = max(self.ratio_floor_bytes, int(archive_size * self.max_ratio))
        return min(self.max_unpacked_bytes, by_ratio)


DEFAULT_LIMITS = ExtractLimits()


@dataclass(frozen=True)
class Document:
    """A JSON member: its name in the archive, its bytes, and its URL for relative hrefs."""

    name: str
    data: bytes
    url: str


_DEBRIS = frozenset({".DS_Store", "__MACOSX", "Thumbs.db"})


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
    return parts


def _refuse(archive: str, member: str, why: str) -> CatalogError:
    return CatalogError(
        f"refusing the archive: member {member!r} {why}",
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
    size = archive.stat().st_size
    byte_cap = limits.byte_cap(size)
    unpacked = 0
    members = 0
    made_dirs: set[str] = set()
    with (
        archive.open("rb") as raw,
        reporter.stage(f"unarchive {archive.name}", unit="files") as stage,
    ):
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
                    data = _stage_file(shown, staging, rel, source, member.size, made_dirs)
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


def _explain(exc: BaseException, archive: Path) -> str:
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, EOFError):
        return "it is truncated: " + text
    if isinstance(exc, gzip.BadGzipFile) and "CRC" in text:
        return "its gzip checksum does not match: " + text
    if isinstance(exc, gzip.BadGzipFile):
        with contextlib.suppress(OSError), archive.open("rb") as raw:
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


def _stage_file(
    archive: str, staging: Path, rel: str, source: IO[bytes], size: int, made_dirs: set[str]
) -> bytes | None:
    """Write one member into ``staging``; return its bytes when it is a JSON document."""
    parent = posixpath.dirname(rel)
    if parent and parent not in made_dirs:
        try:
            os.makedirs(staging / parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise _refuse(archive, rel, _CLASH_FOLDER) from None
        except OSError as exc:
            raise _local_failure(staging, exc) from exc
        if len(made_dirs) > 100_000:
            made_dirs.clear()  # keep memory flat; makedirs is idempotent
        made_dirs.add(parent)
    target = staging / rel
    keep = rel.lower().endswith(".json") and size <= 64 * 2**20
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        if target.is_dir():
            raise _refuse(archive, rel, "is a file where another member is a folder") from None
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


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class Indexer:
    """Writes items, collection assets and rejected assets into the db in batches."""

    def __init__(self, db: StateDB, *, allow_file_hrefs: bool, local_root: Path | None = None):
        self.db = db
        self.allow_file = allow_file_hrefs
        self.local_root = local_root
        self.items = 0
        self.assets = 0
        self.rejected = 0
        self.invalid_documents = 0
        self._items: list[tuple[Any, ...]] = []
        self._assets: list[tuple[Any, ...]] = []
        self._rejected: list[tuple[Any, ...]] = []
        self._next_item_pk = 1 + int(
            db.execute("SELECT COALESCE(MAX(item_pk), 0) FROM items").fetchone()[0]
        )

    def add(self, doc: Document) -> None:
        """Index one JSON document (non-STAC JSON is ignored; invalid JSON is counted)."""
        try:
            # UTF-8 only, as RFC 8259 asks of JSON exchanged between systems: then the byte
            # check below sees every escape that could smuggle in a lone surrogate.
            parsed = json.loads(doc.data.decode("utf-8"))
            if _SURROGATE_ESCAPE.search(doc.data):
                # JSON may escape a lone surrogate, which no text column (or file name) can hold.
                json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        except (ValueError, UnicodeError, RecursionError) as exc:  # ValueError: also the
            # int digit limit of a 4,300-digit number, which is not a JSONDecodeError
            self.invalid_documents += 1
            log.warning("skipping %s: invalid JSON (%s)", doc.name, exc)
            return
        if not isinstance(parsed, dict) or "stac_version" not in parsed:
            return
        kind = document_kind(parsed)
        if kind == "item":
            self._add_item(doc, parsed)
        elif kind == "collection":
            self._add_collection_assets(doc, parsed)
        if len(self._assets) + len(self._items) >= BATCH:
            self.flush()

    def _add_item(self, doc: Document, parsed: dict[str, Any]) -> None:
        try:
            record, rejected = parse_item(
                parsed,
                doc.url,
                fallback_collection_id(doc.name),
                allow_file=self._allow_file(doc),
                local_root=self.local_root,
            )
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep geometry
            self.invalid_documents += 1
            log.warning("skipping %s: %s", doc.name, exc)
            return
        item_pk = self._next_item_pk
        self._next_item_pk += 1
        bbox = record.bbox or (None, None, None, None)
        self._items.append(
            (
                item_pk,
                record.collection_id,
                record.item_id,
                *bbox,
                record.geometry_json,
                record.start,
                record.end,
            )
        )
        self.items += 1
        for asset in record.assets:
            self._queue_asset(item_pk, record.collection_id, record.item_id, asset)
        for bad in rejected:
            self._queue_rejected(
                record.collection_id, record.item_id, bad.key, bad.href, bad.reason
            )

    def _add_collection_assets(self, doc: Document, parsed: dict[str, Any]) -> None:
        collection_id = parsed.get("id")
        if not isinstance(collection_id, str) or not collection_id:
            self.invalid_documents += 1
            log.warning("skipping %s: the collection has no id", doc.name)
            return
        for facts in asset_facts(
            parsed.get("assets"),
            doc.url,
            allow_file=self._allow_file(doc),
            local_root=self.local_root,
        ):
            if isinstance(facts, AssetFacts):
                self._queue_asset(None, collection_id, None, facts)
            else:
                self._queue_rejected(collection_id, None, facts.key, facts.href, facts.reason)

    def _allow_file(self, doc: Document) -> bool:
        # Decided per document: a remote document linked from a local catalog gets no file:.
        return self.allow_file and doc.url.startswith("file:")

    def _queue_asset(
        self, item_pk: int | None, collection_id: str, item_id: str | None, asset: AssetFacts
    ) -> None:
        path = asset_relpath(
            collection_id, item_id, asset.key, asset.href, asset.media_type, NO_COMMON
        )
        self._assets.append(
            (
                item_pk,
                collection_id,
                item_id,
                asset.key,
                asset.href,
                asset.media_type,
                asset.size,
                asset.checksum,
                path,
            )
        )
        self.assets += 1

    def _queue_rejected(
        self, collection_id: str, item_id: str | None, key: str, href: str, reason: str
    ) -> None:
        self._rejected.append((collection_id, item_id, key, href, reason))
        self.rejected += 1
        if self.rejected <= 20:
            log.warning("asset %s/%s/%s left out: %s", collection_id, item_id or "-", key, reason)

    def flush(self) -> None:
        """Write queued rows (the queues are emptied even if writing fails)."""
        try:
            self._write_queued()
        finally:
            self._items.clear()
            self._assets.clear()
            self._rejected.clear()

    def _write_queued(self) -> None:
        self.db.conn.executemany(
            "INSERT INTO items(item_pk, collection_id, item_id, minx, miny, maxx, maxy, geometry,"
            " start_ts, end_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self._items,
        )
        self.db.conn.executemany(
            "INSERT INTO assets(item_pk, collection_id, item_id, asset_key, href, media_type, "
            "size, checksum, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self._assets,
        )
        self.db.conn.executemany(
            "INSERT INTO rejected(collection_id, item_id, asset_key, href, reason) "
            "VALUES (?, ?, ?, ?, ?)",
            self._rejected,
        )


def staging_dir(dataset_dir: Path) -> Path:
    """A fresh staging folder inside ``dataset_dir`` (leftovers of a killed run removed)."""
    dataset_dir.mkdir(parents=True, exist_ok=True)
    for old in dataset_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(old, ignore_errors=True)
    path = dataset_dir / f"{STAGING_PREFIX}-{os.getpid()}"
    path.mkdir()
    return path


def catalog_root(staging: Path) -> Path:
    """The folder of the staged tree that holds the root ``catalog.json``.

    Archives put everything under one top folder (normally the dataset id, but any name
    works); an archive without a top folder is taken as it is.
    """
    if (staging / "catalog.json").exists():
        return staging
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return staging


def install(root: Path, dataset_dir: Path, protected: Callable[[str], bool]) -> int:
    """Move the staged tree under ``root`` into ``dataset_dir``; return the entries moved.

    A staged folder whose target does not exist yet (every folder, on a first sync) moves
    whole, with one rename: no per-file moves, and nothing left to delete. Elsewhere files
    move one by one. A staged file whose path is an asset we manage (``protected``) is not
    moved: an archive that ships a copy of an asset must not overwrite the verified download.
    Nor is anything whose top-level name is one of ours (the state db, the lock, the kept
    archive, staging).
    """
    moved = 0
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        if rel_folder == ".":
            for name in [d for d in dirs if is_bookkeeping(d)]:
                log.warning("not installing %s/ from the catalog: the name is reserved", name)
                dirs.remove(name)
            for name in [f for f in files if is_bookkeeping(f)]:
                log.warning("not installing %s from the catalog: the name is reserved", name)
                files.remove(name)
        target_folder = dataset_dir if rel_folder == "." else dataset_dir / rel_folder
        for name in list(dirs):
            target = target_folder / name
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if os.path.lexists(target) and not target.is_dir() and not protected(rel):
                target.unlink()  # the catalog turned a file into a folder
            if not os.path.lexists(target):  # nothing of ours below it: move it whole
                os.rename(os.path.join(folder, name), target)
                dirs.remove(name)
                moved += 1
        if files:
            target_folder.mkdir(parents=True, exist_ok=True)
        for name in files:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if protected(rel):
                continue
            if (target_folder / name).is_dir() and not (target_folder / name).is_symlink():
                raise CatalogError(
                    f"the new catalog has a file {rel!r} where a folder is on disk",
                    subject=str(target_folder / name),
                    hint="move that folder away (it may hold assets of the old catalog), "
                    "then run again",
                )
            os.replace(os.path.join(folder, name), target_folder / name)
            moved += 1
    return moved


def is_bookkeeping(name: str) -> bool:
    """True for a top-level name in the dataset folder that mlhub-sync itself writes."""
    return name.startswith((DB_NAME, LOCK_NAME, STAGING_PREFIX)) or name.endswith(
        (".tar.gz", ".tar.gz.part")
    )


def remove_tree(path: Path) -> None:
    """Remove a staging folder, quietly."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
