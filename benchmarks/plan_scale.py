"""Measure `mlhub-sync plan` on generated catalogs: wall time and peak RSS, fresh and re-plan.

    python benchmarks/plan_scale.py --assets 100000 1000000 [--workdir /dev/shm/mlhub-bench]

For each size: generate the archive (cached), then run `mlhub-sync plan` in a fresh output
folder (fetch + verify + index + select + plan) and again (index up to date), each under
`/usr/bin/time -v`. Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, user+sys seconds, peak RSS KiB) of one command."""
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True, check=True
    )
    err = proc.stderr
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", err)
    user = re.search(r"User time \(seconds\): (\S+)", err)
    system = re.search(r"System time \(seconds\): (\S+)", err)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    assert wall and user and system and rss, err
    parts = [float(p) for p in wall.group(1).split(":")]
    seconds = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) > 2 else 0)
    return seconds, float(user.group(1)) + float(system.group(1)), int(rss.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/dev/shm/mlhub-bench"))
    args = parser.parse_args()
    rows = []
    for n in args.assets:
        folder = args.workdir / f"plan-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        archive = folder / "bench.tar.gz"
        if not archive.exists():
            subprocess.run(
                [sys.executable, str(HERE / "gen_catalog.py"), str(archive), "--assets", str(n)],
                check=True,
            )
        (folder / "spec.yaml").write_text(
            "version: 1\ndefaults: {output_dir: ./out}\ndatasets:\n"
            "  - id: bench\n    source: {type: archive, path: ./bench.tar.gz}\n"
        )
        shutil.rmtree(folder / "out", ignore_errors=True)
        cmd = [sys.executable, "-m", "mlhub_sync", "plan", "spec.yaml", "-q"]
        fresh = timed(cmd, folder)
        again = timed(cmd, folder)
        rows.append((n, archive.stat().st_size, fresh, again))
    print(
        "| assets | archive | fresh plan: wall / CPU / peak RSS | re-plan: wall / CPU / peak RSS |"
    )
    print("|---:|---:|---|---|")
    for n, size, (w1, c1, r1), (w2, c2, r2) in rows:
        print(
            f"| {n:,} | {size / 2**20:.1f} MiB | {w1:.1f} s / {c1:.1f} s / {r1 / 1024:.0f} MiB "
            f"| {w2:.1f} s / {c2:.1f} s / {r2 / 1024:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
