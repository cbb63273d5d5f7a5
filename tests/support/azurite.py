"""A real Azure Blob service on 127.0.0.1 for the tests: Azurite (npm ``azurite`` v3, its blob
service only, in memory), in a subprocess ended by its PID, with a small client to seed it.

The client signs with an *account SAS* made here from the emulator's well-known
``devstoreaccount1`` key (no Azure SDK): one HMAC per token, then every request is a plain
HTTP request with the token in its query. Seeding runs on a few threads, each with its own
keep-alive connection, so thousands of blobs take about a second.

Azurite is installed by ``.ci/run`` (and the README's install line) into ``.ci/node``::

    npm install --prefix .ci/node --no-audit --no-fund azurite@3

``$AZURITE_BLOB`` may name another ``azurite-blob`` executable.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from tests.support.azurite_workspace import write_workspace
from tests.support.listening import wait_until_listening

ACCOUNT = "devstoreaccount1"
# The emulator's published development key (the same in every Azurite and in Microsoft's
# docs): not a secret.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
VERSION = "2021-08-06"
INSTALL = "npm install --prefix .ci/node --no-audit --no-fund azurite@3"
REPO = Path(__file__).resolve().parents[2]


def azurite_binary() -> str:
    """The ``azurite-blob`` executable: ``$AZURITE_BLOB``, else the one ``.ci/run`` installs."""
    named = os.environ.get("AZURITE_BLOB")
    if named:
        return named
    here = REPO / ".ci/node/node_modules/.bin/azurite-blob"
    found = str(here) if here.exists() else shutil.which("azurite-blob")
    if found is None:  # not a skip: .ci/run and the README install it, so its absence is a bug
        raise RuntimeError(f"Azurite is not installed; from {REPO} run: {INSTALL}")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def account_sas(
    permissions: str = "rwdlac",
    *,
    expiry: dt.datetime | None = None,
    key: str = ACCOUNT_KEY,
) -> str:
    """An account SAS token (blob service; service, container and object resources), as the
    query string it is appended as (no leading ``?``)."""
    expiry = expiry or dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    fields = {
        "sv": VERSION,
        "ss": "b",
        "srt": "sco",
        "sp": permissions,
        "se": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "spr": "https,http",
    }
    # the string to sign of an account SAS (version 2020-12-06 and later), field by field
    to_sign = "\n".join(
        [
            ACCOUNT,
            fields["sp"],
            fields["ss"],
            fields["srt"],
            "",
            fields["se"],
            "",
            fields["spr"],
            fields["sv"],
            "",
            "",
        ]
    )
    digest = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    return urlencode({**fields, "sig": base64.b64encode(digest).decode()})


@dataclass(frozen=True)
class Blob:
    """A blob to upload: its bytes, and the Content-MD5 property to give it (``md5``: the
    bytes' own; ``None``: none at all; a base64 string: that one, right or wrong)."""

    data: bytes
    md5: str | None = "auto"

    def md5_property(self) -> str | None:
        """The base64 Content-MD5 to store, or ``None``."""
        if self.md5 == "auto":
            return base64.b64encode(hashlib.md5(self.data).digest()).decode()
        return self.md5


class Azurite:
    """A running emulator: its endpoint (``http://127.0.0.1:PORT/devstoreaccount1``) and a
    client that creates containers and uploads blobs with an account SAS."""

    def __init__(self, port: int, access_log: Path | None = None, pid: int | None = None):
        self.port = port
        self.pid = pid  # the emulator's process (a test may SIGSTOP it to freeze a run)
        self.access_log = access_log
        self.endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
        self.sas = account_sas()
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        """This thread's keep-alive connection."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def requests(self) -> list[tuple[str, str, int]]:
        """Every request the service answered so far, as ``(method, target, status)`` from its
        access log: a last request (a marker) is made and waited for, so the log holds every
        request answered before this call."""
        assert self.access_log is not None
        marker = f"{_MARKER}{time.monotonic_ns()}"
        self.request("GET", marker, signed=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = self.access_log.read_text(errors="replace")
            if marker in text:
                break
            time.sleep(0.01)  # a readiness poll: it ends when the marker's line is written
        else:
            raise RuntimeError("Azurite's access log did not show the marker request")
        return [
            (method, target, int(status))
            for method, target, status in _ACCESS.findall(text)
            if _MARKER not in target  # this call's marker, and earlier calls'
        ]

    def close(self) -> None:
        """Close every connection the client opened (on any thread)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()

    def request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        *,
        signed: bool = True,
    ) -> tuple[int, bytes]:
        """One request to ``/{account}/{path}``: (status, body); signed with the account SAS
        unless ``signed`` is false (anonymous)."""
        target = f"/{ACCOUNT}/{quote(path)}"
        params = urlencode(query or {})
        params = "&".join(p for p in (params, self.sas if signed else "") if p)
        if params:
            target += "?" + params
        all_headers = {"x-ms-version": VERSION, "Content-Length": str(len(body))}
        all_headers.update(headers or {})
        for attempt in range(2):  # once more on a keep-alive connection the server closed
            conn = self._connection()
            try:
                conn.request(method, target, body=body, headers=all_headers)
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def create_container(self, name: str, *, public: bool) -> None:
        """Create ``name``; ``public``: anyone may list it and read its blobs."""
        headers = {"x-ms-blob-public-access": "container"} if public else {}
        status, body = self.request("PUT", name, {"restype": "container"}, headers=headers)
        if status != 201:
            raise RuntimeError(f"create container {name}: HTTP {status} {body[:300]!r}")

    def put_blob(self, container: str, name: str, blob: Blob) -> None:
        """Upload ``blob`` as ``container/name`` with the Content-MD5 property it asks for."""
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"}
        status, body = self.request("PUT", f"{container}/{name}", body=blob.data, headers=headers)
        if status != 201:
            raise RuntimeError(f"put {container}/{name}: HTTP {status} {body[:300]!r}")
        if blob.md5 != "auto":
            self.set_md5(container, name, blob.md5)

    def set_md5(self, container: str, name: str, md5: str | None) -> None:
        """Give a blob the Content-MD5 property ``md5`` (base64, not checked against its
        bytes), or none: Set Blob Properties clears each content property it is not given."""
        headers = {"x-ms-blob-content-type": "application/octet-stream"}
        if md5 is not None:
            headers["x-ms-blob-content-md5"] = md5
        status, body = self.request(
            "PUT", f"{container}/{name}", {"comp": "properties"}, headers=headers
        )
        if status != 200:
            raise RuntimeError(f"set properties {container}/{name}: HTTP {status} {body[:300]!r}")

    def put_blobs(self, container: str, blobs: Iterable[tuple[str, Blob]], threads: int = 8) -> int:
        """Upload many blobs on ``threads`` connections; the number uploaded."""
        with ThreadPoolExecutor(threads) as pool:
            return sum(1 for _ in pool.map(lambda nb: self.put_blob(container, *nb), blobs))

    def delete_blob(self, container: str, name: str) -> None:
        """Delete ``container/name``."""
        status, body = self.request("DELETE", f"{container}/{name}")
        if status != 202:
            raise RuntimeError(f"delete {container}/{name}: HTTP {status} {body[:300]!r}")


@dataclass(frozen=True)
class Container:
    """A container to preload: its name, whether anyone may list and read it, its blobs."""

    name: str
    public: bool
    blobs: Mapping[str, Blob]


@contextlib.contextmanager
def azurite(folder: Path, preload: Sequence[Container] = ()) -> Iterator[Azurite]:
    """Run Azurite's blob service on a free port of 127.0.0.1 with its workspace in
    ``folder`` (a test's tmp folder), the ``preload`` containers already in it; yield it
    ready for requests."""
    folder.mkdir(parents=True, exist_ok=True)
    write_workspace(folder, preload)
    port = _free_port()
    access_log = folder / "access.log"  # its stdout: one line per request answered
    log = open(access_log, "wb")  # noqa: SIM115 - handed to the child, closed just after
    proc = subprocess.Popen(
        [
            azurite_binary(),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--location",
            str(folder),
        ],
        stdout=log,
        stderr=subprocess.PIPE,
        cwd=folder,
    )
    log.close()  # the child has its own descriptor
    try:
        wait_until_listening(port, proc, "azurite-blob", within=30.0)
        client = Azurite(port, access_log, proc.pid)
        try:
            yield client
        finally:
            client.close()
    finally:
        proc.send_signal(signal.SIGCONT)  # a test that froze it may have failed before resuming
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


_MARKER = "log-marker-"
_ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3})')
