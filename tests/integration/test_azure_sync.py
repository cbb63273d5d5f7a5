"""The azure source end to end against a real Blob service (Azurite on 127.0.0.1): a flat tree
synced through its templates (files verified by the listed Content-MD5), a re-run that makes
no asset request, bytes that disagree with the listed Content-MD5 refused, and the example
spec (examples/configs/azure.yaml) synced with its endpoint pointed at the emulator, into
the tree torchgeo opens."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import yaml

from tests.conftest import run_cli
from tests.support.azurite import Azurite, Blob, Container, account_sas, azurite
from tests.support.sql import query

CHIPS = ("adwp", "adwu", "adxp")
BANDS = ("B02", "B03", "B04", "B08")
TEMPLATES = ["{split}_features/{item}/{asset}.tif", "{split}_labels/{item}.tif"]
CLOUD = "ref_cloud_cover_detection_challenge_v1/final/public"
PRIVATE = "/devstoreaccount1/private/"  # the SAS-only container's blob paths


def band(chip: str, name: str) -> bytes:
    return hashlib.sha256(f"{chip}/{name}".encode()).digest() * 8


def tree(prefix: str) -> dict[str, Blob]:
    """The cloud-cover challenge's shape: four bands a chip, a label, the metadata table."""
    blobs = {
        f"{prefix}/train_features/{chip}/{b}.tif": Blob(band(chip, b))
        for chip in CHIPS
        for b in BANDS
    }
    blobs.update({f"{prefix}/train_labels/{chip}.tif": Blob(band(chip, "label")) for chip in CHIPS})
    rows = "".join(f"{chip},Australia,2020-0{i + 1}-15T00:00:00Z\n" for i, chip in enumerate(CHIPS))
    blobs[f"{prefix}/train_metadata.csv"] = Blob(f"chip_id,location,datetime\n{rows}".encode())
    return blobs


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    blobs = tree(CLOUD) | tree("flat")
    blobs["bad/train_features/adwp/B02.tif"] = Blob(b"good bytes", md5="AAAAAAAAAAAAAAAAAAAAAA==")
    blobs["bad/train_features/adwp/B03.tif"] = Blob(b"fine")
    private = {f"locked/{k.removeprefix('flat/')}": b for k, b in tree("flat").items()}
    containers = [Container("mlhub", True, blobs), Container("private", False, private)]
    with azurite(tmp_path_factory.mktemp("azurite"), containers) as running:
        yield running


def write_spec(
    path: Path, service: Azurite, prefix: str, container: str = "mlhub", **source: Any
) -> Path:
    spec = {
        "defaults": {"output_dir": "./out", "retry": {"max_retries": 1, "backoff": 0.01}},
        "datasets": [
            {
                "id": "clouds",
                "source": {
                    "type": "azure", "account": "devstoreaccount1", "container": container,
                    "endpoint": service.endpoint, "prefix": prefix,
                    "template": TEMPLATES,
                    **source,
                },
            }
        ],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def asset_gets(service: Azurite, prefix: str) -> list[str]:
    return [t for m, t, _ in service.requests() if m == "GET" and t.startswith(f"/{prefix}")]


def test_a_flat_tree_syncs_verified_by_the_listed_md5_and_a_rerun_fetches_nothing(
    tmp_path: Path, service: Azurite
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", service, "flat/")
    result = run_cli("apply", spec, "--json", cwd=tmp_path)
    assert result.code == 0, result.stderr
    folder = tmp_path / "out/clouds"
    assert (folder / "clouds/adwp/B02.tif").read_bytes() == band("adwp", "B02")
    verified = dict(query(folder / "mlhub_stac_assets.db", "SELECT path, verified_by FROM files"))
    assert len(verified) == len(CHIPS) * (len(BANDS) + 1)
    assert set(verified.values()) == {"file:checksum"}, verified

    before = len(asset_gets(service, "devstoreaccount1/mlhub/flat/"))
    again = run_cli("apply", spec, "--json", cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert len(asset_gets(service, "devstoreaccount1/mlhub/flat/")) == before  # not one GET
    listings = [t for m, t, _ in service.requests() if "comp=list" in t and "prefix=flat" in t]
    assert len(listings) == 2  # each run listed the prefix once
    # and the listing is the one indexed: no re-index, the Content-MD5s as listed before
    assert again.json()["datasets"][0]["catalog"]["reindexed"] is False


def test_bytes_that_disagree_with_the_listed_md5_are_refused_and_never_placed(
    tmp_path: Path, service: Azurite
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", service, "bad/")
    result = run_cli("apply", spec, cwd=tmp_path)
    assert result.code != 0
    folder = tmp_path / "out/clouds"
    assert not (folder / "clouds/adwp/B02.tif").exists()
    assert (folder / "clouds/adwp/B03.tif").read_bytes() == b"fine"
    report = (folder / "mlhub_errors.csv").read_text()
    assert "B02.tif" in report and "differs from file:checksum" in report
    assert "B03.tif" not in report


def test_the_example_spec_syncs_the_tree_torchgeo_opens(examples: Path, service: Azurite) -> None:
    spec_path = examples / "configs/azure.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    for dataset in spec["datasets"]:
        dataset["source"]["endpoint"] = service.endpoint
        dataset["source"]["account"] = "devstoreaccount1"
    spec["datasets"] = spec["datasets"][:1]  # train; the emulator holds the public half
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_cli("apply", spec_path, cwd=examples)
    assert result.code == 0, result.stderr
    root = examples / "data/out-cloud-cover/train"  # CloudCoverDetection(root)/train
    for chip in CHIPS:
        for b in BANDS:
            assert (root / f"train_features/{chip}/{b}.tif").read_bytes() == band(chip, b)
        assert (root / f"train_labels/{chip}.tif").read_bytes() == band(chip, "label")
    assert (root / "train_metadata.csv").read_text().startswith("chip_id,location,datetime")


def test_a_sas_token_lists_a_private_container_and_is_in_no_file_or_output(
    tmp_path: Path, service: Azurite
) -> None:
    token = account_sas("rl")
    signature = unquote(dict(p.split("=", 1) for p in token.split("&"))["sig"])
    spec = write_spec(tmp_path / "spec.yaml", service, "locked/", container="private")
    env = {"AZURE_STORAGE_SAS_TOKEN": token}
    result = run_cli("plan", spec, "--json", "-vv", cwd=tmp_path, env=env)
    assert result.code == 0, result.stderr
    planned = result.json()["datasets"][0]
    assert planned["pending"] == len(CHIPS) * (len(BANDS) + 1)  # the csv matches no template
    listed = [t for m, t, _ in service.requests() if "comp=list" in t and "prefix=locked" in t]
    assert listed and all("sig=" in t for t in listed)  # the listing was signed
    # the transfers are signed per request by the run's signer (config/access.py), so every
    # file arrives; and no output and no file holds the signature
    applied = run_cli("apply", spec, "-vv", cwd=tmp_path, env=env)
    assert applied.code == 0, applied.stderr
    synced = [p for p in (tmp_path / "out").rglob("*.tif") if p.is_file()]
    assert len(synced) == planned["pending"]
    blob_gets = [
        t for m, t, _ in service.requests() if m == "GET" and t.startswith(PRIVATE) and ".tif" in t
    ]
    assert blob_gets and all("sig=" in t for t in blob_gets)
    for text in (result.stdout, result.stderr, applied.stdout, applied.stderr):
        assert signature not in text and quote(signature, safe="") not in text
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert signature.encode() not in data, path
            assert quote(signature, safe="").encode() not in data, path
