"""A document that links many others (a STAC API's collection of 100,000 items) is rewritten
with memory flat in their number: its child links come from an iterator, are encoded one at
a time and compared with the file's bytes as they come (``catalog.rewrite``,
``catalog.jsonstream``), and the bytes are the ones the whole-document path writes."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pystac
import pytest

import mlhub_sync.catalog.jsonstream as jsonstream
from mlhub_sync.catalog.jsonstream import encode, read_document
from mlhub_sync.catalog.localize import Place, Target, carries_fields, localize
from mlhub_sync.catalog.rewrite import rewrite_streamed, rewrite_whole
from mlhub_sync.tree import opened

MANY = 10_000

COLLECTION: dict[str, Any] = {
    "type": "Collection",
    "stac_version": "1.0.0",
    "id": "s2",
    "description": "Sentinel-2, résumé",
    "license": "CC-BY-4.0",
    "extent": {
        "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
        "temporal": {"interval": [["2019-01-01T00:00:00Z", None]]},
    },
    "links": [
        {"rel": "self", "href": "http://127.0.0.1:9/collections/s2"},
        {"rel": "root", "href": "http://127.0.0.1:9/", "type": "application/json"},
        {"rel": "license", "href": "./LICENSE", "title": "the licence"},
        {"rel": "item", "href": "./x/x.json", "title": "kept: it carries a title"},
    ],
}

PLACE = Place(
    "s2/collection.json",
    "http://127.0.0.1:9/collections/s2",
    "catalog.json",
    parent=Target("catalog.json"),
    moved=True,
)


def items(n: int) -> Iterator[tuple[str, Target]]:
    """``n`` child links, made as they are consumed (never a list)."""
    for i in range(n):
        yield "item", Target(f"s2/scene_{i:07}/scene_{i:07}.json", f"http://x/items/{i}")


def whole(doc: dict[str, Any], n: int, indent: str | None) -> bytes:
    """What the whole-document path writes for ``doc`` with ``n`` children."""
    text = json.dumps(localize(doc, with_children(n), {}), ensure_ascii=False, indent=indent)
    return (text + ("\n" if indent is not None else "")).encode()


@pytest.mark.parametrize("indent", [None, " ", "  ", "\t"])
@pytest.mark.parametrize("n", [0, 1, 3])
@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
def test_the_streamed_bytes_are_the_whole_documents_and_read_back_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indent: str | None, n: int, chunk: int
) -> None:
    monkeypatch.setattr(jsonstream, "CHUNK", chunk)  # values cut at every place
    path = tmp_path / "collection.json"
    upstream = json.dumps(COLLECTION, indent=indent) + ("\n" if indent is not None else "")
    path.write_text(upstream)
    assert rewrite(tmp_path, items(n)) is True
    assert path.read_bytes() == whole(COLLECTION, n, indent)
    # read again: what the reader keeps gives localize the same output
    with path.open(encoding="utf-8") as stream:
        kept = read_document(stream, carries_fields)
    full = json.loads(path.read_bytes())
    assert kept == {**full, "links": [link for link in full["links"] if carries_fields(link)]}
    assert rewrite(tmp_path, items(n)) is False  # the same bytes: left as it is


def rewrite(folder_path: Path, children: Iterator[tuple[str, Target]]) -> bool | None:
    with (
        opened(folder_path) as folder,
        os.fdopen(folder.open("collection.json", os.O_RDONLY), "rb") as stream,
    ):
        return rewrite_streamed(folder, "collection.json", stream, PLACE, {}, children)


@pytest.mark.fuzz  # thousands of items: coverage paused (tests/conftest.py)
def test_a_collection_with_many_items_is_written_from_an_iterator_with_flat_memory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "collection.json"
    path.write_text(json.dumps(COLLECTION, indent=2) + "\n")
    tracemalloc.start()
    try:
        assert rewrite(tmp_path, items(MANY)) is True
        _, streamed = tracemalloc.get_traced_memory()
        written = path.read_bytes()
        tracemalloc.reset_peak()
        path.write_text(json.dumps(COLLECTION, indent=2) + "\n")
        _, before = tracemalloc.get_traced_memory()
        with opened(tmp_path) as folder, path.open("rb") as stream:
            rewrite_whole(folder, "collection.json", stream, with_children(MANY), {})
        _, held = tracemalloc.get_traced_memory()
        path.write_bytes(written)
        tracemalloc.reset_peak()
        mtime = path.stat().st_mtime_ns
        base, _ = tracemalloc.get_traced_memory()
        assert rewrite(tmp_path, items(MANY)) is False  # its 10,000 links read back, flat
        again = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert written == whole(COLLECTION, MANY, "  ")
    assert path.stat().st_mtime_ns == mtime
    # Holding the links costs megabytes (10,000 dicts, the text); the stream a fraction of
    # that, whatever the allocator does (a factor of 8 either side of what was measured).
    assert held - before > 4 * 1024 * 1024
    assert streamed < (held - before) / 5
    assert again < (held - before) / 5
    collection = pystac.Collection.from_file(str(path))
    links = [link for link in collection.links if link.rel == "item"]
    assert len(links) == MANY  # the titled one to ./x/x.json is no child here: gone
    assert links[0].get_href(transform_href=False) == "./scene_0000000/scene_0000000.json"


def with_children(n: int) -> Place:
    return dataclasses.replace(PLACE, children=tuple(items(n)))


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1',
        '{"a": 1}}',
        "[1]",
        '{"a" 1}',
        "{1: 2}",
        '{"links": [1 2]}',
        '{"links": [1,]}',
        "",
        '{"a": tru}',
    ],
)
def test_what_is_not_one_json_object_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        read_document(io.StringIO(text), lambda link: True)


@pytest.mark.parametrize(
    "text",
    [
        '  {"a": 12345678901234567890, "links": [{"rel": "x"}, 2], "a": -1.5e10}\n',
        '{"links": [], "s": "\\u00e9\\"\\n", "t": [true, false, null, {}]}',
        '{"links": {"rel": "a mapping, not a list"}}',
        "{}",
    ],
)
def test_a_document_reads_as_json_loads_reads_it_in_chunks_of_any_size(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    for chunk in (1, 2, 5, 1 << 16):
        monkeypatch.setattr(jsonstream, "CHUNK", chunk)
        assert read_document(io.StringIO(text), lambda link: True) == json.loads(text)


def test_encoding_in_pieces_is_json_dumps_of_the_whole() -> None:
    doc = {"links": [{"rel": "root", "href": "./c.json"}, {"rel": "license"}], "x": {"y": [1]}}
    kids = [{"rel": "item", "href": f"./{i}.json", "n": [i, {"k": i}]} for i in range(3)]
    for indent in (None, "", " ", "\t\t"):
        for at in range(3):
            full = {**doc, "links": doc["links"][:at] + kids + doc["links"][at:]}
            got = "".join(encode(doc, iter(kids), at, indent))
            assert got == json.dumps(full, ensure_ascii=False, indent=indent)
    assert "".join(encode({}, iter(()), 0, " ")) == "{}"
