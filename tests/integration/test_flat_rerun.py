"""A flat tree's re-run against a real S3 (moto_server behind the Source-Cooperative-style
front): an unchanged listing is not indexed again (the plan says ``reindexed: false``, no asset
and no sidecar is fetched, the synced catalog is not rewritten, the keys no template reads are
still reported), and every kind of change upstream or in the spec is indexed again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhub_sync.errors import ExitCode
from tests.support.moto_s3 import MotoS3, SourceCoopFront, source_coop

BUCKET = "radiantearth"
TEMPLATE = "{split}/{item}/{asset}.tif"
CASES = (
    "unchanged", "etag", "added", "removed", "template", "sidecar", "sidecar_path",
    "sidecar_setting", "layout", "rewrite", "collection",
)  # fmt: skip


def _tree(prefix: str) -> dict[str, int | bytes]:
    keys: dict[str, int | bytes] = {
        f"{prefix}/{split}/s{i}/{band}.tif": 10 + i
        for split in ("train", "test")
        for i in range(3)
        for band in ("a", "b")
    }
    keys[f"{prefix}/meta.csv"] = b"id,datetime\ns0,2020-01-01T00:00:00Z\ns1,2020-01-02T00:00:00Z\n"
    keys[f"{prefix}/notes.txt"] = b"no template reads me"
    return keys


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoS3, SourceCoopFront]]:
    seed: dict[str, int | bytes] = {}
    for case in CASES:
        seed.update(_tree(case))
    with source_coop(tmp_path_factory.mktemp("moto"), {BUCKET: seed}) as pair:
        yield pair


def _spec(tmp_path: Path, front: SourceCoopFront, prefix: str, **source: Any) -> Path:
    path = tmp_path / "spec.yaml"
    spec = {
        "defaults": {"output_dir": "./out", "workers": 4},
        "datasets": [
            {
                "id": "ds",
                "source": {
                    "type": "s3",
                    "bucket": BUCKET,
                    "endpoint": front.url,
                    "prefix": f"{prefix}/",
                    "template": TEMPLATE,
                    "sidecar": {"key": "meta.csv", "id_column": "id"},
                    **source,
                },
            }
        ],
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


LOCAL_SIDECAR = {"sidecar": {"path": "meta.csv", "id_column": "id"}}  # beside the spec


def _put(key: str, data: bytes) -> Callable[[MotoS3, Path, str], None]:
    return lambda moto, _, prefix: moto.put(BUCKET, f"{prefix}/{key}", data)


def _delete(moto: MotoS3, _: Path, prefix: str) -> None:
    moto.delete(BUCKET, f"{prefix}/test/s2/b.tif")


def _local_sidecar(_: MotoS3, tmp_path: Path, __: str) -> None:
    (tmp_path / "meta.csv").write_bytes(b"id,site\ns0,south\n")


def _nothing(*_: object) -> None:
    pass


# a change: the source's settings before, what changes upstream or locally, the settings after
CHANGES: dict[str, tuple[dict[str, Any], Callable[[MotoS3, Path, str], None], dict[str, Any]]] = {
    "etag": ({}, _put("train/s1/a.tif", b"new bytes, a new ETag"), {}),
    "added": ({}, _put("train/s9/a.tif", b"a new key"), {}),
    "removed": ({}, _delete, {}),
    "template": ({}, _nothing, {"template": "{split}/{item}/{asset}.{_}"}),
    "sidecar": ({}, _put("meta.csv", b"id,datetime\ns2,2021-01-01T00:00:00Z\n"), {}),
    "sidecar_path": (LOCAL_SIDECAR, _local_sidecar, LOCAL_SIDECAR),
    "sidecar_setting": ({}, _nothing, {"sidecar": {"key": "meta.csv", "id_column": "datetime"}}),
    "layout": ({}, _nothing, {"layout": "mirror"}),
    "rewrite": ({}, _nothing, {"rewrite": [{"from": "http://nowhere/", "to": "http://else/"}]}),
    "collection": ({}, _nothing, {"collection": "renamed"}),
}


def _catalog(result: Any) -> dict[str, Any]:
    assert result.code == ExitCode.OK, result.stderr
    catalog: dict[str, Any] = result.json()["datasets"][0]["catalog"]
    return catalog


def _documents(folder: Path) -> dict[str, int]:
    """The catalog documents in ``folder`` with their mtimes (a rewrite replaces them)."""
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*.json")}


def test_an_unchanged_listing_is_not_indexed_again(
    tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    _, front = store
    spec = _spec(tmp_path, front, "unchanged")
    first = _catalog(cli("apply", spec, "--json"))
    assert first["reindexed"] is True
    out = tmp_path / "out/ds"
    documents = _documents(out)
    assert "ds/train/s0/s0.json" not in documents and "ds/s0/s0.json" in documents
    gets = front.count("/radiantearth/unchanged/")  # 12 assets, the sidecar read and synced
    assert gets == 14
    again = _catalog(cli("apply", spec, "--json"))
    assert again["reindexed"] is False
    assert front.count("/radiantearth/unchanged/") == gets  # no asset, nor the sidecar
    assert _documents(out) == documents  # the synced catalog is not written again
    # the keys no template reads are still counted and named, from the listing
    assert (
        again["unmatched_keys"]
        == first["unmatched_keys"]
        == {
            "count": 1,
            "sample": ["notes.txt"],
        }
    )
    assert (again["items"], again["assets"]) == (first["items"], first["assets"])
    assert _catalog(cli("plan", spec, "--json"))["reindexed"] is False


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_of_the_listing_or_the_spec_is_indexed_again(
    change: str, tmp_path: Path, cli: Any, store: tuple[MotoS3, SourceCoopFront]
) -> None:
    moto, front = store
    before, act, after = CHANGES[change]
    (tmp_path / "meta.csv").write_bytes(b"id,site\ns0,north\n")
    spec = _spec(tmp_path, front, change, **before)
    assert _catalog(cli("plan", spec, "--json"))["reindexed"] is True
    assert _catalog(cli("plan", spec, "--json"))["reindexed"] is False
    act(moto, tmp_path, change)
    spec = _spec(tmp_path, front, change, **after)
    assert _catalog(cli("plan", spec, "--json"))["reindexed"] is True
