"""Chaos soak: ``apply`` as a real process against a server that misbehaves at random, killed
with SIGKILL at seeded random points and run again until a run finishes.

Three datasets (two assets per item) cover the three kinds of evidence a client can have:

- ``sized``: no ``file:checksum``, opaque ETags, no MD5 header: only the size can be checked;
- ``summed``: ``file:checksum`` (MD5 multihash) on every asset;
- ``served``: no catalog checksum, but the server sends ``Content-MD5`` and S3-style ETags.

Every ``/blobs/`` request is faulted with probability ``fault_rate`` (every fault kind the
test server knows). The catalog archives are served from ``/catalogs/``, outside the random
faults: a damaged archive fails the whole dataset (see the archive tests in
tests/integration/test_chaos.py), and the soak is about asset transfers. Invariants, asserted
after every kill and at the end:

- no file under a final name is damaged (content for assets with a checksum or server MD5,
  size for size-only assets), and the dataset folder holds nothing but assets, catalog
  documents and ``.part`` files;
- when a run finishes (exit 0 or 1), every asset is correct on disk or listed in
  ``mlhub_errors.csv`` with a reason;
- nothing is created outside the output tree (``HOME`` and ``TMPDIR`` point into the test
  folder and are compared before and after);
- a final run without faults exits 0, removes the reports, downloads no file that was
  already intact, and leaves every asset with a checksum or server MD5 byte-correct and every
  size-only asset of the right size; the state db tells the truth about every file
  (``verify --deep`` agrees).

What cannot be asserted: a size-only asset whose bytes were altered in transit without
changing its length (the ``corrupt`` fault) is indistinguishable from the real file, so it is
kept, recorded as verified by ``size`` only, and no later run can notice. The test allows
exactly that case (record says ``size``, the recorded MD5 is the MD5 of the bytes on disk,
and the only difference from the real file is inverted bytes, the ``corrupt`` fault's mark).

``pytest --soak`` runs more assets, more kills and several independent rounds.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest
import yaml

from tests.support.mlhub_dataset import GeneratedDataset, build_many, serve_mlhub
from tests.support.server import FAULT_KINDS, TestServer

CHAOS_KINDS: Final = (
    "status",
    "reset",
    "truncate",
    "corrupt",
    "ignore_range",
    "wrong_range",
    "etag_change",
    "stall",
    "html",
    "gzip",
    "long_body",
)
BASE_SEED: Final = 20260417
RUN_TIMEOUT: Final = 240.0  # one apply; the normal soak's runs take a few seconds
KILL_DEADLINE: Final = 120.0  # waiting for a kill point
POLL: Final = 0.002
SPEC_DEFAULTS: Final = {
    "output_dir": "./out",
    "workers": 4,
    "retry": {"max_retries": 8, "backoff": 0.01, "max_backoff": 0.05},
    # random stalls close the connection at once; the short read timeout bounds anything else
    "timeout": {"connect": 2, "read": 0.5},
}
REPORT_NAME: Final = "mlhub_errors.csv"


@dataclass(frozen=True)
class SoakScale:
    """How hard one test run pushes."""

    items: int  # per dataset; two assets per item
    kills: int  # SIGKILLs per round before a run may finish
    rounds: int  # independent scenarios, each with its own seed and folder
    fault_rate: float


NORMAL = SoakScale(items=60, kills=5, rounds=2, fault_rate=0.2)
SOAK = SoakScale(items=1500, kills=12, rounds=4, fault_rate=0.25)

SIZE_ONLY, CHECKSUM, SERVER_MD5 = "size only", "file:checksum", "server md5"


@dataclass(frozen=True)
class ChaosDataset:
    """A generated dataset and the evidence a client has to verify its assets."""

    data: GeneratedDataset
    evidence: str

    @property
    def verifiable(self) -> bool:
        """Whether damaged bytes of the right size can be told from the real ones."""
        return self.evidence != SIZE_ONLY


@dataclass
class Chaos:
    """One scenario: servers, datasets, the spec and the environment of every run."""

    folder: Path
    servers: list[TestServer]
    datasets: list[ChaosDataset]
    spec: Path
    env: dict[str, str]
    log: Path

    def dataset_dir(self, dataset: ChaosDataset) -> Path:
        """``out/{dataset_id}``."""
        return self.folder / "out" / dataset.data.dataset_id

    def requests(self) -> int:
        """Requests answered so far by all servers."""
        return sum(server.count() for server in self.servers)

    def set_fault_rate(self, rate: float, seed: int) -> None:
        """Random faults on every server's ``/blobs/`` (``rate=0``: none)."""
        for index, server in enumerate(self.servers):
            server.set_fault_rate(rate, seed * 10 + index, CHAOS_KINDS if rate else ())

    def start_apply(self) -> subprocess.Popen[bytes]:
        """``mlhub-sync apply SPEC`` in the background, output appended to the log."""
        with self.log.open("ab") as sink:
            sink.write(b"\n--- apply ---\n")
            sink.flush()
            return subprocess.Popen(
                [sys.executable, "-m", "mlhub_sync", "apply", str(self.spec), "-q"],
                cwd=self.folder,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def run(self, *args: str) -> int:
        """Run the CLI to completion; its exit code."""
        proc = subprocess.run(
            [sys.executable, "-m", "mlhub_sync", *args, str(self.spec)],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        with self.log.open("ab") as sink:
            sink.write(f"\n--- {' '.join(args)} ---\n".encode() + proc.stdout + proc.stderr)
        return proc.returncode

    def tail_of_log(self) -> str:
        """The end of the runs' output, for assertion messages."""
        return self.log.read_text(errors="replace")[-3000:]


# ------------------------------------------------------------------------------ setup


def _isolated_env(folder: Path) -> dict[str, str]:
    """The environment of every run: home, temp and cache folders inside ``folder``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLHUB_")}
    home = folder / "home"
    for sub in (home, home / ".mlhub", home / ".cache", folder / "tmp"):
        sub.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        MLHUB_HOME=str(home / ".mlhub"),
        XDG_CACHE_HOME=str(home / ".cache"),
        TMPDIR=str(folder / "tmp"),
    )
    return env


@contextmanager
def chaos_scenario(folder: Path, items: int) -> Iterator[Chaos]:
    """Servers and datasets for one round, with the spec written."""
    folder.mkdir(parents=True)
    served = folder / "served"
    with ExitStack() as stack:
        plain = stack.enter_context(TestServer(served / "plain", etag_style="opaque"))
        md5 = stack.enter_context(
            TestServer(served / "md5", etag_style="md5", md5_header="content-md5")
        )
        sized = build_many(served / "plain", plain.url, "sized", items=items, size=2048)
        summed = build_many(
            served / "plain", plain.url, "summed", items=items, size=3072, checksum=True
        )
        with_md5 = build_many(served / "md5", md5.url, "served", items=items, size=3700)
        roots = {}
        for server, data in ((plain, sized), (plain, summed), (md5, with_md5)):
            roots[data.dataset_id] = serve_mlhub(server, data)
        spec = folder / "spec.yaml"
        spec.write_text(
            yaml.safe_dump(
                {
                    "version": 1,
                    "defaults": SPEC_DEFAULTS,
                    "datasets": [
                        {"id": ds_id, "source": {"type": "mlhub", "root_url": root}}
                        for ds_id, root in roots.items()
                    ],
                },
                sort_keys=False,
            )
        )
        (folder / "logs").mkdir()
        yield Chaos(
            folder=folder,
            servers=[plain, md5],
            datasets=[
                ChaosDataset(sized, SIZE_ONLY),
                ChaosDataset(summed, CHECKSUM),
                ChaosDataset(with_md5, SERVER_MD5),
            ],
            spec=spec,
            env=_isolated_env(folder),
            log=folder / "logs" / "runs.log",
        )


# ------------------------------------------------------------------------------ observations


def md5_of(path: Path) -> str:
    """Hex MD5 of a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def tree_outside_output(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` except ``out/``, ``served/`` and ``logs/``:
    ``{relative path: (size, mtime_ns)}`` (folders as ``(0, 0)``: their mtime moves when a
    temporary file comes and goes, which is allowed)."""
    tree: dict[str, tuple[int, int]] = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if rel.parts[0] in ("out", "served", "logs"):
            continue
        stat = path.lstat()
        tree[rel.as_posix()] = (0, 0) if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
    return tree


def reported_assets(dataset_dir: Path) -> dict[tuple[str, str, str], str]:
    """``{(collection, item, asset_key): "error: message"}`` from the error report."""
    report = dataset_dir / REPORT_NAME
    if not report.exists():
        return {}
    with report.open(newline="", encoding="utf-8") as handle:
        return {
            (row["collection"], row["item"], row["asset_key"]): f"{row['error']}: {row['message']}"
            for row in csv.DictReader(handle)
        }


def file_records(dataset_dir: Path) -> dict[str, tuple[int, str | None, str]]:
    """``{path: (size, md5, verified_by)}`` from the state db's ``files`` table."""
    conn = sqlite3.connect(f"file:{dataset_dir / 'mlhub_stac_assets.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT path, size, md5, verified_by FROM files").fetchall()
    finally:
        conn.close()
    return {path: (size, md5, verified_by) for path, size, md5, verified_by in rows}


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        time.sleep(POLL)  # polling with a deadline, not a synchronising sleep


def unfinished_assets(chaos: Chaos) -> int:
    """Assets not yet at their final path."""
    return sum(
        not (chaos.dataset_dir(ds) / asset.expected_path).exists()
        for ds in chaos.datasets
        for asset in ds.data.assets
    )


def intact_blob_paths(chaos: Chaos) -> set[str]:
    """The server paths of assets whose final file is already byte-correct."""
    return {
        f"/blobs/{asset.blob}"
        for ds in chaos.datasets
        for asset in ds.data.assets
        if (path := chaos.dataset_dir(ds) / asset.expected_path).exists()
        and md5_of(path) == asset.md5
    }


def fetched_paths(chaos: Chaos) -> set[str]:
    """Paths of every GET the servers logged."""
    return {
        record.path
        for server in chaos.servers
        for record in server.requests
        if record.method == "GET"
    }


# ------------------------------------------------------------------------------ invariants


def assert_no_damaged_file_under_a_final_name(chaos: Chaos) -> None:
    """Every asset file present is right (content where verifiable, else size), and the
    collection folder holds only assets, catalog documents and ``.part`` files."""
    for ds in chaos.datasets:
        base = chaos.dataset_dir(ds)
        expected = {asset.expected_path: asset for asset in ds.data.assets}
        for asset in ds.data.assets:
            path = base / asset.expected_path
            if not path.exists():
                continue
            if ds.verifiable:
                assert md5_of(path) == asset.md5, f"damaged file under its final name: {path}"
            else:
                size = path.stat().st_size
                assert size == asset.size, f"{path}: {size} bytes under its final name"
        collection = base / "c"
        if not collection.exists():
            continue
        for path in collection.rglob("*"):
            if path.is_dir():
                continue
            rel = path.relative_to(base).as_posix()
            assert (
                rel in expected
                or rel.removesuffix(".part") in expected
                or _is_catalog_document(rel)
            ), f"stray file in the dataset folder: {rel}"


def _is_catalog_document(rel: str) -> bool:
    """``c/collection.json`` or ``c/{item}/{item}.json``, as ``build_many`` packs them."""
    parts = rel.split("/")
    return rel == "c/collection.json" or (len(parts) == 3 and parts[2] == f"{parts[1]}.json")


def assert_every_asset_correct_or_reported(chaos: Chaos) -> None:
    """After a finished run: each asset is on disk (right) or in the report with a reason."""
    for ds in chaos.datasets:
        base = chaos.dataset_dir(ds)
        reported = reported_assets(base)
        for reason in reported.values():
            assert reason.split(":", 1)[0] and reason.split(":", 1)[1].strip(), reported
        for asset in ds.data.assets:
            key = (asset.collection_id, asset.item_id or "", asset.key)
            if key in reported:
                continue
            path = base / asset.expected_path
            assert path.exists(), (
                f"{ds.data.dataset_id}/{asset.expected_path} is neither on disk nor in the "
                f"report\n{chaos.tail_of_log()}"
            )
            if ds.verifiable:
                assert md5_of(path) == asset.md5, path
            else:
                assert path.stat().st_size == asset.size, path


def assert_clean_run_repaired_everything(chaos: Chaos) -> None:
    """After a run without faults: no report, every asset in place, the db truthful."""
    for ds in chaos.datasets:
        base = chaos.dataset_dir(ds)
        assert not (base / REPORT_NAME).exists(), reported_assets(base)
        records = file_records(base)
        for asset in ds.data.assets:
            path = base / asset.expected_path
            actual = md5_of(path)
            assert asset.expected_path in records, f"{path} has no record after a clean run"
            size, recorded_md5, verified_by = records[asset.expected_path]
            assert size == asset.size, (path, records[asset.expected_path])
            # No MD5 is recorded for a file adopted on the server's size alone (a run killed
            # between renaming the file into place and journaling it leaves one behind).
            assert recorded_md5 in (None, actual), (path, records[asset.expected_path])
            if ds.verifiable or actual == asset.md5:
                assert actual == asset.md5, f"{path} is damaged after a clean run ({verified_by})"
            else:
                # Altered in transit at the right length, with nothing to check it against:
                # kept, and honestly recorded as verified by size only (see the module doc).
                assert verified_by == "size", (path, verified_by)
                assert_only_bytes_inverted_in_transit(path, ds.data.blob_path(asset))


def assert_only_bytes_inverted_in_transit(path: Path, original: Path) -> None:
    """The damage is the ``corrupt`` fault's and nothing else: a byte or two (one per faulted
    response) inverted in place. Shifted, spliced or foreign bytes would be a client bug."""
    got, want = path.read_bytes(), original.read_bytes()
    assert len(got) == len(want), path
    differing = [i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b]
    assert 1 <= len(differing) <= 3, f"{path}: {len(differing)} bytes differ"
    for index in differing:
        assert got[index] == want[index] ^ 0xFF, f"{path}: byte {index} is not an inverted one"


# ------------------------------------------------------------------------------ the soak


def kill_at_a_random_point(chaos: Chaos, rng: random.Random) -> None:
    """Start apply, let a random number of requests through, SIGKILL it (unless it finished
    first, which is fine) and check that nothing damaged is left under a final name."""
    budget = rng.randint(1, max(1, unfinished_assets(chaos)))
    target = chaos.requests() + budget
    proc = chaos.start_apply()
    try:
        wait_until(
            lambda: proc.poll() is not None or chaos.requests() >= target,
            KILL_DEADLINE,
            f"{budget} more requests",
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode in (-signal.SIGKILL, 0, 1), chaos.tail_of_log()
    assert_no_damaged_file_under_a_final_name(chaos)


def finish_a_run(chaos: Chaos) -> int:
    """Run apply to its end; its exit code."""
    proc = chaos.start_apply()
    try:
        return proc.wait(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def chaos_round(folder: Path, scale: SoakScale, seed: int) -> None:
    """One scenario: kills under faults, a finished run under faults, a clean run."""
    rng = random.Random(seed)
    with chaos_scenario(folder, scale.items) as chaos:
        outside_before = tree_outside_output(folder)
        chaos.set_fault_rate(scale.fault_rate, seed)
        for _ in range(scale.kills):
            kill_at_a_random_point(chaos, rng)
        code = finish_a_run(chaos)
        assert code in (0, 1), f"apply under faults exited {code}\n{chaos.tail_of_log()}"
        assert_no_damaged_file_under_a_final_name(chaos)
        assert_every_asset_correct_or_reported(chaos)

        chaos.set_fault_rate(0.0, seed)
        intact = intact_blob_paths(chaos)
        for server in chaos.servers:
            server.clear_log()
        code = chaos.run("apply", "-q")
        assert code == 0, f"the clean run exited {code}\n{chaos.tail_of_log()}"
        assert_clean_run_repaired_everything(chaos)
        refetched = intact & fetched_paths(chaos)
        assert not refetched, f"intact files downloaded again: {sorted(refetched)[:5]}"
        code = chaos.run("verify", "--deep", "-q")
        assert code == 0, f"verify --deep after the clean run exited {code}\n{chaos.tail_of_log()}"
        assert tree_outside_output(folder) == outside_before


@pytest.mark.timeout(1800)  # the --soak version; the normal one takes well under a minute
def test_chaos_soak_kills_and_faults_never_leave_damage_and_a_clean_run_repairs(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    scale = SOAK if pytestconfig.getoption("--soak") else NORMAL
    for round_number in range(scale.rounds):
        chaos_round(tmp_path / f"round-{round_number}", scale, BASE_SEED + round_number)


def test_chaos_uses_every_fault_kind_the_server_knows() -> None:
    assert set(CHAOS_KINDS) == FAULT_KINDS
