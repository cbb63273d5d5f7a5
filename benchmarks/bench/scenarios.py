"""The scenarios: S1/S2 (a fresh download by every tool, one round; S1 chains S3 at 20k and
S5 onto mlhub-sync's and radiant-mlhub's output), S3 at 1M (adopted files, then no-op
re-applies), S4 (`plan` from a fresh archive) and S6 (SIGKILL halfway, then resume)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from gen_assets import write_assets

from bench.checks import check_requests, check_tree, damage, tree_bytes
from bench.common import log
from bench.data import DatasetDef
from bench.tools import Tools


class Bench(Tools):
    """Every scenario, on the `Tools` and the `Runner` below them."""

    def transfer_round(
        self, scen: str, ds: DatasetDef, rnd: int, chain: bool, refs: bool, radiant: bool
    ) -> None:
        """One round of a fresh-download scenario (S1 or S2) for every tool.

        With `chain` (S1), mlhub-sync's output then serves S3 (no-op re-apply) and S5 (damage,
        re-apply), and radiant-mlhub's its re-run and its S5.
        """
        a = self.args
        for w in a.workers:
            # other versions or settings (--compare-src/-env) right before this one, each through
            # the same chain, so every scenario is an interleaved A/B
            for label, extra in [*self.variants, ("", {})]:
                case = self.out_root(f"{scen.lower()}-mlhub{label}-w{w}")
                spec = self.spec(case, ds, w)
                env = {**self.env, **extra}
                tool = f"mlhub-sync{label} w={w}"
                cmd = self.mlhub_cmd(spec)
                run = self.measure(scen, tool, rnd, cmd, case, ds.assets, ds.total_bytes, env=env)
                check_tree(case / "out" / ds.id, ds, run)
                if chain and w == a.workers[0]:
                    if "S3" in a.scenarios:
                        self.measure("S3", tool, rnd, cmd, case, ds.assets, 0, env=env)
                    if "S5" in a.scenarios:
                        files, nbytes = damage(case / "out", ds)
                        run = self.measure("S5", tool, rnd, cmd, case, files, nbytes, env=env)
                        check_tree(case / "out" / ds.id, ds, run)
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
                check_tree(dest / ds.id, ds, run, only_assets=strict)
                if strict:
                    check_requests(ds, run)
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
            check_tree(out / ds.id, ds, run)
            if chain and "S3" in a.scenarios:
                self.measure("S3", tool, rnd, cmd, case, ds.assets, 0, rt)
            if chain and "S5" in a.scenarios:
                files, nbytes = damage(out, ds)
                run = self.measure("S5", tool, rnd, cmd, case, files, nbytes, rt)
                check_tree(out / ds.id, ds, run)
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
            for label, extra in [*self.variants, ("", {})]:
                self.measure(
                    f"S3 {ds.assets:,}",
                    f"mlhub-sync{label} w={w}",
                    rnd,
                    self.mlhub_cmd(spec),
                    case,
                    ds.assets,
                    0,
                    a.timeout * 2,
                    env={**self.env, **extra},
                )
        if not a.keep:
            shutil.rmtree(case, ignore_errors=True)

    def s4(self, sizes: Sequence[DatasetDef]) -> None:
        a = self.args
        for rnd in range(1, a.runs + 1):
            for ds in sizes:
                for label, extra in [*self.variants, ("", {})]:
                    case = self.out_root(f"s4-{ds.id}")
                    spec = self.spec(case, ds, a.workers[0])
                    self.measure(
                        f"S4 {ds.assets:,}",
                        f"mlhub-sync{label} plan",
                        rnd,
                        self.mlhub_cmd(spec, "plan"),
                        case,
                        ds.assets,
                        0,
                        a.timeout * 2,
                        env={**self.env, **extra},
                    )
                    shutil.rmtree(case, ignore_errors=True)

    def s6(self, ds: DatasetDef, rnd: int) -> None:
        """SIGKILL an apply once half the asset bytes arrived, then resume it (every version
        compared, each killing and resuming its own run)."""
        for label, extra in [*self.variants, ("", {})]:
            self._s6(ds, rnd, label, {**self.env, **extra})

    def _s6(self, ds: DatasetDef, rnd: int, label: str, env: dict[str, str]) -> None:
        a = self.args
        w = a.workers[0]
        case = self.out_root(f"s6-{ds.id}{label}")
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
                env=env,
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
            f"mlhub-sync{label} w={w} resume",
            rnd,
            self.mlhub_cmd(spec),
            case,
            ds.assets,
            ds.total_bytes,
            env=env,
        )
        check_tree(dataset_dir, ds, run)
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
