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

This file is the command line and `main` (data, server, rounds, report); the pieces are in
`bench/`, one concern per module (listed in `bench/__init__.py`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench.common import log  # noqa: E402
from bench.data import FULL, QUICK, DatasetDef, prepare_server_data  # noqa: E402
from bench.machine import code_state, fs_of, machine, versions  # noqa: E402
from bench.profile import run_profile  # noqa: E402
from bench.report import load_summary, mlhub_table, ratios, table  # noqa: E402
from bench.scenarios import Bench  # noqa: E402
from bench.server import Nginx, free_port  # noqa: E402


def on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally` that stops nginx


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
        help="also time (every scenario, interleaved) the mlhub_sync package in DIR, e.g. an "
        "older commit from `git archive COMMIT | tar -x -C DIR`; repeatable",
    )
    p.add_argument(
        "--compare-env",
        action="append",
        default=[],
        metavar="LABEL:VAR=VALUE",
        help="also time (every scenario, interleaved) the working tree with VAR=VALUE set, "
        "labelled mlhub-sync@LABEL, e.g. debug:MLHUB_SYNC_X=1; repeatable",
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
            run_profile(bench, sizes.s1)
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
