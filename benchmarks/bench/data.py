"""The data sets (full and `--quick` sizes) and what the server serves for each: the catalog
archive, the emulated MLHub API documents and the asset files, generated once and cached."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from gen_assets import write_assets
from gen_catalog import collection_ids, generate

from bench.common import KIB, MIB, log


@dataclass(frozen=True)
class DatasetDef:
    id: str
    assets: int
    size: int
    files: bool  # the server has the asset files (not only the catalog)
    per_item: int = 4

    @property
    def total_bytes(self) -> int:
        return self.assets * self.size


@dataclass(frozen=True)
class Sizes:
    s1: DatasetDef  # many small files (S1, S3 at 20k, S5, S6 small)
    s2: DatasetDef  # few large files (S2, S6 large)
    big: DatasetDef  # catalog only, client-side files (S3 at 1M, S4 at 1M)
    mid: DatasetDef  # catalog only (S4 at 100k)


FULL = Sizes(
    s1=DatasetDef("bench20k", 20_000, 16 * KIB, True),
    s2=DatasetDef("bench64", 64, 16 * MIB, True),
    big=DatasetDef("bench1m", 1_000_000, KIB, False),
    mid=DatasetDef("bench100k", 100_000, KIB, False),
)
QUICK = Sizes(
    s1=DatasetDef("quick2k", 2_000, 16 * KIB, True),
    s2=DatasetDef("quick8", 8, 16 * MIB, True),
    big=DatasetDef("quick50k", 50_000, KIB, False),
    mid=DatasetDef("quick10k", 10_000, KIB, False),
)


def prepare_server_data(root: Path, ds: DatasetDef, base_url: str) -> None:
    """Catalog archive, API documents and (if `ds.files`) asset files, cached across runs."""
    meta = {"assets": ds.assets, "size": ds.size, "per_item": ds.per_item, "base_url": base_url}
    meta_path = root / "archives" / f"{ds.id}.meta.json"
    archive = root / "archives" / f"{ds.id}.tar.gz"
    if not (archive.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == meta):
        log(f"generating the catalog archive of {ds.id} ({ds.assets:,} assets)")
        generate(archive, ds.assets, ds.per_item, ds.id, base_url, ds.size)
        meta_path.write_text(json.dumps(meta))
    api = root / "api"
    (api / "datasets").mkdir(parents=True, exist_ok=True)
    (api / "catalog-info").mkdir(parents=True, exist_ok=True)
    collections = [{"id": c, "types": ["source_imagery"]} for c in collection_ids(ds.id)]
    (api / "datasets" / f"{ds.id}.json").write_text(
        json.dumps({"id": ds.id, "title": f"benchmark {ds.id}", "collections": collections})
    )
    (api / "catalog-info" / f"{ds.id}.json").write_text(
        json.dumps(
            {"stac_catalog_size": archive.stat().st_size, "estimated_dataset_size": ds.total_bytes}
        )
    )
    if ds.files:
        started = time.monotonic()
        if write_assets(root / "blobs", ds.id, ds.assets, ds.size, ds.per_item, quiet=True):
            log(f"wrote {ds.assets:,} asset files of {ds.id} in {time.monotonic() - started:.0f} s")
