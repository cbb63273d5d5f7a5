"""The query extension's object, evaluated on an item's properties the way the spec reads it
(and a malformed one refused when the spec is validated)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mlhub_sync.config.sources import StacApiSource
from mlhub_sync.selection.query import matches

PROPERTIES = {"eo:cloud_cover": 7.5, "platform": "sentinel-2a", "grid": "MGRS-31UFS", "n": 3}

CASES = [
    # query, does the item match
    ({"eo:cloud_cover": {"lt": 10}}, True),
    ({"eo:cloud_cover": {"lt": 7.5}}, False),
    ({"eo:cloud_cover": {"lte": 7.5}}, True),
    ({"eo:cloud_cover": {"gt": 5, "lt": 8}}, True),  # every condition must hold
    ({"eo:cloud_cover": {"gt": 5, "lt": 6}}, False),
    ({"eo:cloud_cover": {"gte": 7.5}}, True),
    ({"platform": {"eq": "sentinel-2a"}}, True),
    ({"platform": {"neq": "sentinel-2a"}}, False),
    ({"platform": {"in": ["sentinel-2a", "sentinel-2b"]}}, True),
    ({"platform": {"in": ["landsat-8"]}}, False),
    ({"grid": {"startsWith": "MGRS-31"}}, True),
    ({"grid": {"endsWith": "UFS"}}, True),
    ({"grid": {"contains": "32"}}, False),
    ({"platform": {"lt": 10}}, False),  # text against a number: no order, no match
    ({"n": {"lt": "10"}}, False),
    ({"missing": {"neq": "x"}}, False),  # a property the item lacks fails, neq included
    ({"eo:cloud_cover": {"lt": 10}, "platform": {"eq": "sentinel-2b"}}, False),
    ({}, True),
]


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_an_item_matches_a_query_when_every_condition_holds(
    query: dict[str, Any], expected: bool
) -> None:
    assert matches(query, PROPERTIES) is expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"eo:cloud_cover": {"below": 10}}, "query.eo:cloud_cover.below: unknown operator"),
        ({"eo:cloud_cover": 10}, "query.eo:cloud_cover: give operators"),
        ({"platform": {"in": "sentinel-2a"}}, "query.platform.in: give a list"),
    ],
)
def test_a_malformed_query_is_refused_when_the_spec_is_read(
    query: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        StacApiSource.model_validate({"type": "stac-api", "url": "https://x/v1", "query": query})
