"""What a collection_filter names that the catalog lacks: each miss, with the nearest real name,
and whether the filter as a whole matches nothing."""

from __future__ import annotations

import pytest

from mlhub_sync.selection.misses import Miss, filter_misses, listing, nearest

CATALOG = {
    "nasa_marine_debris_source": {"image_geotiff"},
    "nasa_marine_debris_labels": {"labels", "documentation"},
    "empty_collection": set(),
}

CASES = [
    # (filter, misses as (collection, key, suggestion), matches nothing)
    ({"nasa_marine_debris_source": {"image_geotiff"}}, [], False),
    ({"nasa_marine_debris_source": set()}, [], False),
    (
        {"nasa_marine_debris_source": {"image_geotiff", "image_jpg"}},
        [("nasa_marine_debris_source", "image_jpg", None)],
        False,
    ),
    (
        {"nasa_marine_debris_source": {"image_geotif"}},
        [("nasa_marine_debris_source", "image_geotif", "image_geotiff")],
        True,
    ),
    (
        {"nasa_marine_debris_sourse": set()},
        [("nasa_marine_debris_sourse", None, "nasa_marine_debris_source")],
        True,
    ),
    (
        {"nasa_marine_debris_source": {"IMAGE_GEOTIFF"}},
        [("nasa_marine_debris_source", "IMAGE_GEOTIFF", "image_geotiff")],
        True,
    ),
    (
        {"elsewhere": set(), "nasa_marine_debris_labels": {"labels"}},
        [("elsewhere", None, None)],
        False,
    ),
    ({"empty_collection": set()}, [], True),  # the collection exists, but holds no asset
]


@pytest.mark.parametrize(("wanted", "misses", "nothing"), CASES)
def test_each_filter_entry_the_catalog_lacks_is_a_miss(
    wanted: dict[str, set[str]], misses: list[tuple[str, str | None, str | None]], nothing: bool
) -> None:
    found = filter_misses(wanted, CATALOG)
    assert [(m.collection, m.key, m.suggestion) for m in found.misses] == misses
    assert found.matches_nothing is nothing


def test_a_miss_reads_as_a_sentence_with_its_suggestion() -> None:
    assert Miss("c", "image_jpg", "image_jpeg").describe() == (
        "asset key 'image_jpg' matches no asset of collection 'c' (did you mean 'image_jpeg'?)"
    )
    assert (
        Miss("colection", None, None).describe() == "collection 'colection' is not in the catalog"
    )


def test_names_far_from_every_real_one_get_no_suggestion() -> None:
    assert nearest("xyz", {"labels", "documentation"}) is None


def test_a_long_catalog_is_listed_shortened() -> None:
    catalog = {f"c{i:02}": {f"k{j:02}" for j in range(25)} for i in range(22)}
    text = listing(catalog)
    assert text.startswith("c00: [k00, k01,")
    assert "… (5 more)" in text
    assert text.endswith("… (2 more collections)")
    assert listing({}) == "the catalog has no assets"
