"""A JSON document read and written a piece at a time, for documents linking a million others.

:func:`read_document` parses a document from a text stream the way ``json.loads`` does, but
hands each element of its top-level ``links`` array to ``keep`` as it is read and holds
only those kept: a collection's million ``item`` links cost no memory. :func:`encode` is
``json.dumps(doc, ensure_ascii=False, indent=indent)`` as pieces of text, with the elements
of an iterator inserted into ``doc["links"]`` as they come (encoded one at a time), so the
written text is the one ``json.dumps`` would make of the whole document, byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TextIO

CHUNK = 1 << 16  # characters read at a time (more while one value does not fit)

_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = frozenset("0123456789+-.eE")  # what may follow the start of a number
_DECODER = json.JSONDecoder()


class _Text:
    """The unread part of a stream, refilled as values need it."""

    __slots__ = ("eof", "pos", "stream", "text")

    def __init__(self, stream: TextIO):
        self.stream, self.text, self.pos, self.eof = stream, "", 0, False

    def more(self) -> bool:
        """Read on (at least as much again as is buffered: a long value is read in linear
        time); False at the end of the stream."""
        if self.eof:
            return False
        got = self.stream.read(max(CHUNK, len(self.text) - self.pos))
        if not got:
            self.eof = True
            return False
        self.text = self.text[self.pos :] + got
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not white space ("" at the end)."""
        while True:
            self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos : self.pos + 1]

    def take(self, char: str) -> None:
        """Read ``char`` (after white space), else raise ``ValueError``."""
        if self.peek() != char:
            raise ValueError(f"expected {char!r} at character {self.pos}")
        self.pos += 1

    def value(self) -> Any:
        """The next JSON value. One that ends where the buffer does, or before what could
        go on a number (``1`` of ``1.5e3`` cut after ``1``), is decoded again once more text
        is read."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                if self.more():
                    continue
                raise
            if (end < len(self.text) and self.text[end] not in _NUMBER) or not self.more():
                self.pos = end
                return value


def read_document(stream: TextIO, keep: Callable[[Any], bool]) -> dict[str, Any]:
    """The JSON object in ``stream`` as ``json.loads`` makes it (the last of repeated keys
    wins), except that its top-level ``links`` array holds only the elements ``keep``
    accepts. ``ValueError`` for anything but one JSON object (and white space)."""
    text = _Text(stream)
    text.take("{")
    doc: dict[str, Any] = {}
    if text.peek() == "}":
        text.pos += 1
    else:
        while True:
            key = text.value()
            if not isinstance(key, str):
                raise ValueError(f"an object key that is not a string at character {text.pos}")
            text.take(":")
            if key == "links" and text.peek() == "[":
                doc[key] = list(_elements(text, keep))
            else:
                doc[key] = text.value()
            if text.peek() == "}":
                text.pos += 1
                break
            text.take(",")
    if text.peek():
        raise ValueError(f"extra data at character {text.pos}")
    return doc


def _elements(text: _Text, keep: Callable[[Any], bool]) -> Iterator[Any]:
    text.take("[")
    if text.peek() == "]":
        text.pos += 1
        return
    while True:
        element = text.value()
        if keep(element):
            yield element
        if text.peek() == "]":
            text.pos += 1
            return
        text.take(",")


def encode(
    doc: Mapping[str, Any],
    children: Iterable[Any],
    at: int,
    indent: str | None,
) -> Iterator[str]:
    """``json.dumps(doc, ensure_ascii=False, indent=indent)`` in pieces, with ``children``
    inserted into the list ``doc["links"]`` at index ``at`` (encoded one at a time)."""
    encoder = json.JSONEncoder(ensure_ascii=False, indent=indent)
    if not doc:
        yield "{}"
        return
    if indent is None:
        open_, sep, close, deeper = "{", ", ", "}", ""
    else:
        open_, sep, close, deeper = "{\n" + indent, ",\n" + indent, "\n}", indent
    first = True
    for key, value in doc.items():
        yield open_ if first else sep
        first = False
        yield encoder.encode(key) + ": "
        if key == "links" and isinstance(value, list):
            elements: Iterable[Any] = _spliced(value, children, at)
            yield from _array(encoder, elements, indent, deeper)
        else:
            yield _nested(encoder.encode(value), deeper)
    yield close


def _spliced(links: list[Any], children: Iterable[Any], at: int) -> Iterator[Any]:
    yield from links[:at]
    yield from children
    yield from links[at:]


def _array(
    encoder: json.JSONEncoder, elements: Iterable[Any], indent: str | None, outer: str
) -> Iterator[str]:
    """A list one level below the top (``outer``: its own indentation) as ``json.dumps``
    writes it."""
    if indent is None:
        open_, sep, close, inner = "[", ", ", "]", ""
    else:
        inner = outer + indent
        open_, sep, close = "[\n" + inner, ",\n" + inner, "\n" + outer + "]"
    first = True
    for element in elements:
        yield (open_ if first else sep) + _nested(encoder.encode(element), inner)
        first = False
    yield "[]" if first else close


def _nested(encoded: str, indentation: str) -> str:
    """A value encoded at the top, indented to sit ``indentation`` deep (every newline in
    ``json.dumps`` output is layout: a newline in a string is written ``\\n``)."""
    return encoded.replace("\n", "\n" + indentation) if indentation else encoded
