"""The clients' command lines and inputs: mlhub-sync's spec, the URL lists (curl, aria2c,
wget2), the ItemCollection (stac-asset) and radiant-mlhub's script; which references are
installed, and the other mlhub-sync versions or settings timed beside it (`--compare-src`,
`--compare-env`)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from gen_catalog import asset_names, collection_ids, item_doc

from bench.common import log
from bench.data import DatasetDef
from bench.measure import Runner
from bench.server import Nginx

RADIANT_SCRIPT = """
import sys
from radiant_mlhub import Dataset
Dataset.fetch_by_id(sys.argv[1]).download(output_dir=sys.argv[2])
"""


class Tools(Runner):
    """A `Runner` that knows how to invoke each tool."""

    def __init__(self, args: argparse.Namespace, nginx: Nginx, run_dir: Path) -> None:
        super().__init__(args, nginx, run_dir)
        self.radiant_python = Path(args.radiant_venv) / "bin" / "python"
        self.stac_asset = Path(args.stac_asset_venv) / "bin" / "stac-asset"
        self.use_wget2 = not args.no_wget2 and bool(shutil.which("wget2"))
        self.use_stac_asset = not args.no_stac_asset and os.access(self.stac_asset, os.X_OK)
        if not args.no_refs:
            for name, wanted, found in (
                ("wget2", not args.no_wget2, self.use_wget2),
                (f"stac-asset ({self.stac_asset})", not args.no_stac_asset, self.use_stac_asset),
            ):
                if wanted and not found:
                    log(f"WARNING: {name} not found (benchmarks/setup.sh installs it): skipped")
        # other versions or settings of mlhub-sync timed beside it: (label, extra environment)
        self.variants: list[tuple[str, dict[str, str]]] = []
        for src in args.compare_src:
            path = Path(src).resolve()
            if not (path / "mlhub_sync" / "__init__.py").exists():
                raise SystemExit(f"--compare-src {src}: no mlhub_sync/ package there")
            self.variants.append((f"@{path.name}", {"PYTHONPATH": str(path)}))
        for item in args.compare_env:
            label, _, assignment = item.partition(":")
            key, eq, value = assignment.partition("=")
            if not (label and key and eq):
                raise SystemExit(f"--compare-env {item!r}: use LABEL:VAR=VALUE")
            self.variants.append((f"@{label}", {key: value}))

    def spec(self, case: Path, ds: DatasetDef, workers: int) -> Path:
        case.mkdir(parents=True, exist_ok=True)
        path = case / "spec.yaml"
        path.write_text(
            "version: 1\n"
            "defaults:\n"
            f"  output_dir: {case / 'out'}\n"
            f"  source: {{type: mlhub, root_url: '{self.nginx.base}/'}}\n"
            f"  workers: {workers}\n"
            "  checksum: auto\n"
            "datasets:\n"
            f"  - id: {ds.id}\n"
        )
        return path

    def mlhub_cmd(self, spec: Path, command: str = "apply") -> list[str]:
        return [sys.executable, "-m", "mlhub_sync", command, str(spec), "--json", "-q"]

    def url_lists(self, ds: DatasetDef, dest: Path) -> tuple[Path, Path, Path]:
        """curl config, aria2c input and plain URL list (wget2) for `ds`, writing below `dest`
        (wget2 gets the destination on its command line: `wget2_cmd`)."""
        lists = self.run_dir / "lists"
        lists.mkdir(exist_ok=True)
        curl, aria = lists / f"{ds.id}.curl", lists / f"{ds.id}.aria2"
        urls = lists / f"{ds.id}.urls"
        base = f"{self.nginx.base}/blobs"
        with curl.open("w") as c, aria.open("w") as a, urls.open("w") as u:
            for name in asset_names(ds.id, ds.assets, ds.per_item):
                folder, _, leaf = name.rpartition("/")
                c.write(f'url = "{base}/{name}"\noutput = "{dest}/{name}"\n')
                a.write(f"{base}/{name}\n  dir={dest}/{folder}\n  out={leaf}\n")
                u.write(f"{base}/{name}\n")
        return curl, aria, urls

    def item_collection(self, ds: DatasetDef) -> Path:
        """The data set's items as one STAC ItemCollection (a GeoJSON FeatureCollection), for
        stac-asset: the documents of the catalog archive (`gen_catalog.item_doc`, same ids,
        asset keys, absolute hrefs, sizes and checksums). Written once per invocation."""
        lists = self.run_dir / "lists"
        lists.mkdir(exist_ok=True)
        path = lists / f"{ds.id}.items.json"
        if path.exists():
            return path
        base = f"{self.nginx.base}/blobs"
        collections = collection_ids(ds.id)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            fh.write('{"type":"FeatureCollection","features":[')
            for i in range(ds.assets // ds.per_item):
                doc = item_doc(ds.id, collections[i % 4], i, ds.per_item, base, ds.size)
                fh.write(("," if i else "") + json.dumps(doc, separators=(",", ":")))
            fh.write("]}\n")
        tmp.rename(path)
        return path

    def curl_cmd(self, config: Path, n: int) -> list[str]:
        return [
            "curl",
            "--parallel",
            "--parallel-immediate",
            "--parallel-max",
            str(n),
            "--create-dirs",
            "--silent",
            "--show-error",
            "--fail",
            "--config",
            str(config),
        ]

    def aria2_cmd(self, input_file: Path, n: int) -> list[str]:
        return [
            "aria2c",
            "--no-conf",
            f"--input-file={input_file}",
            f"--max-concurrent-downloads={n}",
            "--max-connection-per-server=1",
            "--split=1",
            "--file-allocation=none",
            "--console-log-level=warn",
            "--summary-interval=0",
            "--download-result=hide",
            "--auto-file-renaming=false",
            "--allow-overwrite=true",
            "--enable-http-keep-alive=true",
            "--deferred-input=true",
            "--auto-save-interval=0",
            "--max-tries=3",
        ]

    def wget2_cmd(self, urls: Path, dest: Path, n: int) -> list[str]:
        """wget2 over keep-alive HTTP/1.1, `n` threads (one connection each). The URL path
        `/blobs/{dataset}/...` lands at `dest/{dataset}/...` (host folder and `blobs/` cut),
        where curl and aria2c write. Off: HTTP/2 (only negotiated over TLS anyway),
        compression (`Accept-Encoding: identity`), robots.txt, extended attributes on every
        file (on by default), HSTS/HPKP databases in the home folder, any wget2rc."""
        return [
            "wget2",
            "--no-config",
            f"--max-threads={n}",
            f"--input-file={urls}",
            "--force-directories",
            "--no-host-directories",
            "--cut-dirs=1",
            f"--directory-prefix={dest}",
            "--no-robots",
            "--no-http2",
            "--compression=identity",
            "--no-xattr",
            "--no-hsts",
            "--no-hpkp",
            "--tries=3",
            "--quiet",
        ]

    def stac_asset_cmd(self, items: Path, dataset_dir: Path, n: int) -> list[str]:
        """stac-asset over an ItemCollection. `-p ${collection}/${id}` puts each item's assets
        (named after their hrefs) at `dataset_dir/{collection}/{item_id}/{key}.tif`, the same
        paths as the others; `-q`: no progress bar and no item JSON on stdout. Streaming reads
        (its default for HTTP) are kept: `--stream false` buffers whole files and was not
        faster; above 100 downloads aiohttp's pool (100 connections) is the limit anyway."""
        return [
            str(self.stac_asset),
            "download",
            str(items),
            str(dataset_dir),
            "--path-template",
            "${collection}/${id}",
            f"--max-concurrent-downloads={n}",
            "--quiet",
        ]

    def radiant_cmd(self, ds: DatasetDef, out: Path) -> list[str]:
        return [str(self.radiant_python), "-c", RADIANT_SCRIPT, ds.id, str(out)]
