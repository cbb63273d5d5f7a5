"""``mlhub-sync datasets [--json]`` in process: the registry of where the former MLHub
datasets went, one line per dataset (plural-correct counts, controls escaped) or a stable JSON
list; ``validate`` names the registry for a dataset that resolved through it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mlhub_sync.cli.render import plan_json, plan_line, plan_text
from mlhub_sync.config.homes import HOMES_ENV, load_homes
from mlhub_sync.config.resolve import load_spec
from mlhub_sync.errors import ExitCode
from mlhub_sync.net.client import Http
from mlhub_sync.session import DatasetRun
from tests.conftest import Hub

KEYS = ["id", "aliases", "title", "doi", "citation", "license", "collections", "verified",
        "note", "where", "source", "mirrors"]  # fmt: skip


def test_datasets_lists_every_entry_with_where_it_is_and_whether_verified(cli: Any) -> None:
    result = cli("datasets")
    assert result.code == ExitCode.OK and result.stderr == ""
    homes = load_homes({}).entries
    verified = sum(h.verified for h in homes)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{len(homes)} datasets in the registry ({verified} verified)")
    assert "ref_agrifieldnet_competition_v1: AgriFieldNet India Challenge" in lines
    assert "  s3://radiantearth/agrifieldnet-competition/ on data.source.coop [verified]" in lines
    assert "  azure://radiantearth/mlhub/sen12floods/ [unverified]" in lines
    assert any(line.startswith("  note: the prefix holds the documentation") for line in lines)


def test_datasets_json_is_a_stable_list_a_spec_can_take_sources_from(cli: Any) -> None:
    result = cli("datasets", "--json")
    assert result.code == ExitCode.OK
    document = result.json()
    assert document["format"] == "mlhub-sync.datasets/1"
    assert [list(entry) for entry in document["datasets"]] == [KEYS] * len(document["datasets"])
    (kenya,) = [e for e in document["datasets"] if e["id"] == "ref_african_crops_kenya_02"]
    assert kenya["aliases"] == ["kenya-crop-challenge"]
    assert kenya["doi"] == "10.34911/rdnt.dw605x" and kenya["license"] == "CC-BY-SA-4.0"
    assert kenya["collections"]["ref_african_crops_kenya_02_labels"] == {"kind": "labels"}
    assert (
        kenya["source"]["type"] == "azure" and kenya["source"]["prefix"] == "kenya-crop-challenge/"
    )


def test_a_homes_file_entry_is_listed_and_its_text_is_terminal_safe(
    tmp_path: Path, cli: Any
) -> None:
    homes = tmp_path / "homes.yaml"
    homes.write_text(
        'version: 1\ndatasets:\n  one_of_ours:\n    title: "ours \\e[31mred"\n'
        "    verified: false\n    note: a copy\n"
        "    source: {type: s3, bucket: b, prefix: p/}\n",
        encoding="utf-8",
    )
    result = cli("datasets", env={HOMES_ENV: str(homes)})
    assert result.code == ExitCode.OK
    assert "one_of_ours: ours \\x1b[31mred" in result.stdout and "\x1b" not in result.stdout
    assert "  s3://b/p/ on AWS [unverified]" in result.stdout
    assert result.stdout.rstrip().endswith(
        f"entries from {homes} replace the packaged ones of the same id"
    )


def test_a_bad_homes_file_exits_64_with_its_line(tmp_path: Path, cli: Any) -> None:
    homes = tmp_path / "homes.yaml"
    homes.write_text("version: 2\ndatasets: {}\n", encoding="utf-8")
    result = cli("datasets", env={HOMES_ENV: str(homes)})
    assert result.code == ExitCode.USAGE
    assert f"{homes}:1: version" in result.stderr


def test_validate_names_the_registry_for_a_dataset_without_a_source(
    tmp_path: Path, cli: Any
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("datasets: [{id: ref_agrifieldnet_competition_v1}]\n", encoding="utf-8")
    result = cli("validate", spec, "--json")
    assert result.code == ExitCode.OK
    (entry,) = result.json()["datasets"]
    assert entry["source"] == "s3"
    assert entry["resolved_via"] == (
        "the registry: s3://radiantearth/agrifieldnet-competition/ on data.source.coop "
        "(the MLHub API shut down in 2023)"
    )


def test_plan_says_once_per_dataset_where_the_registry_sent_it(tmp_path: Path, hub: Hub) -> None:
    # A real plan of the tiny dataset, rendered as if its source came from the registry (the
    # s3 and azure sources that registry entries name are not in this branch yet).
    spec = hub.spec(tmp_path / "spec.yaml", [{"id": "tiny"}])
    config = load_spec(spec, {"MLHUB_API_KEY": hub.api_key}).datasets[0]
    via = "the registry: s3://b/p/ on data.source.coop (the MLHub API shut down in 2023)"
    config = dataclasses.replace(config, resolved_via=via)
    with DatasetRun(config, Http(), {"MLHUB_API_KEY": hub.api_key}) as run:
        planned = run.plan()
    line = f"  resolved via {via}"
    assert plan_text([planned]).splitlines().count(line) == 1
    assert plan_line(planned).splitlines()[1:] == [line]
    assert plan_json([planned])["datasets"][0]["resolved_via"] == via
