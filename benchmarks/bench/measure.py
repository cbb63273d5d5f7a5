"""One client run, measured: under `/usr/bin/time -v` (wall, user+sys CPU of the process tree,
peak RSS) with a timeout, the server's access log read around it, and mlhub-sync's own
account (`--json`) kept. `Run` is one such measurement; `Runner` holds them all, with the
clients' environment and the folders they write in."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import MIB, log
from bench.server import LogStats, Nginx

API_KEY = "bench-dummy-key"
TIME_FIELDS = {
    "user": r"User time \(seconds\): (\S+)",
    "sys": r"System time \(seconds\): (\S+)",
    "rss": r"Maximum resident set size \(kbytes\): (\d+)",
}


@dataclass
class Run:
    scenario: str
    tool: str
    rnd: int
    wall: float
    user: float
    sys: float
    rss_kib: int
    files: int  # files the run was meant to handle (per scenario)
    nbytes: int  # payload bytes it was meant to fetch
    log: LogStats
    ok: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall if self.wall else 0.0

    @property
    def mib_per_s(self) -> float:
        return self.nbytes / MIB / self.wall if self.wall else 0.0


class Runner:
    """Runs and measures clients against `nginx`, keeping every `Run` in `runs`."""

    def __init__(self, args: argparse.Namespace, nginx: Nginx, run_dir: Path) -> None:
        self.args, self.nginx, self.run_dir = args, nginx, run_dir
        self.runs: list[Run] = []
        self.env = dict(os.environ)
        self.env.update(
            MLHUB_API_KEY=API_KEY,
            MLHUB_ROOT_URL=nginx.base + "/",
            MLHUB_HOME=str(run_dir / "mlhub-home"),
            NO_COLOR="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        self.env.pop("MLHUB_PROFILE", None)
        self.n = 0

    def timed(
        self, cmd: Sequence[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
    ) -> tuple[int, float, dict[str, float], str]:
        """Run cmd under /usr/bin/time -v: (exit code, wall s, {user, sys, rss}, stdout)."""
        self.n += 1
        tfile = self.run_dir / f"time-{self.n}.txt"
        out = self.run_dir / f"out-{self.n}.txt"
        err = self.run_dir / f"err-{self.n}.txt"
        with out.open("wb") as o, err.open("wb") as e:
            started = time.monotonic()
            proc = subprocess.Popen(
                ["/usr/bin/time", "-v", "-o", str(tfile), *cmd],
                cwd=cwd,
                env=env or self.env,
                stdout=o,
                stderr=e,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                raise RuntimeError(f"timed out after {timeout} s: {' '.join(cmd)}") from None
            except BaseException:  # interrupted: take the client down with us
                kill_group(proc)
                raise
            wall = time.monotonic() - started
        text = tfile.read_text(errors="replace")
        usage: dict[str, float] = {}
        for key, pattern in TIME_FIELDS.items():
            m = re.search(pattern, text)
            usage[key] = float(m.group(1)) if m else 0.0
        stdout = out.read_text(errors="replace")
        if rc != 0:
            tail = err.read_text(errors="replace")[-2000:]
            log(f"exit {rc}: {' '.join(cmd)}\n{tail}")
        else:
            for p in (out, err, tfile):
                p.unlink(missing_ok=True)
        return rc, wall, usage, stdout

    def measure(
        self,
        scenario: str,
        tool: str,
        rnd: int,
        cmd: Sequence[str],
        cwd: Path,
        files: int,
        nbytes: int,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> Run:
        mark = self.nginx.mark()
        load_before = os.getloadavg()[0]
        rc, wall, usage, stdout = self.timed(cmd, cwd, timeout or self.args.timeout, env)
        time.sleep(0.05)  # let nginx finish its log lines
        run = Run(
            scenario,
            tool,
            rnd,
            wall,
            usage["user"],
            usage["sys"],
            int(usage["rss"]),
            files,
            nbytes,
            self.nginx.since(mark),
            ok=rc == 0,
            note="" if rc == 0 else f"exit {rc}",
        )
        run.extra["load1"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        if tool.startswith("mlhub-sync") and stdout.strip().startswith("{"):
            with contextlib.suppress(ValueError, KeyError, IndexError):
                doc = json.loads(stdout)
                res = doc["datasets"][0].get("result")
                if res:
                    run.extra["result"] = {
                        k: res[k]
                        for k in (
                            "downloaded",
                            "resumed",
                            "replaced",
                            "adopted",
                            "failed",
                            "bytes_transferred",
                            "seconds",
                        )
                    }
                else:
                    run.extra["actions"] = {
                        k: v["files"] for k, v in doc["datasets"][0]["actions"].items()
                    }
        self.runs.append(run)
        bad = {s: n for s, n in run.log.statuses.items() if not s.startswith(("2", "3"))}
        if bad:
            run.note = (run.note + f" HTTP {bad}").strip()
        log(
            f"{scenario} {tool} round {rnd}: {wall:.2f} s wall, {run.cpu:.2f} s CPU, "
            f"{run.rss_kib / 1024:.0f} MiB, {run.files_per_s:,.0f} files/s, "
            f"{run.mib_per_s:,.1f} MiB/s, {run.log.requests:,} requests "
            f"({run.log.connections:,} connections) {run.note}"
        )
        return run

    # --- tools -----------------------------------------------------------------------------
    def out_root(self, name: str) -> Path:
        path = Path(self.args.out_dir) / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group we started for `proc` (its id is the child's pid)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
