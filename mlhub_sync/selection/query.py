"""The STAC API query extension's object, evaluated on an item (pure).

``source.query`` is sent to an API that says it supports the extension (its conformance
lists ``item-search#query``) and checked again here on every item it returns; an API that
does not support it gets the search without it, and this check is the whole filter. So the
same spec selects the same items from either (the rustac test API has no query support).

::

    {"eo:cloud_cover": {"lt": 10}, "platform": {"in": ["sentinel-2a", "sentinel-2b"]}}

Operators: ``eq``, ``neq``, ``lt``, ``lte``, ``gt``, ``gte`` (numbers with numbers, text with
text), ``startsWith``, ``endsWith``, ``contains`` (text), ``in`` (a list). All of an item's
conditions must hold; a property the item lacks fails every condition on it, ``neq``
included (the API's own behaviour differs between servers; failing is the safe reading, as
it never adds an item the server would have left out).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
_TEXT: dict[str, Callable[[str, str], bool]] = {
    "startsWith": str.startswith,
    "endsWith": str.endswith,
    "contains": str.__contains__,
}
OPERATORS = frozenset({"eq", "neq", "in", *_ORDER, *_TEXT})


def query_problems(query: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``query`` (empty when it is well formed), each naming the place."""
    problems = []
    for name, conditions in query.items():
        if not isinstance(conditions, Mapping) or not conditions:
            problems.append(f"query.{name}: give operators, e.g. {{lt: 10}}")
            continue
        for op, value in conditions.items():
            if op not in OPERATORS:
                problems.append(
                    f"query.{name}.{op}: unknown operator (use {', '.join(sorted(OPERATORS))})"
                )
            elif op == "in" and not isinstance(value, list):
                problems.append(f"query.{name}.in: give a list")
    return problems


def matches(query: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
    """Whether an item with ``properties`` meets every condition of ``query``."""
    for name, conditions in query.items():
        if name not in properties:
            return False
        value = properties[name]
        for op, wanted in conditions.items():
            if not _holds(op, value, wanted):
                return False
    return True


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _holds(op: str, value: Any, wanted: Any) -> bool:
    if op == "eq":
        return bool(value == wanted)
    if op == "neq":
        return bool(value != wanted)
    if op == "in":
        return isinstance(wanted, list) and value in wanted
    if op in _ORDER:
        comparable = (_number(value) and _number(wanted)) or (
            isinstance(value, str) and isinstance(wanted, str)
        )
        return comparable and _ORDER[op](value, wanted)
    if op in _TEXT:
        return isinstance(value, str) and isinstance(wanted, str) and _TEXT[op](value, wanted)
    return False
