"""Selection: filters applied to a real index in a real state db, common assets, conflicts."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.catalog.extract import extract_archive
from mlhub_sync.catalog.index import Indexer
from mlhub_sync.catalog.install import staging_dir
from mlhub_sync.config.resolve import DEFAULT_COMMON_ASSET_KEYS
from mlhub_sync.selection.desired import SelectionSummary, select_assets
from mlhub_sync.selection.filters import Exclusion, FilterSet, TimeWindow
from mlhub_sync.state.db import StateDB
from tests.support.mlhub_dataset import AOI_BBOX, GeneratedDataset, build_tiny, write_archive

COMMON = frozenset(DEFAULT_COMMON_ASSET_KEYS)
BLOBS = "https://blobs.example.org/ds"


def index_archive(db: StateDB, archive: Path, dataset_dir: Path) -> None:
    """Extract and index ``archive`` into ``db`` (what a catalog refresh does)."""
    staging = staging_dir(dataset_dir)
    indexer = Indexer(db, allow_file_hrefs=False)
    with db.transaction():
        for doc in extract_archive(archive, staging, "https://catalog.example.org/"):
            indexer.add(doc)
        indexer.flush()


@dataclass
class Indexed:
    db: StateDB
    data: GeneratedDataset | None = None

    def select(
        self, filters: FilterSet | None = None, common: frozenset[str] = COMMON
    ) -> SelectionSummary:
        return select_assets(self.db, filters or FilterSet(), common)

    def selection(self) -> dict[str, str]:
        """``{path: href}`` of ``temp.selection``."""
        return dict(self.db.selection.rows())


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Indexed]:
    data = build_tiny(tmp_path / "served", BLOBS)
    dataset_dir = tmp_path / "out" / "tiny"
    dataset_dir.mkdir(parents=True)
    with StateDB.open(dataset_dir) as db:
        index_archive(db, data.archive, dataset_dir)
        yield Indexed(db, data)


def item_doc(
    collection: str,
    item_id: str,
    assets: dict[str, str],
    *,
    when: str = "2019-04-01T10:00:00Z",
    at: tuple[float, float] = (0.0, 0.0),
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": collection,
        "geometry": {"type": "Point", "coordinates": list(at)},
        "bbox": [at[0], at[1], at[0], at[1]],
        "properties": {"datetime": when},
        "links": [],
        "assets": {key: {"href": href} for key, href in assets.items()},
    }


@pytest.fixture
def custom(tmp_path: Path) -> Iterator[Any]:
    """``custom(*item_docs)``: index an archive of these items; returns an :class:`Indexed`."""
    opened: list[StateDB] = []

    def build(*items: dict[str, Any]) -> Indexed:
        members = [
            (f"{doc['collection']}/{n}/{n}.json", json.dumps(doc).encode())
            for n, doc in enumerate(items)
        ]
        archive = tmp_path / "custom.tar.gz"
        write_archive(archive, members, top="ds")
        dataset_dir = tmp_path / "out" / "ds"
        dataset_dir.mkdir(parents=True)
        db = StateDB.open(dataset_dir)
        opened.append(db)
        index_archive(db, archive, dataset_dir)
        return Indexed(db)

    yield build
    for db in opened:
        db.close()


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# -- no filters ---------------------------------------------------------------------------------


def test_no_filters_select_every_asset_at_its_layout_path(tiny: Indexed) -> None:
    assert tiny.data is not None
    expected = tiny.data.unique_assets()
    summary = tiny.select()
    selection = tiny.selection()
    assert set(selection) == set(expected)
    assert summary.selected == len(expected) == 20
    assert summary.catalog_assets == 29
    assert summary.excluded_assets == 0
    assert summary.conflicts == [] and summary.conflict_count == 0
    assert summary.excluded_items == {}
    for path, asset in expected.items():
        assert selection[path].split("?")[0] == f"{BLOBS}/blobs/{asset.blob}"


def test_selected_bytes_count_known_sizes_once(tiny: Indexed) -> None:
    summary = tiny.select()
    # file:size is set on the six B02 assets only (2048 + i)
    assert summary.selected_bytes == sum(2048 + i for i in range(6))
    assert summary.unknown_size == summary.selected - 6


def test_the_shared_documentation_href_is_one_common_row(tiny: Indexed) -> None:
    tiny.select()
    documentation = [p for p in tiny.selection() if p.endswith("documentation.pdf")]
    assert documentation == ["_common/documentation.pdf"]


def test_without_common_keys_a_shared_href_is_placed_in_every_item(tiny: Indexed) -> None:
    summary = tiny.select(common=frozenset())
    documentation = sorted(p for p in tiny.selection() if p.endswith("documentation.pdf"))
    assert len(documentation) == 10
    assert "tiny_source/src_0/documentation.pdf" in documentation
    assert summary.selected == 29


# -- the collection / asset-key allow-list ------------------------------------------------------


def test_a_key_list_keeps_only_those_keys_of_that_collection(tiny: Indexed) -> None:
    summary = tiny.select(FilterSet(collections={"tiny_source": frozenset({"B02"})}))
    assert sorted(tiny.selection()) == [f"tiny_source/src_{i}/B02.tif" for i in range(6)]
    assert summary.excluded_assets == 29 - 6


def test_an_empty_key_list_keeps_every_key_of_that_collection(tiny: Indexed) -> None:
    tiny.select(FilterSet(collections={"tiny_labels": frozenset()}))
    assert sorted(tiny.selection()) == [
        "_common/documentation.pdf",
        "tiny_labels/class_map.csv",
        *(f"tiny_labels/lbl_{i}/labels.geojson" for i in range(4)),
    ]


def test_a_collection_level_asset_is_kept_for_an_allowed_collection(tiny: Indexed) -> None:
    tiny.select(FilterSet(collections={"tiny_labels": frozenset({"labels"})}))
    assert "tiny_labels/class_map.csv" in tiny.selection()
    assert "_common/documentation.pdf" not in tiny.selection()


def test_a_collection_not_in_the_list_loses_its_collection_level_assets(tiny: Indexed) -> None:
    tiny.select(FilterSet(collections={"tiny_source": frozenset()}))
    selection = tiny.selection()
    assert "tiny_labels/class_map.csv" not in selection
    assert not any(p.startswith("tiny_labels/") for p in selection)
    assert "_common/documentation.pdf" in selection


def test_an_unknown_collection_selects_nothing_without_error(tiny: Indexed) -> None:
    summary = tiny.select(FilterSet(collections={"no_such_collection": frozenset()}))
    assert summary.selected == 0
    assert summary.excluded_assets == 29


# -- time ---------------------------------------------------------------------------------------


def test_a_single_day_selects_items_of_that_day_and_ranges_covering_it(tiny: Indexed) -> None:
    summary = tiny.select(FilterSet(time=TimeWindow.day_of(day("2019-04-02"))))
    selection = tiny.selection()
    # src_1 is dated 2019-04-02; lbl_1 spans 2019-04-01..28
    assert {p.split("/")[1] for p in selection if p.count("/") == 2} == {"src_1", "lbl_1"}
    assert "tiny_labels/class_map.csv" in selection  # its collection has a selected item
    assert "_common/documentation.pdf" in selection
    assert summary.excluded_items == {Exclusion.TIME: 7, Exclusion.NO_TIME: 1}


def test_a_datetime_range_is_inclusive(tiny: Indexed) -> None:
    window = TimeWindow.from_bounds(
        dt.datetime(2019, 4, 2, 10, tzinfo=dt.UTC), dt.datetime(2019, 4, 4, 10, tzinfo=dt.UTC)
    )
    tiny.select(FilterSet(time=window))
    items = {p.split("/")[1] for p in tiny.selection() if p.startswith("tiny_source/")}
    assert items == {"src_1", "src_2", "src_3"}


def test_collection_level_assets_follow_their_collections_items_under_a_filter(
    tiny: Indexed,
) -> None:
    # June 2019: no labels item; the labels collection's own asset goes too
    tiny.select(FilterSet(time=TimeWindow.day_of(day("2019-06-15"))))
    assert tiny.selection() == {}


# -- space --------------------------------------------------------------------------------------


def test_a_bbox_around_the_aoi_selects_the_items_inside_it(tiny: Indexed) -> None:
    summary = tiny.select(FilterSet(bbox=AOI_BBOX))
    items = {p.split("/")[1] for p in tiny.selection() if p.count("/") == 2}
    assert items == {"src_0", "src_2", "src_4", "lbl_0", "lbl_1", "lbl_2"}
    assert summary.excluded_items == {Exclusion.SPACE: 4}
    assert "_common/documentation.pdf" in tiny.selection()


def test_an_aoi_polygon_selects_like_the_bbox(tiny: Indexed) -> None:
    minx, miny, maxx, maxy = AOI_BBOX
    ring = [[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]
    tiny.select(FilterSet(intersects={"type": "Polygon", "coordinates": [ring]}))
    items = {p.split("/")[1] for p in tiny.selection() if p.count("/") == 2}
    assert items == {"src_0", "src_2", "src_4", "lbl_0", "lbl_1", "lbl_2"}


def test_filters_combine(tiny: Indexed) -> None:
    tiny.select(
        FilterSet(
            collections={"tiny_source": frozenset({"B02", "B03"})},
            time=TimeWindow.from_bounds(day("2019-04-01"), day("2019-04-03")),
            bbox=AOI_BBOX,
        )
    )
    assert sorted(tiny.selection()) == [
        "tiny_source/src_0/B02.tif",
        "tiny_source/src_0/B03.tif",
        "tiny_source/src_2/B02.tif",
        "tiny_source/src_2/B03.tif",
    ]


def test_filters_that_select_nothing_give_an_empty_selection(tiny: Indexed) -> None:
    summary = tiny.select(FilterSet(bbox=(100.0, -10.0, 101.0, -9.0)))
    assert summary.selected == 0
    assert summary.selected_bytes == 0
    assert tiny.selection() == {}
    assert summary.excluded_items == {Exclusion.SPACE: 10}
    assert summary.excluded_assets == 29


def test_selecting_again_replaces_the_previous_selection(tiny: Indexed) -> None:
    tiny.select(FilterSet(collections={"tiny_source": frozenset({"B02"})}))
    tiny.select(FilterSet(collections={"tiny_labels": frozenset({"labels"})}))
    assert not any(p.startswith("tiny_source/") for p in tiny.selection())


# -- common assets and conflicts ----------------------------------------------------------------


def test_a_common_key_with_one_href_per_collection_goes_to_common_collection(
    custom: Any,
) -> None:
    indexed = custom(
        item_doc("a", "a1", {"documentation": f"{BLOBS}/a.pdf", "B02": f"{BLOBS}/a1.tif"}),
        item_doc("a", "a2", {"documentation": f"{BLOBS}/a.pdf", "B02": f"{BLOBS}/a2.tif"}),
        item_doc("b", "b1", {"documentation": f"{BLOBS}/b.pdf"}),
        item_doc("c", "c1", {"documentation": f"{BLOBS}/c1.pdf"}),
        item_doc("c", "c2", {"documentation": f"{BLOBS}/c2.pdf"}),
    )
    summary = indexed.select()
    assert indexed.selection() == {
        "_common/a/documentation.pdf": f"{BLOBS}/a.pdf",
        "_common/b/documentation.pdf": f"{BLOBS}/b.pdf",
        "a/a1/B02.tif": f"{BLOBS}/a1.tif",
        "a/a2/B02.tif": f"{BLOBS}/a2.tif",
        "c/c1/documentation.pdf": f"{BLOBS}/c1.pdf",
        "c/c2/documentation.pdf": f"{BLOBS}/c2.pdf",
    }
    assert summary.conflict_count == 0


def test_ids_that_sanitise_alike_are_a_conflict_and_the_first_wins(custom: Any) -> None:
    indexed = custom(
        item_doc("s", "a/b", {"B02": f"{BLOBS}/first.tif"}),
        item_doc("s", "a_b", {"B02": f"{BLOBS}/second.tif"}),
        item_doc("s", "c", {"B02": f"{BLOBS}/c.tif"}),
    )
    summary = indexed.select()
    assert indexed.selection() == {
        "s/a_b/B02.tif": f"{BLOBS}/first.tif",
        "s/c/B02.tif": f"{BLOBS}/c.tif",
    }
    assert summary.selected == 2
    assert summary.conflict_count == 1
    (conflict,) = summary.conflicts
    assert conflict.path == "s/a_b/B02.tif"
    assert conflict.kept == f"{BLOBS}/first.tif"
    assert conflict.dropped == f"{BLOBS}/second.tif"
    assert conflict.dropped_from == "s/a_b"
    assert summary.excluded_assets == 0  # a conflict is not a filter's doing


def test_duplicate_item_ids_with_one_href_are_not_a_conflict(custom: Any) -> None:
    indexed = custom(
        item_doc("s", "dup", {"B02": f"{BLOBS}/same.tif"}),
        item_doc("s", "dup", {"B02": f"{BLOBS}/same.tif"}),
    )
    summary = indexed.select()
    assert indexed.selection() == {"s/dup/B02.tif": f"{BLOBS}/same.tif"}
    assert summary.conflict_count == 0


def test_a_conflict_outside_the_selection_is_not_reported(custom: Any) -> None:
    indexed = custom(
        item_doc("s", "a/b", {"B02": f"{BLOBS}/first.tif"}, when="2019-01-01T00:00:00Z"),
        item_doc("s", "a_b", {"B02": f"{BLOBS}/second.tif"}, when="2019-06-01T00:00:00Z"),
    )
    summary = indexed.select(FilterSet(time=TimeWindow.day_of(day("2019-06-01"))))
    assert indexed.selection() == {"s/a_b/B02.tif": f"{BLOBS}/second.tif"}
    assert summary.conflict_count == 0
