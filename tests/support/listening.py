"""Waiting for a server subprocess the tests started (rustac, Azurite) to accept connections,
and a small threaded HTTP front on 127.0.0.1 that hands each GET/HEAD to its ``_answer``."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


def wait_until_listening(
    port: int, proc: subprocess.Popen[bytes], name: str, within: float = 30.0
) -> None:
    """Return once ``proc`` (called ``name`` in errors) accepts connections on ``port``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"{name} exited with {proc.returncode}: {err[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)  # a readiness poll, not a timing assumption: it ends on the event
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within {within} s")


class Front:
    """A threaded HTTP/1.1 server on a free port of 127.0.0.1; subclasses answer each GET and
    HEAD in ``_answer(handler)``. A context manager: serving inside, stopped after."""

    url: str

    def _start_server(self) -> None:
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

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def _stopping(self) -> None:
        """Called first on exit (wake requests that wait on purpose)."""

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
