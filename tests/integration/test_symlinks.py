"""No operation on the output tree follows a symbolic link (issue 11, section 1).

Each case plants a link where mlhub-sync creates, opens, renames or deletes something, pointing
at a canary outside the tree, runs the real CLI against the loopback server, and asserts that
the canary is untouched and that the run did the right thing instead: a link where a file of
ours should be is replaced (or the lock and state db refused), a link where a folder should be
fails the assets below it (or the catalog install), and prune never deletes through one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhub_sync.apply.jobs import Done, Failed, Job, JobSteps
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.plan.build import Step
from mlhub_sync.plan.decide import Action, Desired, Reason
from mlhub_sync.transfer.curl import CurlDriver
from tests.conftest import Hub, Result
from tests.support.mlhub_dataset import one_asset_item, write_archive
from tests.support.server import Fault, TestServer

CANARY = b"canary: nothing may write, truncate or delete this\n"


@dataclass
class Scene:
    """One case's world: the hub, its spec, the output tree and the canaries outside it."""

    tmp: Path
    hub: Hub
    cli: Any
    spec: Path

    @property
    def out(self) -> Path:
        return self.tmp / "out" / self.hub.data.dataset_id

    @property
    def outside(self) -> Path:
        return self.tmp / "outside"

    @property
    def canary(self) -> Path:  # a file outside the tree
        return self.outside / "canary.bin"

    @property
    def canary_dir(self) -> Path:  # a folder outside the tree
        return self.outside / "folder"

    def asset(self, path: str) -> bytes:
        """The bytes the server has for the asset at layout ``path``."""
        gen = self.hub.data.unique_assets()[path]
        return self.hub.data.blob_path(gen).read_bytes()

    def run(self, *args: str) -> Result:
        result: Result = self.cli(*args, self.spec)
        return result

    def plan(self) -> None:
        assert self.run("plan").code == 0  # the catalog is installed, the db made


def picture(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every path under ``root``: its mode and (for files) its bytes; links not followed."""
    seen = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        data = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
        seen[str(path.relative_to(root))] = (stat.filemode(st.st_mode), data)
    return seen


def link(at: Path, to: Path) -> None:
    """Put a symbolic link at ``at`` (replacing what is there) pointing at ``to``."""
    at.parent.mkdir(parents=True, exist_ok=True)
    if at.is_dir() and not at.is_symlink():
        at.rename(at.with_name(at.name + ".moved-away"))
    elif os.path.lexists(at):
        at.unlink()
    at.symlink_to(to)


def regular(path: Path) -> bool:
    return stat.S_ISREG(path.lstat().st_mode)


def local_archive_spec(s: Scene, source: dict[str, Any]) -> None:
    """A dataset ``x`` from a local ``source``; writes ``s.spec``."""
    s.spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {
                    "output_dir": "./out",
                    "retry": {"max_retries": 0},
                    "allow_local": ["shipped/assets", "cat"],  # the local assets' folders
                },
                "datasets": [{"id": "x", "source": source}],
            }
        )
    )


def shipped_archive(s: Scene) -> Path:
    """A local catalog archive whose one asset is a ``file:`` beside it: ``out/x/c/a/data.bin``."""
    folder = s.tmp / "shipped"
    (folder / "assets").mkdir(parents=True)
    (folder / "assets" / "ok.bin").write_bytes(b"local payload " * 100)
    catalog = {"type": "Catalog", "stac_version": "1.0.0", "id": "x", "links": []}
    write_archive(
        folder / "x.tar.gz",
        [
            ("catalog.json", json.dumps(catalog).encode()),
            ("c/a/a.json", one_asset_item("a", "../../../assets/ok.bin")),
        ],
        top="x",
    )
    local_archive_spec(s, {"type": "archive", "path": "shipped/x.tar.gz"})
    return s.tmp / "out" / "x"


def static_catalog(s: Scene) -> Path:
    """A local static STAC catalog (root, collection ``c``, item ``i``); returns ``out/x``."""
    root = s.tmp / "cat"
    (root / "c" / "i").mkdir(parents=True)
    (root / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.0.0",
                "id": "x",
                "description": "",
                "links": [{"rel": "child", "href": "./c/collection.json"}],
            }
        )
    )
    (root / "c" / "collection.json").write_text(
        json.dumps(
            {
                "type": "Collection",
                "stac_version": "1.0.0",
                "id": "c",
                "license": "x",
                "description": "",
                "extent": {},
                "links": [{"rel": "item", "href": "./i/i.json"}],
            }
        )
    )
    (root / "c" / "i" / "data.bin").write_bytes(b"static payload")
    (root / "c" / "i" / "i.json").write_bytes(one_asset_item("i", "./data.bin"))
    local_archive_spec(s, {"type": "stac", "path": "cat/catalog.json"})
    return s.tmp / "out" / "x"


# -- the cases: plant a link, run, and say what must have happened besides the canary --------

Check = Callable[[Scene, Result], None]

B02 = "tiny_source/src_5/B02.tif"


def resumed_part(s: Scene) -> Check:
    s.hub.server.add_fault("/blobs/tiny/src/src_5/B02.tif", Fault("truncate", after_bytes=1000))
    assert s.run("apply").code == 1  # leaves a 1000-byte .part and its partial record
    link(s.out / f"{B02}.part", s.canary)  # shorter than the asset: a resume would append

    def then(s: Scene, result: Result) -> None:
        assert result.code == 0, result.stderr
        assert regular(s.out / B02) and (s.out / B02).read_bytes() == s.asset(B02)

    return then


def fresh_part(s: Scene) -> Check:
    s.plan()
    link(s.out / f"{B02}.part", s.canary)

    def then(s: Scene, result: Result) -> None:
        assert result.code == 0, result.stderr
        assert regular(s.out / B02) and (s.out / B02).read_bytes() == s.asset(B02)

    return then


def final_name(s: Scene) -> Check:
    s.plan()
    s.canary.write_bytes(s.asset(B02))  # even the right bytes: a link is never adopted
    link(s.out / B02, s.canary)

    def then(s: Scene, result: Result) -> None:
        assert result.code == 0, result.stderr
        assert regular(s.out / B02) and (s.out / B02).read_bytes() == s.asset(B02)

    return then


def lock_file(s: Scene) -> Check:
    link(s.out / ".mlhub-sync.lock", s.canary)

    def then(s: Scene, result: Result) -> None:
        assert result.code == 1
        assert "lock file is a symbolic link" in result.stderr
        assert ".mlhub-sync.lock" in result.stderr

    return then


def state_db(s: Scene) -> Check:
    empty = s.outside / "empty.db"
    empty.touch()  # SQLite would take an empty file for a new db, and write it
    link(s.out / "mlhub_stac_assets.db", empty)

    def then(s: Scene, result: Result) -> None:
        assert result.code == 1
        assert "mlhub_stac_assets.db: the state db file is a symbolic link" in result.stderr

    return then


def report_temp(s: Scene) -> Check:
    s.hub.server.add_fault("/blobs/tiny/lbl/lbl_2/labels.geojson", Fault("status", status=404))
    link(s.out / "mlhub_errors.csv.part", s.canary)

    def then(s: Scene, result: Result) -> None:
        assert result.code == 1
        report = s.out / "mlhub_errors.csv"
        assert regular(report) and "lbl_2" in report.read_text()
        assert not os.path.lexists(s.out / "mlhub_errors.csv.part")

    return then


def archive_temp(s: Scene) -> Check:
    out = shipped_archive(s)
    link(out / "x.tar.gz.part", s.canary)

    def then(s: Scene, result: Result) -> None:
        assert result.code == 0, result.stderr
        kept = out / "x.tar.gz"
        assert regular(kept)
        assert kept.read_bytes() == (s.tmp / "shipped" / "x.tar.gz").read_bytes()

    return then


def local_file_part(s: Scene) -> Check:
    out = shipped_archive(s)
    s.plan()
    link(out / "c/a/data.bin.part", s.canary)

    def then(s: Scene, result: Result) -> None:
        assert result.code == 0, result.stderr
        assert regular(out / "c/a/data.bin")
        assert (out / "c/a/data.bin").read_bytes() == b"local payload " * 100

    return then


def _asset_folder(folder: str) -> Callable[[Scene], Check]:
    def plant(s: Scene) -> Check:
        s.plan()  # the catalog is installed: the folder exists, with its JSON
        link(s.out / folder, s.canary_dir)

        def then(s: Scene, result: Result) -> None:
            assert result.code == 1  # each asset below the link failed, and says why
            report = (s.out / "mlhub_errors.csv").read_text()
            below = [p for p in s.hub.data.unique_assets() if p.startswith(folder + "/")]
            assert report.count(",symlink,") == len(below) > 0
            assert f"{s.out / folder}" in report
            # the other assets are all there
            for path in s.hub.data.unique_assets():
                if not path.startswith(folder + "/"):
                    assert (s.out / path).read_bytes() == s.asset(path)

        return then

    return plant


def install_folder(s: Scene) -> Check:
    link(s.out / "tiny_source", s.canary_dir)  # before the catalog is ever installed

    def then(s: Scene, result: Result) -> None:
        assert result.code == 1
        assert f"{s.out / 'tiny_source'}: the folder is a symbolic link" in result.stderr

    return then


def prune_folder(s: Scene) -> Check:
    assert s.run("apply").code == 0
    item = s.out / "tiny_source/src_0"
    item.rename(s.canary_dir / "src_0")  # the managed files now live outside...
    item.symlink_to(s.canary_dir / "src_0")  # ...and a link takes their folder's place
    s.hub.spec(s.spec, [{"id": "tiny", "collection_filter": {"tiny_labels": []}, "prune": True}])

    def then(s: Scene, result: Result) -> None:
        assert result.code == 0, result.stderr
        assert "not pruning tiny_source/src_0/B02.tif" in result.stderr
        assert not (s.out / "tiny_source/src_1/B02.tif").exists()  # the others are pruned

    return then


def stac_collection_folder(s: Scene) -> Check:
    out = static_catalog(s)
    link(out / "c", s.canary_dir)

    def then(s: Scene, result: Result) -> None:
        assert result.code == 1
        assert f"{out / 'c'}: the folder is a symbolic link" in result.stderr

    return then


def stac_staging_folder(s: Scene) -> Check:
    out = static_catalog(s)
    link(out / f".mlhub-staging-{os.getpid()}", s.canary_dir)  # the run's own staging name

    def then(s: Scene, result: Result) -> None:
        assert result.code == 0, result.stderr
        assert (out / "c/i/data.bin").read_bytes() == b"static payload"
        assert not os.path.lexists(out / f".mlhub-staging-{os.getpid()}")

    return then


CASES: dict[str, Callable[[Scene], Check]] = {
    "a resumed asset .part": resumed_part,
    "a fresh asset .part": fresh_part,
    "an asset's final name": final_name,
    "the folder lock": lock_file,
    "the state db": state_db,
    "the error report's temp file": report_temp,
    "the catalog archive's temp file": archive_temp,
    "a local file: asset's .part": local_file_part,
    "a collection folder": _asset_folder("tiny_source"),
    "an item folder": _asset_folder("tiny_source/src_2"),
    "a catalog folder at install": install_folder,
    "prune through an item folder": prune_folder,
    "a collection folder of a stac source": stac_collection_folder,
    "the staging folder": stac_staging_folder,
}


@pytest.mark.parametrize("plant", CASES.values(), ids=CASES.keys())
def test_a_planted_symlink_is_never_followed(
    tmp_path: Path, hub: Hub, cli: Any, plant: Callable[[Scene], Check]
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", retry={"max_retries": 0})
    scene = Scene(tmp_path, hub, cli, spec)
    scene.canary_dir.mkdir(parents=True)
    scene.canary.write_bytes(CANARY)
    (scene.canary_dir / "keep.txt").write_bytes(CANARY)
    then = plant(scene)
    before = picture(scene.outside)
    result = scene.run("apply")
    assert picture(scene.outside) == before, result.stderr
    then(scene, result)


# -- the property: a link at any component of an asset's path, one at a time -----------------

ASSET_PATHS = ("a.tif", "c/a.tif", "c/i/a.tif", "c/i/x/a.tif")


def link_positions() -> Iterator[tuple[str, str, str]]:
    """(asset path, where the link is, what it stands for): each folder of the path, the
    final name, and its ``.part`` fresh or resumed."""
    for path in ASSET_PATHS:
        parts = path.split("/")
        for n in range(1, len(parts)):
            yield path, "/".join(parts[:n]), "folder"
        yield path, path, "final name"
        yield path, f"{path}.part", "fresh part"
        yield path, f"{path}.part", "resumed part"


@pytest.mark.parametrize(
    ("path", "at", "kind"),
    list(link_positions()),
    ids=[f"{k} {a} of {p}" for p, a, k in link_positions()],
)
def test_a_link_at_any_component_of_an_asset_path_is_never_followed(
    tmp_path: Path, path: str, at: str, kind: str
) -> None:
    data = random.Random(path).randbytes(5000)
    (tmp_path / "served" / "blobs").mkdir(parents=True)
    (tmp_path / "served" / "blobs" / "blob.bin").write_bytes(data)
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "folder" / "keep.txt").write_bytes(CANARY)
    (outside / "canary.bin").write_bytes(CANARY)  # shorter than the asset: a resume appends
    asset_dir = tmp_path / "out" / "ds"
    link(asset_dir / at, outside / ("folder" if kind == "folder" else "canary.bin"))
    before = picture(outside)

    events: list[object] = []
    with TestServer(tmp_path / "served", etag_style="md5") as server:
        url = f"{server.url}/blobs/blob.bin"
        validator = f'"{hashlib.md5(data).hexdigest()}"'  # the server's ETag: a 206 would follow
        step = Step(
            Desired(path, url, len(data), None, "c", "i", "data"),
            Action.DOWNLOAD,
            Reason.MISSING,
            partial_validator=validator if kind == "resumed part" else None,
        )
        jobs = JobSteps(asset_dir, "auto", RetryPolicy(max_retries=0), events.append, lambda: False)
        driver = CurlDriver(1, stop=threading.Event())
        try:
            driver.run(jobs.run(Job(url, (step,))))
        finally:
            driver.close()
            jobs.close()

    assert picture(outside) == before
    dest = asset_dir / path
    if kind == "folder":
        assert len(events) == 1 and isinstance(events[0], Failed), events
        assert events[0].error.subject == str(asset_dir / at)
        assert "symbolic link" in events[0].error.message
        assert not os.path.lexists(dest)
    else:
        assert [type(e) for e in events if not isinstance(e, Done)] == [], events
        assert regular(dest) and dest.read_bytes() == data
        assert not os.path.lexists(f"{dest}.part")
