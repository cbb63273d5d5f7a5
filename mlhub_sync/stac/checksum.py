"""Checksums: STAC ``file:checksum`` multihashes and the MD5s servers send. Pure functions.

A multihash is ``<varint code><varint length><digest>``, hex-encoded in STAC. We understand the
hashlib algorithms below; an unknown code is reported (not silently trusted or failed).

The evidence ladder for a download, best first (``verified_by`` in the state db):
``file:checksum`` (the catalog's own claim), ``content-md5`` (``Content-MD5`` on a full GET),
``x-ms-blob-content-md5`` (Azure's whole-blob MD5, sent on range GETs), ``s3-etag`` (an ETag
of 32 hex digits: S3's MD5 for single-part, unencrypted uploads), ``size`` (only the length
could be checked) and ``none``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

BLOCK = 1 << 20  # hashing reads files in blocks of this size


# multihash code -> (name, hashlib constructor)
_ALGORITHMS: dict[int, tuple[str, Callable[[], Any]]] = {
    0x11: ("sha1", hashlib.sha1),
    0x12: ("sha2-256", hashlib.sha256),
    0x13: ("sha2-512", hashlib.sha512),
    0x14: ("sha3-512", hashlib.sha3_512),
    0x15: ("sha3-384", hashlib.sha3_384),
    0x16: ("sha3-256", hashlib.sha3_256),
    0x17: ("sha3-224", hashlib.sha3_224),
    0x20: ("sha2-384", hashlib.sha384),
    0xD5: ("md5", hashlib.md5),
    0xB220: ("blake2b-256", lambda: hashlib.blake2b(digest_size=32)),
    0xB240: ("blake2b-512", lambda: hashlib.blake2b(digest_size=64)),
    0xB260: ("blake2s-256", lambda: hashlib.blake2s(digest_size=32)),
}


_HEX32 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Multihash:
    """A parsed multihash: algorithm name and expected hex digest."""

    code: int
    name: str
    digest: str

    def new(self) -> Any:
        """A fresh hashlib object for this algorithm."""
        return _ALGORITHMS[self.code][1]()


class UnknownMultihashError(ValueError):
    """A well-formed multihash whose algorithm we do not implement."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def parse_multihash(text: str) -> Multihash:
    """Parse a hex multihash.

    Raises ``UnknownMultihashError`` for an unsupported code, ``ValueError`` when malformed.
    """
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"file:checksum {text[:40]!r} is not hex") from None
    code, pos = _varint(raw, 0)
    length, pos = _varint(raw, pos)
    digest = raw[pos:]
    if len(digest) != length:
        raise ValueError(f"file:checksum says {length} digest bytes but holds {len(digest)}")
    if code not in _ALGORITHMS:
        raise UnknownMultihashError(f"file:checksum uses multihash code 0x{code:x}, not supported")
    name, factory = _ALGORITHMS[code]
    if factory().digest_size != length:
        raise ValueError(f"file:checksum: a {name} digest has {factory().digest_size} bytes")
    return Multihash(code, name, digest.hex())


def md5_multihash(md5_hex: str) -> str:
    """The multihash (hex) of an MD5 digest."""
    return "d50110" + md5_hex


def base64_md5(value: str | None) -> str | None:
    """A base64 MD5 header value as hex, or ``None`` if it is not one."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def s3_etag_md5(etag: str | None) -> str | None:
    """The MD5 in a plain S3 ETag (32 hex digits, no ``-N`` multipart suffix), else ``None``."""
    if not etag:
        return None
    value = etag.strip()
    if value.startswith("W/"):
        return None
    value = value.strip('"').lower()
    return value if _HEX32.match(value) else None


@dataclass(frozen=True)
class ServerMd5:
    """An MD5 of the whole object that a server vouched for, and which header said it."""

    md5: str
    source: str


def server_md5(
    headers: Mapping[str, str], *, full_body: bool, trust_etag: bool
) -> ServerMd5 | None:
    """The best MD5 a response's headers give for the *whole* object.

    ``Content-MD5`` counts only on a full (200) body: on a 206 it may describe the range.
    ``trust_etag`` enables the S3 rule; hosts that use MD5-looking opaque ETags can turn it off.
    """
    if full_body:
        found = base64_md5(_header(headers, "Content-MD5"))
        if found:
            return ServerMd5(found, "content-md5")
    found = base64_md5(_header(headers, "x-ms-blob-content-md5"))
    if found:
        return ServerMd5(found, "x-ms-blob-content-md5")
    if trust_etag:
        found = s3_etag_md5(_header(headers, "ETag"))
        if found:
            return ServerMd5(found, "s3-etag")
    return None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]`` with the name matched case-insensitively (as HTTP requires)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def hash_file(
    source: Path | BinaryIO,
    *hashers: Any,
    limit: int | None = None,
    copy: Callable[[bytes], object] | None = None,
) -> int:
    """Feed the bytes of ``source`` (a path, or a file open for reading) to every hashlib
    object in ``hashers``, and to ``copy`` if given; the number of bytes read.

    ``limit`` stops after that many bytes (fewer read means the file is shorter). The one loop
    that hashes a file, wherever one is hashed (downloads, adoption, verify, archives).
    """
    if not isinstance(source, Path):
        return _hash_stream(source, hashers, limit, copy)
    with source.open("rb") as stream:
        return _hash_stream(stream, hashers, limit, copy)


def _hash_stream(
    stream: BinaryIO,
    hashers: tuple[Any, ...],
    limit: int | None,
    copy: Callable[[bytes], object] | None,
) -> int:
    done = 0
    while limit is None or done < limit:
        block = stream.read(BLOCK if limit is None else min(BLOCK, limit - done))
        if not block:
            break
        for hasher in hashers:
            hasher.update(block)
        if copy is not None:
            copy(block)
        done += len(block)
    return done
