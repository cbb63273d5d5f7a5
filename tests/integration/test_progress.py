"""Progress a person can trust (issue 12, C10 and C11): bytes count as they arrive, not when a
file ends; lines without a terminal come from the start; bytes read in binary units (KiB,
MiB), bars included."""

from __future__ import annotations

import io
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlhub_sync.errors import ExitCode
from mlhub_sync.progress import LogReporter, TqdmReporter
from tests.support.mlhub_dataset import blob_bytes, md5_multihash, write_asset_catalog
from tests.support.server import TestServer

MIB = 2**20


class Lines(logging.Handler):
    """The progress lines as they are logged; ``seen`` is set once one matches ``pattern``."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern, self.seen, self.lines = re.compile(pattern), threading.Event(), []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        self.lines.append(text)
        if self.pattern.search(text):
            self.seen.set()


@pytest.fixture
def progress_lines() -> Iterator[Lines]:
    lines = Lines(r"download assets: 0/1 files, 1\.0 MiB/2\.0 MiB")
    logger = logging.getLogger("mlhub_sync.progress")
    logger.addHandler(lines)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)


def test_the_byte_count_moves_while_a_large_file_is_still_arriving(
    tmp_path: Path, cli: Any, progress_lines: Lines
) -> None:
    data = blob_bytes("big", 2 * MIB)

    def first_half_then_wait(stopping: threading.Event) -> Iterator[bytes]:
        yield data[:MIB]
        # The rest comes once a progress line has counted the first MiB (on a run that
        # counted bytes only per finished file, it never would: 5 s, then the test fails).
        progress_lines.seen.wait(5)
        yield data[MIB:]

    with TestServer(tmp_path / "served") as server:
        server.add_stream_route(
            "/big.bin", first_half_then_wait, framing="length", length=len(data)
        )
        asset = {"href": f"{server.url}/big.bin", "file:size": len(data)}
        asset["file:checksum"] = md5_multihash(data)
        write_asset_catalog(tmp_path / "cat.tar.gz", "ds", {"it": asset})
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            yaml.safe_dump(
                {
                    "defaults": {"output_dir": "./out", "timeout": {"progress": 0.3}},
                    "datasets": [{"id": "ds", "source": {"type": "archive", "path": "cat.tar.gz"}}],
                }
            )
        )
        result = cli("apply", spec)
    assert result.code == ExitCode.OK, result.stderr
    assert progress_lines.seen.is_set(), progress_lines.lines
    assert (tmp_path / "out/ds/c/it/data.bin").read_bytes() == data
    assert "download assets: 1/1 files, 2.0 MiB/2.0 MiB" in result.stderr  # the last line


def test_log_lines_count_bytes_in_binary_units(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlhub_sync.progress")
    reporter = LogReporter(interval=3600)
    with reporter.stage("download assets", total=2, unit="files", total_bytes=3 * MIB) as stage:
        stage.update(0, nbytes=1536 * 1024)
        stage.update(2, nbytes=1536 * 1024)
    with reporter.stage("ds: fetch stac catalog", total=3000, unit="B") as stage:
        stage.update(3000)
    lines = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(
        r"download assets: 2/2 files, 3\.0 MiB/3\.0 MiB \(\S+ files/s, \S+ (KiB|MiB|GiB)/s\) done",
        lines[0],
    ), lines
    assert re.fullmatch(
        r"ds: fetch stac catalog: 2\.9 KiB/2\.9 KiB \(\S+ (KiB|MiB|GiB)/s\) done", lines[1]
    )


def test_bars_show_bytes_and_rates_in_binary_units() -> None:
    out = io.StringIO()
    reporter = TqdmReporter(out)
    with reporter.stage(
        "download assets", total=2, unit="files", total_bytes=48 * MIB, show_bytes=True
    ) as stage:
        stage.update(0, nbytes=20 * MIB)
        stage.update(2, nbytes=28 * MIB)
    with reporter.stage("ds: fetch stac catalog", total=3000, unit="B") as stage:
        stage.update(3000)
    with reporter.stage("crawl", unit="files", show_bytes=True) as stage:
        stage.update(1, nbytes=1536)
    shown = out.getvalue()
    assert "48.0 MiB/48.0 MiB [" in shown and "2.9 KiB/2.9 KiB [" in shown
    assert re.search(r"\d\.\d (KiB|MiB|GiB)/s\]", shown)
    assert "  bytes: 1.5 KiB [" in shown  # a total nobody knows: the count alone
    assert not re.search(r"\d(k|M|G)B|kB/s|MB/s|\dB/s", shown)  # no SI units, no bare B/s
