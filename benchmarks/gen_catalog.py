"""Stream a synthetic MLHub-style catalog archive of any size (memory stays flat).

    python benchmarks/gen_catalog.py OUT.tar.gz --assets 1000000 [--per-item 4]
        [--dataset bench] [--base-url http://127.0.0.1:8080/blobs]

Items spread over 4 collections, with polygons over a grid, daily datetimes over two years,
`file:size` on every asset and an MD5 `file:checksum` of the bytes `asset_bytes()` gives, so a
server can serve matching files (`gen_assets.py` writes them; `run.py` serves them).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

EPOCH = 1_700_000_000


def asset_bytes(name: str, size: int) -> bytes:
    """Deterministic content of an asset."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // 32 + 1))[:size]


def asset_chunks(name: str, size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    """`asset_bytes(name, size)` in pieces of at most `chunk` bytes (flat memory)."""
    if size <= chunk:
        yield asset_bytes(name, size)
        return
    seed = hashlib.sha256(name.encode()).digest()
    block = seed * (chunk // 32)  # a multiple of the 32-byte period: pieces line up
    full, rest = divmod(size, len(block))
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]


def asset_md5(name: str, size: int) -> str:
    """Hex MD5 of `asset_bytes(name, size)`."""
    digest = hashlib.md5()
    for piece in asset_chunks(name, size):
        digest.update(piece)
    return digest.hexdigest()


def collection_ids(dataset: str) -> list[str]:
    return [f"{dataset}_c{i}" for i in range(4)]


def asset_names(dataset: str, assets: int, per_item: int = 4) -> Iterator[str]:
    """Every asset's name (its href and local path below the dataset's parent), in catalog
    order: `{dataset}/{collection}/{item_id}/{key}.tif`."""
    collections = collection_ids(dataset)
    for i in range(assets // per_item):
        collection = collections[i % 4]
        item_id = f"{collection}_{i:07d}"
        for k in range(per_item):
            yield f"{dataset}/{collection}/{item_id}/B{k + 1:02d}.tif"


def item_doc(
    dataset: str, collection: str, index: int, per_item: int, base_url: str, size: int
) -> dict[str, object]:
    item_id = f"{collection}_{index:07d}"
    x = -180 + (index % 3600) * 0.1
    y = -60 + (index // 3600 % 1200) * 0.1
    ring = [[x, y], [x + 0.09, y], [x + 0.09, y + 0.09], [x, y + 0.09], [x, y]]
    day = index % 730
    assets = {}
    for k in range(per_item):
        key = f"B{k + 1:02d}"
        name = f"{dataset}/{collection}/{item_id}/{key}.tif"
        assets[key] = {
            "href": f"{base_url}/{name}",
            "type": "image/tiff",
            "file:size": size,
            "file:checksum": "d50110" + asset_md5(name, size),
        }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": collection,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [x, y, x + 0.09, y + 0.09],
        "properties": {
            "datetime": time.strftime(
                "%Y-%m-%dT12:00:00Z", time.gmtime(1_546_300_800 + day * 86400)
            )
        },
        "links": [],
        "assets": assets,
    }


def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
    tar.addfile(info, io.BytesIO(data))


def generate(out: Path, assets: int, per_item: int, dataset: str, base_url: str, size: int) -> None:
    items = assets // per_item
    collections = collection_ids(dataset)
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=EPOCH, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w|") as tar,
    ):
        add(
            tar,
            f"{dataset}/catalog.json",
            json.dumps(
                {
                    "type": "Catalog",
                    "stac_version": "1.0.0",
                    "id": dataset,
                    "description": "bench",
                    "links": [
                        {"rel": "child", "href": f"./{c}/collection.json"} for c in collections
                    ],
                }
            ).encode(),
        )
        for c in collections:
            add(
                tar,
                f"{dataset}/{c}/collection.json",
                json.dumps(
                    {
                        "type": "Collection",
                        "stac_version": "1.0.0",
                        "id": c,
                        "license": "x",
                        "description": c,
                        "extent": {},
                        "links": [],
                    }
                ).encode(),
            )
        for i in range(items):
            c = collections[i % 4]
            doc = item_doc(dataset, c, i, per_item, base_url, size)
            add(
                tar,
                f"{dataset}/{c}/{doc['id']}/{doc['id']}.json",
                json.dumps(doc, separators=(",", ":")).encode(),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--per-item", type=int, default=4)
    parser.add_argument("--dataset", default="bench")
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/blobs")
    parser.add_argument("--size", type=int, default=16 * 1024)
    args = parser.parse_args()
    generate(args.out, args.assets, args.per_item, args.dataset, args.base_url, args.size)


if __name__ == "__main__":
    main()
