"""What ran where, for the report's header: the commit and a digest of the mlhub_sync sources
the clients import, the machine, the file system of a folder, the tools' versions."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent  # benchmarks/bench/ -> the repository


def code_state() -> tuple[str, str]:
    """(commit and whether mlhub_sync/ differs from it, a digest of mlhub_sync/'s sources).

    Someone may be editing the package while the benchmark runs: the digest is taken at the
    start and at the end of a run, and the report says if it changed."""
    repo = REPO
    spec = importlib.util.find_spec("mlhub_sync")  # what the clients import (PYTHONPATH too)
    package = Path(spec.origin).parent if spec and spec.origin else repo / "mlhub_sync"
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.read_bytes())
    if package.resolve() != (repo / "mlhub_sync").resolve():
        return f"the copy in {package.parent}", digest.hexdigest()[:12]
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(repo)]
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "mlhub_sync"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        commit = head + (" + uncommitted changes in mlhub_sync/" if dirty else "")
    return commit, digest.hexdigest()[:12]


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["lscpu"], check=False, capture_output=True, text=True, timeout=10
        ).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        cpu = m.group(1).strip() if m else cpu
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def fs_of(path: Path) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = (
            subprocess.run(
                ["df", "--output=fstype,target", str(path)],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            )
            .stdout.split("\n")[1]
            .split()
        )
        return f"{out[0]} ({out[1]})"
    return "?"


def versions(radiant_python: Path, stac_asset: Path) -> str:
    def first(cmd: list[str]) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError, IndexError):
            p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=20)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        return "?"

    return ", ".join(
        [
            first(["nginx", "-v"]).replace("nginx version: ", ""),
            first(["curl", "--version"]).split(" (")[0],
            first(["aria2c", "--version"]).replace(" version", ""),
            first(["wget2", "--version"]).replace("GNU Wget2", "wget2").split(" - ")[0],
            "stac-asset "
            + first(
                [
                    str(stac_asset.parent / "python"),
                    "-c",
                    "import importlib.metadata as m; print(m.version('stac-asset'))",
                ]
            ),
            "radiant-mlhub "
            + first(
                [
                    str(radiant_python),
                    "-c",
                    "import radiant_mlhub; print(radiant_mlhub.__version__)",
                ]
            ),
            "mlhub-sync " + first([sys.executable, "-m", "mlhub_sync", "--version"]).split()[-1],
        ]
    )
