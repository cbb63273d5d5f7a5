"""Measure `mlhub-sync plan` on a STAC API search: wall time and peak RSS at growing sizes.

    python benchmarks/stac_api_scale.py --items 10000 100000 [--workdir /dev/shm/mlhub-bench]

For each size: write that many items (two assets each) for `rustac serve` (its in-memory
backend, on 127.0.0.1), then run `mlhub-sync plan` in a fresh output folder (search page by
page + stage + index + select + plan) and again (the same search: every item comes back
unchanged), each under `/usr/bin/time -v`. Flat memory means the peak RSS does not grow with
the number of items. Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.plan_scale import timed  # noqa: E402
from tests.support.stac_api import collection, stac_api  # noqa: E402


def items(n: int) -> list[dict[str, object]]:
    return [
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": f"scene_{i:07}",
            "collection": "s2",
            "geometry": {"type": "Point", "coordinates": [(i % 3600) / 10 - 180, 0.0]},
            "bbox": [(i % 3600) / 10 - 180, 0.0, (i % 3600) / 10 - 180, 0.0],
            "properties": {"datetime": f"2020-01-{1 + i % 28:02}T00:00:00Z", "n": i},
            "links": [],
            "assets": {
                key: {"href": f"https://data.example.org/s2/{i:07}/{key}.tif", "file:size": 1000}
                for key in ("B02", "B03")
            },
        }
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=Path("/dev/shm/mlhub-bench"))
    args = parser.parse_args()
    rows = []
    for n in args.items:
        folder = args.workdir / f"stac-api-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        with stac_api(folder / "api", [collection("s2")], items(n)) as url:
            source = {"type": "stac-api", "url": url, "page_size": args.page_size}
            (folder / "spec.yaml").write_text(
                "version: 1\ndefaults: {output_dir: ./out}\ndatasets:\n  - id: bench\n"
                f"    source: {json.dumps(source)}\n"
            )
            cmd = [sys.executable, "-m", "mlhub_sync", "plan", "spec.yaml", "-q"]
            fresh = timed(cmd, folder)
            again = timed(cmd, folder)
        rows.append((n, fresh, again))
    print("| items | fresh plan: wall, CPU, peak RSS | re-plan: wall, CPU, peak RSS |")
    print("|---|---|---|")
    for n, (w1, c1, r1), (w2, c2, r2) in rows:
        print(
            f"| {n:,} | {w1:.1f} s, {c1:.1f} s, {r1 / 1024:.0f} MiB "
            f"| {w2:.1f} s, {c2:.1f} s, {r2 / 1024:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
