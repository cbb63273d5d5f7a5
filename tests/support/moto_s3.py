"""A real S3 on 127.0.0.1 for the tests: ``moto_server`` (PyPI ``moto[server]``) in a subprocess
ended by its PID, and a Source-Cooperative-style front (:class:`SourceCoopFront`) before it.

Seeding thousands of keys through PUT requests costs seconds (each is a Flask request in
moto), so the subprocess is this file run as a script: it puts the seed's keys straight into
moto's in-memory backend (~30 µs a key) and then runs moto's own server (``moto.server.main``)
on them. Later changes go through the S3 API (:meth:`MotoS3.put`, :meth:`MotoS3.delete`).

The front is what ``https://data.source.coop`` is to a client: anonymous and path-style
(``/{account}/{key}``, the account as the bucket), ``max-keys`` capped at 1000, 403 for a
request without a User-Agent. It forwards GET and HEAD to moto, records every request (the
tests count asset GETs with it) and plays scripted faults per path: ``corrupt`` (a byte of the
body flipped, the ETag left as it was: the ``s3-etag`` rung must catch it), ``stall`` (nothing
sent until the front stops) and ``status`` (a 503).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

ACCOUNT = "123456789012"  # moto's default account: anonymous requests land there
REGION = "us-east-1"
MAX_KEYS = 1000


def content(key: str, size: int) -> bytes:
    """The bytes a seeded key holds: ``size`` bytes that depend on the key only."""
    block = hashlib.sha256(key.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


Seed = Mapping[str, Mapping[str, int | bytes]]
"""Buckets to create, each ``{key: size (content() bytes) or the bytes themselves}``."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoS3:
    """``moto_server`` on 127.0.0.1 with ``seed`` in it; use as a context manager."""

    def __init__(self, folder: Path, seed: Seed, private: tuple[str, ...] = ()):
        self.folder = folder
        self.seed = seed
        self.private = private  # buckets without the public-read policy
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def __enter__(self) -> MotoS3:
        self.folder.mkdir(parents=True, exist_ok=True)
        manifest = self.folder / "moto-seed.jsonl"
        with manifest.open("w") as out:
            for bucket, keys in self.seed.items():
                out.write(json.dumps([bucket, None, bucket in self.private]) + "\n")
                for key, value in keys.items():
                    if isinstance(value, bytes):
                        out.write(json.dumps([bucket, key, base64.b64encode(value).decode()]))
                    else:
                        out.write(json.dumps([bucket, key, value]))
                    out.write("\n")
        env = {**os.environ, "MOTO_PORT": str(self.port), "AWS_DEFAULT_REGION": REGION}
        # moto logs every request: to a file, which never fills up and blocks it as a pipe would
        self._log = (self.folder / "moto.log").open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, __file__, str(self.port), str(manifest)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self, within: float = 30.0) -> None:
        """Return once moto answers (it seeds its backend first, then listens)."""
        assert self._proc is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = (self.folder / "moto.log").read_text(errors="replace")
                raise RuntimeError(
                    f"moto_server exited with {self._proc.returncode}: {err[-2000:]}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)  # a readiness poll: it ends on the event, not on a guess
        raise RuntimeError(f"moto_server did not listen on {self.url} within {within} s")

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()  # this process's own child, by its PID
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._log.close()

    def _request(self, method: str, path: str, body: bytes = b"") -> int:
        # moto checks no signature, but only a request that looks signed may write a public
        # bucket's keys (anonymous writes are refused, as on S3)
        signed = "AWS4-HMAC-SHA256 Credential=AKIDTESTS/20260101/us-east-1/s3/aws4_request, "
        headers = {
            "User-Agent": "tests",
            "Authorization": signed + "SignedHeaders=host, Signature=0",
        }
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Upload (or replace) one object."""
        status = self._request("PUT", f"/{bucket}/{quote(key)}", data)
        assert status == 200, status

    def delete(self, bucket: str, key: str) -> None:
        """Delete one object."""
        status = self._request("DELETE", f"/{bucket}/{quote(key)}")
        assert status == 204, status


@dataclass(frozen=True)
class Request:
    """One request the front answered (``path`` percent-decoded, without the query)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    status: int

    @property
    def user_agent(self) -> str | None:
        """The request's User-Agent, if it sent one."""
        return self.headers.get("user-agent")


class SourceCoopFront:
    """The Source-Cooperative-style front before ``moto`` (see the module docstring)."""

    def __init__(self, moto: MotoS3):
        self.moto = moto
        self.requests: list[Request] = []
        self._faults: dict[str, deque[str]] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.stalled = threading.Event()  # a stall fault has begun (its request arrived)
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                front._answer(self)

            def do_HEAD(self) -> None:
                front._answer(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))

    def __enter__(self) -> SourceCoopFront:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def add_fault(self, path: str, kind: str, times: int = 1) -> None:
        """Play ``kind`` (``corrupt``, ``stall``, ``status``) on the next ``times`` GETs of
        ``path`` (``/{bucket}/{key}``)."""
        with self._lock:
            self._faults.setdefault(path, deque()).extend([kind] * times)

    def count(self, prefix: str, method: str = "GET") -> int:
        """How many ``method`` requests went to paths starting with ``prefix``."""
        with self._lock:
            return sum(1 for r in self.requests if r.method == method and r.path.startswith(prefix))

    def listings(self) -> list[Request]:
        """The listing requests, in order."""
        with self._lock:
            return [r for r in self.requests if r.query.get("list-type") == "2"]

    def clear(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self.requests.clear()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        agent = handler.headers.get("User-Agent")
        fault = None
        with self._lock:
            queue = self._faults.get(path)
            if queue and handler.command == "GET":
                fault = queue.popleft()
        answer = self._respond(handler, parts.path, query, agent, fault)
        with self._lock:  # recorded before the answer goes out: a client that has its answer
            # always finds its request in the log
            headers = {name.lower(): value for name, value in handler.headers.items()}
            status = answer[0] if answer is not None else 0
            self.requests.append(Request(handler.command, path, query, headers, status))
        if answer is not None:
            _send(handler, *answer, head=handler.command == "HEAD")

    def _respond(
        self,
        handler: BaseHTTPRequestHandler,
        raw_path: str,
        query: dict[str, str],
        agent: str | None,
        fault: str | None,
    ) -> tuple[int, dict[str, str], bytes] | None:
        """The answer to send (status, headers, body), or ``None`` for none at all."""
        if not agent:
            return 403, {"Content-Type": "application/xml"}, _ACCESS_DENIED
        if fault == "stall":
            self.stalled.set()
            self.stopping.wait(60)
            handler.close_connection = True
            return None
        if fault == "status":
            return 503, {"Content-Type": "text/plain"}, b"slow down"
        if query.get("list-type") == "2":
            asked = int(query.get("max-keys") or MAX_KEYS)
            query = {**query, "max-keys": str(min(asked, MAX_KEYS))}
        target = raw_path + ("?" + urlencode(query) if query else "")
        forwarded = {
            name: value
            for name, value in handler.headers.items()
            if name.lower() in ("range", "if-range", "if-none-match", "if-modified-since")
        }
        conn = http.client.HTTPConnection("127.0.0.1", self.moto.port, timeout=30)
        try:
            conn.request(handler.command, target, headers={**forwarded, "User-Agent": agent})
            upstream = conn.getresponse()
            body = upstream.read()
            headers = {
                name: value
                for name, value in upstream.getheaders()
                if name.lower()
                in ("content-type", "content-range", "etag", "last-modified", "accept-ranges")
                or name.lower().startswith("x-amz-")
            }
        finally:
            conn.close()
        if fault == "corrupt" and body:
            body = (
                body[: len(body) // 2]
                + bytes([body[len(body) // 2] ^ 0xFF])
                + body[len(body) // 2 + 1 :]
            )
        return upstream.status, headers, body


_ACCESS_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>A User-Agent header is required</Message></Error>"
)


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    headers: dict[str, str],
    body: bytes,
    head: bool = False,
) -> int:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if not head:
        with contextlib.suppress(OSError):
            handler.wfile.write(body)
    return status


@contextlib.contextmanager
def source_coop(folder: Path, seed: Seed) -> Iterator[tuple[MotoS3, SourceCoopFront]]:
    """moto with ``seed``, and the Source-Cooperative-style front before it."""
    with MotoS3(folder, seed) as moto, SourceCoopFront(moto) as front:
        yield moto, front


def _public_read(bucket: str) -> bytes:
    statement = {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                 "Resource": [f"arn:aws:s3:::{bucket}/*"]}  # fmt: skip
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}).encode()


def _serve(port: int, manifest: Path) -> None:  # pragma: no cover - runs in the subprocess
    """Seed moto's backend from ``manifest``, then run moto's server on ``port``."""
    from moto.s3.models import s3_backends  # noqa: PLC0415

    backend = s3_backends[ACCOUNT]["aws"]
    with manifest.open() as lines:
        for line in lines:
            bucket, key, value = json.loads(line)
            if key is None:  # a public bucket, as Source Cooperative's are, unless private
                backend.create_bucket(bucket, REGION)
                if not value:
                    backend.put_bucket_policy(bucket, _public_read(bucket))
            elif isinstance(value, str):
                backend.put_object(bucket, key, base64.b64decode(value))
            else:
                backend.put_object(bucket, key, content(key, value))
    from moto.server import main  # noqa: PLC0415

    main(["-H", "127.0.0.1", "-p", str(port)])


if __name__ == "__main__":  # pragma: no cover - the subprocess
    _serve(int(sys.argv[1]), Path(sys.argv[2]))
