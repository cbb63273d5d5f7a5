"""The registry of where the MLHub datasets went (``mlhub_sync/config/homes.yaml``): every
entry validates and its templates compile; the seed's datasets read keys shaped like their new
homes into the collection ids and asset keys the seed filters on; a dataset with no source
resolves through it unless ``$MLHUB_ROOT_URL`` or ``source: {type: mlhub}`` says otherwise;
``$MLHUB_SYNC_HOMES`` adds or replaces entries, and a bad one says where it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlhub_sync.config.homes import HOMES_ENV, load_homes, parse_homes, where
from mlhub_sync.config.resolve import load_spec
from mlhub_sync.config.sources import AzureSource, S3Source
from mlhub_sync.errors import SpecError
from mlhub_sync.selection.template import compile_templates, match_key

PACKAGED = Path(__file__).parents[2] / "mlhub_sync" / "config" / "homes.yaml"


def test_every_entry_validates_and_every_template_compiles() -> None:
    homes = load_homes({})
    assert len(homes.entries) >= 10
    for home in homes.entries:
        assert home.title and home.collections, home.id
        assert home.verified or home.note, (
            f"{home.id}: an unverified entry says what is unconfirmed"
        )
        for source in (home.source, *home.mirrors):
            assert isinstance(source, S3Source | AzureSource)
            assert source.prefix.endswith("/"), f"{home.id}: {source.prefix!r}"
            if source.template is not None:
                assert compile_templates(source.template)


def test_every_entry_cites_its_evidence_in_a_comment_above_it() -> None:
    # an entry's block (entries of one family share one) starts with its evidence comment
    lines = PACKAGED.read_text(encoding="utf-8").splitlines()
    for home in load_homes({}).entries:
        at = lines.index(f"  {home.id}:")
        block = []
        while at > 0 and lines[at - 1].strip():
            at -= 1
            block.append(lines[at])
        assert block and block[-1].lstrip().startswith("#"), f"{home.id} has no evidence comment"


def test_ids_and_aliases_are_unique() -> None:
    names = [n for h in load_homes({}).entries for n in (h.id, *h.aliases)]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("dataset", "key", "collection", "item", "asset"),
    [
        # the seed's datasets, with the collection ids and asset keys the seed uses
        ("nasa_marine_debris", "source/20160928_153233_0e16_16816-29821-16.tif",
         "nasa_marine_debris_source", "20160928_153233_0e16_16816-29821-16", "image_geotiff"),
        ("nasa_marine_debris", "labels/20160928_153233_0e16_16816-29821-16.npy",
         "nasa_marine_debris_labels", "20160928_153233_0e16_16816-29821-16", "pixel_bounds"),
        ("sen12floods", "sen12floods_s2_source/sen12floods_s2_source_0232_2019_04_23/B02.tif",
         "sen12floods_s2_source", "0232_2019_04_23", "B02"),
        ("sen12floods",
         "sen12floods_s2_labels/sen12floods_s2_labels_0232_2019_04_23/labels.geojson",
         "sen12floods_s2_labels", "0232_2019_04_23", "labels"),
        # torchgeo's trees (tests/data/<dataset> there)
        ("ref_cloud_cover_detection_challenge_v1", "final/public/train_features/aaaa/B08.tif",
         "ref_cloud_cover_detection_challenge_v1_train_source", "aaaa", "B08"),
        ("ref_cloud_cover_detection_challenge_v1", "final/private/test_labels/aaaa.tif",
         "ref_cloud_cover_detection_challenge_v1_test_labels", "aaaa", "labels"),
        ("kenya-crop-challenge", "data/0/20190606/0_B8A_20190606.tif",
         "ref_african_crops_kenya_02_source", "0_20190606", "B8A"),
        ("ref_african_crops_kenya_02", "data/0/0_field_id.tif",
         "ref_african_crops_kenya_02_labels", "0", "field_id"),
        ("ref_agrifieldnet_competition_v1",
         "train_labels/ref_agrifieldnet_competition_v1_labels_train_32407_field_ids.tif",
         "ref_agrifieldnet_competition_v1_labels_train", "32407", "field_ids"),
        ("ref_agrifieldnet_competition_v1",
         "source/ref_agrifieldnet_competition_v1_source_001c1/"
         "ref_agrifieldnet_competition_v1_source_001c1_B8A_10m.tif",
         "ref_agrifieldnet_competition_v1_source", "001c1", "B8A"),
        ("ts_cashew_benin", "imagery/00/00_20191105/00_20191105_B01_10m.tif",
         "ts_cashew_benin_source", "00_20191105", "B01"),
        ("nasa_rwanda_field_boundary_competition", "labels/train/00.tif",
         "nasa_rwanda_field_boundary_competition_labels_train", "00", "labels"),
        ("nasa_tropical_storm_competition", "test/aaa_000.jpg",
         "nasa_tropical_storm_competition_test_source", "aaa_000", "image"),
    ],
)  # fmt: skip
def test_a_key_of_the_new_home_reads_as_its_mlhub_collection_and_asset(
    dataset: str, key: str, collection: str, item: str, asset: str
) -> None:
    home = load_homes({}).find(dataset)
    assert home is not None and home.source.template is not None
    found = match_key(compile_templates(home.source.template), key, "?")
    assert found is not None, f"{dataset}: {key} matches no template"
    assert (found.collection, found.item, found.asset) == (collection, item, asset)
    assert collection in home.collections


def test_where_names_the_bucket_prefix_and_host() -> None:
    home = load_homes({}).find("ref_agrifieldnet_competition_v1")
    assert home is not None
    assert where(home.source) == "s3://radiantearth/agrifieldnet-competition/ on data.source.coop"
    assert where(home.mirrors[0]) == "azure://radiantearth/mlhub/ref_agrifieldnet_competition_v1/"


def spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


SOURCE_COOP = "s3://radiantearth/agrifieldnet-competition/ on data.source.coop"


@pytest.mark.parametrize(
    ("text", "environ", "source_type", "via"),
    [
        ("datasets: [{id: ref_agrifieldnet_competition_v1}]", {}, "s3", SOURCE_COOP),
        ("datasets: [{id: kenya-crop-challenge}]", {}, "azure", "azure://radiantearth/mlhub/"),
        ("datasets: [{id: ref_agrifieldnet_competition_v1}]",
         {"MLHUB_ROOT_URL": "https://mirror.example/v1/"}, "mlhub", None),
        ("datasets: [{id: ref_agrifieldnet_competition_v1, source: {type: mlhub}}]", {},
         "mlhub", None),
        ("datasets: [{id: ref_agrifieldnet_competition_v1, source: {type: archive, path: a.tgz}}]",
         {}, "archive", None),
        ("defaults: {source: {type: stac, url: 'https://example.com/catalog.json'}}\n"
         "datasets: [{id: ref_agrifieldnet_competition_v1}]", {}, "stac", None),
        ("datasets: [{id: bigearthnet_v1}]", {}, "mlhub", None),
    ],
)  # fmt: skip
def test_a_dataset_without_a_source_resolves_through_the_registry(
    tmp_path: Path, text: str, environ: dict[str, str], source_type: str, via: str | None
) -> None:
    (dataset,) = load_spec(spec(tmp_path, text), environ).datasets
    assert dataset.source.type == source_type
    if via is None:
        assert dataset.resolved_via is None
    else:
        assert dataset.resolved_via is not None
        assert dataset.resolved_via.startswith(f"the registry: {via}")
        assert "(the MLHub API shut down in 2023" in dataset.resolved_via


def test_an_unverified_entry_says_so_where_it_resolves(tmp_path: Path) -> None:
    (dataset,) = load_spec(spec(tmp_path, "datasets: [{id: sen12floods}]"), {}).datasets
    assert dataset.resolved_via is not None
    assert "unverified: see `mlhub-sync datasets`" in dataset.resolved_via


MIRROR = """\
version: 1
datasets:
  # a team's own copy of the tree
  nasa_marine_debris:
    title: our copy
    collections: {nasa_marine_debris_source: {}}
    verified: true
    source: {type: s3, bucket: ours, endpoint: 'http://127.0.0.1:9000', prefix: mlhub/nmd/}
"""


def test_the_homes_file_replaces_entries_by_id(tmp_path: Path) -> None:
    mirror = tmp_path / "homes.yaml"
    mirror.write_text(MIRROR, encoding="utf-8")
    environ = {HOMES_ENV: str(mirror)}
    homes = load_homes(environ)
    assert len(homes.entries) == len(load_homes({}).entries)
    home = homes.find("nasa_marine_debris")
    assert home is not None and home.title == "our copy"
    (dataset,) = load_spec(spec(tmp_path, "datasets: [{id: nasa_marine_debris}]"), environ).datasets
    assert isinstance(dataset.source, S3Source) and dataset.source.bucket == "ours"
    assert dataset.resolved_via == (
        f"the registry ({mirror}): s3://ours/mlhub/nmd/ on 127.0.0.1:9000 "
        "(the MLHub API shut down in 2023)"
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("type: s3", "type: gcs"), "homes.yaml:8: datasets.nasa_marine_debris.source"),
        (("verified: true", "verified: maybe"),
         "homes.yaml:7: datasets.nasa_marine_debris.verified"),
        (("prefix: mlhub/nmd/}", "prefix: x/, template: '{item'}"),
         "homes.yaml:8: datasets.nasa_marine_debris.source.template: template '{item'"),
    ],
)  # fmt: skip
def test_a_bad_homes_file_says_where(tmp_path: Path, change: tuple[str, str], says: str) -> None:
    mirror = tmp_path / "homes.yaml"
    mirror.write_text(MIRROR.replace(*change), encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_homes({HOMES_ENV: str(mirror)})
    assert says in str(caught.value)


def test_a_missing_homes_file_is_a_spec_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_homes({HOMES_ENV: str(tmp_path / "absent.yaml")})
    assert "cannot read the registry file" in str(caught.value)
    assert caught.value.hint is not None and HOMES_ENV in caught.value.hint


def test_a_template_mapping_fixes_collection_and_asset() -> None:
    (template,) = compile_templates([{"pattern": "labels/{item}.npy", "asset": "pixel_bounds"}])
    found = template.match("labels/c1.npy", "fallback")
    assert found is not None and (found.collection, found.item, found.asset) == (
        "fallback",
        "c1",
        "pixel_bounds",
    )
    for bad in ({"pattern": "{asset}.tif", "asset": "x"}, {"pattern": "a", "kind": "x"}, {}):
        with pytest.raises(ValueError, match="template"):
            compile_templates([bad])


def test_parse_homes_refuses_a_file_without_version() -> None:
    with pytest.raises(SpecError, match="version"):
        parse_homes("datasets: {}\n", "x.yaml")
