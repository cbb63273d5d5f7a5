"""A local catalog reaches no file the spec did not allow: relative hrefs resolve inside the
catalog, never outside it, and every ``file:`` href must lie inside an ``allow_local`` folder
(none by default), symlinks resolved. A canary beside the catalog proves it."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import yaml

from tests.support.mlhub_dataset import one_asset_item, write_archive

CANARY = b"CANARY: private key"
CATALOG = b'{"type": "Catalog", "stac_version": "1.0.0", "id": "x", "links": []}'


def home(tmp_path: Path) -> Path:
    """A home folder: the archive kept beside a private key, an allowed ``data/`` folder with a
    file and two links out of it, and a sibling ``data-evil/`` sharing its name's prefix."""
    folder = tmp_path / "home"
    (folder / "private/.ssh").mkdir(parents=True)
    (folder / "private/.ssh/id_rsa").write_bytes(CANARY)
    (folder / "data").mkdir()
    (folder / "data/ok.bin").write_bytes(b"fine")
    (folder / "data-evil").mkdir()
    (folder / "data-evil/x.bin").write_bytes(CANARY)
    (tmp_path / "outside.txt").write_bytes(CANARY)  # above the home folder
    os.symlink("../private", folder / "data/link")  # a folder link out of data/
    os.symlink("../private/.ssh/id_rsa", folder / "data/linked.bin")  # a file link out
    return folder


def spec_for(folder: Path, source: dict[str, Any], **settings: Any) -> Path:
    spec = folder / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": "./out", **settings},
                "datasets": [{"id": "x", "source": source}],
            }
        )
    )
    return spec


def report_rows(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / "out/x/mlhub_errors.csv"
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        return {row["item"]: row for row in csv.DictReader(f)}


def assert_no_canary(out: Path) -> None:
    leaked = [p for p in out.rglob("*") if p.is_file() and CANARY in p.read_bytes()]
    assert leaked == []


def test_a_local_archive_cannot_copy_the_file_beside_it(tmp_path: Path, cli: Any) -> None:
    folder = home(tmp_path)  # the case: ./cat.tar.gz, an href into the home folder
    write_archive(
        folder / "cat.tar.gz",
        [
            ("catalog.json", CATALOG),
            ("c/i/i.json", one_asset_item("i", "../../../private/.ssh/id_rsa")),
        ],
        top="x",
    )
    spec = spec_for(folder, {"type": "archive", "path": "./cat.tar.gz"})
    result = cli("apply", spec)
    assert result.code == 0, result.stderr
    assert not list((folder / "out/x/c/i").glob("data*"))  # the item's JSON only
    assert_no_canary(folder / "out")
    row = report_rows(folder)["i"]
    assert row["url"] == "../../../private/.ssh/id_rsa"  # the href, named
    assert row["error"] == "unusable-href" and "allow_local" in row["message"]
    assert "1 left out" in result.stdout


# (item, href written in the archive, copied? why it is refused)
HOSTILE = [
    ("climbs-to-home", "../../../private/.ssh/id_rsa", None, "outside allow_local"),
    ("climbs-above", "../../../../outside.txt", None, "leaves the catalog's folder"),
    ("and-back", "../../../../home/private/.ssh/id_rsa", None, "outside allow_local"),
    ("encoded-dots", "../../../data/%2e%2e/private/.ssh/id_rsa", None, "outside allow_local"),
    ("absolute", "{home}/private/.ssh/id_rsa", None, "outside allow_local"),
    ("shared-prefix", "{home}/data-evil/x.bin", None, "outside allow_local"),
    ("folder-link-out", "../../../data/link/.ssh/id_rsa", None, "outside allow_local"),
    ("file-link-out", "../../../data/linked.bin", None, "outside allow_local"),
    ("another-host", "file://evil{home_path}/data/ok.bin", None, "naming a host"),
    ("network-path", "//evil{home_path}/data/ok.bin", None, "naming a host"),
    ("relative-ok", "../../../data/ok.bin", b"fine", None),
    ("absolute-ok", "{home}/data/ok.bin", b"fine", None),
    ("localhost-ok", "file://localhost{home_path}/data/ok.bin", b"fine", None),
]


def hostile_archive(folder: Path) -> dict[str, str]:
    """``cat.tar.gz`` with an item per :data:`HOSTILE` case; the hrefs as written."""
    names = {"home": folder.as_uri(), "home_path": folder.as_posix()}
    hrefs = {name: href.format(**names) for name, href, *_ in HOSTILE}
    members = [("catalog.json", CATALOG)]
    members += [
        (f"c/{name}/{name}.json", one_asset_item(name, href)) for name, href in hrefs.items()
    ]
    write_archive(folder / "cat.tar.gz", members, top="x")
    return hrefs


def test_without_allow_local_no_local_file_is_copied(tmp_path: Path, cli: Any) -> None:
    folder = home(tmp_path)
    hrefs = hostile_archive(folder)
    result = cli("apply", spec_for(folder, {"type": "archive", "path": "cat.tar.gz"}))
    assert result.code == 0, result.stderr
    assert_no_canary(folder / "out")
    assert not list((folder / "out/x/c").rglob("data*"))
    rows = report_rows(folder)
    assert {name: row["url"] for name, row in rows.items()} == hrefs  # every one, named


def test_allow_local_allows_exactly_its_folders(tmp_path: Path, cli: Any) -> None:
    folder = home(tmp_path)
    hrefs = hostile_archive(folder)
    # allowed: data/ only. Not data-evil/, not what data/'s links point at, not "no folder".
    spec = spec_for(folder, {"type": "archive", "path": "cat.tar.gz"}, allow_local=["data"])
    result = cli("apply", spec)
    assert result.code == 0, result.stderr
    rows = report_rows(folder)
    for name, _, copied, why in HOSTILE:
        out = folder / f"out/x/c/{name}/data.bin"
        if copied is not None:
            assert out.read_bytes() == copied, name
            assert name not in rows
        else:
            assert not out.exists(), name
            assert rows[name]["url"] == hrefs[name], name
            assert why in rows[name]["message"], rows[name]
    assert_no_canary(folder / "out")


def test_a_narrower_allow_local_takes_effect_without_a_new_archive(
    tmp_path: Path, cli: Any
) -> None:
    folder = home(tmp_path)
    write_archive(
        folder / "cat.tar.gz",
        [("catalog.json", CATALOG), ("c/i/i.json", one_asset_item("i", "../../../data/ok.bin"))],
        top="x",
    )
    source = {"type": "archive", "path": "cat.tar.gz"}
    assert cli("apply", spec_for(folder, source, allow_local=["data"])).code == 0
    (folder / "out/x/c/i/data.bin").unlink()
    result = cli("apply", spec_for(folder, source))  # allow_local removed: index rebuilt
    assert result.code == 0, result.stderr
    assert not (folder / "out/x/c/i/data.bin").exists()
    assert "allows none" in report_rows(folder)["i"]["message"]


def test_a_local_static_catalog_reaches_only_allowed_files(tmp_path: Path, cli: Any) -> None:
    folder = home(tmp_path)
    cat = folder / "cat"
    (cat / "c").mkdir(parents=True)
    os.symlink("../../private/.ssh/id_rsa", cat / "c/inside-link.bin")  # a link inside, out
    hrefs = {
        "up": "../../private/.ssh/id_rsa",
        "abs": (folder / "private/.ssh/id_rsa").as_uri(),
        "link": "./inside-link.bin",
        "ok": "../../data/ok.bin",
    }
    for name, href in hrefs.items():
        (cat / f"c/{name}.json").write_bytes(one_asset_item(name, href))
    # items outside the catalog's folder, linked directly and through a link inside it
    (folder / "evil.json").write_bytes(one_asset_item("evil", (folder / "data/ok.bin").as_uri()))
    os.symlink("../../evil.json", cat / "c/evil-link.json")
    outside = [
        {"rel": "item", "href": "../evil.json"},
        {"rel": "item", "href": "./c/evil-link.json"},
    ]
    (cat / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "x",
                "links": [{"rel": "item", "href": f"./c/{n}.json"} for n in hrefs] + outside,
            }
        )
    )
    source = {"type": "stac", "path": "cat/catalog.json"}
    # the catalog's folder is cat/: "../../data" leaves it, even into an allowed folder
    result = cli("apply", spec_for(folder, source, allow_local=["data", "cat"]))
    assert result.code == 0, result.stderr
    assert sorted(report_rows(folder)) == ["abs", "link", "ok", "up"]
    assert_no_canary(folder / "out")
    hrefs["ok"] = (folder / "data/ok.bin").as_uri()  # an absolute href into data/ is fine
    (cat / "c/ok.json").write_bytes(one_asset_item("ok", hrefs["ok"]))
    result = cli("apply", spec_for(folder, source, allow_local=["data"]))
    assert result.code == 0 and result.stderr.count("ignoring link") == 2
    assert (folder / "out/x/c/ok/data.bin").read_bytes() == b"fine"
    assert not (folder / "out/x/c/evil").exists()
    assert sorted(report_rows(folder)) == ["abs", "link", "up"]
