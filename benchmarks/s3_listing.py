"""Listing an S3 prefix of many keys: our ListObjectsV2 through ``Http`` against obstore.

    python benchmarks/s3_listing.py [--keys 100000] [--rounds 3]

Starts ``moto_server`` (tests/support/moto_s3.py) with ``--keys`` keys under one prefix and
lists them, each way in a fresh subprocess per round (interleaved), measuring wall time, CPU
time and the child's peak RSS, less its RSS once the imports are done (what the listing
itself costs). Prints one JSON object per measurement and a summary.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUCKET = "bench-bucket"
PREFIX = "many/"


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker(method: str, endpoint: str) -> None:
    """List the prefix one way; print {keys, wall, cpu, rss_after_imports, peak_rss} (KiB)."""
    if method == "http":
        from mlhub_sync.config.sources import S3Source  # noqa: PLC0415
        from mlhub_sync.net.client import Http  # noqa: PLC0415
        from mlhub_sync.sources.s3 import list_objects  # noqa: PLC0415

        spec = S3Source(type="s3", bucket=BUCKET, prefix=PREFIX, endpoint=endpoint)
        http = Http()
        base = _rss_kib()
        start, cpu = time.monotonic(), time.process_time()
        keys = sum(1 for _ in list_objects(spec, http))
    else:
        import obstore  # noqa: PLC0415
        from obstore.store import S3Store  # noqa: PLC0415

        store = S3Store(
            BUCKET,
            endpoint=endpoint,
            region="us-east-1",
            skip_signature=True,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "user_agent": "mlhub-sync-bench"},
        )
        base = _rss_kib()
        start, cpu = time.monotonic(), time.process_time()
        keys = 0
        for batch in obstore.list(store, prefix=PREFIX, chunk_size=1000):
            keys += len(batch)
    wall, used = time.monotonic() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"keys": keys, "wall": wall, "cpu": used, "rss_base": base, "peak": peak}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "ENDPOINT"))
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    from tests.support.moto_s3 import MotoS3  # noqa: PLC0415

    seed = {BUCKET: {f"{PREFIX}{i // 100:05}/{i:07}.tif": 16 for i in range(args.keys)}}
    results: dict[str, list[dict[str, float]]] = {"http": [], "obstore": []}
    with tempfile.TemporaryDirectory() as folder, MotoS3(Path(folder), seed) as moto:
        for _ in range(args.rounds):
            for method, rows in results.items():
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", method, moto.url],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                row = json.loads(out.stdout)
                assert row["keys"] == args.keys, row
                rows.append(row)
                print(json.dumps({"method": method, **row}))
    for method, rows in results.items():
        walls = [r["wall"] for r in rows]
        cpu = statistics.median(r["cpu"] for r in rows)
        peak = statistics.median(r["peak"] for r in rows) / 1024
        grown = statistics.median(r["peak"] - r["rss_base"] for r in rows) / 1024
        print(
            f"{method}: {args.keys} keys in {statistics.median(walls):.2f} s "
            f"({min(walls):.2f}-{max(walls):.2f}), CPU {cpu:.2f} s, peak RSS {peak:.0f} MiB "
            f"(+{grown:.1f} MiB over the imports)"
        )


if __name__ == "__main__":
    main()
