"""`--profile`: one S1 apply under py-spy (all threads, then only the GIL holder) and one under
`strace -f -c`, and their summaries: top functions by own and inclusive samples, system calls
per file."""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from pathlib import Path

from bench.data import DatasetDef
from bench.tools import Tools


def run_profile(bench: Tools, ds: DatasetDef) -> None:
    """One S1 apply under py-spy (all threads, and only the GIL holder), summarised."""
    a = bench.args
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    outdir = Path(a.out_dir) / "profile"
    outdir.mkdir(parents=True, exist_ok=True)
    for mode, flags in (("cpu", []), ("gil", ["--gil"])):
        case = bench.out_root(f"profile-{mode}")
        spec = bench.spec(case, ds, a.workers[0])
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
            *bench.mlhub_cmd(spec),
        ]
        bench.measure(
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
        case = bench.out_root("profile-strace")
        spec = bench.spec(case, ds, a.workers[0])
        counts = outdir / "s1-strace.txt"
        cmd = [strace, "-f", "-c", "-o", str(counts), *bench.mlhub_cmd(spec)]
        bench.measure(
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
