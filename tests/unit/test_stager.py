"""``sources.base.Stager``: documents staged one after another under one staging folder, its
folders held open between them, never through a link (real folders, a canary outside); and
``catalog.install`` moving a re-run's 5,000 staged items into place with flat memory."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.catalog.install import install
from mlhub_sync.errors import SymlinkError
from mlhub_sync.sources.base import Stager, stage_document


def test_items_of_one_collection_are_staged_without_walking_down_to_it_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = tmp_path / "dataset" / ".mlhub-staging-1"
    staging.mkdir(parents=True)
    opens = []
    real_open = os.open

    def counted(*args: Any, **kwargs: Any) -> int:
        opens.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(os, "open", counted)
    with Stager(staging) as stager:
        for i in range(200):
            assert stager.stage(f"s2/scene_{i}/scene_{i}.json", b'{"id": %d}' % i)
    # per item: its new folder (looked for, made, opened) and its file; the dataset folder,
    # staging and s2 a few times in all (walking down to them for each item: 6 per item)
    assert len(opens) <= 3 * 200 + 10
    assert (staging / "s2/scene_7/scene_7.json").read_bytes() == b'{"id": 7}'


def test_the_first_document_at_a_place_wins_and_a_link_is_never_written_through(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    staging = tmp_path / "dataset" / ".mlhub-staging-1"
    staging.mkdir(parents=True)
    (staging / "planted").symlink_to(outside)
    with Stager(staging) as stager:
        assert stager.stage("c/x.json", b"first")
        assert not stager.stage("c/x.json", b"second")
        with pytest.raises(SymlinkError):
            stager.stage("planted/x.json", b"through a link")
    assert (staging / "c/x.json").read_bytes() == b"first"
    assert not stage_document(staging, "c/x.json", b"third")
    assert list(outside.iterdir()) == []


@pytest.mark.fuzz  # thousands of items: coverage paused (tests/conftest.py)
def test_a_rerun_installs_5000_items_over_their_folders_with_flat_memory(
    tmp_path: Path,
) -> None:
    # A re-run: every staged item folder's target exists, so each is gone into, file by file.
    dataset = tmp_path / "dataset"
    staging = dataset / ".mlhub-staging-1"
    deep = "/".join(f"d{i}" for i in range(20))  # deeper than install descends at once
    with Stager(staging) as stager:
        for i in range(5_000):
            assert stager.stage(f"s2/scene_{i:05}/scene_{i:05}.json", b"new")
        assert stager.stage(f"{deep}/x.json", b"new")
    for i in range(5_000):
        (dataset / f"s2/scene_{i:05}").mkdir(parents=True)
    (dataset / deep).mkdir(parents=True)
    (dataset / deep / "x.json").write_bytes(b"old")
    tracemalloc.start()
    try:
        moved = install(staging, dataset, lambda rel: False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert moved == 5_001
    assert (dataset / "s2/scene_04999/scene_04999.json").read_bytes() == b"new"
    assert (dataset / deep / "x.json").read_bytes() == b"new"
    # listed whole (DirEntry objects, a stack of paths) it takes ~1 MiB; streamed ~60 KiB
    assert peak < 512 * 1024
