"""The Python API: ``Dataset.fetch_by_id(...).download(...)`` on the same engine as the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from mlhub_sync import Dataset
from mlhub_sync.errors import ApplyError, CatalogError, SourceAuthError
from tests.conftest import API_KEY, Hub
from tests.support.mlhub_dataset import AOI_BBOX
from tests.support.server import Fault


def fetch(hub: Hub) -> Dataset:
    return Dataset.fetch_by_id("tiny", api_key=API_KEY, root_url=hub.root_url)


SHIPPED_IN_ARCHIVE = "tiny_labels/lbl_0/labels.geojson"  # unpacked with the catalog


def downloaded(root: Path) -> set[str]:
    files = {str(p.relative_to(root)) for p in root.rglob("*.tif")} | {
        str(p.relative_to(root)) for p in root.rglob("*.geojson")
    }
    return files - {SHIPPED_IN_ARCHIVE}


def test_fetch_by_id_exposes_the_dataset_fields(hub: Hub) -> None:
    ds = fetch(hub)
    assert ds.id == "tiny" and ds.title == "Tiny test dataset"
    assert [c["id"] for c in ds.collections] == ["tiny_source", "tiny_labels"]
    assert ds.doi == "10.0/tiny" and ds.tags == ["test"]
    assert ds.creator_contact == {"contact": "a@b.c", "creator": "tests"}
    assert "tiny" in repr(ds)


def test_unknown_dataset_and_wrong_key_are_clear_errors(hub: Hub) -> None:
    with pytest.raises(CatalogError, match="404"):
        Dataset.fetch_by_id("nope", api_key=API_KEY, root_url=hub.root_url)
    with pytest.raises(SourceAuthError) as info:
        Dataset.fetch_by_id("tiny", api_key="wrong-key-123", root_url=hub.root_url)
    assert "wrong-key-123" not in str(info.value)
    assert "API key" in str(info.value)


def test_download_then_download_again_is_a_noop(tmp_path: Path, hub: Hub) -> None:
    folder = fetch(hub).download(output_dir=tmp_path)
    assert folder == tmp_path / "tiny"
    for asset in hub.data.unique_assets().values():
        assert hashlib.md5((folder / asset.expected_path).read_bytes()).hexdigest() == asset.md5
    hub.server.clear_log()
    fetch(hub).download(output_dir=tmp_path)
    assert hub.server.count("/blobs/tiny/") == 0


def test_download_filters_like_the_original_client(tmp_path: Path, hub: Hub) -> None:
    ds = fetch(hub)
    folder = ds.download(
        output_dir=tmp_path,
        collection_filter={"tiny_source": ["B02"]},
        datetime=(dt.datetime(2019, 4, 1, tzinfo=dt.UTC), dt.date(2019, 4, 3)),
        bbox=list(AOI_BBOX),
    )
    # src_0..src_2 are on days 1-3 (a date as the end includes that whole day); src_0 and
    # src_2 lie inside the AOI
    assert downloaded(folder) == {"tiny_source/src_0/B02.tif", "tiny_source/src_2/B02.tif"}
    hub.server.clear_log()
    ds.download(
        output_dir=tmp_path,
        collection_filter={"tiny_source": ["B02"]},
        datetime=(dt.datetime(2019, 4, 1, tzinfo=dt.UTC), dt.datetime(2019, 4, 3, tzinfo=dt.UTC)),
        bbox=list(AOI_BBOX),
    )
    assert hub.server.count("/blobs/tiny/") == 0  # an exact end (00:00) keeps src_0 only


def test_single_datetime_means_that_day_and_intersects_works(tmp_path: Path, hub: Hub) -> None:
    aoi = {
        "type": "Feature",
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [
                    [AOI_BBOX[0], AOI_BBOX[1]],
                    [AOI_BBOX[2], AOI_BBOX[1]],
                    [AOI_BBOX[2], AOI_BBOX[3]],
                    [AOI_BBOX[0], AOI_BBOX[3]],
                    [AOI_BBOX[0], AOI_BBOX[1]],
                ]
            ],
        },
    }
    folder = fetch(hub).download(
        output_dir=tmp_path,
        datetime=dt.datetime(2019, 4, 5, 23, 0, tzinfo=dt.UTC),
        intersects=aoi,
        collection_filter={"tiny_source": []},
    )
    assert downloaded(folder) == {"tiny_source/src_4/B02.tif", "tiny_source/src_4/B03.tif"}


def test_catalog_only_and_if_exists(tmp_path: Path, hub: Hub) -> None:
    ds = fetch(hub)
    folder = ds.download(output_dir=tmp_path, catalog_only=True)
    assert (folder / "catalog.json").is_file() and downloaded(folder) == set()
    ds.download(output_dir=tmp_path)
    victim = folder / "tiny_source/src_0/B02.tif"
    victim.write_bytes(b"local edit")
    ds.download(output_dir=tmp_path, if_exists="skip")
    assert victim.read_bytes() == b"local edit"
    hub.server.clear_log()
    ds.download(output_dir=tmp_path, if_exists="overwrite")
    assert victim.read_bytes() != b"local edit"
    assert hub.server.count("/blobs/tiny/") == len(hub.data.unique_assets())


def test_failed_assets_raise_with_the_report_path(tmp_path: Path, hub: Hub) -> None:
    hub.server.add_fault("/blobs/tiny/src/src_0/B02.tif", Fault("status", status=410))
    with pytest.raises(ApplyError) as info:
        fetch(hub).download(output_dir=tmp_path)
    assert info.value.failed == 1
    assert info.value.report_paths == (tmp_path / "tiny" / "mlhub_errors.csv",)
    assert "mlhub_errors.csv" in str(info.value)


def test_the_readmes_offline_python_example_runs_as_written(
    examples: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API") :]
    blocks = section.split("```python\n")[1:]
    code = next(b.split("```")[0] for b in blocks if "Dataset.from_source(" in b)
    monkeypatch.chdir(examples.parent)  # the repository's root, as the README says
    exec(compile(code, "README.md", "exec"), {})  # our own README, as a user would paste it
    printed = capsys.readouterr().out
    assert "floods_source/floods_source_0/B02.tif" in printed
    out = examples / "data/out/quickstart_floods"
    assert sorted(p.name for p in out.rglob("*.tif")) == ["B02.tif"] * 4
    assert not list(out.rglob("B03.tif"))


@pytest.mark.parametrize(
    "source",
    [
        "data/quickstart/catalog.json",  # a static catalog, by path
        {"type": "archive", "path": "data/quickstart/quickstart_floods.tar.gz"},  # a mapping
    ],
)
def test_from_source_takes_a_static_catalog_or_a_spec_mapping(
    examples: Path, monkeypatch: pytest.MonkeyPatch, source: object
) -> None:
    monkeypatch.chdir(examples)
    ds = Dataset.from_source(
        "quickstart_floods",
        source,
        allow_local=["data/quickstart/assets"],  # type: ignore[arg-type]
    )
    folder = ds.download(output_dir="out", collection_filter={"floods_labels": []}, progress=False)
    assert folder == examples / "out/quickstart_floods"
    assert len(list(folder.glob("floods_labels/*/labels.geojson"))) == 4
    assert not list(folder.rglob("*.tif"))  # floods_source was not asked for
