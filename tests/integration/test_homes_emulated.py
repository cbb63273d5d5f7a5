"""The seed's datasets plan against a local emulation of their new home.

The seed document (``shared/seeds``) downloads ``nasa_marine_debris`` whole and
``sen12floods`` with a collection filter (``sen12floods_s2_source``: B02, B03, B04, B08;
``sen12floods_s2_labels``: labels, documentation) and a datetime window (2019-04-01 to
2019-04-07). Here the same spec, with no ``source``, resolves through the registry; the
registry's entries (both in the Azure container the old MLHub hrefs pointed at) are pointed
at a real Azure Blob emulator on 127.0.0.1 (Azurite, ``tests/support/azurite.py``) the way a
user points them at a mirror: a ``$MLHUB_SYNC_HOMES`` file whose entries keep the packaged
source (its type, container, prefix and templates) and change only its ``endpoint``. The
emulator holds keys shaped like the real homes (torchgeo's trees; see the comments in
``mlhub_sync/config/homes.yaml``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlhub_sync.config.homes import HOMES_ENV, load_homes
from mlhub_sync.errors import ExitCode
from tests.support.azurite import Blob, Container, azurite

CHIPS = ["20160928_153233_0e16_16816-29821-16", "20170326_153234_0e26_17069-29758-16"]
BANDS = ["B01", "B02", "B03", "B04", "B08", "B11"]
DATES = ["2019_03_20", "2019_04_02", "2019_04_05", "2019_04_20"]  # two in the seed's window


def marine_debris() -> dict[str, int]:
    keys = {f"nasa-marine-debris/source/{c}.tif": 300 for c in CHIPS}
    keys |= {f"nasa-marine-debris/labels/{c}.npy": 40 for c in CHIPS}
    keys[f"nasa-marine-debris/source/{CHIPS[0]}.jpg"] = 10  # not in the old catalog
    return keys


def floods() -> dict[str, int]:
    keys = {"sen12floods/documentation.pdf": 50}
    for sequence in ("0001", "0232"):
        for date in DATES:
            source = f"sen12floods/sen12floods_s2_source/sen12floods_s2_source_{sequence}_{date}"
            keys |= {f"{source}/{band}.tif": 100 for band in BANDS}
            labels = f"sen12floods/sen12floods_s2_labels/sen12floods_s2_labels_{sequence}_{date}"
            keys[f"{labels}/labels.geojson"] = 20
            s1 = f"sen12floods/sen12floods_s1_source/sen12floods_s1_source_{sequence}_{date}"
            keys |= {f"{s1}/VV.tif": 100, f"{s1}/VH.tif": 100}
    return keys


def mirror_of_the_registry(path: Path, endpoint: str) -> Path:
    """A homes file: the packaged entries of the seed's datasets, moved to ``endpoint``."""
    entries = {}
    for dataset in ("nasa_marine_debris", "sen12floods"):
        home = load_homes({}).find(dataset)
        assert home is not None
        assert home.source.type == "azure"  # where the old MLHub hrefs pointed
        fields = home.model_dump(mode="json", exclude={"id", "source", "mirrors"})
        fields["source"] = {
            **home.source.model_dump(mode="json", exclude_unset=True),
            "endpoint": endpoint,
        }
        entries[dataset] = fields
    path.write_text(json.dumps({"version": 1, "datasets": entries}), encoding="utf-8")
    return path


# The seed's calls, one dataset entry each (the same id needs its own output_dir), and what
# each selects from the emulated tree: 2 sequences x 4 dates of sen12floods_s2_source (6 bands),
# sen12floods_s2_labels (labels) and sen12floods_s1_source (VV, VH); 2 dates in the window.
CALLS = [
    ("nasa_marine_debris.download()", "id: nasa_marine_debris", 4),
    ("sen12floods.download()", "id: sen12floods", 8 * (6 + 1 + 2)),
    (
        "download(collection_filter=my_filter)",
        "{id: sen12floods, output_dir: ./by-collection, collection_filter: "
        "{sen12floods_s2_source: [B02, B03, B04, B08], "
        "sen12floods_s2_labels: [labels, documentation]}}",
        8 * (4 + 1),
    ),
    (
        "download(datetime=(my_start_date, my_end_date))",
        "{id: sen12floods, output_dir: ./by-date, datetime: {start: 2019-04-01, end: 2019-04-07}}",
        2 * 2 * (6 + 1 + 2),
    ),
    # No sidecar is known for sen12floods, so its pseudo-items have no geometry: a spatial
    # filter selects nothing and the plan says why (the packaged entry cannot do better).
    (
        "download(bbox=my_bbox)",
        "{id: sen12floods, output_dir: ./by-bbox, "
        "bbox: [-13.278254, 8.447033, -13.231551, 8.493532]}",
        0,
    ),
    (
        "download(catalog_only=True)",
        "{id: sen12floods, output_dir: ./catalog, catalog_only: true}",
        0,
    ),
]


def test_the_seeds_calls_plan_from_their_new_home(tmp_path: Path, cli: Any) -> None:
    keys = {**marine_debris(), **floods()}
    blobs = {key: Blob(b"x" * size) for key, size in keys.items()}
    with azurite(tmp_path / "azurite", [Container("mlhub", True, blobs)]) as service:
        homes = mirror_of_the_registry(tmp_path / "homes.yaml", service.endpoint)
        spec = tmp_path / "spec.yaml"
        spec.write_text(
            "datasets:\n" + "".join(f"  - {entry}\n" for _, entry, _ in CALLS), encoding="utf-8"
        )
        env = {HOMES_ENV: str(homes)}

        result = cli("plan", spec, "--json", env=env)
        assert result.code == ExitCode.OK, result.stderr
        planned = result.json()["datasets"]
        endpoint = service.endpoint.removeprefix("http://").split("/")[0]  # its host

        for (call, _, files), dataset in zip(CALLS, planned, strict=True):
            assert dataset["selection"]["files"] == files, call
        debris, flood, _, _, spatial, catalog = planned
        assert debris["resolved_via"] == (
            f"the registry ({homes}): azure://radiantearth/mlhub/nasa-marine-debris/ on "
            f"{endpoint} (the MLHub API shut down in 2023)"
        )
        assert debris["catalog"]["unmatched_keys"]["count"] == 1  # the .jpg the catalog lacked
        assert flood["resolved_via"].startswith(
            f"the registry ({homes}): azure://radiantearth/mlhub/sen12floods/ on {endpoint} "
            "(the MLHub API shut down in 2023; the entry is unverified"
        )
        assert flood["catalog"]["unmatched_keys"]["sample"] == ["documentation.pdf"]
        assert spatial["selection"]["excluded_items"] == {"no_geometry": 24}
        assert catalog["catalog"]["items"] == 24 and catalog["pending"] == 0

        # the text plan, for the first two calls: the line once per dataset
        spec.write_text(
            "datasets:\n" + "".join(f"  - {entry}\n" for _, entry, _ in CALLS[:2]), encoding="utf-8"
        )
        text = cli("plan", spec, env=env)
        assert text.code == ExitCode.OK, text.stderr
        for dataset in ("nasa-marine-debris", "sen12floods"):
            line = (
                f"  resolved via the registry ({homes}): azure://radiantearth/mlhub/{dataset}/ "
                f"on {endpoint}"
            )
            assert sum(row.startswith(line) for row in text.stdout.splitlines()) == 1

        # apply says it once too (before its bars: the plan line), and fetches from the mirror
        spec.write_text(f"datasets:\n  - {CALLS[0][1]}\n", encoding="utf-8")
        applied = cli("apply", spec, env=env)
        assert applied.code == ExitCode.OK, applied.stderr
        line = (
            f"  resolved via the registry ({homes}): azure://radiantearth/mlhub/nasa-marine-debris/"
        )
        assert sum(row.startswith(line) for row in applied.stdout.splitlines()) == 1
        fetched = [
            target
            for method, target, _ in service.requests()
            if method == "GET"
            and target.startswith("/devstoreaccount1/mlhub/nasa-marine-debris/source/")
        ]
        assert len(fetched) == 2
        assert (tmp_path / "nasa_marine_debris/nasa_marine_debris_labels").is_dir()
