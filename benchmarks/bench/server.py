"""The server: Debian's nginx on 127.0.0.1 (config, start, stop), a free port for it, and the
statistics of its access log (requests, HEADs, statuses, bytes, connections) per run."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import log


@dataclass
class LogStats:
    requests: int = 0
    asset_requests: int = 0
    bytes_sent: int = 0
    asset_bytes: int = 0
    connections: int = 0
    methods: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)


def parse_log(lines: Sequence[str]) -> LogStats:
    """Lines of `$status $body_bytes_sent $connection "$request"`."""
    st = LogStats()
    methods: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    conns: set[str] = set()
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) < 4:
            continue
        status, sent, conn, request = parts
        words = request.strip('"').split(" ")
        method, path = words[0], words[1] if len(words) > 1 else ""
        n = int(sent)
        st.requests += 1
        st.bytes_sent += n
        if path.startswith("/blobs/"):
            st.asset_requests += 1
            st.asset_bytes += n
        methods[method] += 1
        statuses[status] += 1
        conns.add(conn)
    st.connections = len(conns)
    st.methods = dict(methods)
    st.statuses = dict(statuses)
    return st


class Nginx:
    """Debian's nginx on 127.0.0.1:port serving `data`, run in the foreground by pid."""

    def __init__(self, data: Path, run_dir: Path, port: int, workers: str = "auto") -> None:
        self.data, self.dir, self.port, self.workers = data, run_dir, port, workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.access_log = run_dir / "access.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        d, r = self.data, self.dir
        user = "user root root;" if os.geteuid() == 0 else ""
        temps = "\n".join(
            f"    {kind}_temp_path {r}/tmp/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""# written by benchmarks/run.py
{user}
worker_processes {self.workers};
worker_rlimit_nofile 65536;
daemon off;
master_process on;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    types {{ application/json json; application/gzip gz; image/tiff tif; }}
    default_type application/octet-stream;
    log_format bench '$status $body_bytes_sent $connection "$request"';
    # nginx sends Accept-Ranges only on 200s; blob stores send it on 206s too, and
    # radiant-mlhub's resume asserts it: add it to answers to range requests
    map $http_range $ranges_on_206 {{ "" ""; default bytes; }}
    add_header Accept-Ranges $ranges_on_206;
    access_log {r}/access.log bench;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
{temps}
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        server_name localhost;
        root {d};
        location /blobs/ {{ }}
        location /archives/ {{ }}
        # the MLHub API: dataset JSON, catalog info, catalog archive (302 to "blob storage")
        location ~ ^/datasets/([^/]+)$ {{
            default_type application/json;
            alias {d}/api/datasets/$1.json;
        }}
        location ~ ^/catalog/([^/]+)/info$ {{
            default_type application/json;
            alias {d}/api/catalog-info/$1.json;
        }}
        location ~ ^/catalog/([^/]+)$ {{ return 302 /archives/$1.tar.gz; }}
        location / {{ return 404; }}
    }}
}}
"""

    def start(self) -> None:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config())
        self.access_log.touch()
        with (self.dir / "nginx.out").open("wb") as out:
            self.proc = subprocess.Popen(
                [exe, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "nginx exited: "
                    + (self.dir / "nginx.out").read_text(errors="replace")
                    + (self.dir / "error.log").read_text(errors="replace")
                )
            try:
                with urllib.request.urlopen(f"{self.base}/nothing", timeout=1):
                    pass
            except urllib.error.HTTPError:
                time.sleep(0.2)  # its log line lands before the first measurement's mark
                break  # 404: up
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        log(f"nginx pid {self.proc.pid} on {self.base}, serving {self.data}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGQUIT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)  # the master: it stops its workers
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        log(f"nginx pid {proc.pid} stopped")

    def mark(self) -> int:
        return self.access_log.stat().st_size

    def since(self, mark: int) -> LogStats:
        with self.access_log.open("rb") as fh:
            fh.seek(mark)
            return parse_log(fh.read().decode(errors="replace").splitlines())


def free_port(preferred: int) -> int:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx does: TIME_WAIT ok
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
