"""The catalog archive: safe extraction, indexing, installing, and refreshing.

Hostile archives are built member by member with tarfile. This machine may run as root, so
links never point at a real system path: they point at a canary file inside the test's
tmp_path, and every test checks that the canary and everything else outside the staging
folder is untouched.
"""

from __future__ import annotations

import datetime as dt
import errno
import gzip
import io
import json
import os
import random
import shutil
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhub_sync.catalog.extract import extract_archive
from mlhub_sync.catalog.install import STAGING_PREFIX, catalog_root, install
from mlhub_sync.catalog.refresh import CatalogStatus, refresh_catalog
from mlhub_sync.config.models import ExtractLimits
from mlhub_sync.config.resolve import DatasetConfig, load_spec
from mlhub_sync.errors import CatalogError, FatalLocalError
from mlhub_sync.net.client import Http
from mlhub_sync.stac.document import Document
from mlhub_sync.state.db import StateDB
from mlhub_sync.state.lock import LOCK_NAME
from mlhub_sync.state.schema import DB_NAME
from tests.support.mlhub_dataset import EPOCH, GeneratedDataset, build_tiny, md5_multihash
from tests.support.sql import query

BASE_URL = "https://data.example.org/mlhub/"
CANARY_TEXT = b"canary: must never change\n"
NOISE = random.Random(20190401).randbytes(50_000)  # incompressible, and the same every run

# -- building archives --------------------------------------------------------------------------

Entry = tuple[tarfile.TarInfo, bytes | None]


def member(name: str, data: bytes = b"{}") -> Entry:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), EPOCH, 0o644
    return info, data


def folder(name: str) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def link(name: str, target: str, *, hard: bool = False) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def special(name: str, kind: bytes) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info, None


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return buffer.getvalue()


def write_tar_gz(path: Path, entries: Iterable[Entry], *, compresslevel: int = 9) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=EPOCH, compresslevel=compresslevel) as gz,
    ):
        gz.write(tar_bytes(entries))
    return path


def good_entries(top: str = "ds") -> list[Entry]:
    prefix = f"{top}/" if top else ""
    return [
        member(f"{prefix}catalog.json", b'{"type": "Catalog"}'),
        member(f"{prefix}coll/collection.json", b'{"type": "Collection"}'),
        member(f"{prefix}coll/item_1/item_1.json", b'{"type": "Feature"}'),
        member(f"{prefix}coll/item_1/labels.geojson", b'{"type": "FeatureCollection"}'),
        member(f"{prefix}coll/item_1/payload.bin", b"PAYLOAD-" * 64),
    ]


# -- the sandbox: a staging folder, a canary, and a before/after picture of the tree ------------


def picture(root: Path, skip: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every path under ``root`` except ``skip``: its kind, size and (for files) content."""
    seen: dict[str, tuple[str, int, bytes]] = {}
    for folder_, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder_)
        if here == skip or skip in here.parents:
            dirs.clear()
            continue
        for name in dirs + files:
            path = here / name
            st = path.lstat()
            content = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            seen[str(path.relative_to(root))] = (stat.filemode(st.st_mode), st.st_size, content)
    return seen


@dataclass
class Sandbox:
    root: Path
    staging: Path
    canary: Path
    archive: Path

    def extract(self, limits: ExtractLimits | None = None) -> list[Document]:
        if limits is None:
            return list(extract_archive(self.archive, self.staging, BASE_URL))
        return list(extract_archive(self.archive, self.staging, BASE_URL, limits))

    def refuse(self, match: str, limits: ExtractLimits | None = None) -> CatalogError:
        """Extract, expecting a refusal that names the archive and matches ``match``."""
        before = picture(self.root, self.staging)
        with pytest.raises(CatalogError, match=match) as caught:
            self.extract(limits)
        assert str(self.archive) in str(caught.value)
        assert picture(self.root, self.staging) == before
        assert self.canary.read_bytes() == CANARY_TEXT
        self.assert_staging_is_plain()
        return caught.value

    def assert_staging_is_plain(self) -> None:
        """Only plain files and folders in staging, and all of them really inside it."""
        for folder_, dirs, files in os.walk(self.staging, followlinks=False):
            for name in dirs + files:
                path = Path(folder_) / name
                mode = path.lstat().st_mode
                assert stat.S_ISREG(mode) or stat.S_ISDIR(mode), path
                assert self.staging.resolve() in path.resolve().parents


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    canary = tmp_path / "outside" / "canary.txt"
    canary.parent.mkdir()
    canary.write_bytes(CANARY_TEXT)
    staging = tmp_path / "dataset" / f"{STAGING_PREFIX}-test"
    staging.mkdir(parents=True)
    return Sandbox(tmp_path, staging, canary, tmp_path / "incoming" / "ds.tar.gz")


def staged(sandbox: Sandbox) -> set[str]:
    return {str(p.relative_to(sandbox.staging)) for p in sandbox.staging.rglob("*") if p.is_file()}


# -- a sound archive ----------------------------------------------------------------------------


def test_a_sound_archive_is_staged_and_its_json_members_yielded(sandbox: Sandbox) -> None:
    write_tar_gz(sandbox.archive, good_entries())
    docs = sandbox.extract()
    assert [d.name for d in docs] == [
        "ds/catalog.json",
        "ds/coll/collection.json",
        "ds/coll/item_1/item_1.json",
    ]
    assert docs[2].data == b'{"type": "Feature"}'
    assert docs[2].url == BASE_URL + "ds/coll/item_1/item_1.json"
    assert staged(sandbox) == {
        "ds/catalog.json",
        "ds/coll/collection.json",
        "ds/coll/item_1/item_1.json",
        "ds/coll/item_1/labels.geojson",
        "ds/coll/item_1/payload.bin",
    }
    assert (sandbox.staging / "ds/coll/item_1/payload.bin").read_bytes() == b"PAYLOAD-" * 64


def test_document_urls_are_quoted_so_relative_hrefs_resolve_inside_the_folder(
    sandbox: Sandbox,
) -> None:
    write_tar_gz(sandbox.archive, [member("ds/my coll/it#em 1/it#em 1.json")])
    (doc,) = sandbox.extract()
    assert doc.name == "ds/my coll/it#em 1/it#em 1.json"
    assert doc.url == BASE_URL + "ds/my%20coll/it%23em%201/it%23em%201.json"


def test_debris_is_skipped(sandbox: Sandbox) -> None:
    write_tar_gz(
        sandbox.archive,
        [
            *good_entries(),
            member("ds/._catalog.json", b"\x00\x05\x16\x07"),
            member("ds/.DS_Store", b"debris"),
            member("ds/coll/._collection.json", b"\x00\x05\x16\x07"),
            folder("__MACOSX"),
            member("__MACOSX/ds/._catalog.json", b"{}"),
            member("ds/coll/Thumbs.db", b"debris"),
        ],
    )
    docs = sandbox.extract()
    assert all("._" not in d.name for d in docs)
    assert staged(sandbox) == {
        "ds/catalog.json",
        "ds/coll/collection.json",
        "ds/coll/item_1/item_1.json",
        "ds/coll/item_1/labels.geojson",
        "ds/coll/item_1/payload.bin",
    }


def test_links_that_stay_inside_are_skipped_not_created(sandbox: Sandbox) -> None:
    write_tar_gz(
        sandbox.archive,
        [
            *good_entries(),
            link("ds/coll/alias.json", "collection.json"),
            link("ds/coll/item_1/same.bin", "ds/coll/item_1/payload.bin", hard=True),
            link("ds/shortcut", "coll"),
            link("ds/coll/dots", "..hidden.json", hard=True),  # a name starting with dots
            member("ds/shortcut/through.json", b"{}"),  # a real folder, not the link
        ],
    )
    sandbox.extract()
    assert not (sandbox.staging / "ds/coll/alias.json").exists()
    assert not (sandbox.staging / "ds/coll/item_1/same.bin").exists()
    assert (sandbox.staging / "ds/shortcut").is_dir()
    assert not (sandbox.staging / "ds/coll/through.json").exists()
    sandbox.assert_staging_is_plain()


@pytest.mark.parametrize(
    ("top", "expected"),
    [("ds", "ds"), ("something_else", "something_else"), ("", "")],
)
def test_catalog_root_finds_the_top_folder_whatever_its_name(
    sandbox: Sandbox, top: str, expected: str
) -> None:
    write_tar_gz(sandbox.archive, [*good_entries(top), member("._junk", b"x")])
    sandbox.extract()
    root = catalog_root(sandbox.staging)
    assert root == sandbox.staging / expected if expected else root == sandbox.staging
    assert (root / "catalog.json").is_file()


# -- hostile members ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("{outside}/evil.txt", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("\\\\server\\share\\evil.txt", "absolute"),
        ("../outside/evil.txt", r"'\.\.'"),
        ("ds/../../outside/evil.txt", r"'\.\.'"),
        ("ds/..\\..\\outside\\evil.txt", r"'\.\.'"),
    ],
)
def test_members_with_escaping_paths_are_refused(sandbox: Sandbox, bad: str, why: str) -> None:
    name = bad.format(outside=sandbox.canary.parent)
    write_tar_gz(sandbox.archive, [*good_entries(), member(name, b"pwned")])
    error = sandbox.refuse(why)
    assert repr(name) in str(error)
    assert not (sandbox.canary.parent / "evil.txt").exists()


@pytest.mark.parametrize(
    ("target", "hard"),
    [
        ("{canary}", False),
        ("{canary}", True),
        # a symlink resolves from its own folder (ds/coll/item_1/), a hard link from the top
        ("../../../../outside/canary.txt", False),
        ("../../../../outside", False),
        ("./x/../../../../../outside/canary.txt", False),
        ("../outside/canary.txt", True),
        ("ds/../../outside/canary.txt", True),
        ("..\\..\\..\\..\\outside\\canary.txt", False),
        ("C:/outside/canary.txt", True),
    ],
)
def test_links_pointing_outside_are_refused(sandbox: Sandbox, target: str, hard: bool) -> None:
    linkname = target.format(canary=sandbox.canary)
    write_tar_gz(
        sandbox.archive,
        [
            *good_entries(),
            link("ds/coll/item_1/evil", linkname, hard=hard),
            member("ds/coll/item_1/evil", b"overwrite the canary through the link"),
        ],
    )
    error = sandbox.refuse("outside the archive")
    assert "ds/coll/item_1/evil" in str(error)


@pytest.mark.parametrize(
    "kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE], ids=["fifo", "chr", "blk"]
)
def test_devices_and_fifos_are_refused(sandbox: Sandbox, kind: bytes) -> None:
    write_tar_gz(sandbox.archive, [*good_entries(), special("ds/coll/node", kind)])
    error = sandbox.refuse("device, FIFO or other special file")
    assert "ds/coll/node" in str(error)


def test_duplicate_member_names_are_refused(sandbox: Sandbox) -> None:
    write_tar_gz(
        sandbox.archive,
        [*good_entries(), member("ds/coll/collection.json", b'{"evil": true}')],
    )
    error = sandbox.refuse("appears twice")
    assert "ds/coll/collection.json" in str(error)


def test_names_that_only_differ_by_dots_and_slashes_are_duplicates(sandbox: Sandbox) -> None:
    write_tar_gz(sandbox.archive, [*good_entries(), member("./ds//coll/./collection.json")])
    sandbox.refuse("appears twice")


@pytest.mark.parametrize(
    "entries",
    [
        [member("ds/a", b"file"), member("ds/a/b.json")],
        [member("ds/a/b.json"), member("ds/a", b"file")],
    ],
    ids=["folder-under-a-file", "file-over-a-folder"],
)
def test_a_file_and_a_folder_of_one_name_are_refused_naming_the_member(
    sandbox: Sandbox, entries: list[Entry]
) -> None:
    write_tar_gz(sandbox.archive, entries)
    error = sandbox.refuse("refusing the archive: member")
    assert "'ds/a" in str(error)


DEEP = "ds/" + "d/" * 2000 + "deep.json"  # 2,000 nested folders (a RecursionError once)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (DEEP, "is nested 2001 folders deep"),
        ("ds/coll/" + "n" * 251 + ".json", "has a name longer than 255 bytes"),
        ("ds/" + "/".join(["p" * 200] * 6) + "/x.json", "has a path longer than 1024 bytes"),
    ],
    ids=["2000-folders-deep", "a-256-byte-name", "a-1300-byte-path"],
)
def test_members_no_file_system_would_hold_are_refused_naming_the_member(
    sandbox: Sandbox, name: str, why: str
) -> None:
    write_tar_gz(sandbox.archive, [*good_entries(), member(name)])
    error = sandbox.refuse(why)  # a bad archive, not a local write failure or a crash
    assert name[:100] in str(error)


def test_more_members_than_the_limit_are_refused(sandbox: Sandbox) -> None:
    write_tar_gz(sandbox.archive, good_entries())  # 5 members
    sandbox.extract(ExtractLimits(max_members=5))
    shutil.rmtree(sandbox.staging)
    sandbox.staging.mkdir()
    error = sandbox.refuse("beyond 4 members", ExtractLimits(max_members=4))
    assert "ds/coll/item_1/payload.bin" in str(error)


def test_unpacked_bytes_beyond_the_cap_are_refused_before_writing(sandbox: Sandbox) -> None:
    write_tar_gz(
        sandbox.archive,
        [member("ds/a.bin", b"a" * 600), member("ds/bomb.bin", b"b" * 600)],
    )
    limits = ExtractLimits(max_unpacked_bytes=1000)
    error = sandbox.refuse("beyond 1000 bytes", limits)
    assert "ds/bomb.bin" in str(error)
    assert not (sandbox.staging / "ds/bomb.bin").exists()


def test_an_archive_expanding_beyond_the_ratio_is_refused(sandbox: Sandbox) -> None:
    write_tar_gz(sandbox.archive, [member("ds/zeros.bin", bytes(200_000))])
    compressed = sandbox.archive.stat().st_size
    assert compressed * 10 < 200_000
    limits = ExtractLimits(max_ratio=10, ratio_floor_bytes=0)
    assert limits.byte_cap(compressed) == compressed * 10
    sandbox.refuse("decompression bomb", limits)


def test_the_ratio_floor_lets_small_archives_expand() -> None:
    limits = ExtractLimits(max_ratio=10, ratio_floor_bytes=5000, max_unpacked_bytes=10**9)
    assert limits.byte_cap(100) == 5000
    assert limits.byte_cap(1000) == 10_000
    assert ExtractLimits(max_unpacked_bytes=7000, ratio_floor_bytes=5000).byte_cap(10**6) == 7000


def test_a_full_disk_while_staging_is_a_local_failure_not_a_damaged_archive(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FullDisk(io.RawIOBase):
        def __init__(self, fd: int, *args: Any, **kwargs: Any) -> None:
            os.close(fd)

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    write_tar_gz(sandbox.archive, good_entries())
    monkeypatch.setattr(os, "fdopen", FullDisk)
    with pytest.raises(FatalLocalError, match="No space left on device") as caught:
        sandbox.extract()
    assert not isinstance(caught.value, CatalogError)
    assert str(sandbox.staging) in str(caught.value)


# -- damaged or wrong files ---------------------------------------------------------------------


def test_a_truncated_gzip_is_refused(sandbox: Sandbox) -> None:
    write_tar_gz(sandbox.archive, [*good_entries(), member("ds/big.bin", NOISE[:50_000])])
    data = sandbox.archive.read_bytes()
    sandbox.archive.write_bytes(data[: len(data) // 2])
    sandbox.refuse("damaged or not a .tar.gz.*truncated")


def test_a_gzip_missing_only_its_trailer_is_refused(sandbox: Sandbox) -> None:
    write_tar_gz(sandbox.archive, good_entries())
    sandbox.archive.write_bytes(sandbox.archive.read_bytes()[:-8])  # CRC32 + ISIZE gone
    sandbox.refuse("truncated")


def test_one_flipped_byte_is_caught_by_the_gzip_crc_though_tarfile_misses_it(
    sandbox: Sandbox,
) -> None:
    # compresslevel=0 stores the bytes as they are, so the flip changes exactly one byte of
    # payload.bin and nothing else: every header stays valid.
    write_tar_gz(sandbox.archive, good_entries(), compresslevel=0)
    data = bytearray(sandbox.archive.read_bytes())
    at = data.index(b"PAYLOAD-") + 3
    data[at] ^= 0x01
    sandbox.archive.write_bytes(bytes(data))
    with tarfile.open(sandbox.archive, "r:gz") as tar:  # tarfile alone: no complaint
        contents = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    assert contents["ds/coll/item_1/payload.bin"] != b"PAYLOAD-" * 64
    sandbox.refuse("gzip checksum does not match")


@pytest.mark.parametrize("position", [0.3, 0.5, 0.7, 0.9])
def test_a_flipped_byte_in_a_compressed_stream_is_refused(
    sandbox: Sandbox, position: float
) -> None:
    write_tar_gz(sandbox.archive, [*good_entries(), member("ds/noise.bin", NOISE[:20_000])])
    data = bytearray(sandbox.archive.read_bytes())
    data[int(len(data) * position)] ^= 0x10
    sandbox.archive.write_bytes(bytes(data))
    sandbox.refuse("damaged")


def test_a_damaged_member_header_inside_a_sound_gzip_is_refused(sandbox: Sandbox) -> None:
    # tarfile stops quietly at an invalid header, as if the archive ended there: the members
    # after it would be lost without a word.
    raw = bytearray(tar_bytes([*good_entries(), member("ds/coll/last.json")]))
    header = raw.index(b"ds/coll/last.json")
    raw[header + 148 : header + 156] = b"garbage!"  # the header checksum field
    sandbox.archive.parent.mkdir(parents=True)
    sandbox.archive.write_bytes(gzip.compress(bytes(raw), mtime=EPOCH))
    sandbox.refuse("member header .* is not valid")


def test_a_plain_tar_is_not_a_tar_gz(sandbox: Sandbox) -> None:
    sandbox.archive.parent.mkdir(parents=True)
    sandbox.archive.write_bytes(tar_bytes(good_entries()))
    sandbox.refuse("not a .tar.gz")


def test_an_html_error_page_is_named_as_such(sandbox: Sandbox) -> None:
    sandbox.archive.parent.mkdir(parents=True)
    sandbox.archive.write_bytes(
        b"\n<!DOCTYPE html>\n<html><body><h1>503 Service Unavailable</h1></body></html>\n"
    )
    sandbox.refuse("not a .tar.gz.*HTML")


def test_a_json_error_body_is_named_as_such(sandbox: Sandbox) -> None:
    sandbox.archive.parent.mkdir(parents=True)
    sandbox.archive.write_bytes(b'{"detail": "Invalid API key"}')
    sandbox.refuse("not a .tar.gz.*JSON")


def test_an_empty_file_is_refused(sandbox: Sandbox) -> None:
    sandbox.archive.parent.mkdir(parents=True)
    sandbox.archive.write_bytes(b"")
    sandbox.refuse("damaged or not a .tar.gz")


def test_a_gzip_of_something_else_is_refused(sandbox: Sandbox) -> None:
    sandbox.archive.parent.mkdir(parents=True)
    sandbox.archive.write_bytes(gzip.compress(json.dumps({"not": "a tar"}).encode() * 50))
    sandbox.refuse("damaged or not a .tar.gz")


# -- install ------------------------------------------------------------------------------------


def test_install_moves_the_tree_but_not_protected_assets(tmp_path: Path) -> None:
    dataset = tmp_path / "dataset"
    root = dataset / f"{STAGING_PREFIX}-test" / "ds"
    for rel in ["catalog.json", "coll/collection.json", "coll/item_1/labels.geojson"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"new {rel}")
    (dataset / "coll/item_1").mkdir(parents=True)
    (dataset / "coll/item_1/labels.geojson").write_text("verified download")
    (dataset / "catalog.json").write_text("old catalog")
    moved = install(root, dataset, lambda rel: rel == "coll/item_1/labels.geojson")
    assert moved == 2
    assert (dataset / "catalog.json").read_text() == "new catalog.json"
    assert (dataset / "coll/collection.json").read_text() == "new coll/collection.json"
    assert (dataset / "coll/item_1/labels.geojson").read_text() == "verified download"


@pytest.mark.parametrize(
    "reserved",
    [
        DB_NAME,
        f"{DB_NAME}-wal",
        LOCK_NAME,
        "ds.tar.gz",
        "ds.tar.gz.part",
        f"{STAGING_PREFIX}-1/x.json",
        f"{DB_NAME}/inside.json",
    ],
)
def test_install_never_overwrites_our_own_bookkeeping(tmp_path: Path, reserved: str) -> None:
    dataset = tmp_path / "dataset"
    root = dataset / f"{STAGING_PREFIX}-test" / "ds"
    (root / reserved).parent.mkdir(parents=True, exist_ok=True)
    (root / reserved).write_text("from the archive")
    (root / "catalog.json").write_text("catalog")
    top = reserved.split("/", maxsplit=1)[0]
    (dataset / top).write_text("ours")
    install(root, dataset, lambda rel: False)
    assert (dataset / top).read_text() == "ours"
    assert (dataset / "catalog.json").read_text() == "catalog"


# -- refresh: fetch, extract, index and install in one step -------------------------------------


@pytest.fixture
def http() -> Iterator[Http]:
    client = Http()
    yield client
    client.session.close()


@dataclass
class Local:
    """A dataset whose source is a local archive file, and its resolved config."""

    source: Path
    config: DatasetConfig
    http: Http

    @property
    def dataset_dir(self) -> Path:
        return self.config.dataset_dir

    def refresh(self) -> CatalogStatus:
        with StateDB.open(self.dataset_dir) as db:
            return refresh_catalog(self.config, db, self.http, {})

    def replace_source(self, data: bytes) -> None:
        """New bytes for the source archive, with a new mtime (as a new download would be)."""
        before = self.source.stat().st_mtime_ns
        self.source.write_bytes(data)
        os.utime(self.source, ns=(before + 10**9, before + 10**9))

    def index(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        db_file = self.dataset_dir / DB_NAME
        items = query(db_file, "SELECT * FROM items ORDER BY item_pk")
        assets = query(db_file, "SELECT * FROM assets ORDER BY asset_pk")
        return items, assets


def tiny_archive(tmp_path: Path, name: str = "v1", **kwargs: Any) -> GeneratedDataset:
    return build_tiny(tmp_path / name, "https://blobs.example.org", **kwargs)


def make_local(tmp_path: Path, archive: Path, http: Http, dataset_id: str = "tiny") -> Local:
    source = tmp_path / "catalogs" / f"{dataset_id}.tar.gz"
    source.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(archive, source)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "defaults": {"output_dir": "./out"},
                "datasets": [
                    {"id": dataset_id, "source": {"type": "archive", "path": str(source)}}
                ],
            }
        )
    )
    (config,) = load_spec(spec, environ={}).datasets
    config.dataset_dir.mkdir(parents=True, exist_ok=True)
    return Local(source, config, http)


@pytest.fixture
def tiny(tmp_path: Path, http: Http) -> Local:
    return make_local(tmp_path, tiny_archive(tmp_path).archive, http)


def test_the_first_refresh_indexes_and_installs_the_catalog(tiny: Local) -> None:
    status = tiny.refresh()
    assert status == CatalogStatus(True, 10, 29, 0, 0)
    ds = tiny.dataset_dir
    assert json.loads((ds / "catalog.json").read_text())["id"] == "tiny"
    assert (ds / "tiny_source/collection.json").is_file()
    assert (ds / "tiny_labels/lbl_0/lbl_0.json").is_file()
    assert (ds / "tiny_labels/lbl_0/labels.geojson").is_file()  # shipped in the archive
    assert (ds / "tiny.tar.gz").read_bytes() == tiny.source.read_bytes()
    assert not (ds / "._catalog.json").exists()
    assert not (ds / ".DS_Store").exists()
    assert not list(ds.glob(f"{STAGING_PREFIX}*"))
    assert not list(ds.glob("*.part"))


def test_a_second_refresh_of_the_same_archive_does_not_reindex(tiny: Local) -> None:
    tiny.refresh()
    index = tiny.index()
    assert tiny.refresh() == CatalogStatus(False, 10, 29, 0)
    assert tiny.index() == index


def test_the_same_bytes_with_a_new_mtime_do_not_reindex(tiny: Local) -> None:
    tiny.refresh()
    tiny.replace_source(tiny.source.read_bytes())
    assert not tiny.refresh().reindexed
    assert not list(tiny.dataset_dir.glob("*.part"))


def test_a_changed_archive_reindexes(tiny: Local, tmp_path: Path) -> None:
    tiny.refresh()
    _, old_assets = tiny.index()
    changed = tiny_archive(tmp_path, "v2", size=4096).archive
    tiny.replace_source(changed.read_bytes())
    status = tiny.refresh()
    assert status.reindexed
    assert (status.items, status.assets) == (10, 29)
    _, new_assets = tiny.index()
    assert new_assets != old_assets
    assert (tiny.dataset_dir / "tiny.tar.gz").read_bytes() == changed.read_bytes()


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def flipped(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0x20
    return bytes(damaged)


def hostile(_: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=EPOCH) as gz:
        gz.write(tar_bytes([*good_entries("tiny"), member("tiny/../escape.json")]))
    return buffer.getvalue()


@pytest.mark.parametrize("damage", [truncated, flipped, hostile])
def test_a_bad_new_archive_leaves_the_previous_catalog_archive_and_index(
    tiny: Local, tmp_path: Path, damage: Any
) -> None:
    tiny.refresh()
    ds = tiny.dataset_dir
    catalog, kept, index = (
        (ds / "catalog.json").read_bytes(),
        (ds / "tiny.tar.gz").read_bytes(),
        tiny.index(),
    )
    changed = tiny_archive(tmp_path, "v2", size=4096).archive.read_bytes()
    tiny.replace_source(damage(changed))
    with pytest.raises(CatalogError) as caught:
        tiny.refresh()
    assert "tiny.tar.gz" in str(caught.value)
    assert (ds / "catalog.json").read_bytes() == catalog
    assert (ds / "tiny.tar.gz").read_bytes() == kept
    assert tiny.index() == index
    assert not list(ds.glob(f"{STAGING_PREFIX}*"))
    assert not list(ds.glob("*.part"))
    assert not (tmp_path / "out" / "escape.json").exists()
    # and the next good archive is taken as usual
    tiny.replace_source(changed)
    assert tiny.refresh().reindexed


def test_the_index_holds_the_tiny_datasets_items_and_assets(tiny: Local) -> None:
    tiny.refresh()
    items, assets = tiny.index()
    by_id = {row[2]: row for row in items}
    assert sorted(by_id) == [f"lbl_{i}" for i in range(4)] + [f"src_{i}" for i in range(6)]

    def when(text: str) -> float:
        return dt.datetime.fromisoformat(text).timestamp()

    # (collection, minx, miny, maxx, maxy, start, end)
    src_0, lbl_0, lbl_1, lbl_3 = by_id["src_0"], by_id["lbl_0"], by_id["lbl_1"], by_id["lbl_3"]
    assert src_0[1] == "tiny_source"
    assert src_0[3:7] == pytest.approx((-13.26, 8.46, -13.24, 8.48))
    assert src_0[8] == src_0[9] == when("2019-04-01T10:00:00+00:00")
    assert by_id["src_5"][8] == when("2019-04-06T10:00:00+00:00")
    assert lbl_0[3:7] == pytest.approx((-13.25, 8.47, -13.25, 8.47))  # a point
    assert json.loads(lbl_0[7]) == {"type": "Point", "coordinates": [-13.25, 8.47]}
    assert (lbl_0[8], lbl_0[9]) == (
        when("2019-03-01T00:00:00+00:00"),
        when("2019-03-28T00:00:00+00:00"),
    )
    assert lbl_1[3:7] == pytest.approx((-13.26, 8.46, -13.24, 8.48))  # from its geometry
    assert (lbl_3[8], lbl_3[9]) == (None, None)

    # assets: (asset_pk, item_pk, collection, item, key, href, media, size, checksum, path)
    assert len(assets) == 29
    keyed = {(a[3], a[4]): a for a in assets}
    assert sum(1 for a in assets if a[4] == "documentation") == 10
    class_map = keyed[(None, "class_map")]
    assert (class_map[1], class_map[2], class_map[9]) == (
        None,
        "tiny_labels",
        "tiny_labels/class_map.csv",
    )
    b02 = keyed[("src_0", "B02")]
    data = (tiny.config.output_dir.parent / "v1/blobs/tiny/src/src_0/B02.tif").read_bytes()
    assert (b02[7], b02[8]) == (2048, md5_multihash(data))
    assert keyed[("src_1", "B02")][8] is None
    assert keyed[("src_3", "B04")][5].endswith("B04.tif?sv=2021-06-08&sig=SECRETSIG")
    paths = {a[9] for a in assets}
    assert {
        "tiny_source/src_1/B03.tif",
        "tiny_source/src_2/B04.tif",
        "tiny_source/src_3/B04.tif",
        "tiny_labels/lbl_2/labels.geojson",
    } <= paths


@pytest.mark.parametrize("top", ["other_top_folder", ""])
def test_an_archive_with_another_top_folder_or_none_installs_the_same_tree(
    tmp_path: Path, http: Http, top: str
) -> None:
    local = make_local(tmp_path, tiny_archive(tmp_path, top_folder=top).archive, http)
    assert local.refresh() == CatalogStatus(True, 10, 29, 0, 0)
    assert (local.dataset_dir / "catalog.json").is_file()
    assert (local.dataset_dir / "tiny_labels/lbl_3/lbl_3.json").is_file()
    assert not (local.dataset_dir / "other_top_folder").exists()


def test_an_archive_shipping_a_state_db_cannot_replace_ours(tmp_path: Path, http: Http) -> None:
    entries = [
        member(
            "tiny/catalog.json",
            json.dumps(
                {"type": "Catalog", "stac_version": "1.0.0", "id": "tiny", "links": []}
            ).encode(),
        ),
        member(f"tiny/{DB_NAME}", b"not a database"),
        member("tiny/tiny.tar.gz", b"not our archive"),
    ]
    archive = write_tar_gz(tmp_path / "evil" / "tiny.tar.gz", entries)
    local = make_local(tmp_path, archive, http)
    local.refresh()
    assert (local.dataset_dir / DB_NAME).read_bytes().startswith(b"SQLite format 3\x00")
    with StateDB.open(local.dataset_dir) as db:
        assert db.get_meta("indexed_digest")
    assert (local.dataset_dir / "tiny.tar.gz").read_bytes() == archive.read_bytes()
