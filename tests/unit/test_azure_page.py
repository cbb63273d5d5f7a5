"""A List Blobs page read as values (pure): names (percent-encoded ones too), sizes, ETags
quoted as their GET's header, Content-MD5 as hex (a malformed one dropped, not fatal),
Last-Modified as ISO 8601 UTC, and the NextMarker."""

from __future__ import annotations

import base64
import hashlib

import pytest

from mlhub_sync.sources.azure import parse_page

MD5 = hashlib.md5(b"x").digest()


def page(*blobs: str, marker: str = "") -> bytes:
    return (
        '\ufeff<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>'
        + "".join(blobs)
        + f"</Blobs><NextMarker>{marker}</NextMarker></EnumerationResults>"
    ).encode()


def blob(name: str, props: str, encoded: bool = False) -> str:
    attr = ' Encoded="true"' if encoded else ""
    return f"<Blob><Name{attr}>{name}</Name><Properties>{props}</Properties></Blob>"


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            "<Content-Length>7</Content-Length><Etag>0x8DB1</Etag>"
            f"<Content-MD5>{base64.b64encode(MD5).decode()}</Content-MD5>"
            "<Last-Modified>Mon, 06 Mar 2023 09:05:01 GMT</Last-Modified>",
            ("a.tif", 7, '"0x8DB1"', MD5.hex(), "2023-03-06T09:05:01Z"),
        ),
        ("<Content-Length>0</Content-Length>", ("a.tif", 0, None, None, None)),
        (
            "<Content-Length>1</Content-Length><Content-MD5>not base64!</Content-MD5>",
            ("a.tif", 1, None, None, None),
        ),
        (
            "<Content-Length>1</Content-Length><Content-MD5>AAAA</Content-MD5>",  # 3 bytes
            ("a.tif", 1, None, None, None),
        ),
        (
            '<Content-Length>1</Content-Length><Etag>"0x1"</Etag>'
            "<Last-Modified>Mon, 06 Mar 2023 09:05:01 +0100</Last-Modified>",
            ("a.tif", 1, '"0x1"', None, "2023-03-06T08:05:01Z"),
        ),
    ],
)
def test_a_blobs_properties_become_its_listed_values(props: str, expected: tuple[object]) -> None:
    entries, marker = parse_page(page(blob("a.tif", props)), "u")
    assert entries == [expected]
    assert marker == ""


def test_an_encoded_name_is_decoded_and_the_next_marker_kept() -> None:
    length = "<Content-Length>1</Content-Length>"
    body = page(blob("a%EF%BF%BEb.tif", length, encoded=True), blob("c&amp;d", length), marker="m2")
    entries, marker = parse_page(body, "u")
    assert [e[0] for e in entries] == ["a\ufffeb.tif", "c&d"]
    assert marker == "m2"
