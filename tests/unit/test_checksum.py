"""``checksum.py``: multihash parsing and the MD5s servers send (pure functions)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlhub_sync.stac.checksum import (
    Multihash,
    UnknownMultihashError,
    base64_md5,
    md5_multihash,
    parse_multihash,
    s3_etag_md5,
    server_md5,
)

DATA = b"the bytes of an asset\n"
MD5 = hashlib.md5(DATA, usedforsecurity=False).hexdigest()
MD5_B64 = base64.b64encode(bytes.fromhex(MD5)).decode()
OTHER_MD5 = hashlib.md5(b"other", usedforsecurity=False).hexdigest()
OTHER_B64 = base64.b64encode(bytes.fromhex(OTHER_MD5)).decode()


# --------------------------------------------------------------------------- multihash


@pytest.mark.parametrize(
    ("prefix", "name", "digest"),
    [
        ("d50110", "md5", hashlib.md5(DATA, usedforsecurity=False).hexdigest()),
        ("1114", "sha1", hashlib.sha1(DATA, usedforsecurity=False).hexdigest()),
        ("1220", "sha2-256", hashlib.sha256(DATA).hexdigest()),
        ("1340", "sha2-512", hashlib.sha512(DATA).hexdigest()),
        ("a0e40220", "blake2b-256", hashlib.blake2b(DATA, digest_size=32).hexdigest()),
        ("e0e40220", "blake2s-256", hashlib.blake2s(DATA, digest_size=32).hexdigest()),
    ],
)
def test_parse_known_multihashes(prefix: str, name: str, digest: str) -> None:
    parsed = parse_multihash(prefix + digest)
    assert (parsed.name, parsed.digest) == (name, digest)
    hasher = parsed.new()
    hasher.update(DATA)
    assert hasher.hexdigest() == digest


def test_uppercase_hex_is_normalised() -> None:
    parsed = parse_multihash(("d50110" + MD5).upper())
    assert parsed == Multihash(0xD5, "md5", MD5)


def test_md5_multihash_round_trip() -> None:
    assert md5_multihash(MD5) == "d50110" + MD5
    assert parse_multihash(md5_multihash(MD5)).digest == MD5


@given(st.binary(min_size=0, max_size=200))
def test_sha256_multihash_of_any_bytes(data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    assert parse_multihash("1220" + digest) == Multihash(0x12, "sha2-256", digest)


@pytest.mark.parametrize(
    "text",
    [
        "",  # no code
        "d5",  # truncated code varint
        "d501",  # no length
        "d50110" + MD5[:-2],  # one digest byte short
        "d50110" + MD5 + "00",  # one digest byte too many
        "1210" + MD5,  # a sha2-256 code with a 16-byte digest
        "ff" * 12,  # a varint that never ends
    ],
)
def test_malformed_multihash(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_multihash(text)
    assert not isinstance(caught.value, UnknownMultihashError)


@pytest.mark.parametrize("text", ["zz", "d50110" + "g" * 32, "d5011", "0x1220ab"])
def test_non_hex_multihash(text: str) -> None:
    with pytest.raises(ValueError, match=r"hex|bytes"):
        parse_multihash(text)


def test_unknown_multihash_code() -> None:
    keccak_256 = "1b20" + "ab" * 32
    with pytest.raises(UnknownMultihashError, match="0x1b"):
        parse_multihash(keccak_256)
    assert issubclass(UnknownMultihashError, ValueError)  # callers may catch ValueError alone


# --------------------------------------------------------------------------- base64 MD5


def test_base64_md5() -> None:
    assert base64_md5(MD5_B64) == MD5
    assert base64_md5(f"  {MD5_B64} ") == MD5


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "not base64!",
        base64.b64encode(b"\0" * 15).decode(),  # 15 bytes: not an MD5
        base64.b64encode(hashlib.sha256(DATA).digest()).decode(),  # a SHA-256
        MD5,  # hex, not base64
    ],
)
def test_base64_md5_rejects(value: str | None) -> None:
    assert base64_md5(value) is None


# --------------------------------------------------------------------------- S3 ETag


@pytest.mark.parametrize("etag", [f'"{MD5}"', MD5, f'"{MD5.upper()}"', f' "{MD5}" '])
def test_s3_etag_md5(etag: str) -> None:
    assert s3_etag_md5(etag) == MD5


@pytest.mark.parametrize(
    "etag",
    [
        None,
        "",
        f'"{MD5}-3"',  # multipart: an MD5 of MD5s
        f'W/"{MD5}"',  # weak: says nothing about the bytes
        f'"{MD5[:-1]}"',
        '"changed-1"',
        f'"{hashlib.sha1(DATA, usedforsecurity=False).hexdigest()}"',  # 40 hex digits
    ],
)
def test_s3_etag_md5_rejects(etag: str | None) -> None:
    assert s3_etag_md5(etag) is None


# --------------------------------------------------------------------------- server_md5


def every_header() -> dict[str, str]:
    return {
        "Content-MD5": MD5_B64,
        "x-ms-blob-content-md5": OTHER_B64,
        "ETag": f'"{OTHER_MD5}"',
    }


def test_content_md5_first_on_a_full_body() -> None:
    found = server_md5(every_header(), full_body=True, trust_etag=True)
    assert found is not None
    assert (found.md5, found.source) == (MD5, "content-md5")


def test_content_md5_ignored_on_a_partial_body() -> None:
    found = server_md5(every_header(), full_body=False, trust_etag=True)
    assert found is not None
    assert (found.md5, found.source) == (OTHER_MD5, "x-ms-blob-content-md5")


def test_azure_md5_before_the_etag() -> None:
    headers = {"x-ms-blob-content-md5": MD5_B64, "ETag": f'"{OTHER_MD5}"'}
    found = server_md5(headers, full_body=True, trust_etag=True)
    assert found is not None
    assert found.source == "x-ms-blob-content-md5"


def test_etag_last_and_only_when_trusted() -> None:
    headers = {"ETag": f'"{MD5}"'}
    found = server_md5(headers, full_body=False, trust_etag=True)
    assert found is not None
    assert (found.md5, found.source) == (MD5, "s3-etag")
    assert server_md5(headers, full_body=True, trust_etag=False) is None


def test_unusable_headers_fall_through() -> None:
    headers = {"Content-MD5": "garbage", "x-ms-blob-content-md5": "", "ETag": f'"{MD5}-2"'}
    assert server_md5(headers, full_body=True, trust_etag=True) is None
    headers["ETag"] = f'"{MD5}"'
    found = server_md5(headers, full_body=True, trust_etag=True)
    assert found is not None and found.source == "s3-etag"


def test_header_names_are_case_insensitive() -> None:
    lower = {"content-md5": MD5_B64, "etag": f'"{OTHER_MD5}"'}
    found = server_md5(lower, full_body=True, trust_etag=True)
    assert found is not None
    assert (found.md5, found.source) == (MD5, "content-md5")
    found = server_md5({"X-MS-BLOB-CONTENT-MD5": MD5_B64}, full_body=False, trust_etag=False)
    assert found is not None and found.source == "x-ms-blob-content-md5"
    found = server_md5({"Etag": f'"{MD5}"'}, full_body=False, trust_etag=True)
    assert found is not None and found.source == "s3-etag"


def test_no_headers() -> None:
    assert server_md5({}, full_body=True, trust_etag=True) is None
