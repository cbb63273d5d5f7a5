"""A hostile catalog through the CLI: its secrets stay out of the lock file, the error report
and DEBUG lines; its ids reach neither the terminal raw nor a spreadsheet as a formula; its
collection ids cannot take the tool's own names; its archive's bytes are no evidence."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from tests.support.mlhub_dataset import write_archive
from tests.support.server import TestServer

CATALOG = b'{"type": "Catalog", "stac_version": "1.0.0", "id": "x", "links": []}'


def item(item_id: str, collection: str, assets: dict[str, Any]) -> tuple[str, bytes]:
    """An archive member: an item of ``collection`` with ``assets`` ({key: href or dict})."""
    doc = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": collection,
        "geometry": None,
        "properties": {"datetime": None},
        "links": [],
        "assets": {k: v if isinstance(v, dict) else {"href": v} for k, v in assets.items()},
    }
    name = hashlib.sha1(f"{collection}/{item_id}".encode()).hexdigest()[:8]  # any safe name
    return f"c/{name}/{name}.json", json.dumps(doc).encode()


def archive_spec(tmp_path: Path, members: list[tuple[str, bytes]], **settings: Any) -> Path:
    """A spec whose one dataset ``x`` is a local archive of ``members``."""
    write_archive(tmp_path / "cat.tar.gz", [("catalog.json", CATALOG), *members], top="x")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {
                    "output_dir": "./out",
                    "retry": {"max_retries": 0},
                    **settings,
                },
                "datasets": [{"id": "x", "source": {"type": "archive", "path": "cat.tar.gz"}}],
            }
        )
    )
    return spec


def test_signatures_in_every_shape_stay_out_of_lock_report_and_debug_lines(
    tmp_path: Path, cli: Any
) -> None:
    with TestServer(tmp_path / "served") as server:
        base = f"{server.url}/blobs/gone"
        spec = archive_spec(
            tmp_path,
            [
                item("a", "c", {"semi": f"{base}/a.tif?a=1;sig=SECRET-SEMI"}),
                item("bb", "c", {"named": f"{base}/b.tif?a=1&%73ig=SECRET-NAMED"}),
                item(
                    "ccc",
                    "c",
                    {
                        "nested": f"{base}/c.tif?to=https%3A%2F%2Fs%2Fc.tif%3Fsv%3D1%26sig%3D"
                        "SECRET-NESTED"
                    },
                ),
            ],
        )
        assert cli("lock", spec).code == 0
        result = cli("apply", spec, "-vv")
    assert result.code == 1  # the three assets are 404s
    lock = spec.with_name("spec.yaml.lock").read_text()
    report = (tmp_path / "out/x/mlhub_errors.csv").read_text()
    leaks = {
        where: [line for line in text.splitlines() if "SECRET" in line]
        for where, text in (("lock", lock), ("report", report), ("log", result.stderr))
    }
    assert leaks == {"lock": [], "report": [], "log": []}
    assert report.count("***") == 3
    assert "DEBUG" in result.stderr and result.stderr.count("***") >= 3


def test_ids_reach_neither_the_terminal_raw_nor_a_spreadsheet_as_a_formula(
    tmp_path: Path, cli: Any
) -> None:
    with TestServer(tmp_path / "served") as server:
        gone = f"{server.url}/blobs/gone.tif"
        spec = archive_spec(
            tmp_path,
            [
                item("evil\x1b]0;pwned\x07", "=cmd|' /C calc'!A0", {"@SUM(1)": gone}),
                item("red\x1b[31m", "c", {"data": gone, "ftp": "ftp://h/x\x9b"}),
                item("red_[31m", "c", {"data": f"{gone}?other"}),  # the same path: a conflict
                item("line\nWARNING: forged", "c", {"-1+1": gone}),
            ],
        )
        plan = cli("plan", spec)
        result = cli("apply", spec)
    assert result.code == 1
    shown = plan.stdout + plan.stderr + result.stdout + result.stderr
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "\\x1b[31m" in shown  # escaped, not dropped: the id stays recognisable
    assert "\nWARNING: forged" not in shown
    with (tmp_path / "out/x/mlhub_errors.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    cells = [value for row in rows for value in row.values()]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=cmd|' /C calc'!A0" in cells and "'@SUM(1)" in cells and "'-1+1" in cells
    assert not [c for c in cells if "\x1b" in c or "\n" in c]


def test_a_collection_named_like_the_staging_folder_keeps_its_assets_across_reindex(
    tmp_path: Path, cli: Any
) -> None:
    for name in ("a.bin", "b.bin"):
        blob = tmp_path / "served/blobs" / name
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(b"asset bytes")
    with TestServer(tmp_path / "served") as server:
        members = [item("i", ".mlhub-staging-x", {"data": f"{server.url}/blobs/a.bin"})]
        spec = archive_spec(tmp_path, members)
        assert cli("apply", spec).code == 0
        [saved] = (tmp_path / "out/x").rglob("data.bin")
        # a new version of the catalog: re-indexed, staged, installed
        archive_spec(tmp_path, [*members, item("j", "other", {"d": f"{server.url}/blobs/b.bin"})])
        server.clear_log()
        result = cli("apply", spec)
        assert result.code == 0, result.stderr
        assert server.count("/blobs/a.bin", method="GET") == 0  # still there: not fetched again
    assert saved.read_bytes() == b"asset bytes"
    assert saved.relative_to(tmp_path / "out/x").as_posix() == "_.mlhub-staging-x/i/data.bin"


def test_an_archive_member_at_an_asset_path_is_not_adopted_by_size(
    tmp_path: Path, cli: Any
) -> None:
    real, planted = b"the host's real bytes", b"the archive's planted"
    assert len(real) == len(planted)
    blob = tmp_path / "served/blobs/data.bin"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(real)
    with TestServer(tmp_path / "served", etag_style="opaque") as server:  # no MD5 anywhere
        members = [
            item("i", "c", {"data": f"{server.url}/blobs/data.bin"}),
            ("c/i/data.bin", planted),  # a member exactly at the asset's path
        ]
        spec = archive_spec(tmp_path, members)
        result = cli("apply", spec)
        assert result.code == 0, result.stderr
        assert server.count("/blobs/data.bin", method="GET") == 1  # replaced, not adopted
    assert (tmp_path / "out/x/c/i/data.bin").read_bytes() == real
    assert "adopted" not in result.stdout
