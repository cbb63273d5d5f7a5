"""What the chaos soak (tests/e2e/test_chaos.py) found, as focused, deterministic tests: a
catalog archive damaged in transit, and MD5 checks that must stay on. They need no process of
their own, so the CLI runs in-process here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.e2e.test_chaos import (
    SERVER_MD5,
    SPEC_DEFAULTS,
    Chaos,
    ChaosDataset,
    _isolated_env,
    file_records,
    md5_of,
)
from tests.support.mlhub_dataset import GeneratedDataset, build_many, serve_mlhub
from tests.support.server import Fault, TestServer


class InProcessChaos(Chaos):
    """The soak's scenario, with each run of the CLI in this process."""

    def run(self, *args: str) -> int:
        """Run the CLI to completion; its exit code."""
        result = run_cli(*args, str(self.spec), cwd=self.folder, env=self.env)
        with self.log.open("a") as sink:
            sink.write(f"\n--- {' '.join(args)} ---\n" + result.stdout + result.stderr)
        return result.code


# ------------------------------------------------------------------------------ findings
#
# Focused, deterministic reproductions of what the soak found. They describe the behaviour a
# correct client has; they fail until mlhub_sync is fixed.


@contextmanager
def small_dataset(
    folder: Path, items: int, workers: int = 4
) -> Iterator[tuple[TestServer, GeneratedDataset, Chaos]]:
    """A small ``many`` dataset behind the MLHub API (S3-style MD5 ETags, no other MD5
    header), the archive at its usual ``/blobs/`` URL."""
    with TestServer(folder / "served", etag_style="md5") as server:
        data = build_many(folder / "served", server.url, "many", items=items, size=4096)
        root = serve_mlhub(server, data)
        spec = folder / "spec.yaml"
        defaults = {**SPEC_DEFAULTS, "workers": workers, "timeout": {"connect": 5, "read": 5}}
        spec.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "defaults": {**defaults, "source": {"type": "mlhub", "root_url": root}},
                    "datasets": [{"id": "many"}],
                }
            )
        )
        (folder / "logs").mkdir()
        chaos = InProcessChaos(
            folder,
            [server],
            [ChaosDataset(data, SERVER_MD5)],
            spec,
            _isolated_env(folder),
            folder / "logs" / "runs.log",
        )
        yield server, data, chaos


def _archive_path(data: GeneratedDataset) -> str:
    return f"/blobs/archives/{data.dataset_id}.tar.gz"


@pytest.mark.parametrize("kind", ["corrupt", "gzip", "html"])
def test_a_catalog_archive_damaged_once_in_transit_is_fetched_again(
    tmp_path: Path, kind: str
) -> None:
    """One bad answer for the archive (a flipped byte, an unrequested gzip encoding, an HTML
    page with 200) is a transient fault like any other: retried, not the end of the dataset."""
    with small_dataset(tmp_path, items=3) as (server, data, chaos):
        server.add_fault(_archive_path(data), Fault(kind))
        code = chaos.run("apply", "-q")
        assert code == 0, chaos.tail_of_log()
        for asset in data.assets:
            assert md5_of(chaos.dataset_dir(chaos.datasets[0]) / asset.expected_path) == asset.md5


def test_a_damaged_answer_to_the_catalog_refetch_does_not_fail_a_synced_dataset(
    tmp_path: Path,
) -> None:
    """After a good sync, an HTML page answering the conditional GET of the archive is retried
    (the previous catalog stays valid meanwhile); the run does not fail."""
    with small_dataset(tmp_path, items=3) as (server, data, chaos):
        assert chaos.run("apply", "-q") == 0, chaos.tail_of_log()
        server.add_fault(_archive_path(data), Fault("html"))
        code = chaos.run("apply", "-q")
        assert code == 0, chaos.tail_of_log()


def test_one_asset_corrupted_twice_does_not_turn_off_md5_checks_for_other_assets(
    tmp_path: Path,
) -> None:
    """Two identical damaged bodies for one asset make the transferer decide that the host's
    MD5-looking ETags are not MD5s; it must not then accept a damaged body of *another* asset
    (one worker, so both assets go through the same transferer)."""
    with small_dataset(tmp_path, items=2, workers=1) as (server, data, chaos):
        first, *_, last = sorted(data.assets, key=lambda asset: asset.blob)
        server.add_fault(f"/blobs/{first.blob}", Fault("corrupt"), Fault("corrupt"))
        server.add_fault(f"/blobs/{last.blob}", Fault("corrupt"))
        code = chaos.run("apply", "-q")
        assert code in (0, 1), chaos.tail_of_log()
        base = chaos.dataset_dir(chaos.datasets[0])
        records = file_records(base)
        # The asset damaged twice may be kept on size alone (as for an encrypted upload whose
        # ETag is not its MD5), reported, or right; it is honestly recorded either way.
        first_path = base / first.expected_path
        if first_path.exists() and md5_of(first_path) != first.md5:
            assert records[first.expected_path][2] == "size"
        # The asset damaged once, then served right, must end right.
        assert md5_of(base / last.expected_path) == last.md5, records[last.expected_path]
