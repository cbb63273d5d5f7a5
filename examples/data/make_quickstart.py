"""Regenerate the bundled quickstart dataset (deterministic: same bytes every time).

    python examples/data/make_quickstart.py

Writes ``examples/data/quickstart/``:

- ``quickstart_floods.tar.gz``: an MLHub-style catalog archive (top folder = dataset id) whose
  asset hrefs are *relative* (``../../../assets/...``). mlhub-sync resolves a relative href in
  an archive as if the archive were unpacked beside itself, so they point into ``assets/``;
- ``assets/``: the files (tiny valid GeoTIFF-style TIFFs, GeoJSON labels, a shared README);
- ``catalog.json`` and the collection folders: the same catalog unpacked (hrefs into
  ``assets/``), for the ``stac`` source example. Local hrefs are copied only from the spec's
  ``allow_local`` folders, so the example specs allow ``assets/``.

Every asset carries ``file:size`` and an MD5 ``file:checksum``, so each download is verified.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import struct
import tarfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "quickstart"
DATASET = "quickstart_floods"
EPOCH = 1_700_000_000
ORIGIN = (-13.30, 8.42)  # near Freetown, Sierra Leone, like the seed notebook's AOI


def tiff(seed: str, size: int = 16) -> bytes:
    """A minimal valid baseline TIFF: ``size`` x ``size`` 8-bit grayscale, uncompressed."""
    pixels = bytes((hashlib.sha256(f"{seed}{i}".encode()).digest()[0]) for i in range(size * size))
    entries = [  # tag, type (3 short, 4 long), count, value
        (256, 3, 1, size),
        (257, 3, 1, size),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (277, 3, 1, 1),
        (278, 3, 1, size),
        (279, 4, 1, len(pixels)),
    ]
    ifd_offset = 8 + len(pixels)
    out = io.BytesIO()
    out.write(b"II*\x00" + struct.pack("<I", ifd_offset))
    out.write(pixels)
    out.write(struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        out.write(struct.pack("<HHI", tag, kind, count) + packed)
    out.write(struct.pack("<I", 0))
    return out.getvalue()


def polygon(cx: float, cy: float, d: float = 0.02) -> dict[str, Any]:
    ring = [
        [cx - d, cy - d],
        [cx + d, cy - d],
        [cx + d, cy + d],
        [cx - d, cy + d],
        [cx - d, cy - d],
    ]
    return {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for x, y in ring]]}


class Build:
    def __init__(self) -> None:
        self.members: list[tuple[str, bytes]] = []

    def asset(self, rel: str, data: bytes, media_type: str, roles: list[str]) -> dict[str, Any]:
        path = HERE / "assets" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return {
            "href": f"../../../assets/{rel}",
            "type": media_type,
            "roles": roles,
            "file:size": len(data),
            "file:checksum": "d50110" + hashlib.md5(data).hexdigest(),
        }

    def doc(self, rel: str, obj: dict[str, Any]) -> None:
        self.members.append((rel, (json.dumps(obj, indent=2) + "\n").encode()))


def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    b = Build()
    readme = b.asset(
        "README.md",
        b"# quickstart_floods\n\nA tiny synthetic dataset bundled "
        b"with mlhub-sync for the offline quickstart.\n",
        "text/markdown",
        ["metadata"],
    )
    collections = []
    for cid, kind in (("floods_source", "source"), ("floods_labels", "labels")):
        items = []
        for i in range(4):
            item_id = f"{cid}_{i}"
            cx, cy = ORIGIN[0] + 0.05 * i, ORIGIN[1] + 0.03 * i
            geometry = polygon(cx, cy)
            xs = [p[0] for p in geometry["coordinates"][0]]
            ys = [p[1] for p in geometry["coordinates"][0]]
            if kind == "source":
                assets = {
                    band: b.asset(
                        f"{cid}/{item_id}/{band}.tif",
                        tiff(f"{item_id}{band}"),
                        "image/tiff; application=geotiff",
                        ["data"],
                    )
                    for band in ("B02", "B03", "B04", "B08")
                }
                props: dict[str, Any] = {"datetime": f"2019-04-0{i + 1}T10:30:00Z"}
            else:
                label = {
                    "type": "FeatureCollection",
                    "features": [
                        {"type": "Feature", "geometry": geometry, "properties": {"flooded": i % 2}}
                    ],
                }
                assets = {
                    "labels": b.asset(
                        f"{cid}/{item_id}/labels.geojson",
                        json.dumps(label).encode(),
                        "application/geo+json",
                        ["labels"],
                    )
                }
                props = {
                    "datetime": None,
                    "start_datetime": f"2019-0{3 + i}-01T00:00:00Z",
                    "end_datetime": f"2019-0{3 + i}-28T23:59:59Z",
                }
            assets["documentation"] = readme
            b.doc(
                f"{cid}/{item_id}/{item_id}.json",
                {
                    "type": "Feature",
                    "stac_version": "1.0.0",
                    "stac_extensions": [
                        "https://stac-extensions.github.io/file/v2.1.0/schema.json"
                    ],
                    "id": item_id,
                    "collection": cid,
                    "geometry": geometry,
                    "bbox": [min(xs), min(ys), max(xs), max(ys)],
                    "properties": props,
                    "links": [
                        {"rel": "collection", "href": "../collection.json"},
                        {"rel": "parent", "href": "../collection.json"},
                        {"rel": "root", "href": "../../catalog.json"},
                    ],
                    "assets": assets,
                },
            )
            items.append(item_id)
        b.doc(
            f"{cid}/collection.json",
            {
                "type": "Collection",
                "stac_version": "1.0.0",
                "id": cid,
                "description": f"quickstart {kind}",
                "license": "CC-BY-4.0",
                "extent": {
                    "spatial": {"bbox": [[-13.4, 8.3, -13.0, 8.6]]},
                    "temporal": {"interval": [["2019-03-01T00:00:00Z", None]]},
                },
                "links": [{"rel": "item", "href": f"./{i}/{i}.json"} for i in items]
                + [{"rel": "root", "href": "../catalog.json"}],
            },
        )
        collections.append(cid)
    b.doc(
        "catalog.json",
        {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": DATASET,
            "description": "mlhub-sync quickstart dataset",
            "links": [{"rel": "child", "href": f"./{c}/collection.json"} for c in collections],
        },
    )
    write_archive(HERE / f"{DATASET}.tar.gz", b.members)
    for rel, data in b.members:  # the same catalog unpacked here, for the stac source example
        target = HERE / rel  # (one folder less deep than inside the archive's top folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.replace(b'"../../../assets/', b'"../../assets/'))


def write_archive(path: Path, members: list[tuple[str, bytes]]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(f"{DATASET}/{name}")
            info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
            tar.addfile(info, io.BytesIO(data))
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=EPOCH) as gz:
        gz.write(buffer.getvalue())


if __name__ == "__main__":
    main()
