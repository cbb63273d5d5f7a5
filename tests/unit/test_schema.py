"""The JSON Schema of the spec: ``mlhub-sync schema`` prints exactly the committed golden file
``schema/mlhub-sync.schema.json``; the example specs validate against it and load; it rejects
unknown keys. (A tiny validator below covers the keywords pydantic emits, so the test needs no
jsonschema package.)"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.config.loader import load_yaml
from mlhub_sync.config.models import DatasetEntry, Defaults, SyncSpec, json_schema
from mlhub_sync.config.resolve import load_spec
from tests.conftest import API_KEY
from tests.unit.test_spec import DESIGN_EXAMPLE

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "mlhub-sync.schema.json"
EXAMPLES = sorted((ROOT / "examples" / "configs").glob("*.yaml"))
REGENERATE = "regenerate it: python -m mlhub_sync schema > schema/mlhub-sync.schema.json"


def committed_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# a minimal JSON Schema validator for the keywords in our schema


def schema_errors(
    schema: dict[str, Any], value: Any, root: dict[str, Any], at: str = ""
) -> list[str]:
    """Problems of ``value`` against ``schema`` (``$ref`` resolved in ``root``), as 'path: why'."""
    where = at or "(root)"
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return schema_errors(root["$defs"][name], value, root, at)
    if "anyOf" in schema or "oneOf" in schema:
        branches = schema.get("anyOf") or schema["oneOf"]
        results = [schema_errors(branch, value, root, at) for branch in branches]
        passing = sum(1 for problems in results if not problems)
        if passing == 0:
            return [f"{where}: matches no alternative ({'; '.join(results[0])})"]
        if "oneOf" in schema and passing > 1:
            return [f"{where}: matches {passing} alternatives of a oneOf"]
        return []
    if "const" in schema and value != schema["const"]:
        return [f"{where}: {value!r} is not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    kind = schema.get("type")
    if kind is not None and not _has_type(value, kind):
        return [f"{where}: {value!r} is not of type {kind}"]
    problems: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: {name!r} is required")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            path = f"{at}.{name}" if at else name
            if name in properties:
                problems += schema_errors(properties[name], item, root, path)
            elif extra is False:
                problems.append(f"{where}: additional property {name!r} is not allowed")
            elif isinstance(extra, dict):
                problems += schema_errors(extra, item, root, path)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        if len(value) > schema.get("maxItems", math.inf):
            problems.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                problems += schema_errors(schema["items"], item, root, f"{at}[{index}]")
    if _has_type(value, "number"):
        if value < schema.get("minimum", -math.inf) or value > schema.get("maximum", math.inf):
            problems.append(f"{where}: {value} is out of range")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            problems.append(f"{where}: {value} is not above {schema['exclusiveMinimum']}")
    return problems


def _has_type(value: Any, kind: str) -> bool:
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    return bool(checks[kind](value))


def as_json(text: str, environ: dict[str, str]) -> Any:
    """A YAML spec as the JSON an editor would validate (timestamps become strings)."""
    return json.loads(json.dumps(load_yaml(text, "spec.yaml", environ).data, default=str))


# ---------------------------------------------------------------------------------------------
# the golden file


def test_committed_schema_is_generated_from_the_models() -> None:
    schema = committed_schema()
    assert schema == json_schema(), REGENERATE
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "mlhub-sync spec"


# ---------------------------------------------------------------------------------------------
# unknown keys


def test_every_spec_object_forbids_additional_properties() -> None:
    schema = committed_schema()
    assert schema["additionalProperties"] is False
    for name, definition in schema["$defs"].items():
        assert definition.get("additionalProperties") is False, name


def test_schema_lists_exactly_the_model_fields() -> None:
    definitions = committed_schema()["$defs"]
    assert set(definitions["DatasetEntry"]["properties"]) == set(DatasetEntry.model_fields)
    assert set(definitions["Defaults"]["properties"]) == set(Defaults.model_fields)
    assert set(committed_schema()["properties"]) == set(SyncSpec.model_fields)
    assert definitions["DatasetEntry"]["required"] == ["id"]


def test_schema_rejects_an_unknown_dataset_key() -> None:
    schema = committed_schema()
    spec = {"version": 1, "datasets": [{"id": "a", "colection_filter": {}}]}
    problems = schema_errors(schema, spec, schema)
    assert problems == ["datasets[0]: additional property 'colection_filter' is not allowed"]


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"version": 1, "datasets": []}, "datasets: fewer than 1 items"),
        ({"version": 2, "datasets": [{"id": "a"}]}, "version: 2 is not 1"),
        ({"version": 1, "datasetz": [], "datasets": [{"id": "a"}]}, "'datasetz' is not allowed"),
        ({"version": 1, "datasets": [{"id": "a", "bbox": [1, 2, 3]}]}, "datasets[0].bbox"),
        ({"version": 1, "datasets": [{"id": "a", "workers": 0}]}, "datasets[0].workers"),
        ({"version": 1, "datasets": [{"id": "a", "source": {"type": "ftp"}}]}, "source"),
        ({"version": 1, "datasets": [{"workers": 2}]}, "'id' is required"),
    ],
)
def test_schema_rejects_what_the_loader_rejects(spec: dict[str, Any], problem: str) -> None:
    schema = committed_schema()
    problems = schema_errors(schema, spec, schema)
    assert any(problem in p for p in problems), problems


# ---------------------------------------------------------------------------------------------
# example specs


def test_the_design_example_validates_against_the_schema() -> None:
    schema = committed_schema()
    data = as_json(DESIGN_EXAMPLE, {"MLHUB_API_KEY": API_KEY})
    assert schema_errors(schema, data, schema) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_spec_validates_against_the_schema_and_loads(example: Path) -> None:
    environ = {**os.environ, "MLHUB_API_KEY": API_KEY}
    schema = committed_schema()
    data = as_json(example.read_text(encoding="utf-8"), environ)
    assert schema_errors(schema, data, schema) == []
    assert load_spec(example, environ).datasets
