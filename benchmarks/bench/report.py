"""The report: the Markdown tables (every scenario and tool; mlhub-sync's own account), the
ratios (pair by pair within a round, median and range), the issue's targets marked met or
missed, and the formatting helpers they share."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from bench.common import KIB, MIB
from bench.measure import Run


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
