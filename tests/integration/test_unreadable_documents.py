"""One unreadable linked document no longer stops the crawl: it is skipped and named by the
plan, the rest syncs, prune is held back; ``--strict`` or ``strict: true`` makes it fatal
(issue 12, A4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.server import TestServer
from tests.support.stac_shapes import nested, walk_offline

GONE_ITEM = "country-1/area-1-1/area-1-1-item-0/area-1-1-item-0.json"
GONE_CHILD = "country-2/catalog.json"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestServer]:
    with TestServer(tmp_path / "served") as running:
        yield running


def write_spec(tmp_path: Path, source: dict[str, Any], **settings: Any) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "defaults": {"output_dir": "./out", "retry": {"max_retries": 0}},
                "datasets": [{"id": "ds", "source": source, **settings}],
            }
        )
    )
    return spec


def remote(tmp_path: Path, server: TestServer, **settings: Any) -> Path:
    nested(tmp_path / "served", server.url)
    source = {"type": "stac", "url": f"{server.url}/blobs/nested/catalog.json"}
    return write_spec(tmp_path, source, **settings)


def local(tmp_path: Path, server: TestServer, **settings: Any) -> Path:
    nested(tmp_path / "served", server.url)
    source = {"type": "stac", "path": str(tmp_path / "served/blobs/nested/catalog.json")}
    return write_spec(tmp_path, source, allow_local=["served"], **settings)


def items_walked(tmp_path: Path) -> set[str]:
    return {w.item for w in walk_offline(tmp_path / "out/ds/catalog.json")}


def test_a_missing_item_is_named_by_the_plan_and_everything_else_syncs(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    spec = local(tmp_path, server)
    (tmp_path / "served/blobs/nested" / GONE_ITEM).unlink()
    plan = cli("plan", spec)
    assert plan.code == 0, plan.stderr
    assert "unreadable catalog documents: 1" in plan.stdout
    assert f"{GONE_ITEM}: cannot read the STAC document" in plan.stdout
    listed = cli("plan", spec, "--json").json()["datasets"][0]["catalog"]
    assert listed["invalid_documents"] == 1
    [entry] = listed["unreadable_documents"]
    assert entry["href"].endswith(GONE_ITEM) and "No such file" in entry["why"]
    assert cli("apply", spec).code == 0
    assert len(items_walked(tmp_path)) == 5  # the other five, linked and synced


def test_a_dead_remote_child_is_skipped_the_rest_syncs_and_prune_waits(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    spec = remote(tmp_path, server, prune=True)
    assert cli("apply", spec).code == 0
    kept = tmp_path / "out/ds/area-2-1/area-2-1-item-0/image.tif"
    assert kept.is_file()
    (tmp_path / "served/blobs/nested" / GONE_CHILD).unlink()  # a 404 now
    result = cli("apply", spec)
    assert f"/blobs/nested/{GONE_CHILD}: fetch STAC document failed" in result.stderr
    assert "not pruning: 1 catalog documents could not be read" in result.stdout + result.stderr
    assert kept.is_file()  # prune held back while a document is unreadable
    assert items_walked(tmp_path) == {
        "area-1-1-item-0", "area-1-1-item-1", "area-1-2-item-0", "area-1-2-item-1",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("how", "argv", "settings"),
    [("--strict", ["--strict"], {}), ("strict: true", [], {"strict": True})],
)
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_strict_makes_an_unreadable_document_fatal_and_keeps_the_index(
    tmp_path: Path,
    cli: Any,
    server: TestServer,
    command: str,
    how: str,
    argv: list[str],
    settings: dict[str, Any],
) -> None:
    spec = remote(tmp_path, server, **settings)
    nested_root = tmp_path / "served/blobs/nested"
    gone = (nested_root / GONE_CHILD).read_bytes()
    (nested_root / GONE_CHILD).unlink()
    result = cli(command, spec, *argv)
    assert result.code == 1, how
    assert f"/blobs/nested/{GONE_CHILD}" in result.stderr and "HTTP 404" in result.stderr
    assert "strict: a linked STAC document could not be read" in result.stderr
    assert "run without --strict" in result.stderr  # the hint says how to get past it
    assert not (tmp_path / "out/ds/area-1-1").exists()  # nothing indexed, nothing synced
    (nested_root / GONE_CHILD).write_bytes(gone)
    assert cli(command, spec, *argv).code == 0


def test_strict_stops_on_an_archive_member_that_is_not_json(
    tmp_path: Path, cli: Any, server: TestServer
) -> None:
    shape = nested(tmp_path / "served", server.url)
    shape.members.append(("country-1/broken.json", b'{"stac_version": "1.0.0", '))
    archive = shape.archive(tmp_path / "ds.tar.gz", top="ds")
    spec = write_spec(tmp_path, {"type": "archive", "path": str(archive)})
    assert cli("plan", spec).code == 0
    result = cli("plan", spec, "--strict")  # indexed before: strict still sees it
    assert result.code == 1
    assert "strict: a catalog document could not be read: ds/country-1/broken.json" in (
        result.stderr
    )
    [entry] = cli("plan", spec, "--json").json()["datasets"][0]["catalog"]["unreadable_documents"]
    assert entry["href"] == "ds/country-1/broken.json" and "invalid JSON" in entry["why"]
