"""A private S3 bucket's front door on 127.0.0.1, before ``moto_server``: every request must
carry a presigned URL (AWS Signature Version 4, query-string form) that verifies, or it is
refused as S3 refuses it (403 with S3's error XML). Verified requests go on to moto.

Why a front: moto in server mode checks SigV4 only in an ``Authorization`` header (its IAM
access control reads the header, and a presigned URL has none), and without IAM checks it
takes any URL with ``Signature=`` in it as signed. The front recomputes each signature with
**botocore's** signer (``S3SigV4QueryAuth``: AWS's own SDK code, not the code under test)
from the request exactly as it arrived (method, ``Host``, raw path and query) and the secret
of the access key id it names, and refuses:

- no signature: ``AccessDenied`` (the bucket is private);
- an unknown key id: ``InvalidAccessKeyId``; a session token that is not the key's:
  ``InvalidToken``; another region or service in the scope: ``AuthorizationQueryParametersError``;
- a presign past ``X-Amz-Date`` + ``X-Amz-Expires`` by the front's clock: ``AccessDenied``
  ("Request has expired");
- a signature that does not match: ``SignatureDoesNotMatch``;
- a request to a requester-pays bucket without ``x-amz-request-payer=requester``.

Every request is recorded (:class:`SignedRequest`: method, decoded path, the raw query, the
status and the refusal's code), so tests count signed and unsigned requests and see what
was sent. Keys can be added and revoked while it runs (a rotated key).
"""

from __future__ import annotations

import calendar
import contextlib
import hmac
import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, unquote, urlsplit

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from tests.support.listening import Front
from tests.support.moto_s3 import REGION, MotoS3


@dataclass(frozen=True)
class SignedRequest:
    """One request the front answered."""

    method: str
    path: str  # percent-decoded, without the query
    raw_query: str
    status: int
    refusal: str | None  # the S3 error code it was refused with

    @property
    def query(self) -> dict[str, str]:
        """The query's parameters, decoded."""
        return dict(parse_qsl(self.raw_query, keep_blank_values=True))

    @property
    def signed(self) -> bool:
        """Whether it carried a signature."""
        return "X-Amz-Signature" in self.query


def verify(
    method: str,
    host: str,
    target: str,
    keys: dict[str, tuple[str, str | None]],
    region: str,
    now: float,
) -> str | None:
    """Why S3 would refuse this presigned request (its error code), ``None``: it verifies.
    ``target`` is the request line's path and query as sent."""
    parts = urlsplit(target)
    fields = dict(parse_qsl(parts.query, keep_blank_values=True))
    if "X-Amz-Signature" not in fields:
        return "AccessDenied"
    scope = fields.get("X-Amz-Credential", "").split("/")
    if len(scope) != 5 or fields.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        return "AuthorizationQueryParametersError"
    key_id, _date, scope_region, service, terminator = scope
    if key_id not in keys:
        return "InvalidAccessKeyId"
    if (scope_region, service, terminator) != (region, "s3", "aws4_request"):
        return "AuthorizationQueryParametersError"
    secret, token = keys[key_id]
    if fields.get("X-Amz-Security-Token") != token:
        return "InvalidToken"
    try:
        signed_at = calendar.timegm(time.strptime(fields["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
        expires = int(fields["X-Amz-Expires"])
    except (KeyError, ValueError):
        return "AuthorizationQueryParametersError"
    if now > signed_at + expires:
        return "AccessDenied"  # "Request has expired"
    unsigned = "&".join(
        part for part in parts.query.split("&") if not part.startswith("X-Amz-Signature=")
    )
    auth = S3SigV4QueryAuth(BotoCredentials(key_id, secret, token), "s3", region, expires)
    request = AWSRequest(method=method, url=f"http://{host}{parts.path}?{unsigned}", headers={})
    request.context["timestamp"] = fields["X-Amz-Date"]
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, fields["X-Amz-Signature"]):
        return "SignatureDoesNotMatch"
    return None


class SigV4Front(Front):
    """The verifying front before ``moto`` (see the module docstring); a context manager.
    ``keys``: access key id -> (secret, session token or ``None``)."""

    def __init__(
        self,
        moto: MotoS3,
        keys: dict[str, tuple[str, str | None]],
        *,
        region: str = REGION,
        requester_pays: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ):
        self.moto, self.keys, self.region = moto, dict(keys), region
        self.requester_pays = requester_pays
        self.clock = clock
        self.requests: list[SignedRequest] = []
        self._lock = threading.Lock()
        self._start_server()

    def of(self, prefix: str, method: str | None = None) -> list[SignedRequest]:
        """The requests to paths starting with ``prefix`` (of ``method``, if given)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.startswith(prefix) and (method is None or r.method == method)
            ]

    def clear(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self.requests.clear()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        target = handler.path
        parts = urlsplit(target)
        host = handler.headers.get("Host", "")
        with self._lock:
            keys = dict(self.keys)
        refusal = verify(handler.command, host, target, keys, self.region, self.clock())
        bucket = unquote(parts.path).lstrip("/").split("/", 1)[0]
        fields = dict(parse_qsl(parts.query, keep_blank_values=True))
        payer = fields.get("x-amz-request-payer") == "requester"
        if refusal is None and bucket in self.requester_pays and not payer:
            refusal = "AccessDenied"

        def record(status: int) -> None:  # before the response goes out: a client that has
            # its answer always finds the request in the log
            with self._lock:
                self.requests.append(
                    SignedRequest(
                        handler.command, unquote(parts.path), parts.query, status, refusal
                    )
                )

        if refusal is not None:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{refusal}</Code><Message>refused by the front</Message></Error>"
            ).encode()
            _send(handler, 403, {"Content-Type": "application/xml"}, body, record)
        else:
            self._forward(handler, target, record)

    def _forward(
        self, handler: BaseHTTPRequestHandler, target: str, record: Callable[[int], None]
    ) -> int:
        forwarded = {
            name: value
            for name, value in handler.headers.items()
            if name.lower() in ("range", "if-range", "if-none-match", "if-modified-since")
        }
        conn = http.client.HTTPConnection("127.0.0.1", self.moto.port, timeout=30)
        try:
            conn.request(handler.command, target, headers={**forwarded, "User-Agent": "front"})
            upstream = conn.getresponse()
            body = upstream.read()
            headers = {
                name: value
                for name, value in upstream.getheaders()
                if name.lower()
                in ("content-type", "content-range", "etag", "last-modified", "accept-ranges")
                or name.lower().startswith("x-amz-")
            }
            if handler.command == "HEAD":
                headers["Content-Length"] = upstream.getheader("Content-Length") or "0"
        finally:
            conn.close()
        return _send(handler, upstream.status, headers, body, record)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    headers: dict[str, str],
    body: bytes,
    record: Callable[[int], None],
) -> int:
    record(status)
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    if "Content-Length" not in headers:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        with contextlib.suppress(OSError):
            handler.wfile.write(body)
    return status
