"""The clients' output on disk: checked after every run (every file present with its size, a
sample byte for byte, nothing else left behind, one GET per file), summed while a run is
under way (S6) and damaged (S5)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from pathlib import Path

from gen_catalog import asset_md5, asset_names

from bench.common import MIB, log
from bench.data import DatasetDef
from bench.measure import Run


def check_tree(
    dataset_dir: Path,
    ds: DatasetDef,
    run: Run,
    sample: int = 8,
    only_assets: bool = False,
) -> None:
    """Every asset file present with its size; a sample checked byte for byte (MD5).

    With `only_assets` (the URL-list and STAC references, which write nothing else), any
    other file below `dataset_dir` (a temporary or control file left behind) is a problem
    too."""
    files = total = 0
    others: list[str] = []
    for dirpath, _, names in os.walk(dataset_dir):
        for name in names:
            if name.endswith(".tif"):
                files += 1
                total += os.stat(os.path.join(dirpath, name)).st_size
            else:
                others.append(name)
    problems = []
    if files != ds.assets or total != ds.total_bytes:
        problems.append(
            f"{files:,} files / {total:,} B, expected {ds.assets:,} / {ds.total_bytes:,}"
        )
    if only_assets and others:
        problems.append(f"{len(others):,} other files left (e.g. {others[0]})")
    rng = random.Random(run.rnd)
    names = list(asset_names(ds.id, ds.assets, ds.per_item))
    for name in rng.sample(names, min(sample, len(names))):
        path = dataset_dir.parent / name
        try:
            digest = md5_file(path)
        except OSError:
            digest = "missing"
        if digest != asset_md5(name, ds.size):
            problems.append(f"{name}: content differs")
            break
    if problems:
        run.ok = False
        run.note = (run.note + " INCOMPLETE: " + "; ".join(problems)).strip()
        log(f"  check failed: {run.note}")


def check_requests(ds: DatasetDef, run: Run) -> None:
    """A reference fed the URL list or the items should send one GET per asset and nothing
    else (no robots.txt, no HEAD, no retry): a note if it did not."""
    lg = run.log
    if lg.requests != ds.assets or lg.asset_requests != ds.assets or set(lg.methods) != {"GET"}:
        run.note = (
            run.note + f" {lg.requests:,} requests ({lg.asset_requests:,} for assets, "
            f"{lg.methods}) for {ds.assets:,} files"
        ).strip()
        log(f"  requests: {run.note}")


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        while block := fh.read(MIB):
            h.update(block)
    return h.hexdigest()


def tree_bytes(root: Path) -> int:
    """Bytes of the asset files below root, `.part` files included."""
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            if ".tif" in name:
                with contextlib.suppress(OSError):  # renamed meanwhile
                    total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def damage(out: Path, ds: DatasetDef) -> tuple[int, int]:
    """Delete 1% of the asset files and truncate another 1% to half their size.

    Returns (files damaged, bytes missing)."""
    files = missing = 0
    for i, name in enumerate(asset_names(ds.id, ds.assets, ds.per_item)):
        if i % 100 == 0:
            (out / name).unlink()
            files, missing = files + 1, missing + ds.size
        elif i % 100 == 50:
            os.truncate(out / name, ds.size // 2)
            files, missing = files + 1, missing + ds.size - ds.size // 2
    return files, missing
