"""A flat tree's re-run: `mlhub-sync apply` again over N listed keys, nothing changed upstream.

    python benchmarks/flat_rerun.py [--keys 10000,100000] [--rounds 3] [--out-dir DIR]

For each N: a small S3 listing server (this file, ``--serve``: ListObjectsV2 pages of 1,000
keys made on the fly from the key's number, GET of each object's 8 bytes, a count of every
object request) on 127.0.0.1, a spec of one ``s3`` dataset over it (template
``{item}/{asset}.tif``, four keys an item), a first ``apply`` that fetches every file, then
per round, interleaved:

- the re-run: ``apply --json`` in a fresh process (``--child``), timed: wall, CPU, peak RSS
  (``VmHWM``, the process's own), the object requests it made (must be 0) and whether it
  re-indexed (must not);
- the listing alone: ``sources.s3.list_objects`` over the same prefix in a fresh process,
  timed the same way, so "besides the listing" is the re-run's wall less this.

Why not moto or Azurite: moto filters and sorts the whole bucket for every page (~1.2 s a
page at 100k keys: two minutes of listing that would drown the figure we want), Azurite
lists 100k blobs in ~40 s; this server answers a page in ~10 ms, about a real store's round
trip. The listing's own cost through a real emulator is in s3_listing.py / azure_listing.py.

Prints one JSON object per measurement and a summary per N.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUCKET = "bench"
PREFIX = "flat/"
PAGE = 1000


def key_of(i: int) -> str:
    """The ``i``-th key (zero-padded, so listing order is number order)."""
    return f"{PREFIX}i{i // 4:07d}/b{i % 4}.tif"


def body_of(i: int) -> bytes:
    return f"{i:08d}".encode()


def serve(keys: int, port_file: Path) -> None:
    """Serve the listing and the objects until killed; write the port to ``port_file``."""
    counts = {"objects": 0, "heads": 0, "listings": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            with lock:
                counts["heads"] += 1
            i = self._index(urlsplit(self.path).path)
            self.send_response(200 if i >= 0 else 404)
            if i >= 0:
                etag = hashlib.md5(body_of(i)).hexdigest()  # S3's own ETag: an MD5
                self.send_header("ETag", f'"{etag}"')
            self.send_header("Content-Length", "8" if i >= 0 else "0")
            self.end_headers()

        def _index(self, path: str) -> int:
            name = path.removeprefix(f"/{BUCKET}/")
            try:
                i = int(name[len(PREFIX) + 1 : len(PREFIX) + 8]) * 4 + int(name[-5])
            except ValueError:
                return -1
            return i if 0 <= i < keys and key_of(i) == name else -1

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/_stats":
                self._send(200, json.dumps(counts).encode(), "application/json")
            elif url.path in (f"/{BUCKET}", f"/{BUCKET}/"):
                with lock:
                    counts["listings"] += 1
                self._send(200, self._page(parse_qs(url.query)), "application/xml")
            else:
                with lock:
                    counts["objects"] += 1
                i = self._index(url.path)
                if i >= 0:
                    self._send(200, body_of(i), "application/octet-stream")
                else:
                    self._send(404, b"", "text/plain")

        def _page(self, query: dict[str, list[str]]) -> bytes:
            start = int(query.get("continuation-token", ["0"])[0])
            end = min(keys, start + PAGE)
            parts = ["<?xml version='1.0' encoding='UTF-8'?><ListBucketResult>"]
            for i in range(start, end):
                etag = hashlib.md5(body_of(i)).hexdigest()  # S3's own ETag: an MD5
                parts.append(
                    f"<Contents><Key>{key_of(i)}</Key><Size>8</Size><ETag>&quot;{etag}&quot;"
                    "</ETag><LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>"
                )
            truncated = end < keys
            parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
            if truncated:
                parts.append(f"<NextContinuationToken>{end}</NextContinuationToken>")
            parts.append("</ListBucketResult>")
            return "".join(parts).encode()

        def _send(self, status: int, data: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


def _hwm_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def child(what: str, args: list[str], report: Path) -> None:
    """Run ``mlhub-sync ARGS`` (``cli``) or the listing alone (``list ENDPOINT``) and write
    {wall, cpu, peak_kib, code, keys} to ``report``."""
    from mlhub_sync.cli.commands import main  # noqa: PLC0415
    from mlhub_sync.config.sources import S3Source  # noqa: PLC0415
    from mlhub_sync.net.client import Http  # noqa: PLC0415
    from mlhub_sync.sources.s3 import list_objects  # noqa: PLC0415

    start, cpu = time.monotonic(), time.process_time()  # the imports done: the same both ways
    keys, code = 0, 0
    if what == "cli":
        code = main(args, os.environ)
    else:
        spec = S3Source(type="s3", bucket=BUCKET, prefix=PREFIX, endpoint=args[0])
        keys = sum(1 for _ in list_objects(spec, Http()))
    row = {"wall": time.monotonic() - start, "cpu": time.process_time() - cpu,
           "peak_kib": _hwm_kib(), "code": code, "keys": keys}  # fmt: skip
    report.write_text(json.dumps(row))
    sys.exit(code)


def _run_child(what: str, args: list[str], work: Path) -> dict[str, Any]:
    report = work / "child.json"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", what, str(report), *args],
        cwd=work, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    row: dict[str, Any] = json.loads(report.read_text())
    row["process_wall"] = time.monotonic() - started  # with the interpreter's start and imports
    row["stdout"] = proc.stdout
    if proc.returncode != 0:
        raise SystemExit(f"{what} {args} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return row


def _stats(endpoint: str) -> dict[str, int]:
    from urllib.request import urlopen  # noqa: PLC0415

    with urlopen(f"{endpoint}/_stats", timeout=10) as reply:  # our own server
        stats: dict[str, int] = json.loads(reply.read())
        return stats


def bench(keys: int, rounds: int, out_dir: Path, fetch: bool) -> dict[str, Any]:
    """Measure one N (see the module docstring)."""
    work = Path(tempfile.mkdtemp(prefix=f"flat-rerun-{keys}-", dir=out_dir))
    port_file = work / "port"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(keys), str(port_file)])
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{port_file.read_text()}"
        spec = work / "spec.yaml"
        spec.write_text(
            json.dumps({
                "defaults": {"output_dir": str(work / "out"), "workers": 16},
                "datasets": [{"id": "bench", "source": {
                    "type": "s3", "bucket": BUCKET, "endpoint": endpoint, "prefix": PREFIX,
                    "template": "{item}/{asset}.tif"}}],
            })
        )  # fmt: skip
        if not fetch:  # the files pre-placed where the layout puts them: the first apply adopts
            for i in range(keys):
                path = work / "out/bench/bench" / key_of(i).removeprefix(PREFIX)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body_of(i))
        first = _run_child("cli", ["-q", "apply", str(spec), "--json"], work)
        fetched = _stats(endpoint)["objects"]
        print(json.dumps({"keys": keys, "run": "first apply", "wall": first["process_wall"],
                          **_stats(endpoint)}))  # fmt: skip
        assert fetched == (keys if fetch else 0), (fetched, keys)
        reruns, listings = [], []
        for _ in range(rounds):
            before = _stats(endpoint)
            rerun = _run_child("cli", ["-q", "apply", str(spec), "--json"], work)
            after = _stats(endpoint)
            rerun["asset_requests"] = sum(after[k] - before[k] for k in ("objects", "heads"))
            catalog = json.loads(rerun.pop("stdout"))["datasets"][0]["catalog"]
            rerun["reindexed"] = catalog["reindexed"]
            listing = _run_child("list", [endpoint], work)
            listing.pop("stdout")
            assert listing["keys"] == keys, listing
            for name, row in (("re-run apply", rerun), ("listing alone", listing)):
                print(json.dumps({"keys": keys, "run": name, **row}))
            reruns.append(rerun)
            listings.append(listing)
    finally:
        server.terminate()
        server.wait()
    med = statistics.median
    return {
        "keys": keys,
        "first_apply": first["process_wall"],
        "rerun_wall": med(r["wall"] for r in reruns),
        "rerun_range": (min(r["wall"] for r in reruns), max(r["wall"] for r in reruns)),
        "rerun_process_wall": med(r["process_wall"] for r in reruns),
        "rerun_cpu": med(r["cpu"] for r in reruns),
        "rerun_peak_mib": med(r["peak_kib"] for r in reruns) / 1024,
        "asset_requests": max(r["asset_requests"] for r in reruns),
        "reindexed": any(r["reindexed"] for r in reruns),
        "listing_wall": med(r["wall"] for r in listings),
        "listing_cpu": med(r["cpu"] for r in listings),
        "listing_peak_mib": med(r["peak_kib"] for r in listings) / 1024,
        "besides_listing": med(
            r["wall"] - x["wall"] for r, x in zip(reruns, listings, strict=True)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--fetch", action="store_true", help="the first apply GETs every file")
    parser.add_argument("--serve", nargs=2, metavar=("KEYS", "PORT_FILE"))
    parser.add_argument("--child", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return
    if args.child:
        child(args.child[0], args.child[2:], Path(args.child[1]))
        return
    print(f"load average {os.getloadavg()}", file=sys.stderr)
    summaries = [bench(int(n), args.rounds, args.out_dir, args.fetch) for n in args.keys.split(",")]
    print(f"load average {os.getloadavg()}", file=sys.stderr)
    for s in summaries:
        print(json.dumps(s))
        print(
            f"{s['keys']:,} keys: re-run apply {s['rerun_wall']:.2f} s "
            f"({s['rerun_range'][0]:.2f}-{s['rerun_range'][1]:.2f}; "
            f"process {s['rerun_process_wall']:.2f} s), "
            f"CPU {s['rerun_cpu']:.2f} s, peak RSS {s['rerun_peak_mib']:.0f} MiB, "
            f"{s['asset_requests']} asset requests, reindexed {s['reindexed']}; listing alone "
            f"{s['listing_wall']:.2f} s (CPU {s['listing_cpu']:.2f} s, peak RSS "
            f"{s['listing_peak_mib']:.0f} MiB); besides the listing {s['besides_listing']:.2f} s"
        )


if __name__ == "__main__":
    main()
