"""The transfer's judgements, as pure functions over values: what a response's status and
headers mean for the ``.part`` (:func:`judge`), and what the received bytes are verified by
(:func:`verify`). ``rules.py`` sequences them; nothing here does I/O.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from mlhub_sync.errors import TransferError
from mlhub_sync.net.client import USER_AGENT
from mlhub_sync.net.redact import redact_url
from mlhub_sync.net.retry import is_retryable_status, parse_retry_after
from mlhub_sync.net.settings import human_size
from mlhub_sync.stac.checksum import Multihash, parse_multihash, s3_etag_md5, server_md5
from mlhub_sync.transfer.ops import BodyEnd, Response, TransferRequest
from mlhub_sync.transfer.sink import Hashes, Sink

log = logging.getLogger("mlhub_sync.transfer")

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")

_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)$")

_AZURE_HOST = ".blob.core.windows.net"


# -- what a response means ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    """Take the body: write it at ``offset`` (0 after a 200 to a range request)."""

    offset: int
    total: int | None  # the whole file's size, when the headers say
    validator: str | None  # what a later resume of this part sends as If-Range
    decode: str | None  # a Content-Encoding to unwrap (sent although we asked for identity)


@dataclass(frozen=True, slots=True)
class KeepWholePart:
    """A 416 says the part already holds the whole file: verify it as it is."""


@dataclass(frozen=True, slots=True)
class Restart:
    """Throw the part away and start from zero (a failed attempt unless ``free``)."""

    why: str
    free: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt failed (``error.retryable`` says whether another may help)."""

    error: TransferError


Verdict = Accept | KeepWholePart | Restart | Failed


def judge(
    req: TransferRequest,
    claim: Multihash | None,
    status: int,
    headers: Mapping[str, str],
    offset: int,
    validator: str | None,
) -> Verdict:
    """What the final response to ``Range: bytes={offset}-`` (none when 0) means."""
    if status not in (200, 206):
        if status == 416 and offset:
            if _part_is_whole_file(req, claim, headers, offset, validator):
                return KeepWholePart()
            return Restart("the part is larger than the remote file", free=True)
        return Failed(status_error(status, headers, req.url))
    etag = headers.get("ETag")
    new_validator = etag or headers.get("Last-Modified")
    total = total_size(headers, status)
    if status == 206:
        start = _range_start(headers)
        if not offset or start != offset:
            return Restart(
                f"the server answered a range request for byte {offset} with bytes from {start}"
            )
        if validator and etag and _strong(validator) and etag != validator:
            return Restart("the file changed on the server since the part was started", free=True)
    else:
        offset = 0  # a 200 to a range request: the server restarts the file
    if req.size is not None and total is not None and total != req.size:
        # Not a transient fault: the catalog and the server disagree about the file.
        return Failed(
            TransferError(
                f"the server says {total} bytes, the catalog's file:size says {req.size}",
                subject=redact_url(req.url),
                retryable=False,
                error_class="size-mismatch",
                hint="the catalog is out of date with the host; report it to the publisher",
            )
        )
    encoding = headers.get("Content-Encoding", "identity").lower()
    if encoding in ("identity", ""):
        return Accept(offset, total, new_validator, None)
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return Failed(
            TransferError(
                f"the server sent the body in an encoding we did not ask for ({encoding})",
                subject=redact_url(req.url),
                retryable=False,
                error_class="bad-encoding",
            )
        )
    # Decoded bytes cannot be resumed by encoded offsets: no validator for this part.
    return Accept(offset, total, None, encoding)


def _part_is_whole_file(
    req: TransferRequest,
    claim: Multihash | None,
    headers: Mapping[str, str],
    offset: int,
    validator: str | None,
) -> bool:
    """A 416 to ``Range: bytes={offset}-`` says the part may already be the whole file.

    Only when the server's size is exactly the part's, and there is evidence that it is the
    same version: the server's ETag equal to the part's (strong) validator, or a checksum
    that will verify the bytes. Anything else starts over.
    """
    match = _UNSATISFIED_RANGE.match(headers.get("Content-Range", ""))
    if match is None or int(match.group(1)) != offset:
        return False
    if req.size is not None and req.size != offset:
        return False
    etag = headers.get("ETag")
    strong = validator is not None and _strong(validator)
    if etag and strong and etag != validator:
        return False  # the file changed since the part was written
    has_checksum = claim is not None and req.checksum_mode != "off"
    return bool(etag and strong) or has_checksum


def total_size(headers: Mapping[str, str], status: int) -> int | None:
    """The whole file's size: from Content-Range on a 206, else Content-Length."""
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        if match and match.group(3) != "*":
            return int(match.group(3))
        return None
    if headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
        return None
    length = headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _range_start(headers: Mapping[str, str]) -> int | None:
    match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _strong(validator: str) -> bool:
    return validator.startswith('"')


def body_error(sink: Sink, end: BodyEnd, accepted: Accept, url: str) -> Exception | None:
    """Why a body that has ended is not a whole file yet (``None``: it may be; verify it).

    The sink's own failure first (a local write error, a broken encoding); an overflow
    stopped the body on purpose (verification reports it); then the connection's error; then
    a body shorter than the size the server announced.
    """
    if sink.failure is not None:
        return sink.failure
    if sink.overflowed:
        return None
    if end.error is not None:
        return end.error
    if accepted.decode is None and accepted.total is not None and sink.size != accepted.total:
        return TransferError(
            f"got {sink.size} of {accepted.total} bytes",
            subject=redact_url(url),
            retryable=True,
            error_class="truncated",
        )
    return None


# -- how many bytes a body may bring ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limit:
    """The most bytes the part may hold once a body is in, and where that number comes from:
    ``"file:size"`` (the catalog's, or the lock's), ``"Content-Length"``, or the setting that
    caps a body of unknown size (``"max_asset_size"``...)."""

    size: int
    source: str

    @property
    def known(self) -> bool:
        """Whether the size is the file's (not a cap)."""
        return self.source in ("file:size", "Content-Length")


def body_limit(req: TransferRequest, accepted: Accept, default_cap: int) -> Limit:
    """Where the body of an accepted response must stop: at the file's known size (decoded
    bytes too: a gzip Content-Length says nothing of what it unpacks to), else at the cap."""
    if req.size is not None:
        return Limit(req.size, "file:size")
    if accepted.decode is None and accepted.total is not None:
        return Limit(accepted.total, "Content-Length")
    cap = req.max_size if req.max_size is not None else default_cap
    return Limit(cap, req.max_size_setting)


def bytes_expected(req: TransferRequest, accepted: Accept) -> int:
    """The bytes an accepted body announces it will add to the part (0: unknown)."""
    total = req.size if req.size is not None or accepted.decode else accepted.total
    return max(0, total - accepted.offset) if total is not None else 0


def overflow_error(url: str, limit: Limit) -> TransferError:
    """A body ran past its limit: final, whatever a retry would bring (the same bytes)."""
    if limit.known:
        return TransferError(
            f"the server sent more than the {limit.size} bytes of its {limit.source}; "
            "the body was stopped there",
            subject=redact_url(url),
            retryable=False,
            error_class="size-mismatch",
            hint="the catalog is out of date with the host; report it to the publisher",
        )
    return TransferError(
        f"the body is larger than {limit.source} ({human_size(limit.size)}) and its size is not "
        "known; it was stopped there",
        subject=redact_url(url),
        retryable=False,
        error_class="too-large",
        hint=f"if the file really is this large, raise {limit.source} in the spec",
    )


# -- what the bytes are verified by ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verified:
    """The bytes are good; ``by`` names the evidence (``verified_by`` in the state db)."""

    by: str
    md5: str | None


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The bytes disagree with ``source`` (``""``: the size); ``md5`` is what we received."""

    message: str
    source: str = ""
    md5: str | None = None


def verify(
    req: TransferRequest,
    claim: Multihash | None,
    hashes: Hashes,
    size: int,
    headers: Mapping[str, str],
    *,
    full_body: bool,
    decoded: bool,
    trust_etag: bool,
) -> Verified | Mismatch | TransferError:
    """Check the received bytes against the best evidence there is (see ``stac/checksum.py``);
    a :class:`TransferError` is a final answer (nothing acceptable to verify by)."""
    md5 = hashes.md5_hex()
    if req.size is not None and size != req.size:
        return Mismatch(f"size {size} differs from file:size {req.size}")
    if req.checksum_mode == "off":
        return Verified("none", md5)
    if claim is not None:
        digest = hashes.digest_for(claim)
        if digest != claim.digest:
            return Mismatch(f"{claim.name} {digest} differs from file:checksum")
        return Verified("file:checksum", md5)
    if not decoded:
        server = server_md5(headers, full_body=full_body, trust_etag=trust_etag)
        if server is not None:
            if server.md5 != md5:
                return Mismatch(f"md5 {md5} differs from {server.source}", server.source, md5)
            return Verified(server.source, md5)
    if req.checksum_mode == "required":
        return TransferError(
            "no checksum is known for this asset (checksum: required)",
            subject=redact_url(req.url),
            retryable=False,
            error_class="no-checksum",
            hint="use checksum: auto to accept files verified by size only",
        )
    ctype = headers.get("Content-Type", "")
    if ctype.startswith("text/html") and not req.dest.suffix.lower().startswith(".htm"):
        return TransferError(
            "the server sent an HTML page instead of the file (nothing to verify it by)",
            subject=redact_url(req.url),
            retryable=False,
            error_class="html-response",
        )
    length_checked = "Content-Length" in headers and not decoded
    return Verified("size" if req.size is not None or length_checked else "none", md5)


def etag_is_md5(status: int, headers: Mapping[str, str]) -> bool:
    """Whether this response proves its MD5-looking ETag is the object's MD5: a whole-object
    MD5 header sent with it (``Content-MD5`` on a 200, ``x-ms-blob-content-md5``) agrees.

    Such an ETag is not the "32 hex digits that are not the MD5" of an encrypted or multipart
    upload, so the same wrong bytes twice against it are damage that repeated (rule 7).
    """
    etag_md5 = s3_etag_md5(headers.get("ETag"))
    if etag_md5 is None:
        return False
    vouched = server_md5(headers, full_body=status == 200, trust_etag=False)
    return vouched is not None and vouched.md5 == etag_md5


# -- small pure helpers ---------------------------------------------------------------------------


def claim_of(req: TransferRequest) -> Multihash | None:
    """The request's ``file:checksum``, parsed (an unusable one is logged and left out)."""
    if req.checksum is None or req.checksum_mode == "off":
        return None
    try:
        return parse_multihash(req.checksum)
    except ValueError as exc:
        log.warning("%s: %s; verifying without it", req.dest.name, exc)
        return None


def verify_body(
    req: TransferRequest,
    claim: Multihash | None,
    sink: Sink,
    reply: Response,
    decoded: bool,
    limit: Limit | None,
    trust_etag: bool,
) -> Verified | Mismatch | TransferError:
    """What the bytes in ``sink`` are verified by; a body past its limit is a final answer."""
    if sink.overflowed and limit is not None:
        return overflow_error(req.url, limit)
    return verify(
        req,
        claim,
        sink.hashes,
        sink.size,
        reply.headers,
        full_body=reply.status == 200,
        decoded=decoded,
        trust_etag=trust_etag,
    )


def request_headers(url: str) -> dict[str, str]:
    """What every request for ``url`` carries (rule 1): our User-Agent (some hosts refuse a
    request without one), ``Accept-Encoding: identity``, and on Azure blob hosts a newer
    ``x-ms-version`` (old versions answer open-ended Range requests with 200: MLHUB_API.md)."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if _AZURE_HOST in url.lower() and (urlsplit(url).hostname or "").endswith(_AZURE_HOST):
        headers["x-ms-version"] = "2021-06-08"  # the common case above, without parsing
    return headers


def status_error(status: int, headers: Mapping[str, str], url: str) -> TransferError:
    """A status that is not an answer we can use, as the error it is."""
    hint = None
    if status in (401, 403):
        hint = "the asset host refused access; the dataset may need a signed URL or a key"
    elif status in (404, 410):
        hint = "the catalog points at a file the host does not have"
    return TransferError(
        f"HTTP {status}",
        subject=redact_url(url),
        retryable=is_retryable_status(status),
        error_class=f"http-{status}",
        status=status,
        retry_after=parse_retry_after(headers.get("Retry-After"), time.time()),
        hint=hint,
    )
