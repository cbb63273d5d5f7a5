"""Measure the synced-catalog rewrite (``catalog/synced.py``) on a generated catalog.

    python benchmarks/catalog_rewrite.py --assets 100000 [--workdir /dev/shm/mlhub-bench]

Generates the archive (``gen_catalog.py``: 4 collections, 4 assets per item; cached), then in
one process, each phase timed (wall) with its own peak RSS (``VmHWM``, reset before the phase
through ``/proc/self/clear_refs``):

1. ``select``: fetch (copy) + verify + index + install + select, the catalog not rewritten;
2. ``rewrite, all local``: every selected asset given a file record (as after a full
   ``apply``; the rewrite trusts the records, so no asset file is written), then the first
   rewrite: every document read, rewritten and replaced;
3. ``rewrite, nothing changed``: the fingerprint forgotten, so every document is read and
   rewritten in memory, but none differs and none is written;
4. ``skipped``: the fingerprint matches: nothing read.

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from mlhub_sync.catalog.synced import SYNCED, write_synced_catalog  # noqa: E402
from mlhub_sync.config.resolve import load_spec  # noqa: E402
from mlhub_sync.net.client import Http  # noqa: E402
from mlhub_sync.session import DatasetRun  # noqa: E402
from mlhub_sync.state.db import FileRecord  # noqa: E402


def peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def phase(name: str, work: Callable[[], object], rows: list[tuple[str, float, int, str]]) -> None:
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current RSS
    start = time.perf_counter()
    result = work()
    rows.append((name, time.perf_counter() - start, peak_kib(), str(result or "")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path("/dev/shm/mlhub-bench"))
    args = parser.parse_args()
    folder = args.workdir / f"rewrite-{args.assets}"
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "bench.tar.gz"
    if not archive.exists():
        subprocess.run(
            [sys.executable, str(HERE / "gen_catalog.py"), str(archive), "--assets",
             str(args.assets)],
            check=True,
        )  # fmt: skip
    spec = folder / "spec.yaml"
    spec.write_text(
        "defaults: {output_dir: ./out}\ndatasets:\n"
        "  - id: bench\n    source: {type: archive, path: ./bench.tar.gz}\n"
    )
    shutil.rmtree(folder / "out", ignore_errors=True)
    config = load_spec(spec).datasets[0]
    rows: list[tuple[str, float, int, str]] = []
    with DatasetRun(config, Http(), os.environ) as run:
        db = run.db
        phase("select (index, install, select)", lambda: run.select(write_catalog=False), rows)

        def record_all() -> None:
            now = time.time_ns()
            batch = [
                FileRecord(path, href, 1024, now, None, None, None, "size")
                for path, href in db.selection.rows()
            ]
            with db.transaction():
                db.put_files(batch)

        record_all()
        phase("rewrite, all local", lambda: write_synced_catalog(db, config, selected=True), rows)
        with db.transaction():
            db.set_meta({SYNCED: None})
        phase(
            "rewrite, nothing changed",
            lambda: write_synced_catalog(db, config, selected=True),
            rows,
        )
        phase("skipped", lambda: write_synced_catalog(db, config, selected=True), rows)
    print(f"{args.assets:,} assets, {args.assets // 4:,} items + 5 other documents\n")
    print("| phase | wall | peak RSS | result |")
    print("|---|---:|---:|---|")
    for name, seconds, kib, result in rows:
        print(f"| {name} | {seconds:.2f} s | {kib / 1024:.0f} MiB | {result[:80]} |")


if __name__ == "__main__":
    main()
