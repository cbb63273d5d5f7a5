"""A real STAC API on 127.0.0.1 for the tests: ``rustac serve`` (PyPI ``rustac``, its in-memory
backend) loaded with documents the test writes, in a subprocess ended by its PID."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.support.listening import wait_until_listening


def rustac_binary() -> str:
    """The ``rustac`` executable of this environment (installed by the test extra)."""
    here = Path(sys.executable).parent / "rustac"
    found = str(here) if here.exists() else shutil.which("rustac")
    if found is None:  # not a skip: the test extra installs it, so its absence is a bug
        raise RuntimeError("rustac is not installed: pip install -e '.[test]'")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def stac_api(
    folder: Path, collections: Sequence[dict[str, Any]], items: Sequence[dict[str, Any]]
) -> Iterator[str]:
    """Serve ``collections`` and ``items`` as a STAC API; yield its root URL."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for collection in collections:
        path = folder / f"collection-{collection['id']}.json"
        path.write_text(json.dumps(collection))
        files.append(str(path))
    if items:
        path = folder / "items.json"
        path.write_text(json.dumps({"type": "FeatureCollection", "features": list(items)}))
        files.append(str(path))
    port = _free_port()
    proc = subprocess.Popen(
        [rustac_binary(), "serve", "--addr", f"127.0.0.1:{port}", *files],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "RUST_LOG": "error"},
    )
    try:
        wait_until_listening(port, proc, "rustac serve", within=20.0)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def collection(collection_id: str) -> dict[str, Any]:
    """A minimal valid STAC collection."""
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": collection_id,
        "description": f"the {collection_id} collection",
        "license": "CC-BY-4.0",
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [["2019-01-01T00:00:00Z", None]]},
        },
        "links": [],
    }


def item(
    collection_id: str,
    item_id: str,
    lon: float,
    day: int,
    assets: dict[str, str],
    **properties: Any,
) -> dict[str, Any]:
    """A point item on 2019-04-``day`` with ``assets`` {key: href} and more ``properties``
    (``eo_cloud_cover=3`` is ``eo:cloud_cover: 3``)."""
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": collection_id,
        "geometry": {"type": "Point", "coordinates": [lon, 0.0]},
        "bbox": [lon, 0.0, lon, 0.0],
        "properties": {
            "datetime": f"2019-04-{day:02d}T12:00:00Z",
            **{k.replace("_", ":", 1): v for k, v in properties.items()},
        },
        "links": [],
        "assets": {key: {"href": href} for key, href in assets.items()},
    }
