"""Secrets never leak, and catalogs cannot make us read local files they should not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Hub, run_cli
from tests.support.mlhub_dataset import one_asset_item, write_archive


def test_a_key_from_the_profiles_file_is_never_printed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles").write_text("[default]\napi_key = PROFILE-SECRET-8472\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {
                    "output_dir": "./out",
                    "retry": {"max_retries": 0},
                    "source": {"type": "mlhub", "root_url": "http://127.0.0.1:9/api/"},
                },
                "datasets": [{"id": "ds"}],
            }
        )
    )
    for args in (("plan", spec), ("plan", spec, "-vv"), ("apply", spec, "-vv")):
        result = run_cli(*args, cwd=tmp_path, env={"MLHUB_HOME": str(home)})
        assert result.code == 1
        assert "PROFILE-SECRET-8472" not in result.stdout + result.stderr
        if "-vv" in args:  # the request as it failed is logged, its URL redacted
            assert "key=***" in result.stderr


def test_url_signatures_are_redacted_in_debug_logs(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    result = cli("apply", spec, "-vv")
    assert result.code == 0
    assert "SECRETSIG" not in result.stderr  # the signed href of src_3/B04 (urllib3 logs it)
    assert "sig=***" in result.stderr


def test_a_remote_document_linked_from_a_local_catalog_gets_no_file_hrefs(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    secret = tmp_path / "private.txt"
    secret.write_text("my private data")
    remote = hub.data.root / "blobs" / "remote"
    remote.mkdir(parents=True)
    (remote / "coll.json").write_text(
        json.dumps(
            {
                "type": "Collection",
                "stac_version": "1.0.0",
                "id": "rc",
                "license": "x",
                "description": "",
                "extent": {},
                "links": [{"rel": "item", "href": "./item.json"}],
            }
        )
    )
    (remote / "item.json").write_bytes(one_asset_item("evil", secret.as_uri()))
    local = tmp_path / "cat"
    local.mkdir()
    (local / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "x",
                "description": "",
                "links": [{"rel": "child", "href": f"{hub.server.url}/blobs/remote/coll.json"}],
            }
        )
    )
    spec = hub.spec(
        tmp_path / "spec.yaml",
        [{"id": "x", "source": {"type": "stac", "path": str(local / "catalog.json")}}],
    )
    result = cli("apply", spec)
    assert result.code == 0, result.stderr
    assert "file: href in a remote catalog is refused" in result.stderr
    assert not [
        p
        for p in (tmp_path / "out").rglob("*")
        if p.is_file() and p.read_bytes() == b"my private data"
    ]


def test_a_local_archive_cannot_reach_files_outside_its_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    folder = tmp_path / "shipped"
    (folder / "assets").mkdir(parents=True)
    (folder / "assets" / "ok.bin").write_bytes(b"fine")
    write_archive(
        folder / "x.tar.gz",
        [
            (
                "catalog.json",
                b'{"type": "Catalog", "stac_version": "1.0.0", "id": "x", "links": []}',
            ),
            ("c/a/a.json", one_asset_item("a", "../../../assets/ok.bin")),
            ("c/b/b.json", one_asset_item("b", "../../../../outside.txt")),
            ("c/d/d.json", one_asset_item("d", outside.as_uri())),
        ],
        top="x",
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": "./out", "allow_local": ["shipped/assets"]},
                "datasets": [
                    {"id": "x", "source": {"type": "archive", "path": "shipped/x.tar.gz"}}
                ],
            }
        )
    )
    result = run_cli("apply", spec, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert (tmp_path / "out/x/c/a/data.bin").read_bytes() == b"fine"
    assert not (tmp_path / "out/x/c/b/data.txt").exists()
    assert not (tmp_path / "out/x/c/d/data.txt").exists()
    assert result.stderr.count("leaves the catalog's folder") == 1
    assert result.stderr.count("outside allow_local") == 1
    assert "2 left out: unusable hrefs" in result.stdout
    report = (tmp_path / "out/x/mlhub_errors.csv").read_text()
    assert report.count("unusable-href") == 2 and "outside allow_local" in report
