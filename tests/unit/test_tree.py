"""``tree.py``: folders and files under a root, reached without following symbolic links, on
real folders with a canary outside the root."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.errors import FatalLocalError, SymlinkError
from mlhub_sync.tree import Tree, create_new, opened, remove_tree

CANARY = b"canary: never written through\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the root holding ``canary.bin``."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "canary.bin").write_bytes(CANARY)
    return folder


def untouched(outside: Path) -> bool:
    return [p.name for p in outside.iterdir()] == ["canary.bin"] and (
        outside / "canary.bin"
    ).read_bytes() == CANARY


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_folders_are_made_on_the_way_down(tmp_path: Path) -> None:
    with Tree(tmp_path / "root", create=True) as tree:
        folder = tree.hold(tmp_path / "root" / "a" / "b" / "c", create=True)
        fd = folder.create("x.bin")
        os.write(fd, b"x")
        os.close(fd)
        tree.release(folder)
    assert (tmp_path / "root/a/b/c/x.bin").read_bytes() == b"x"


@pytest.mark.parametrize("depth", [0, 1, 2], ids=["top", "middle", "last"])
def test_a_link_where_a_folder_should_be_is_refused_naming_it(
    tmp_path: Path, outside: Path, depth: int
) -> None:
    root = tmp_path / "root"
    parts = ["a", "b", "c"]
    (root / "/".join(parts[:depth])).mkdir(parents=True, exist_ok=True)
    planted = root.joinpath(*parts[: depth + 1])
    planted.symlink_to(outside)
    with Tree(root) as tree, pytest.raises(SymlinkError) as caught:
        tree.hold(root / "a" / "b" / "c", create=True)
    assert caught.value.subject == str(planted)
    assert isinstance(caught.value, FatalLocalError)  # fatal unless a caller says otherwise
    assert "symbolic link" in caught.value.message and caught.value.hint
    assert untouched(outside)


def test_the_root_itself_may_be_a_link(tmp_path: Path) -> None:
    real = tmp_path / "big-disk" / "ds"
    real.mkdir(parents=True)
    (tmp_path / "ds").symlink_to(real)  # the user's own choice of where the dataset lives
    with Tree(tmp_path / "ds") as tree, tree.folder(tmp_path / "ds" / "c", create=True):
        pass
    assert (real / "c").is_dir()


def test_a_file_where_a_folder_should_be_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a file")
    with Tree(tmp_path) as tree, pytest.raises(NotADirectoryError) as caught:
        tree.hold(tmp_path / "a" / "b", create=True)
    assert caught.value.filename == str(tmp_path / "a")


def test_a_missing_folder_is_not_made_unless_asked(tmp_path: Path) -> None:
    with Tree(tmp_path) as tree, pytest.raises(FileNotFoundError) as caught:
        tree.hold(tmp_path / "a" / "b")
    assert caught.value.filename == str(tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_paths_outside_the_root_or_with_dot_dot_are_bugs(tmp_path: Path) -> None:
    with Tree(tmp_path / "root", create=True) as tree:
        with pytest.raises(ValueError, match="not inside"):
            tree.hold(tmp_path / "elsewhere")
        with pytest.raises(ValueError, match="plain path"):
            tree.hold(f"{tmp_path}/root/a/../../elsewhere", create=True)
    assert not (tmp_path / "elsewhere").exists()


def test_create_replaces_a_link_and_a_hard_link_with_a_fresh_file(
    tmp_path: Path, outside: Path
) -> None:
    (tmp_path / "sym.part").symlink_to(outside / "canary.bin")
    (tmp_path / "hard.part").hardlink_to(outside / "canary.bin")
    with opened(tmp_path) as folder:
        for name in ("sym.part", "hard.part"):
            fd = folder.create(name)
            os.write(fd, b"new")
            os.close(fd)
    assert (tmp_path / "sym.part").read_bytes() == b"new"
    assert not (tmp_path / "sym.part").is_symlink()
    assert (tmp_path / "hard.part").read_bytes() == b"new"
    assert untouched(outside)


def test_open_refuses_a_link_and_lstat_does_not_follow_it(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "lock").symlink_to(outside / "canary.bin")
    with opened(tmp_path) as folder:
        with pytest.raises(SymlinkError) as caught:
            folder.open("lock", os.O_RDWR | os.O_CREAT)
        found = folder.lstat("lock")
        assert found is not None and stat.S_ISLNK(found.st_mode)
        assert folder.lstat("missing") is None
    assert caught.value.subject == str(tmp_path / "lock")
    assert untouched(outside)


def test_replace_and_unlink_act_on_a_link_itself(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "final").symlink_to(outside / "canary.bin")
    (tmp_path / "other").symlink_to(outside / "canary.bin")
    (tmp_path / "new").write_bytes(b"verified")
    with opened(tmp_path) as folder:
        folder.replace("new", folder, "final")
        assert folder.unlink("other") is True
        assert folder.unlink("other") is False
    assert (tmp_path / "final").read_bytes() == b"verified"
    assert not (tmp_path / "final").is_symlink() and not os.path.lexists(tmp_path / "other")
    assert untouched(outside)


def test_create_new_makes_folders_and_never_overwrites(tmp_path: Path, outside: Path) -> None:
    os.close(create_new(tmp_path, tmp_path / "staging" / "c" / "x.json"))
    with pytest.raises(FileExistsError):
        create_new(tmp_path, tmp_path / "staging" / "c" / "x.json")
    (tmp_path / "staging" / "link").symlink_to(outside)
    with pytest.raises(SymlinkError):
        create_new(tmp_path, tmp_path / "staging" / "link" / "x.json")
    assert untouched(outside)


def test_the_cache_of_open_folders_is_bounded_and_never_closes_a_held_one(
    tmp_path: Path,
) -> None:
    before = open_fds()
    with Tree(tmp_path, create=True, cache=8) as tree:
        held = tree.hold(tmp_path / "held", create=True)
        for i in range(100):
            with tree.folder(tmp_path / "many" / str(i), create=True):
                pass
            assert open_fds() - before <= 8 + 2  # the limit, give or take the walk
        fd = held.create("still.bin")  # the held folder's fd survived every eviction
        os.close(fd)
        tree.release(held)
    assert open_fds() == before  # closed at the end
    assert (tmp_path / "held" / "still.bin").exists()


def test_a_cached_folder_is_reached_without_walking_again(tmp_path: Path) -> None:
    with Tree(tmp_path, create=True) as tree:
        first = tree.hold(tmp_path / "a" / "b", create=True)
        tree.release(first)
        assert tree.hold(tmp_path / "a" / "b") is first
        tree.release(first)


def test_a_tree_without_root_takes_each_folder_as_given(tmp_path: Path) -> None:
    with Tree(None) as tree, tree.folder(tmp_path / "x" / "y", create=True) as folder:
        assert folder.path == str(tmp_path / "x" / "y")
    assert (tmp_path / "x" / "y").is_dir()


def test_remove_tree_never_follows_a_link_and_has_no_depth_limit(
    tmp_path: Path, outside: Path
) -> None:
    top = tmp_path / "staging"
    with Tree(tmp_path) as tree:
        for depth in (3, 1100):  # 1,100 levels: past the recursion limit and ulimit -n 1024
            with tree.folder(top / "/".join(["d"] * depth), create=True):
                pass
    three = top / "d/d/d"
    (three / "file.bin").write_bytes(b"x")
    (three / "escape").symlink_to(outside)
    (top / "canary-link").symlink_to(outside / "canary.bin")
    (top / "side").mkdir()
    before = open_fds()
    with opened(tmp_path) as folder:
        remove_tree(folder, "staging")
        remove_tree(folder, "staging")  # gone already: nothing to do
    assert open_fds() == before  # and a bounded number open meanwhile (not one per level)
    assert not os.path.lexists(top)
    assert untouched(outside)


def test_remove_tree_lists_each_folder_once_however_many_subfolders_it_has(
    tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A re-run's staging: 2,000 item folders emptied by the install, a few still full.
    top = tmp_path / "staging"
    for i in range(2000):
        (top / "s2" / f"scene_{i:04}").mkdir(parents=True)
    for i in range(0, 2000, 500):
        (top / "s2" / f"scene_{i:04}" / "item.json").write_text("{}")
        (top / "s2" / f"scene_{i:04}" / "escape").symlink_to(outside)
    listings = []
    scandir = os.scandir

    def counted(path: Any) -> Any:
        listings.append(path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counted)
    with opened(tmp_path) as folder:
        remove_tree(folder, "staging")
    assert not os.path.lexists(top)
    assert untouched(outside)
    assert len(listings) == 1 + 1 + 4  # staging, s2 and the four folders that were not empty
