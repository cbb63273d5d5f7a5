"""Listing an Azure container prefix: our List Blobs through ``Http`` (``sources/azure.py``)
against obstore's ``AzureStore.list``, on a real Azurite (tests/support/azurite.py) holding
N blobs preloaded. Each lister runs in a fresh process (so peak RSS is its own), interleaved,
``--runs`` rounds; prints one JSON line per run and a median summary.

    python benchmarks/azure_listing.py --blobs 5100,100000 --runs 3
    # obstore is not a dependency: PYTHONPATH=<a folder with obstore> for its runs

Reports wall time, blobs/s, peak RSS above the interpreter's baseline after imports, and
whether the listing carried Content-MD5 (what decides a checksum before a download).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.azurite import Blob, Container, azurite  # noqa: E402

CHILD = r"""
import json, sys, time
kind, endpoint, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "ours":
    from mlhub_sync.net.client import Http
    from mlhub_sync.sources.azure import list_blobs
else:
    import obstore
    from obstore.store import AzureStore
def hwm():  # VmHWM: this process's own peak (ru_maxrss keeps the parent's across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = hwm()
t0, c0 = time.perf_counter(), time.process_time()
count = md5s = size = 0
if kind == "ours":
    for obj in list_blobs(Http(), endpoint + "/bench", "chips/"):
        count += 1; size += obj.size; md5s += obj.md5 is not None
else:
    store = AzureStore(container_name="bench", account_name="devstoreaccount1",
                       endpoint=endpoint, skip_signature=True, allow_http=True)
    for batch in obstore.list(store, prefix="chips/", chunk_size=5000):
        for meta in batch:
            count += 1; size += meta["size"]; md5s += "content_md5" in meta
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = hwm()
assert count == n, (count, n)
print(json.dumps({"kind": kind, "blobs": count, "seconds": round(elapsed, 3),
                  "blobs_per_s": round(count / elapsed), "cpu_s": round(cpu, 3),
                  "peak_rss_mib": round(peak / 1024, 1),
                  "rss_above_baseline_mib": round((peak - base) / 1024, 1), "md5s": md5s}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blobs", default="5100,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kinds", default="ours,obstore")
    args = parser.parse_args()
    for n in [int(x) for x in args.blobs.split(",")]:
        preload = [
            Container(
                "bench",
                True,
                {f"chips/{i:07d}/B{i % 4:02d}.tif": Blob(b"%07d" % i) for i in range(n)},
            )
        ]
        with tempfile.TemporaryDirectory() as folder, azurite(Path(folder), preload) as service:
            del preload[:]  # written to the workspace: the children need none of it
            results: dict[str, list[dict[str, float]]] = {}
            for _ in range(args.runs):
                for kind in args.kinds.split(","):
                    out = subprocess.run(
                        [sys.executable, "-c", CHILD, kind, service.endpoint, str(n)],
                        capture_output=True, text=True, check=False, cwd=ROOT,
                    )  # fmt: skip
                    if out.returncode:
                        raise SystemExit(f"{kind} failed: {out.stderr[-3000:]}")
                    line = json.loads(out.stdout)
                    print(json.dumps(line), flush=True)
                    results.setdefault(kind, []).append(line)
            for kind, runs in results.items():
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k != "kind"}
                print(f"# {n} blobs, {kind}: median {med}", flush=True)


if __name__ == "__main__":
    main()
