"""Hostile archives and unwritable outputs, end to end through the real CLI.

These machines run as root, where a bad extraction can really damage the system. So the CLI
runs as the unprivileged user ``nobody`` when the tests run as root (``setpriv``), links in
hostile archives point only at a canary inside the test's own tree, and an unwritable output
is a real read-only file system the test mounts.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.mlhub_dataset import write_archive
from tests.support.mounts import tmpfs

NOBODY = 65534
CATALOG = b'{"type": "Catalog", "stac_version": "1.0.0", "id": "x", "links": []}'


@functools.cache  # probed once, by the first test that runs the CLI
def _can_drop_privileges() -> bool:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-c",
            "import mlhub_sync.cli",
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )
    return probe.returncode == 0


@pytest.fixture
def world() -> Iterator[Path]:
    """A work folder the unprivileged user can use (pytest's own tmp is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="mlhub-hostile-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    prefix = (
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        if _can_drop_privileges()
        else []
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
    env["HOME"] = str(cwd)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "mlhub_sync", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def hostile(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> None:
    """An archive with a sound catalog plus one hostile member."""
    with tarfile.open(path, "w:gz") as tar:
        good = tarfile.TarInfo("x/catalog.json")
        good.size = len(CATALOG)
        tar.addfile(good, io.BytesIO(CATALOG))
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    result = {}
    for path in root.rglob("*"):
        if path.is_file() and "out" not in path.relative_to(root).parts[:1]:
            st = path.lstat()
            result[str(path)] = (st.st_mode, st.st_uid, st.st_size, path.read_bytes())
    return result


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (tarfile.TarInfo("x/../../escape.json"), "'..'"),
        (tarfile.TarInfo("/tmp/absolute-escape.json"), "absolute"),
        (_link("x/c/i/labels.geojson", "../../../../canary.txt", tarfile.LNKTYPE), "outside"),
        (_link("x/c/i/link.json", "/etc/hostname", tarfile.SYMTYPE), "outside"),
        (_link("x/c/fifo", "", tarfile.FIFOTYPE), "FIFO"),
    ],
    ids=["dotdot", "absolute", "hardlink-out", "symlink-out", "fifo"],
)
def test_hostile_archive_is_refused_and_the_previous_catalog_stays(
    world: Path, member: tarfile.TarInfo, why: str
) -> None:
    canary = world / "canary.txt"
    canary.write_text("canary")
    canary.chmod(0o644)
    archive = world / "x.tar.gz"
    write_archive(archive, [("catalog.json", CATALOG)], top="x")
    archive.chmod(0o644)
    spec = world / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": "./out"},
                "datasets": [{"id": "x", "source": {"type": "archive", "path": "x.tar.gz"}}],
            }
        )
    )
    assert run(["plan", "spec.yaml", "-q"], world).returncode == 0
    good_catalog = (world / "out/x/catalog.json").read_bytes()
    hostile(archive, member, b"{}" if member.isfile() else b"")
    archive.chmod(0o644)
    os.utime(archive, ns=(7, 7))
    before = _snapshot(world)
    result = run(["plan", "spec.yaml"], world)
    assert result.returncode == 1, result.stderr
    assert "refusing the archive" in result.stderr and why in result.stderr
    assert "x.tar.gz" in result.stderr and member.name.split("/")[-1] in result.stderr
    assert "Traceback" not in result.stderr
    assert _snapshot(world) == before  # nothing outside the output changed, canary included
    assert canary.read_text() == "canary" and canary.stat().st_mode & 0o777 == 0o644
    assert not Path("/tmp/absolute-escape.json").exists()
    assert (world / "out/x/catalog.json").read_bytes() == good_catalog
    assert not list((world / "out/x").glob(".mlhub-staging*"))


@pytest.fixture
def read_only_output(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "ro") as mount:
        yield mount


def test_a_read_only_output_stops_with_a_clear_message(
    tmp_path: Path, read_only_output: Path
) -> None:
    archive = tmp_path / "x.tar.gz"
    write_archive(archive, [("catalog.json", CATALOG)], top="x")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": str(read_only_output)},
                "datasets": [{"id": "x", "source": {"type": "archive", "path": str(archive)}}],
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
    command = [sys.executable, "-m", "mlhub_sync", "apply", str(spec)]
    first = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert first.returncode == 0, first.stderr
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_output)], check=True)
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1
    assert "Read-only file system" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr
