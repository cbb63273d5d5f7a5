"""An archive no file system would hold is a bad archive: that dataset fails with the member
named, and the spec's other datasets still run (issue 11, section 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.support.mlhub_dataset import write_archive


def _archive(folder: Path, dataset_id: str, extra: list[tuple[str, bytes]]) -> None:
    """A local catalog archive with one ``file:`` asset beside it, plus ``extra`` members."""
    (folder / "assets").mkdir(parents=True, exist_ok=True)
    (folder / "assets" / "ok.bin").write_bytes(b"fine")
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "a",
        "collection": "c",
        "geometry": None,
        "properties": {"datetime": None},
        "links": [],
        "assets": {"data": {"href": "../../../assets/ok.bin"}},
    }
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": dataset_id, "links": []}
    members = [
        ("catalog.json", json.dumps(catalog).encode()),
        ("c/a/a.json", json.dumps(item).encode()),
    ]
    write_archive(folder / f"{dataset_id}.tar.gz", [*members, *extra], top=dataset_id)


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("d/" * 2000 + "deep.json", "is nested 2001 folders deep"),
        ("c/" + "n" * 256 + ".json", "has a name longer than 255 bytes"),
    ],
    ids=["2000-folders-deep", "a-256-byte-name"],
)
def test_a_bad_archive_fails_its_dataset_and_the_others_run(
    tmp_path: Path, member: str, why: str
) -> None:
    _archive(tmp_path / "shipped", "bad", [(member, b"{}")])
    _archive(tmp_path / "shipped", "good", [])
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": "./out", "allow_local": ["shipped"]},
                "datasets": [
                    {"id": i, "source": {"type": "archive", "path": f"shipped/{i}.tar.gz"}}
                    for i in ("bad", "good")  # the bad one first: the good one still runs
                ],
            }
        )
    )
    result = run_cli("apply", spec, cwd=tmp_path)
    assert result.code == 1, result.stderr  # as any refused archive: not 70, not a crash
    assert "error: bad (datasets[0]): " in result.stderr
    assert f"refusing the archive: member 'bad/{member[:100]}" in result.stderr
    assert why in result.stderr
    assert (tmp_path / "out/good/c/a/data.bin").read_bytes() == b"fine"
    assert not (tmp_path / "out/bad/c").exists()  # nothing of the bad catalog installed
