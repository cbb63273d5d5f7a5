"""Path templates turn a flat tree's keys into collection, item and asset, with the item's
datetime and properties; the layouts are those of the MLHub datasets' new homes."""

from __future__ import annotations

import datetime as dt

import pytest

from mlhub_sync.selection.template import KeyMatch, compile_templates, match_key

CLOUD = [  # ref_cloud_cover_detection_challenge_v1/final/public/ (torchgeo's layout)
    "{split}_features/{item}/{asset}.tif",
    "{split}_labels/{item}.tif",
    "{split}_metadata.csv",
]
KENYA = ["data/{tile}/{date:%Y%m%d}/{_}_{asset}_{_}.tif"]

CASES = [
    # (templates, key, expected (collection, item, asset, datetime, properties) or None)
    (CLOUD, "train_features/adwp/B02.tif", ("ds", "adwp", "B02", None, {"split": "train"})),
    (CLOUD, "test_labels/adwp.tif", ("ds", "adwp", "adwp", None, {"split": "test"})),
    (CLOUD, "train_metadata.csv", ("ds", "train", "train_metadata", None, {"split": "train"})),
    (CLOUD, "train_features/adwp/extra/B02.tif", None),  # a field never spans a "/"
    (CLOUD, "README.md", None),
    (
        KENYA,
        "data/00/20190606/00_B01_20190606.tif",
        ("ds", "00_20190606", "B01", dt.datetime(2019, 6, 6, tzinfo=dt.UTC), {"tile": "00"}),
    ),
    (KENYA, "data/00/20191332/00_B01_20191332.tif", None),  # digits that are no date
    (KENYA, "data/00/2019066/00_B01_2019066.tif", None),  # too few digits for %Y%m%d
    (
        ["{collection}/{item}/{asset}.tif"],
        "s1/chip_1/VV.tif",
        ("s1", "chip_1", "VV", None, {}),
    ),
    (["{item}/{item}_{asset}.tif"], "c7/c7_labels.tif", ("ds", "c7", "labels", None, {})),
    (["{item}/{item}_{asset}.tif"], "c7/c8_labels.tif", None),  # a name twice: the same text
    (
        ["{item}.{_}"],
        "x.tif.aux.xml",
        ("ds", "x", "x", None, {}),
    ),  # fields take as little as may be
]


@pytest.mark.parametrize(("templates", "key", "expected"), CASES)
def test_a_key_reads_as_the_first_template_that_matches_it(
    templates: list[str], key: str, expected: tuple[object, ...] | None
) -> None:
    found = match_key(compile_templates(templates), key, "ds")
    if expected is None:
        assert found is None
    else:
        collection, item, asset, when, properties = expected
        assert found == KeyMatch(collection, item, asset, when, properties)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("", "a relative key pattern"),
        ("/abs/{item}", "a relative key pattern"),
        ("{item}//{asset}", "a relative key pattern"),
        ("{item/{asset}", "unbalanced braces"),
        ("{}.tif", "a field needs a name"),
        ("{date}.tif", "give the date's format"),
        ("{date:%Y}/{date:%m}", "one {date:...} per template"),
        ("{date:%B}.tif", "%B is not supported"),
        ("{item:x}.tif", "only {date:...} takes a format"),
    ],
)
def test_a_bad_template_is_refused_naming_it(template: str, problem: str) -> None:
    with pytest.raises(ValueError, match="template") as caught:
        compile_templates(template)
    assert problem in str(caught.value)
    assert repr(template) in str(caught.value)
