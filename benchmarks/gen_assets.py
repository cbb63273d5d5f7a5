"""Write the asset files of a generated catalog (streaming: memory stays flat).

    python benchmarks/gen_assets.py ROOT --assets 20000 --size 16384 [--per-item 4]
        [--dataset bench]

Writes `ROOT/{dataset}/{collection}/{item_id}/{key}.tif` with the bytes `asset_bytes()` gives,
for exactly the assets `gen_catalog.py` lists with the same arguments. The layout below ROOT is
the one the hrefs use below `--base-url` and the one mlhub-sync (and radiant-mlhub) write below
their output folder, so the same files can be served (ROOT = the server's `blobs/`) or placed
on the client side (ROOT = an output folder) to stand for an earlier download.

A marker `ROOT/{dataset}/.assets-{assets}-{size}-{per_item}` records a completed run; a second
run with the same arguments returns at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen_catalog import asset_chunks, asset_names


def marker(root: Path, dataset: str, assets: int, size: int, per_item: int) -> Path:
    return root / dataset / f".assets-{assets}-{size}-{per_item}"


def write_assets(
    root: Path, dataset: str, assets: int, size: int, per_item: int = 4, quiet: bool = False
) -> int:
    """Write every asset file; return how many were written (0 when already complete)."""
    done = marker(root, dataset, assets, size, per_item)
    if done.exists():
        return 0
    started = time.monotonic()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    last_dir = ""
    written = 0
    for name in asset_names(dataset, assets, per_item):
        folder, _, _ = name.rpartition("/")
        if folder != last_dir:  # assets of one item are consecutive: one mkdir per item
            os.makedirs(root / folder, exist_ok=True)
            last_dir = folder
        fd = os.open(root / name, flags, 0o644)
        try:
            for piece in asset_chunks(name, size):
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        written += 1
        if not quiet and written % 100_000 == 0:
            print(f"  {written:,} files, {time.monotonic() - started:.0f} s", file=sys.stderr)
    done.write_text(f"{assets} {size} {per_item}\n")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--assets", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--per-item", type=int, default=4)
    parser.add_argument("--dataset", default="bench")
    args = parser.parse_args()
    started = time.monotonic()
    n = write_assets(args.root, args.dataset, args.assets, args.size, args.per_item)
    print(f"{n:,} files written in {time.monotonic() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
