"""Transfer benchmarks (issue 5): mlhub-sync against curl, aria2c, wget2, stac-asset and
radiant-mlhub 0.5.5, side by side, in one invocation, on one nginx server and one output disk.

    python benchmarks/run.py --quick                       # smoke run, about a minute
    python benchmarks/run.py                               # the full suite on /dev/shm
    python benchmarks/run.py --scenarios S1,S2 --out-dir /work/bench-out   # the real disk
    python benchmarks/run.py --scenarios S1,S2 --sweep-workers
    python benchmarks/run.py --profile                     # py-spy + strace over one S1 apply
    python benchmarks/run.py --scenarios S1,S2 --compare-src DIR   # A/B vs another copy

Scenarios (see benchmarks/README.md): S1 fresh apply 20,000 x 16 KiB; S2 fresh apply
64 x 16 MiB; S3 no-op re-apply at 20k and at 1M assets; S4 `plan` from a fresh archive at 100k
and 1M assets; S5 re-apply after 1% deleted and 1% truncated; S6 resume after SIGKILL halfway.
The references get the same URL list (curl, aria2c, wget2), the same STAC items as an
ItemCollection (stac-asset) or the same emulated MLHub API (radiant-mlhub). Each configuration
runs --runs times, interleaved (run 1 of every tool, then run 2, ...), and ratios are computed
pair by pair within a round.

Prints Markdown tables and writes them with the raw measurements (JSON) under the output folder.
Needs `benchmarks/setup.sh` first (nginx, curl, aria2c, wget2, the radiant-mlhub and stac-asset
venvs).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gen_assets import write_assets  # noqa: E402
from gen_catalog import asset_md5, asset_names, collection_ids, generate, item_doc  # noqa: E402

KIB, MIB = 1024, 1 << 20
API_KEY = "bench-dummy-key"
RADIANT_SCRIPT = """
import sys
from radiant_mlhub import Dataset
Dataset.fetch_by_id(sys.argv[1]).download(output_dir=sys.argv[2])
"""
TIME_FIELDS = {
    "user": r"User time \(seconds\): (\S+)",
    "sys": r"System time \(seconds\): (\S+)",
    "rss": r"Maximum resident set size \(kbytes\): (\d+)",
}


# ------------------------------------------------------------------------------------------
# data sets


@dataclass(frozen=True)
class DatasetDef:
    id: str
    assets: int
    size: int
    files: bool  # the server has the asset files (not only the catalog)
    per_item: int = 4

    @property
    def total_bytes(self) -> int:
        return self.assets * self.size


@dataclass(frozen=True)
class Sizes:
    s1: DatasetDef  # many small files (S1, S3 at 20k, S5, S6 small)
    s2: DatasetDef  # few large files (S2, S6 large)
    big: DatasetDef  # catalog only, client-side files (S3 at 1M, S4 at 1M)
    mid: DatasetDef  # catalog only (S4 at 100k)


FULL = Sizes(
    s1=DatasetDef("bench20k", 20_000, 16 * KIB, True),
    s2=DatasetDef("bench64", 64, 16 * MIB, True),
    big=DatasetDef("bench1m", 1_000_000, KIB, False),
    mid=DatasetDef("bench100k", 100_000, KIB, False),
)
QUICK = Sizes(
    s1=DatasetDef("quick2k", 2_000, 16 * KIB, True),
    s2=DatasetDef("quick8", 8, 16 * MIB, True),
    big=DatasetDef("quick50k", 50_000, KIB, False),
    mid=DatasetDef("quick10k", 10_000, KIB, False),
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def prepare_server_data(root: Path, ds: DatasetDef, base_url: str) -> None:
    """Catalog archive, API documents and (if `ds.files`) asset files, cached across runs."""
    meta = {"assets": ds.assets, "size": ds.size, "per_item": ds.per_item, "base_url": base_url}
    meta_path = root / "archives" / f"{ds.id}.meta.json"
    archive = root / "archives" / f"{ds.id}.tar.gz"
    if not (archive.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == meta):
        log(f"generating the catalog archive of {ds.id} ({ds.assets:,} assets)")
        generate(archive, ds.assets, ds.per_item, ds.id, base_url, ds.size)
        meta_path.write_text(json.dumps(meta))
    api = root / "api"
    (api / "datasets").mkdir(parents=True, exist_ok=True)
    (api / "catalog-info").mkdir(parents=True, exist_ok=True)
    collections = [{"id": c, "types": ["source_imagery"]} for c in collection_ids(ds.id)]
    (api / "datasets" / f"{ds.id}.json").write_text(
        json.dumps({"id": ds.id, "title": f"benchmark {ds.id}", "collections": collections})
    )
    (api / "catalog-info" / f"{ds.id}.json").write_text(
        json.dumps(
            {"stac_catalog_size": archive.stat().st_size, "estimated_dataset_size": ds.total_bytes}
        )
    )
    if ds.files:
        started = time.monotonic()
        if write_assets(root / "blobs", ds.id, ds.assets, ds.size, ds.per_item, quiet=True):
            log(f"wrote {ds.assets:,} asset files of {ds.id} in {time.monotonic() - started:.0f} s")


# ------------------------------------------------------------------------------------------
# nginx


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


# ------------------------------------------------------------------------------------------
# running and measuring one client


@dataclass
class Run:
    scenario: str
    tool: str
    rnd: int
    wall: float
    user: float
    sys: float
    rss_kib: int
    files: int  # files the run was meant to handle (per scenario)
    nbytes: int  # payload bytes it was meant to fetch
    log: LogStats
    ok: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall if self.wall else 0.0

    @property
    def mib_per_s(self) -> float:
        return self.nbytes / MIB / self.wall if self.wall else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, nginx: Nginx, run_dir: Path) -> None:
        self.args, self.nginx, self.run_dir = args, nginx, run_dir
        self.runs: list[Run] = []
        self.env = dict(os.environ)
        self.env.update(
            MLHUB_API_KEY=API_KEY,
            MLHUB_ROOT_URL=nginx.base + "/",
            MLHUB_HOME=str(run_dir / "mlhub-home"),
            NO_COLOR="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.env.pop("MLHUB_PROFILE", None)
        self.radiant_python = Path(args.radiant_venv) / "bin" / "python"
        self.stac_asset = Path(args.stac_asset_venv) / "bin" / "stac-asset"
        self.use_wget2 = not args.no_wget2 and bool(shutil.which("wget2"))
        self.use_stac_asset = not args.no_stac_asset and os.access(self.stac_asset, os.X_OK)
        if not args.no_refs:
            for name, wanted, found in (
                ("wget2", not args.no_wget2, self.use_wget2),
                (f"stac-asset ({self.stac_asset})", not args.no_stac_asset, self.use_stac_asset),
            ):
                if wanted and not found:
                    log(f"WARNING: {name} not found (benchmarks/setup.sh installs it): skipped")
        # other versions or settings of mlhub-sync timed beside it: (label, extra environment)
        self.variants: list[tuple[str, dict[str, str]]] = []
        for src in args.compare_src:
            path = Path(src).resolve()
            if not (path / "mlhub_sync" / "__init__.py").exists():
                raise SystemExit(f"--compare-src {src}: no mlhub_sync/ package there")
            self.variants.append((f"@{path.name}", {"PYTHONPATH": str(path)}))
        for item in args.compare_env:
            label, _, assignment = item.partition(":")
            key, eq, value = assignment.partition("=")
            if not (label and key and eq):
                raise SystemExit(f"--compare-env {item!r}: use LABEL:VAR=VALUE")
            self.variants.append((f"@{label}", {key: value}))
        self.n = 0

    # --- process control ---------------------------------------------------------------

    def timed(
        self, cmd: Sequence[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
    ) -> tuple[int, float, dict[str, float], str]:
        """Run cmd under /usr/bin/time -v: (exit code, wall s, {user, sys, rss}, stdout)."""
        self.n += 1
        tfile = self.run_dir / f"time-{self.n}.txt"
        out = self.run_dir / f"out-{self.n}.txt"
        err = self.run_dir / f"err-{self.n}.txt"
        with out.open("wb") as o, err.open("wb") as e:
            started = time.monotonic()
            proc = subprocess.Popen(
                ["/usr/bin/time", "-v", "-o", str(tfile), *cmd],
                cwd=cwd,
                env=env or self.env,
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                raise RuntimeError(f"timed out after {timeout} s: {' '.join(cmd)}") from None
            except BaseException:  # interrupted: take the client down with us
                kill_group(proc)
                raise
            wall = time.monotonic() - started
        text = tfile.read_text(errors="replace")
        usage: dict[str, float] = {}
        for key, pattern in TIME_FIELDS.items():
            m = re.search(pattern, text)
            usage[key] = float(m.group(1)) if m else 0.0
        stdout = out.read_text(errors="replace")
        if rc != 0:
            tail = err.read_text(errors="replace")[-2000:]
            log(f"exit {rc}: {' '.join(cmd)}\n{tail}")
        else:
            for p in (out, err, tfile):
                p.unlink(missing_ok=True)
        return rc, wall, usage, stdout

    def measure(
        self,
        scenario: str,
        tool: str,
        rnd: int,
        cmd: Sequence[str],
        cwd: Path,
        files: int,
        nbytes: int,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> Run:
        mark = self.nginx.mark()
        load_before = os.getloadavg()[0]
        rc, wall, usage, stdout = self.timed(cmd, cwd, timeout or self.args.timeout, env)
        time.sleep(0.05)  # let nginx finish its log lines
        run = Run(
            scenario,
            tool,
            rnd,
            wall,
            usage["user"],
            usage["sys"],
            int(usage["rss"]),
            files,
            nbytes,
            self.nginx.since(mark),
            ok=rc == 0,
            note="" if rc == 0 else f"exit {rc}",
        )
        run.extra["load1"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        if tool.startswith("mlhub-sync") and stdout.strip().startswith("{"):
            with contextlib.suppress(ValueError, KeyError, IndexError):
                doc = json.loads(stdout)
                res = doc["datasets"][0].get("result")
                if res:
                    run.extra["result"] = {
                        k: res[k]
                        for k in (
                            "downloaded",
                            "resumed",
                            "replaced",
                            "adopted",
                            "failed",
                            "bytes_transferred",
                            "seconds",
                        )
                    }
                else:
                    run.extra["actions"] = {
                        k: v["files"] for k, v in doc["datasets"][0]["actions"].items()
                    }
        self.runs.append(run)
        bad = {s: n for s, n in run.log.statuses.items() if not s.startswith(("2", "3"))}
        if bad:
            run.note = (run.note + f" HTTP {bad}").strip()
        log(
            f"{scenario} {tool} round {rnd}: {wall:.2f} s wall, {run.cpu:.2f} s CPU, "
            f"{run.rss_kib / 1024:.0f} MiB, {run.files_per_s:,.0f} files/s, "
            f"{run.mib_per_s:,.1f} MiB/s, {run.log.requests:,} requests "
            f"({run.log.connections:,} connections) {run.note}"
        )
        return run

    # --- tools -----------------------------------------------------------------------------

    def spec(self, case: Path, ds: DatasetDef, workers: int) -> Path:
        case.mkdir(parents=True, exist_ok=True)
        path = case / "spec.yaml"
        path.write_text(
            "version: 1\n"
            "defaults:\n"
            f"  output_dir: {case / 'out'}\n"
            f"  source: {{type: mlhub, root_url: '{self.nginx.base}/'}}\n"
            f"  workers: {workers}\n"
            "  checksum: auto\n"
            "datasets:\n"
            f"  - id: {ds.id}\n"
        )
        return path

    def mlhub_cmd(self, spec: Path, command: str = "apply") -> list[str]:
        return [sys.executable, "-m", "mlhub_sync", command, str(spec), "--json", "-q"]

    def url_lists(self, ds: DatasetDef, dest: Path) -> tuple[Path, Path, Path]:
        """curl config, aria2c input and plain URL list (wget2) for `ds`, writing below `dest`
        (wget2 gets the destination on its command line: `wget2_cmd`)."""
        lists = self.run_dir / "lists"
        lists.mkdir(exist_ok=True)
        curl, aria = lists / f"{ds.id}.curl", lists / f"{ds.id}.aria2"
        urls = lists / f"{ds.id}.urls"
        base = f"{self.nginx.base}/blobs"
        with curl.open("w") as c, aria.open("w") as a, urls.open("w") as u:
            for name in asset_names(ds.id, ds.assets, ds.per_item):
                folder, _, leaf = name.rpartition("/")
                c.write(f'url = "{base}/{name}"\noutput = "{dest}/{name}"\n')
                a.write(f"{base}/{name}\n  dir={dest}/{folder}\n  out={leaf}\n")
                u.write(f"{base}/{name}\n")
        return curl, aria, urls

    def item_collection(self, ds: DatasetDef) -> Path:
        """The data set's items as one STAC ItemCollection (a GeoJSON FeatureCollection), for
        stac-asset: the documents of the catalog archive (`gen_catalog.item_doc`, same ids,
        asset keys, absolute hrefs, sizes and checksums). Written once per invocation."""
        lists = self.run_dir / "lists"
        lists.mkdir(exist_ok=True)
        path = lists / f"{ds.id}.items.json"
        if path.exists():
            return path
        base = f"{self.nginx.base}/blobs"
        collections = collection_ids(ds.id)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            fh.write('{"type":"FeatureCollection","features":[')
            for i in range(ds.assets // ds.per_item):
                doc = item_doc(ds.id, collections[i % 4], i, ds.per_item, base, ds.size)
                fh.write(("," if i else "") + json.dumps(doc, separators=(",", ":")))
            fh.write("]}\n")
        tmp.rename(path)
        return path

    def curl_cmd(self, config: Path, n: int) -> list[str]:
        return [
            "curl",
            "--parallel",
            "--parallel-immediate",
            "--parallel-max",
            str(n),
            "--create-dirs",
            "--silent",
            "--show-error",
            "--fail",
            "--config",
            str(config),
        ]

    def aria2_cmd(self, input_file: Path, n: int) -> list[str]:
        return [
            "aria2c",
            "--no-conf",
            f"--input-file={input_file}",
            f"--max-concurrent-downloads={n}",
            "--max-connection-per-server=1",
            "--split=1",
            "--file-allocation=none",
            "--console-log-level=warn",
            "--summary-interval=0",
            "--download-result=hide",
            "--auto-file-renaming=false",
            "--allow-overwrite=true",
            "--enable-http-keep-alive=true",
            "--deferred-input=true",
            "--auto-save-interval=0",
            "--max-tries=3",
        ]

    def wget2_cmd(self, urls: Path, dest: Path, n: int) -> list[str]:
        """wget2 over keep-alive HTTP/1.1, `n` threads (one connection each). The URL path
        `/blobs/{dataset}/...` lands at `dest/{dataset}/...` (host folder and `blobs/` cut),
        where curl and aria2c write. Off: HTTP/2 (only negotiated over TLS anyway),
        compression (`Accept-Encoding: identity`), robots.txt, extended attributes on every
        file (on by default), HSTS/HPKP databases in the home folder, any wget2rc."""
        return [
            "wget2",
            "--no-config",
            f"--max-threads={n}",
            f"--input-file={urls}",
            "--force-directories",
            "--no-host-directories",
            "--cut-dirs=1",
            f"--directory-prefix={dest}",
            "--no-robots",
            "--no-http2",
            "--compression=identity",
            "--no-xattr",
            "--no-hsts",
            "--no-hpkp",
            "--tries=3",
            "--quiet",
        ]

    def stac_asset_cmd(self, items: Path, dataset_dir: Path, n: int) -> list[str]:
        """stac-asset over an ItemCollection. `-p ${collection}/${id}` puts each item's assets
        (named after their hrefs) at `dataset_dir/{collection}/{item_id}/{key}.tif`, the same
        paths as the others; `-q`: no progress bar and no item JSON on stdout. Streaming reads
        (its default for HTTP) are kept: `--stream false` buffers whole files and was not
        faster; above 100 downloads aiohttp's pool (100 connections) is the limit anyway."""
        return [
            str(self.stac_asset),
            "download",
            str(items),
            str(dataset_dir),
            "--path-template",
            "${collection}/${id}",
            f"--max-concurrent-downloads={n}",
            "--quiet",
        ]

    def radiant_cmd(self, ds: DatasetDef, out: Path) -> list[str]:
        return [str(self.radiant_python), "-c", RADIANT_SCRIPT, ds.id, str(out)]

    # --- checks ------------------------------------------------------------------------------

    def check_tree(
        self,
        dataset_dir: Path,
        ds: DatasetDef,
        run: Run,
        sample: int = 8,
        only_assets: bool = False,
    ) -> None:
        """Every asset file present with its size; a sample checked byte for byte (MD5).

        With `only_assets` (the URL-list and STAC references, which write nothing else), any
        other file below `dataset_dir` (a temporary or control file left behind) is a problem
        too."""
        files = total = 0
        others: list[str] = []
        for dirpath, _, names in os.walk(dataset_dir):
            for name in names:
                if name.endswith(".tif"):
                    files += 1
                    total += os.stat(os.path.join(dirpath, name)).st_size
                else:
                    others.append(name)
        problems = []
        if files != ds.assets or total != ds.total_bytes:
            problems.append(
                f"{files:,} files / {total:,} B, expected {ds.assets:,} / {ds.total_bytes:,}"
            )
        if only_assets and others:
            problems.append(f"{len(others):,} other files left (e.g. {others[0]})")
        rng = random.Random(run.rnd)
        names = list(asset_names(ds.id, ds.assets, ds.per_item))
        for name in rng.sample(names, min(sample, len(names))):
            path = dataset_dir.parent / name
            try:
                digest = md5_file(path)
            except OSError:
                digest = "missing"
            if digest != asset_md5(name, ds.size):
                problems.append(f"{name}: content differs")
                break
        if problems:
            run.ok = False
            run.note = (run.note + " INCOMPLETE: " + "; ".join(problems)).strip()
            log(f"  check failed: {run.note}")

    def check_requests(self, ds: DatasetDef, run: Run) -> None:
        """A reference fed the URL list or the items should send one GET per asset and nothing
        else (no robots.txt, no HEAD, no retry): a note if it did not."""
        lg = run.log
        if lg.requests != ds.assets or lg.asset_requests != ds.assets or set(lg.methods) != {"GET"}:
            run.note = (
                run.note + f" {lg.requests:,} requests ({lg.asset_requests:,} for assets, "
                f"{lg.methods}) for {ds.assets:,} files"
            ).strip()
            log(f"  requests: {run.note}")

    # --- scenarios -------------------------------------------------------------------------

    def out_root(self, name: str) -> Path:
        path = Path(self.args.out_dir) / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def transfer_round(
        self, scen: str, ds: DatasetDef, rnd: int, chain: bool, refs: bool, radiant: bool
    ) -> None:
        """One round of a fresh-download scenario (S1 or S2) for every tool.

        With `chain` (S1), mlhub-sync's output then serves S3 (no-op re-apply) and S5 (damage,
        re-apply), and radiant-mlhub's its re-run and its S5.
        """
        a = self.args
        for w in a.workers:
            for label, extra in self.variants:
                # another version or setting (--compare-src/-env), right before this one
                case = self.out_root(f"{scen.lower()}-mlhub{label}-w{w}")
                spec = self.spec(case, ds, w)
                env = {**self.env, **extra}
                run = self.measure(
                    scen,
                    f"mlhub-sync{label} w={w}",
                    rnd,
                    self.mlhub_cmd(spec),
                    case,
                    ds.assets,
                    ds.total_bytes,
                    env=env,
                )
                self.check_tree(case / "out" / ds.id, ds, run)
                shutil.rmtree(case, ignore_errors=True)
            case = self.out_root(f"{scen.lower()}-mlhub-w{w}")
            spec = self.spec(case, ds, w)
            tool = f"mlhub-sync w={w}"
            run = self.measure(
                scen, tool, rnd, self.mlhub_cmd(spec), case, ds.assets, ds.total_bytes
            )
            self.check_tree(case / "out" / ds.id, ds, run)
            if chain and w == a.workers[0]:
                if "S3" in a.scenarios:
                    run = self.measure("S3", tool, rnd, self.mlhub_cmd(spec), case, ds.assets, 0)
                if "S5" in a.scenarios:
                    files, nbytes = damage(case / "out", ds)
                    run = self.measure("S5", tool, rnd, self.mlhub_cmd(spec), case, files, nbytes)
                    self.check_tree(case / "out" / ds.id, ds, run)
            shutil.rmtree(case, ignore_errors=True)
        if refs:
            dest = self.out_root(f"{scen.lower()}-ref")
            curl_cfg, aria_in, url_list = self.url_lists(ds, dest)
            configs: list[tuple[str, list[str]]] = []
            configs += [(f"curl --parallel-max {n}", self.curl_cmd(curl_cfg, n)) for n in a.curl_n]
            configs += [(f"aria2c -j {n}", self.aria2_cmd(aria_in, n)) for n in a.aria2_j]
            if self.use_wget2:
                configs += [
                    (f"wget2 --max-threads {n}", self.wget2_cmd(url_list, dest, n))
                    for n in a.wget2_n
                ]
            if self.use_stac_asset:
                items = self.item_collection(ds)
                configs += [
                    (
                        f"stac-asset --max-concurrent-downloads {n}",
                        self.stac_asset_cmd(items, dest / ds.id, n),
                    )
                    for n in a.stac_asset_n
                ]
            for tool, cmd in configs:
                run = self.measure(scen, tool, rnd, cmd, dest, ds.assets, ds.total_bytes)
                strict = tool.startswith(("wget2", "stac-asset"))
                self.check_tree(dest / ds.id, ds, run, only_assets=strict)
                if strict:
                    self.check_requests(ds, run)
                    leftovers = [p.name for p in dest.iterdir() if p.name != ds.id]
                    if leftovers:  # anything beside the data set's folder (wget2: .tmp)
                        run.ok = False
                        run.note = (run.note + f" left in the output folder: {leftovers}").strip()
                        log(f"  check failed: {run.note}")
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
            shutil.rmtree(dest, ignore_errors=True)
        if radiant:
            case = self.out_root(f"{scen.lower()}-radiant")
            out = case / "out"
            tool = "radiant-mlhub 0.5.5"
            cmd = self.radiant_cmd(ds, out)
            rt = a.timeout * 3
            run = self.measure(scen, tool, rnd, cmd, case, ds.assets, ds.total_bytes, rt)
            self.check_tree(out / ds.id, ds, run)
            if chain and "S3" in a.scenarios:
                self.measure("S3", tool, rnd, cmd, case, ds.assets, 0, rt)
            if chain and "S5" in a.scenarios:
                files, nbytes = damage(out, ds)
                run = self.measure("S5", tool, rnd, cmd, case, files, nbytes, rt)
                self.check_tree(out / ds.id, ds, run)
            shutil.rmtree(case, ignore_errors=True)

    def s3_big(self, ds: DatasetDef) -> None:
        """S3 at 1M: the files are placed on the client side (written directly, the bytes the
        server would send), one apply adopts them (hashing each against its `file:checksum`,
        no asset request) and records them; then the timed no-op re-applies."""
        a = self.args
        w = a.workers[0]
        case = Path(a.out_dir) / f"s3-{ds.id}"
        spec = self.spec(case, ds, w)
        ready = case / ".adopted"
        if ready.exists() and ready.read_text() == self.nginx.base:
            log(f"S3 {ds.id}: reusing the adopted files in {case}")
        else:
            shutil.rmtree(case / "out", ignore_errors=True)
            started = time.monotonic()
            write_assets(case / "out", ds.id, ds.assets, ds.size, ds.per_item, quiet=True)
            for marker in (case / "out" / ds.id).glob(".assets-*"):
                marker.unlink()
            log(f"S3 {ds.id}: placed {ds.assets:,} files in {time.monotonic() - started:.0f} s")
            run = self.measure(
                "S3 prep",
                f"mlhub-sync w={w} (adopt)",
                0,
                self.mlhub_cmd(spec),
                case,
                ds.assets,
                0,
                a.timeout * 4,
            )
            if run.ok:
                ready.write_text(self.nginx.base)
        for rnd in range(1, a.runs + 1):
            self.measure(
                f"S3 {ds.assets:,}",
                f"mlhub-sync w={w}",
                rnd,
                self.mlhub_cmd(spec),
                case,
                ds.assets,
                0,
                a.timeout * 2,
            )
        if not a.keep:
            shutil.rmtree(case, ignore_errors=True)

    def s4(self, sizes: Sequence[DatasetDef]) -> None:
        a = self.args
        for rnd in range(1, a.runs + 1):
            for ds in sizes:
                case = self.out_root(f"s4-{ds.id}")
                spec = self.spec(case, ds, a.workers[0])
                self.measure(
                    f"S4 {ds.assets:,}",
                    "mlhub-sync plan",
                    rnd,
                    self.mlhub_cmd(spec, "plan"),
                    case,
                    ds.assets,
                    0,
                    a.timeout * 2,
                )
                shutil.rmtree(case, ignore_errors=True)

    def s6(self, ds: DatasetDef, rnd: int) -> None:
        """SIGKILL an apply once half the asset bytes arrived, then resume it."""
        a = self.args
        w = a.workers[0]
        case = self.out_root(f"s6-{ds.id}")
        spec = self.spec(case, ds, w)
        dataset_dir = case / "out" / ds.id
        mark = self.nginx.mark()
        half = ds.total_bytes // 2
        by_disk = ds.assets <= 1000  # few files: sum sizes on disk (.part included); else log

        def progress() -> int:
            if by_disk:
                return tree_bytes(dataset_dir)
            return self.nginx.since(mark).asset_bytes

        with (self.run_dir / "s6-kill.err").open("wb") as err:
            proc = subprocess.Popen(
                self.mlhub_cmd(spec),
                cwd=case,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + a.timeout
            try:
                while proc.poll() is None and progress() < half:
                    if time.monotonic() > deadline:
                        raise RuntimeError("S6: the apply to kill never got halfway")
                    time.sleep(0.01 if by_disk else 0.05)
            finally:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)
        time.sleep(0.5)
        killed_rc = proc.returncode
        on_disk = tree_bytes(dataset_dir)
        before = self.nginx.since(mark)
        run = self.measure(
            f"S6 {ds.id}",
            f"mlhub-sync w={w} resume",
            rnd,
            self.mlhub_cmd(spec),
            case,
            ds.assets,
            ds.total_bytes,
        )
        self.check_tree(dataset_dir, ds, run)
        if killed_rc != -signal.SIGKILL:
            run.ok = False
            run.note = (run.note + f" the first apply was not killed (exit {killed_rc})").strip()
        run.extra.update(
            killed_rc=killed_rc,
            bytes_on_disk_at_kill=on_disk,
            asset_bytes_sent_before_kill=before.asset_bytes,
            resumed_asset_bytes=run.log.asset_bytes,
            fresh_asset_bytes=ds.total_bytes,
            resumed_share=run.log.asset_bytes / ds.total_bytes,
        )
        log(
            f"  S6 {ds.id}: killed at {on_disk / ds.total_bytes:.0%} on disk "
            f"({before.asset_bytes / ds.total_bytes:.0%} sent); the resume fetched "
            f"{run.log.asset_bytes / ds.total_bytes:.1%} of a fresh run's asset bytes"
        )
        shutil.rmtree(case, ignore_errors=True)

    def profile(self, ds: DatasetDef) -> None:
        """One S1 apply under py-spy (all threads, and only the GIL holder), summarised."""
        a = self.args
        pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
        outdir = Path(a.out_dir) / "profile"
        outdir.mkdir(parents=True, exist_ok=True)
        for mode, flags in (("cpu", []), ("gil", ["--gil"])):
            case = self.out_root(f"profile-{mode}")
            spec = self.spec(case, ds, a.workers[0])
            raw = outdir / f"s1-{mode}.txt"
            cmd = [
                pyspy,
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "--nonblocking",
                "-o",
                str(raw),
                *flags,
                "--",
                *self.mlhub_cmd(spec),
            ]
            self.measure(
                "profile",
                f"mlhub-sync w={a.workers[0]} py-spy {mode}",
                1,
                cmd,
                case,
                ds.assets,
                ds.total_bytes,
            )
            shutil.rmtree(case, ignore_errors=True)
            if raw.exists():
                summary = summarise_profile(raw)
                (outdir / f"s1-{mode}-summary.md").write_text(summary)
                print(f"\n### py-spy ({mode}), one S1 apply\n\n{summary}")
        strace = shutil.which("strace")
        if strace:  # system calls per file: counts are exact, times inflated by tracing
            case = self.out_root("profile-strace")
            spec = self.spec(case, ds, a.workers[0])
            counts = outdir / "s1-strace.txt"
            cmd = [strace, "-f", "-c", "-o", str(counts), *self.mlhub_cmd(spec)]
            self.measure(
                "profile",
                f"mlhub-sync w={a.workers[0]} strace -c",
                1,
                cmd,
                case,
                ds.assets,
                ds.total_bytes,
            )
            shutil.rmtree(case, ignore_errors=True)
            if counts.exists():
                print(f"\n### strace -f -c, one S1 apply ({ds.assets:,} files)\n")
                print(summarise_strace(counts, ds.assets))


# ------------------------------------------------------------------------------------------
# helpers


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group we started for `proc` (its id is the child's pid)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally` that stops nginx


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        while block := fh.read(MIB):
            h.update(block)
    return h.hexdigest()


def tree_bytes(root: Path) -> int:
    """Bytes of the asset files below root, `.part` files included."""
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if ".tif" in name:
                with contextlib.suppress(OSError):  # renamed meanwhile
                    total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def damage(out: Path, ds: DatasetDef) -> tuple[int, int]:
    """Delete 1% of the asset files and truncate another 1% to half their size.

    Returns (files damaged, bytes missing)."""
    files = missing = 0
    for i, name in enumerate(asset_names(ds.id, ds.assets, ds.per_item)):
        if i % 100 == 0:
            (out / name).unlink()
            files, missing = files + 1, missing + ds.size
        elif i % 100 == 50:
            os.truncate(out / name, ds.size // 2)
            files, missing = files + 1, missing + ds.size - ds.size // 2
    return files, missing


def summarise_profile(raw: Path, top: int = 25) -> str:
    """Top functions by own samples and by inclusive samples, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [clean_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if f]
        if not frames:
            continue
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    lines = [f"{total:,} samples", "", "| own % | function |", "|---:|---|"]
    lines += [f"| {n / total:.1%} | `{f}` |" for f, n in own.most_common(top)]
    lines += ["", "| inclusive % | function |", "|---:|---|"]
    lines += [f"| {n / total:.1%} | `{f}` |" for f, n in incl.most_common(top)]
    return "\n".join(lines) + "\n"


def summarise_strace(path: Path, files: int, top: int = 15) -> str:
    """The busiest system calls of `strace -c`, with calls per file."""
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0].replace(".", "").isdigit() and parts[-1] != "total":
            calls = int(parts[3])
            rows.append((float(parts[0]), parts[-1], calls))
    rows.sort(reverse=True)
    out = ["| syscall | % time (traced) | calls | per file |", "|---|---:|---:|---:|"]
    out += [
        f"| {name} | {pct:.1f} | {calls:,} | {calls / files:.2f} |"
        for pct, name, calls in rows[:top]
    ]
    return "\n".join(out) + "\n"


def clean_frame(frame: str) -> str:
    """`func (path/to/file.py:123)` -> `func (file.py)`; thread frames dropped."""
    m = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame.strip())
    if not m:
        return frame.strip() if not frame.startswith(("thread", "process")) else ""
    func, path = m.groups()
    parts = Path(path).parts
    path = (
        "/".join(parts[parts.index("mlhub_sync") :]) if "mlhub_sync" in parts else Path(path).name
    )
    return f"{func} ({path})"


# ------------------------------------------------------------------------------------------
# report


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_range(values: Sequence[float], spec: str, unit: str = "") -> str:
    if not values:
        return "n/a"
    m = format(med(values), spec)
    if len(values) == 1:
        return f"{m}{unit}"
    return f"{m}{unit} ({format(min(values), spec)}–{format(max(values), spec)})"


def group(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    out: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        out.setdefault((r.scenario, r.tool), []).append(r)
    return out


def table(runs: Sequence[Run]) -> str:
    head = (
        "| scenario | tool | wall s | CPU s (user+sys) | peak RSS MiB | files/s | MiB/s | "
        "requests (HEAD) | asset bytes sent | connections | ok |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for (scen, tool), rs in group(runs).items():
        heads = int(med([r.log.methods.get("HEAD", 0) for r in rs]))
        rows.append(
            f"| {scen} | {tool} | {fmt_range([r.wall for r in rs], '.2f')} "
            f"| {fmt_range([r.cpu for r in rs], '.2f')} "
            f"| {fmt_range([r.rss_kib / 1024 for r in rs], '.0f')} "
            f"| {fmt_range([r.files_per_s for r in rs], ',.0f')} "
            f"| {fmt_range([r.mib_per_s for r in rs], ',.1f')} "
            f"| {int(med([r.log.requests for r in rs])):,} ({heads:,}) "
            f"| {fmt_mib(med([r.log.asset_bytes for r in rs]))} "
            f"| {int(med([r.log.connections for r in rs])):,} "
            f"| {'yes' if all(r.ok for r in rs) else 'NO: ' + '; '.join(r.note for r in rs)} |"
        )
    return head + "\n".join(rows) + "\n"


def mlhub_table(runs: Sequence[Run]) -> str:
    """What mlhub-sync said it did (`apply --json`), medians."""
    keys = ("downloaded", "resumed", "replaced", "adopted", "failed")
    head = (
        "| scenario | tool | " + " | ".join(keys) + " | bytes transferred | transfer phase s |\n"
        "|---|---|" + "---:|" * (len(keys) + 2) + "\n"
    )
    rows = []
    for (scen, tool), rs in group(runs).items():
        res = [r.extra["result"] for r in rs if "result" in r.extra]
        if not res:
            continue
        cells = [f"{int(med([x[k] for x in res])):,}" for k in keys]
        cells.append(fmt_mib(med([x["bytes_transferred"] for x in res])))
        cells.append(fmt_range([x["seconds"] for x in res], ".2f"))
        rows.append(f"| {scen} | {tool} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def fmt_mib(n: float) -> str:
    return f"{n / MIB:,.1f} MiB" if n >= MIB else f"{n / KIB:,.0f} KiB"


def best_config(runs: Sequence[Run], scen: str, prefix: str, key: Callable[[Run], float]) -> str:
    """The configuration of a tool (e.g. `curl --parallel-max 64`) with the best median."""
    groups = {t: rs for (s, t), rs in group(runs).items() if s == scen and t.startswith(prefix)}
    if not groups:
        return ""
    return max(groups, key=lambda t: med([key(r) for r in groups[t] if r.ok] or [0.0]))


def pairwise(
    runs: Sequence[Run],
    scen: str,
    mine: str,
    ref: str,
    key: Callable[[Run], float],
    ref_scen: str | None = None,
) -> list[float]:
    """key(mine) / key(ref) for each round where both ran."""
    a = {r.rnd: key(r) for r in runs if r.scenario == scen and r.tool == mine and r.ok}
    b = {r.rnd: key(r) for r in runs if r.scenario == (ref_scen or scen) and r.tool == ref}
    return [a[k] / b[k] for k in sorted(a) if b.get(k)]


def ratios(runs: Sequence[Run]) -> tuple[str, list[str]]:
    """The ratio table and the target verdicts."""
    lines = [
        "| scenario | mlhub-sync | reference | ratio (median, min–max over rounds) |",
        "|---|---|---|---|",
    ]
    verdicts: list[str] = []
    mine_tools = sorted(
        {
            r.tool
            for r in runs
            if r.tool.startswith("mlhub-sync w=")
            and r.scenario in ("S1", "S2")
            and "resume" not in r.tool
        },
        key=lambda t: int(t.split("=")[1]),
    )

    def fps(r: Run) -> float:
        return r.files_per_s

    def mbs(r: Run) -> float:
        return r.mib_per_s

    def inv_wall(r: Run) -> float:
        return 1 / r.wall if r.wall else 0.0

    for scen, key, unit in (("S1", fps, "files/s"), ("S2", mbs, "MiB/s")):
        refs = [
            best_config(runs, scen, p, key)
            for p in ("curl", "aria2c", "wget2", "stac-asset", "radiant")
        ]
        refs = [r for r in refs if r]
        best_mine = best_config(runs, scen, "mlhub-sync w=", key)
        for mine in mine_tools:
            for ref in refs:
                xs = pairwise(runs, scen, mine, ref, key)
                if xs:
                    lines.append(
                        f"| {scen} ({unit}) | {mine} | {ref} (best) | {fmt_range(xs, '.2f', '×')} |"
                    )
        if best_mine:
            got = {
                ref.split(" ")[0]: med(pairwise(runs, scen, best_mine, ref, key)) for ref in refs
            }
            if scen == "S1":
                for name, want in (("aria2c", 1.0), ("stac-asset", 3.0), ("radiant-mlhub", 9.0)):
                    if name in got:
                        verdicts.append(
                            verdict(f"S1 ≥ {want:g}× {name} files/s ({best_mine})", got[name], want)
                        )
            if scen == "S2" and got:
                fastest = min(got.values())
                verdicts.append(
                    verdict(f"S2 ≥ 0.8× the fastest reference's MiB/s ({best_mine})", fastest, 0.8)
                )
    # A/B: another version of the package vs the working tree, same workers, same round
    for scen, key, unit in (("S1", fps, "files/s"), ("S2", mbs, "MiB/s")):
        for other in sorted(
            {r.tool for r in runs if r.scenario == scen and r.tool.startswith("mlhub-sync@")}
        ):
            mine = "mlhub-sync w=" + other.rpartition("w=")[2]
            xs = pairwise(runs, scen, mine, other, key)
            if xs:
                lines.append(
                    f"| {scen} ({unit}) A/B | {mine} | {other} | {fmt_range(xs, '.2f', '×')} |"
                )
    # S3 at 20k: radiant's re-run vs mlhub-sync's no-op (speed-up = their wall / ours)
    g = group(runs)
    for (scen, tool), rs in g.items():
        if scen == "S3" and tool.startswith("mlhub-sync"):
            ref = "radiant-mlhub 0.5.5"
            sp = pairwise(runs, "S3", tool, ref, inv_wall)
            if sp:
                lines.append(
                    f"| S3 no-op, {rs[0].files:,} files (speed-up) | {tool} | "
                    f"{ref} re-run | {fmt_range(sp, '.1f', '×')} |"
                )
    big = [(s, rs) for (s, t), rs in g.items() if s.startswith("S3 ") and s != "S3 prep"]
    radiant_rerun = [
        r for (s, t), rs in g.items() if s == "S3" and t.startswith("radiant") for r in rs
    ]
    for scen, rs in big:
        wall = med([r.wall for r in rs])
        reqs = max(r.log.asset_requests for r in rs)
        verdicts.append(verdict(f"{scen}: no-op ≤ 20 s", 20.0 / wall, 1.0, f"{wall:.1f} s"))
        verdicts.append(
            f"- {scen}: asset requests in the no-op: {reqs} ({'met' if reqs == 0 else 'MISSED'})"
        )
        if radiant_rerun:
            per_file = med([r.wall / r.files for r in radiant_rerun])
            projected = per_file * rs[0].files
            lines.append(
                f"| {scen} no-op (speed-up) | {rs[0].tool} | radiant-mlhub re-run, "
                f"per file × {rs[0].files:,} = {projected:,.0f} s | "
                f"{projected / wall:.0f}× |"
            )
            verdicts.append(
                verdict(f"{scen}: ≥ 50× radiant-mlhub's per-file re-run", projected / wall, 50.0)
            )
    s4 = sorted(
        ((s, rs) for (s, t), rs in g.items() if s.startswith("S4 ")), key=lambda x: x[1][0].files
    )
    if s4:
        scen, rs = s4[-1]
        wall = med([r.wall for r in rs])
        rss = max(r.rss_kib for r in rs) / 1024
        verdicts.append(verdict(f"{scen}: plan ≤ 60 s", 60 / wall, 1.0, f"{wall:.1f} s"))
        verdicts.append(verdict(f"{scen}: peak RSS ≤ 300 MiB", 300 / rss, 1.0, f"{rss:.0f} MiB"))
        if len(s4) > 1:
            small = max(r.rss_kib for r in s4[0][1]) / 1024
            growth = rss / small - 1
            verdicts.append(
                verdict(
                    f"S4 RSS growth {s4[0][0]} → {scen} ≤ 20%",
                    0.2 / max(growth, 1e-9),
                    1.0,
                    f"{small:.0f} → {rss:.0f} MiB, {growth:+.0%}",
                )
            )
    # S5: radiant's re-run after damage vs ours
    for (scen, tool), _ in g.items():
        if scen == "S5" and tool.startswith("mlhub-sync"):
            sp = pairwise(runs, "S5", tool, "radiant-mlhub 0.5.5", inv_wall)
            if sp:
                lines.append(
                    f"| S5 repair (speed-up) | {tool} | radiant-mlhub 0.5.5 re-run | "
                    f"{fmt_range(sp, '.1f', '×')} |"
                )
    for (scen, _tool), rs in g.items():
        if scen.startswith("S6 "):
            shares = [r.extra.get("resumed_share", 1.0) for r in rs]
            lines.append(
                f"| {scen} resume: asset bytes vs a fresh run | {rs[0].tool} | "
                f"fresh run | {fmt_range([s * 100 for s in shares], '.1f', '%')} |"
            )
            verdicts.append(
                verdict(
                    f"{scen}: resumed run ≤ 55% of a fresh run's bytes",
                    0.55 / max(med(shares), 1e-9),
                    1.0,
                    f"{med(shares):.1%}",
                )
            )
    return "\n".join(lines) + "\n", verdicts


def load_summary(runs: Sequence[Run]) -> str:
    loads = [x for r in runs for x in r.extra.get("load1", [])]
    return f"median {med(loads):.1f}, max {max(loads):.1f}" if loads else "n/a"


def verdict(what: str, ratio: float, want: float, detail: str = "") -> str:
    ok = ratio >= want
    shown = detail or f"{ratio:.2f}×"
    miss = "" if ok else f", short by {(1 - ratio / want):.0%}"
    return f"- {what}: {shown} — {'met' if ok else 'MISSED' + miss}"


def code_state() -> tuple[str, str]:
    """(commit and whether mlhub_sync/ differs from it, a digest of mlhub_sync/'s sources).

    Someone may be editing the package while the benchmark runs: the digest is taken at the
    start and at the end of a run, and the report says if it changed."""
    repo = HERE.parent
    spec = importlib.util.find_spec("mlhub_sync")  # what the clients import (PYTHONPATH too)
    package = Path(spec.origin).parent if spec and spec.origin else repo / "mlhub_sync"
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.read_bytes())
    if package.resolve() != (repo / "mlhub_sync").resolve():
        return f"the copy in {package.parent}", digest.hexdigest()[:12]
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(repo)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "mlhub_sync"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        commit = head + (" + uncommitted changes in mlhub_sync/" if dirty else "")
    return commit, digest.hexdigest()[:12]


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["lscpu"], check=False, capture_output=True, text=True, timeout=10
        ).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        cpu = m.group(1).strip() if m else cpu
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def fs_of(path: Path) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = (
            subprocess.run(
                ["df", "--output=fstype,target", str(path)],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            )
            .stdout.split("\n")[1]
            .split()
        )
        return f"{out[0]} ({out[1]})"
    return "?"


def versions(radiant_python: Path, stac_asset: Path) -> str:
    def first(cmd: list[str]) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
            p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=20)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        return "?"

    return ", ".join(
        [
            first(["nginx", "-v"]).replace("nginx version: ", ""),
            first(["curl", "--version"]).split(" (")[0],
            first(["aria2c", "--version"]).replace(" version", ""),
            first(["wget2", "--version"]).replace("GNU Wget2", "wget2").split(" - ")[0],
            "stac-asset "
            + first(
                [
                    str(stac_asset.parent / "python"),
                    "-c",
                    "import importlib.metadata as m; print(m.version('stac-asset'))",
                ]
            ),
            "radiant-mlhub "
            + first(
                [
                    str(radiant_python),
                    "-c",
                    "import radiant_mlhub; print(radiant_mlhub.__version__)",
                ]
            ),
            "mlhub-sync " + first([sys.executable, "-m", "mlhub_sync", "--version"]).split()[-1],
        ]
    )


# ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small smoke version (2,000 files, 8 x 16 MiB, 50k catalog), 1 round",
    )
    p.add_argument(
        "--scenarios",
        default="S1,S2,S3,S4,S5,S6",
        help="comma-separated subset of S1..S6 (default: all)",
    )
    p.add_argument("--runs", type=int, help="rounds per configuration (default 3; quick: 1)")
    p.add_argument(
        "--workers",
        default="16",
        help="mlhub-sync workers, comma-separated; the first is used for S3-S6",
    )
    p.add_argument("--sweep-workers", action="store_true", help="--workers 16,8,32,64")
    p.add_argument("--curl-n", default="16,64", help="curl --parallel-max values to try")
    p.add_argument("--aria2-j", default="16,32,64", help="aria2c -j values to try")
    p.add_argument("--wget2-n", default="4,16,32", help="wget2 --max-threads values to try")
    p.add_argument(
        "--stac-asset-n",
        default="16,32",
        help="stac-asset --max-concurrent-downloads values to try",
    )
    p.add_argument("--no-radiant", action="store_true", help="skip radiant-mlhub")
    p.add_argument("--no-refs", action="store_true", help="skip curl, aria2c, wget2 and stac-asset")
    p.add_argument("--no-wget2", action="store_true", help="skip wget2")
    p.add_argument("--no-stac-asset", action="store_true", help="skip stac-asset")
    p.add_argument(
        "--profile",
        action="store_true",
        help="only profile one S1 apply with py-spy (CPU and GIL) and summarise",
    )
    p.add_argument(
        "--out-dir",
        default="/dev/shm/mlhub-bench/out",
        help="where the clients write (default tmpfs)",
    )
    p.add_argument(
        "--data-dir",
        default="/dev/shm/mlhub-bench/data",
        help="what nginx serves (generated, cached)",
    )
    p.add_argument("--radiant-venv", default="/opt/bench-venvs/radiant-mlhub")
    p.add_argument("--stac-asset-venv", default="/opt/bench-venvs/stac-asset")
    p.add_argument("--port", type=int, default=18573)
    p.add_argument("--nginx-workers", default="auto")
    p.add_argument("--timeout", type=float, default=600, help="seconds per client run")
    p.add_argument(
        "--compare-src",
        action="append",
        default=[],
        metavar="DIR",
        help="also time (S1, S2) the mlhub_sync package in DIR, e.g. an older "
        "commit from `git archive COMMIT | tar -x -C DIR`; repeatable",
    )
    p.add_argument(
        "--compare-env",
        action="append",
        default=[],
        metavar="LABEL:VAR=VALUE",
        help="also time (S1, S2) the working tree with VAR=VALUE set, labelled "
        "mlhub-sync@LABEL, e.g. urllib3:MLHUB_SYNC_HTTP=urllib3; repeatable",
    )
    p.add_argument("--keep", action="store_true", help="keep the 1M-file S3 output for next time")
    args = p.parse_args(argv)
    args.scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
    args.workers = [
        int(w) for w in ("16,8,32,64" if args.sweep_workers else args.workers).split(",")
    ]
    args.curl_n = [int(n) for n in args.curl_n.split(",")]
    args.aria2_j = [int(n) for n in args.aria2_j.split(",")]
    args.wget2_n = [int(n) for n in args.wget2_n.split(",")]
    args.stac_asset_n = [int(n) for n in args.stac_asset_n.split(",")]
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    sizes = QUICK if args.quick else FULL
    data, out = Path(args.data_dir), Path(args.out_dir)
    data.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=out))
    port = free_port(args.port)
    base_url = f"http://127.0.0.1:{port}/blobs"
    sc = set(args.scenarios)
    need: list[DatasetDef] = []
    if sc & {"S1", "S3", "S5", "S6"} or args.profile:
        need.append(sizes.s1)
    if sc & {"S2", "S6"}:
        need.append(sizes.s2)
    if sc & {"S3", "S4"}:
        need.append(sizes.big)
    if "S4" in sc:
        need.append(sizes.mid)
    for ds in need:
        prepare_server_data(data, ds, base_url)
    nginx = Nginx(data, run_dir, port, args.nginx_workers)
    bench = Bench(args, nginx, run_dir)
    started = dt.datetime.now(dt.UTC)
    commit, code_before = code_state()
    try:
        nginx.start()
        if args.profile:
            bench.profile(sizes.s1)
            return 0
        radiant = not args.no_radiant
        refs = not args.no_refs
        for rnd in range(1, args.runs + 1):
            log(f"=== round {rnd} of {args.runs}")
            if sc & {"S1", "S3", "S5"}:
                bench.transfer_round(
                    "S1",
                    sizes.s1,
                    rnd,
                    chain=True,
                    refs=refs and "S1" in sc,
                    radiant=radiant and bool(sc & {"S1", "S3", "S5"}),
                )
            if "S2" in sc:
                bench.transfer_round("S2", sizes.s2, rnd, chain=False, refs=refs, radiant=radiant)
            if "S6" in sc:
                bench.s6(sizes.s2, rnd)
                bench.s6(sizes.s1, rnd)
        if "S3" in sc:
            bench.s3_big(sizes.big)
        if "S4" in sc:
            bench.s4([sizes.mid, sizes.big])
    finally:
        nginx.stop()
    finished = dt.datetime.now(dt.UTC)
    cli_args = sys.argv[1:] if argv is None else list(argv)
    code_after = code_state()[1]
    code_note = (
        f"mlhub-sync at {commit} (sources {code_before}, unchanged during the run)"
        if code_after == code_before
        else f"mlhub-sync at {commit}: its sources CHANGED during the run "
        f"({code_before} -> {code_after}): the rounds did not all run the same code"
    )
    ratio_table, verdicts = ratios(bench.runs)
    report = "\n".join(
        [
            f"## Run {started:%Y-%m-%d %H:%M}–{finished:%H:%M} UTC",
            "",
            f"Command: `python benchmarks/run.py {' '.join(cli_args)}`",
            "",
            f"Machine: {machine()}. Output on {fs_of(out)}; server data on {fs_of(data)}.",
            f"Tools: {versions(bench.radiant_python, bench.stac_asset)}.",
            code_note + ".",
            f"Rounds: {args.runs}; values are median (min–max). 1-minute load average over the "
            f"runs (this machine's other work included): {load_summary(bench.runs)}.",
            "",
            table(bench.runs),
            "mlhub-sync's own account (`apply --json`):",
            "",
            mlhub_table(bench.runs),
            ratio_table,
            "Targets:",
            "",
            *verdicts,
            "",
        ]
    )
    print(report)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    (out / f"results-{stamp}.md").write_text(report)
    (out / f"results-{stamp}.json").write_text(
        json.dumps([asdict(r) for r in bench.runs], indent=1)
    )
    log(f"wrote {out / f'results-{stamp}.md'} and .json; logs in {run_dir}")
    return 0 if all(r.ok for r in bench.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
