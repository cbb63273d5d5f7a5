"""One document of the synced catalog rewritten in its folder (the edge of ``catalog.synced``).

:func:`rewrite_whole` reads a document whole and writes it whole (an item: small);
:func:`rewrite_streamed` keeps memory flat in the number of documents it links (a
collection of a million items): it reads the document without the plain structural links
it had (``jsonstream.read_document``), makes its child links one at a time from an iterator
and compares the bytes with the file's as they are encoded (``jsonstream.encode``). Both
write the bytes ``json.dumps`` would make of the whole synced document, indented as the
document was, and replace the file (a ``.part`` renamed over it) only when they differ.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from mlhub_sync.catalog.jsonstream import CHUNK, encode, read_document
from mlhub_sync.catalog.localize import (
    AssetPlace,
    Place,
    Target,
    carries_fields,
    localize,
    localize_parts,
)
from mlhub_sync.tree import Folder


def rewrite_whole(
    folder: Folder, name: str, stream: BinaryIO, place: Place, assets: dict[str, AssetPlace]
) -> bool | None:
    """Rewrite a document read whole (an item: small); whether it was written, ``None``
    when it is not a readable JSON object."""
    data = stream.read()
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    new = _dump(localize(doc, place, assets), data)
    if new == data:
        return False
    _replace(folder, name, new)
    return True


def rewrite_streamed(
    folder: Folder,
    name: str,
    stream: BinaryIO,
    place: Place,
    assets: dict[str, AssetPlace],
    children: Iterator[tuple[str, Target]],
) -> bool | None:
    """:func:`rewrite_whole` with memory flat in the number of ``children``: the document is
    read without the plain structural links it had (``carries_fields``), its child links
    are made and encoded one at a time, and the bytes are compared with the file's as they
    are made; the file is replaced only when they differ."""
    head = stream.read(_HEAD)
    stream.seek(0)
    doc = _read_streamed(stream)
    if doc is None:
        return None
    parts = localize_parts(doc, place, assets)
    indent, tail = _layout(head)
    links = (parts.child(rel, target) for rel, target in children)
    output = _Output(folder, name, stream)
    try:
        buffered: list[str] = []
        size = 0
        for piece in encode(parts.doc, links, parts.at, indent):
            buffered.append(piece)
            size += len(piece)
            if size >= CHUNK:
                output.write("".join(buffered).encode("utf-8"))
                buffered, size = [], 0
        buffered.append(tail)
        output.write("".join(buffered).encode("utf-8"))
        return output.close()
    except BaseException:
        output.abort()
        raise


def _read_streamed(stream: BinaryIO) -> dict[str, Any] | None:
    """The document in ``stream`` without its plain structural links, or ``None`` when it is
    not a JSON object. What the streamed reader does not take (not UTF-8) is read whole, as
    ``json.loads`` reads it. ``stream`` is left at its start."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogatepass")
    doc: Any = None
    try:
        doc = read_document(text, carries_fields)
    except (ValueError, RecursionError):
        doc = None
    finally:
        text.detach()
    stream.seek(0)
    if doc is None:
        try:
            doc = json.loads(stream.read())
        except (ValueError, RecursionError):
            return None
        stream.seek(0)
    return doc if isinstance(doc, dict) else None


class _Output:
    """A document's new bytes, compared with the file's as they come: nothing is written
    while they are the same; at the first difference a ``{name}.part`` is made, the common
    part copied into it from the file, and the rest written there (then renamed over it)."""

    def __init__(self, folder: Folder, name: str, old: BinaryIO):
        self.folder, self.name, self.old = folder, name, old
        self.same = 0  # bytes equal to the file's so far
        self.out: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        if self.out is None:
            if self.old.read(len(data)) == data:
                self.same += len(data)
                return
            self._diverge()
        assert self.out is not None
        self.out.write(data)

    def _diverge(self) -> None:
        self.out = os.fdopen(self.folder.create(f"{self.name}.part"), "wb")
        self.old.seek(0)
        left = self.same
        while left:
            block = self.old.read(min(left, CHUNK))
            if not block:
                raise FileNotFoundError(f"{self.folder.child(self.name)} shrank while read")
            self.out.write(block)
            left -= len(block)

    def close(self) -> bool:
        """Finish; True when the file was replaced (its bytes differed)."""
        if self.out is None:
            if not self.old.read(1):
                return False  # the same bytes, to the end
            self._diverge()
        assert self.out is not None
        self.out.close()
        self.folder.replace(f"{self.name}.part", self.folder, self.name)
        return True

    def abort(self) -> None:
        """Leave the file as it was (no ``.part`` behind)."""
        if self.out is not None:
            with contextlib.suppress(OSError):
                self.out.close()
                self.folder.unlink(f"{self.name}.part")


_HEAD = 4096  # bytes of a document its layout (indentation) is read from


def _layout(before: bytes) -> tuple[str | None, str]:
    """The indentation of a document (``None``: compact) and what follows its last line."""
    head = before[:_HEAD]
    newline = head.find(b"\n", 0, len(head.rstrip()))
    if newline < 0:
        return None, ""
    line = head[newline + 1 :]
    return line[: len(line) - len(line.lstrip(b" \t"))].decode("ascii") or None, "\n"


def _dump(doc: Any, before: bytes) -> bytes:
    """``doc`` as JSON, indented as the document was (a compact one stays compact)."""
    indent, tail = _layout(before)
    return (json.dumps(doc, ensure_ascii=False, indent=indent) + tail).encode("utf-8")


def _replace(folder: Any, name: str, data: bytes) -> None:
    """Write ``name`` whole: a fresh ``{name}.part`` renamed over it (a link there is
    replaced itself). No fsync: a document is rewritten from the index whenever it is found
    unreadable, so a crash costs a rewrite, never a wrong catalog."""
    part = f"{name}.part"
    fd = folder.create(part)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        folder.replace(part, folder, name)
    except BaseException:
        with contextlib.suppress(OSError):
            folder.unlink(part)
        raise
