"""The spec loader: every rejected spec names the YAML file:line and the field path; valid specs
resolve to the documented values (DESIGN.md §1.2); secrets stay secret; fuzzed input only ever
raises SpecError."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlhub_sync.config.loader import MAX_NODES, load_yaml
from mlhub_sync.config.resolve import LoadedSpec, load_spec, resolve_spec
from mlhub_sync.config.sources import ArchiveSource, MlhubSource
from mlhub_sync.errors import SpecError, SpecIssue
from tests.conftest import API_KEY

# ---------------------------------------------------------------------------------------------
# helpers


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    """Write ``text`` (dedented) as a spec file in ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(folder: Path, text: str, environ: Mapping[str, str] | None = None) -> LoadedSpec:
    """Load a spec written from ``text``; it must be valid."""
    return load_spec(write_spec(folder, text), environ or {})


def spec_error(folder: Path, text: str, environ: Mapping[str, str] | None = None) -> SpecError:
    """Load a spec written from ``text``; it must be rejected. Returns the error."""
    path = write_spec(folder, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path, environ or {})
    return caught.value


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line of the dedented ``text`` containing ``needle``."""
    lines = textwrap.dedent(text).lstrip("\n").splitlines()
    hits = [number for number, line in enumerate(lines, 1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not in the spec text"
    return hits[occurrence - 1]


def assert_issue(err: SpecError, spec: Path, line: int, field: str, *fragments: str) -> SpecIssue:
    """The error has an issue at ``spec:line`` for ``field`` whose message has ``fragments``;
    it prints as ``file:LINE: field.path: message``."""
    matching = [i for i in err.issues if i.field == field]
    assert matching, f"no issue for {field!r} in:\n{err}"
    issue = matching[0]
    assert issue.location == f"{spec}:{line}", str(err)
    for fragment in fragments:
        assert fragment in issue.message, str(err)
    assert f"{spec}:{line}: {field}: " in str(err)
    return issue


def only_dataset(loaded: LoadedSpec) -> Any:
    assert len(loaded.datasets) == 1
    return loaded.datasets[0]


def utc(*args: int) -> float:
    """Epoch seconds of a UTC datetime."""
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


# ---------------------------------------------------------------------------------------------
# unknown keys: did-you-mean, at every level


@pytest.mark.parametrize(
    ("body", "needle", "field", "suggestion"),
    [
        (
            """
            version: 1
            datasetz: []
            datasets:
              - id: a
            """,
            "datasetz",
            "datasetz",
            "datasets",
        ),
        (
            """
            version: 1
            defaults:
              worker: 4
            datasets:
              - id: a
            """,
            "worker",
            "defaults.worker",
            "workers",
        ),
        (
            """
            version: 1
            datasets:
              - id: a
              - id: b
                colection_filter: {c: []}
            """,
            "colection_filter",
            "datasets[1].colection_filter",
            "collection_filter",
        ),
        (
            """
            version: 1
            datasets:
              - id: a
                source:
                  type: mlhub
                  api_ky: k
            """,
            "api_ky",
            "datasets[0].source.api_ky",
            "api_key",
        ),
        (
            """
            version: 1
            defaults:
              source: {type: archive, pth: ./x.tar.gz}
            datasets:
              - id: a
            """,
            "pth",
            "defaults.source.pth",
            "path",
        ),
        (
            """
            version: 1
            datasets:
              - id: a
                datetime:
                  start: 2019-04-01
                  ends: 2019-04-07
            """,
            "ends",
            "datasets[0].datetime.ends",
            "end",
        ),
    ],
    ids=["top-level", "defaults", "dataset", "mlhub-source", "archive-source", "datetime"],
)
def test_unknown_key_is_named_with_line_and_did_you_mean(
    tmp_path: Path, body: str, needle: str, field: str, suggestion: str
) -> None:
    err = spec_error(tmp_path, body)
    key = field.rsplit(".", 1)[-1]
    assert_issue(
        err,
        tmp_path / "spec.yaml",
        line_of(body, needle),
        field,
        f"unknown key {key!r}",
        f"did you mean {suggestion!r}?",
    )
    # only the useful line: no second, vaguer line for the same mistake
    assert len(err.issues) == 1, str(err)


def test_unknown_key_without_close_match_lists_allowed_keys(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            zzzzzz: 1
        """
    err = spec_error(tmp_path, body)
    issue = assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].zzzzzz", "unknown key")
    assert "allowed:" in issue.message and "collection_filter" in issue.message


# ---------------------------------------------------------------------------------------------
# spatial filters


def test_bbox_and_intersects_together_are_rejected(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            bbox: [0, 0, 1, 1]
            intersects: {type: Point, coordinates: [0.5, 0.5]}
        """
    err = spec_error(tmp_path, body)
    issue = assert_issue(err, tmp_path / "spec.yaml", line_of(body, "id: a"), "datasets[0]")
    assert "`bbox` and `intersects`" in issue.message


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        ("[-180.5, 0, 10, 10]", "min longitude -180.5 is outside [-180, 180]"),
        ("[0, 0, 181, 10]", "max longitude 181.0 is outside [-180, 180]"),
        ("[0, -91, 10, 10]", "min latitude -91.0 is outside [-90, 90]"),
        ("[0, 0, 10, 95]", "max latitude 95.0 is outside [-90, 90]"),
        ("[0, 20, 10, 10]", "min latitude 20.0 is greater than max latitude 10.0"),
        ("[0, 0, 10]", "a bbox is 4 numbers"),
        ("[0, 0, 10, 10, 5]", "a bbox is 4 numbers"),
        ('"0,0,10,10"', "valid list"),
        ("[.nan, 0, 10, 10]", "outside [-180, 180]"),
    ],
)
def test_bad_bbox_is_rejected_at_its_line(tmp_path: Path, bbox: str, message: str) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            bbox: {bbox}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].bbox", message)


def test_bbox_with_min_lon_greater_than_max_lon_crosses_the_antimeridian(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            bbox: [170, -10, -170, 10]
        """
    assert only_dataset(load(tmp_path, body)).filters.bbox == (170, -10, -170, 10)


def test_bbox_given_as_strings_is_not_coerced(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            bbox: ["0", "0", "10", "10"]
        """
    err = spec_error(tmp_path, body)
    issue = assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].bbox[0]", "valid number")
    assert "got str '0'" in issue.message


@pytest.mark.parametrize(
    ("intersects", "message"),
    [
        ("{type: Polygn, coordinates: []}", "GeoJSON type 'Polygn' is not a Geometry"),
        ("{type: [Polygon]}", "`type` must be a Geometry type"),
        ("{type: Polygon, coordinates: [[0, 1]]}", "malformed Polygon coordinates"),
        (
            "{type: Polygon, coordinates: [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}",
            "not a valid geometry (Self-intersection",
        ),
        ("{type: Feature, properties: {}}", "the Feature has no geometry"),
        ("{type: FeatureCollection, features: []}", "the FeatureCollection has no features"),
        ("{type: Polygon, coordinates: []}", "the Polygon is empty"),
        ('"POLYGON ((0 0, 1 0, 1 1, 0 0))"', "expected a GeoJSON Geometry"),
    ],
    ids=[
        "bad-type",
        "type-not-text",
        "malformed-coordinates",
        "self-intersecting",
        "feature-without-geometry",
        "empty-feature-collection",
        "empty-polygon",
        "wkt-string",
    ],
)
def test_invalid_geojson_intersects_is_rejected(
    tmp_path: Path, intersects: str, message: str
) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            intersects: {intersects}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].intersects", message)


def test_intersects_path_that_does_not_exist_is_named(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            intersects: {path: missing.geojson}
        """
    err = spec_error(tmp_path, body)
    assert_issue(
        err,
        tmp_path / "spec.yaml",
        4,
        "datasets[0].intersects",
        f"GeoJSON file {tmp_path / 'missing.geojson'} does not exist",
    )


def test_intersects_path_with_invalid_json_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "aoi.geojson").write_text("{not json")
    body = """
        version: 1
        datasets:
          - id: a
            intersects: {path: aoi.geojson}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].intersects", "cannot read GeoJSON")


AOI = {
    "type": "Feature",
    "properties": {},
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[-13.3, 8.4], [-13.2, 8.4], [-13.2, 8.5], [-13.3, 8.5], [-13.3, 8.4]]],
    },
}


def test_intersects_path_is_relative_to_the_spec_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir = tmp_path / "project"
    spec_dir.mkdir()
    (spec_dir / "aoi.geojson").write_text(json.dumps(AOI))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no aoi.geojson here
    path = write_spec(
        spec_dir,
        """
        version: 1
        datasets:
          - id: a
            intersects: {path: aoi.geojson}
        """,
    )
    dataset = only_dataset(load_spec(Path("..") / "project" / path.name, {}))
    assert dataset.filters.intersects == AOI
    assert dataset.filters.spatial


def test_intersects_inline_geometry_is_kept(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            intersects:
              type: Point
              coordinates: [1.5, 2.5]
        """
    assert only_dataset(load(tmp_path, body)).filters.intersects == {
        "type": "Point",
        "coordinates": [1.5, 2.5],
    }


# ---------------------------------------------------------------------------------------------
# datetime


@pytest.mark.parametrize(
    "datetime",
    [
        "{start: 2019-04-07, end: 2019-04-01}",
        "{start: '2019-04-01T12:00:00Z', end: '2019-04-01T11:59:59Z'}",
        "2019-04-07/2019-04-01",
    ],
)
def test_datetime_range_ending_before_it_starts_is_rejected(tmp_path: Path, datetime: str) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            datetime: {datetime}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].datetime", "ends", "before it starts")


def test_datetime_range_in_another_timezone_is_ordered_by_instant(tmp_path: Path) -> None:
    # 10:00+05:00 is 05:00Z, before 06:00Z: a valid range although 10 > 6 on the clock
    body = """
        version: 1
        datasets:
          - id: a
            datetime: {start: '2019-04-01T10:00:00+05:00', end: '2019-04-01T06:00:00Z'}
        """
    window = only_dataset(load(tmp_path, body)).filters.time
    assert (window.start, window.end) == (utc(2019, 4, 1, 5), utc(2019, 4, 1, 6))


def test_datetime_that_is_not_iso_8601_is_rejected(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            datetime: {start: 2019-04-01, end: April 7th}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].datetime.end", "not an ISO 8601")
    assert len(err.issues) == 1, str(err)


def test_datetime_with_neither_start_nor_end_is_rejected(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            datetime: ../..
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].datetime", "give `start`, `end`")


@pytest.mark.parametrize("when", ["2019-13-45", "'2019-13-45'"])
def test_impossible_date_is_a_spec_error(tmp_path: Path, when: str) -> None:
    # unquoted, YAML reads it as a timestamp and its constructor raised ValueError (a crash)
    body = f"""
        version: 1
        datasets:
          - id: a
            datetime: {when}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].datetime")


@pytest.mark.parametrize(
    "datetime",
    ["9999-12-31", "{start: 2019-01-01, end: 9999-12-31}", "'0001-01-01T00:00:00+01:00'"],
)
def test_dates_at_the_edge_of_the_calendar_are_a_spec_error_not_an_overflow(
    tmp_path: Path, datetime: str
) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            datetime: {datetime}
        """
    err = spec_error(tmp_path, body)
    assert "outside the supported range of dates" in str(err)
    assert f"{tmp_path / 'spec.yaml'}:4: datasets[0].datetime" in str(err)


# ---------------------------------------------------------------------------------------------
# datasets: list, ids, uniqueness


def test_empty_dataset_list_is_rejected(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets: []
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 2, "datasets", "at least one dataset")


def test_missing_datasets_are_named_and_version_is_not_required(tmp_path: Path) -> None:
    err = spec_error(tmp_path, "defaults: {workers: 2}\n")
    fields = {issue.field: (issue.location, issue.message) for issue in err.issues}
    assert fields == {"datasets": (f"{tmp_path / 'spec.yaml'}:1", "this field is required")}


def test_a_spec_without_version_is_the_current_format(tmp_path: Path) -> None:
    spec = load(tmp_path, "datasets: [{id: a}]\n")
    assert [d.id for d in spec.datasets] == ["a"]


@pytest.mark.parametrize("version", ["2", "0", "true", "1.0", "'1'", "null"])
def test_version_must_be_the_integer_1(tmp_path: Path, version: str) -> None:
    body = f"""
        version: {version}
        datasets:
          - id: a
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 1, "version")


def test_same_dataset_id_twice_in_the_same_folder_is_rejected(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: sen12floods
          - id: sen12floods
        """
    err = spec_error(tmp_path, body)
    issue = assert_issue(
        err, tmp_path / "spec.yaml", line_of(body, "sen12floods", 2), "datasets[1]"
    )
    assert "'sen12floods' already goes to" in issue.message and "datasets[0]" in issue.message


def test_same_dataset_id_twice_with_differently_written_same_folder_is_rejected(
    tmp_path: Path,
) -> None:
    body = """
        version: 1
        defaults:
          output_dir: ./data
        datasets:
          - id: a
          - id: a
            output_dir: data/../data/
        """
    err = spec_error(tmp_path, body)
    assert_issue(
        err,
        tmp_path / "spec.yaml",
        line_of(body, "id: a", 2),
        "datasets[1]",
        str(tmp_path / "data"),
    )


def test_same_dataset_id_in_two_folders_is_fine(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
          - id: a
            output_dir: ./aoi
        """
    loaded = load(tmp_path, body)
    assert [d.dataset_dir for d in loaded.datasets] == [tmp_path / "a", tmp_path / "aoi" / "a"]


@pytest.mark.parametrize("dataset_id", ["../x", "a/b", ".hidden", "''", "a b"])
def test_dataset_id_that_is_not_one_folder_name_is_rejected(
    tmp_path: Path, dataset_id: str
) -> None:
    body = f"""
        version: 1
        datasets:
          - id: {dataset_id}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 3, "datasets[0].id", "is not a dataset id")


# ---------------------------------------------------------------------------------------------
# sources


def test_unknown_source_type_is_rejected(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            source: {type: ftp}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].source", "mlhub, archive, stac")


@pytest.mark.parametrize(
    "source",
    [
        "{type: archive, path: ./x.tar.gz, url: 'https://example.org/x.tar.gz'}",
        "{type: archive}",
        "{type: stac}",
    ],
    ids=["both", "neither", "stac-neither"],
)
def test_location_source_needs_exactly_one_of_path_or_url(tmp_path: Path, source: str) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            source: {source}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].source", "exactly one of `path`")


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("{type: archive, url: 'ftp://example.org/x.tar.gz'}", "datasets[0].source.url"),
        ("{type: stac, url: 'file:///tmp/catalog.json'}", "datasets[0].source.url"),
        ("{type: mlhub, root_url: 'api.radiant.earth/mlhub/v1'}", "datasets[0].source.root_url"),
    ],
)
def test_non_http_url_is_rejected(tmp_path: Path, source: str, field: str) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            source: {source}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, field, "is not an http(s) URL")


def test_source_without_type_is_mlhub(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            source: {root_url: 'http://127.0.0.1:9/api/'}
        """
    source = only_dataset(load(tmp_path, body)).source
    assert isinstance(source, MlhubSource)
    assert source.root_url == "http://127.0.0.1:9/api/"


# ---------------------------------------------------------------------------------------------
# strictness: no lax coercion


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('catalog_only: "no"', "catalog_only", "valid boolean (got str 'no')"),
        ('workers: "16"', "workers", "valid integer (got str '16')"),
        ("workers: 16.5", "workers", "valid integer"),
        ("workers: 0", "workers", "greater than or equal to 1"),
        ("checksum: on", "checksum", "quote the text"),
        ("checksum: sometimes", "checksum", "'auto', 'required' or 'off'"),
        ("collection_filter: {c: B02}", "collection_filter.c", "valid list"),
        ("prune: 1", "prune", "valid boolean"),
    ],
)
def test_values_of_the_wrong_type_are_errors_not_coerced(
    tmp_path: Path, line: str, field: str, message: str
) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            {line}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, f"datasets[0].{field}", message)


def test_a_spec_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    err = spec_error(tmp_path, "- id: a\n")
    assert str(err) == f"{tmp_path / 'spec.yaml'}:1: the spec must be a mapping (version, datasets)"


def test_an_empty_spec_is_rejected(tmp_path: Path) -> None:
    err = spec_error(tmp_path, "# nothing here\n")
    assert "the spec is empty" in str(err)


def test_a_missing_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.yaml", {})


# ---------------------------------------------------------------------------------------------
# YAML: variables, duplicates, syntax, aliases, merge keys, tags


def test_missing_variable_is_named_with_its_line(tmp_path: Path) -> None:
    body = """
        version: 1
        defaults:
          source:
            api_key: ${MY_MISSING_KEY}
        datasets:
          - id: a
        """
    err = spec_error(tmp_path, body, environ={"OTHER": "x"})
    assert_issue(
        err,
        tmp_path / "spec.yaml",
        4,
        "defaults.source.api_key",
        "environment variable MY_MISSING_KEY is not set",
        "${MY_MISSING_KEY:-value}",
    )


def test_variable_default_is_used_when_unset_or_empty(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            output_dir: ${OUT:-./fallback}
        """
    for environ in ({}, {"OUT": ""}):
        assert only_dataset(load(tmp_path, body, environ)).output_dir == tmp_path / "fallback"
    given_dir = only_dataset(load(tmp_path, body, {"OUT": "./given"})).output_dir
    assert given_dir == tmp_path / "given"


def test_variables_are_interpolated_inside_longer_strings(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            output_dir: ${ROOT}/${SUB:-x}/data
        """
    dataset = only_dataset(load(tmp_path, body, {"ROOT": "/srv"}))
    assert dataset.output_dir == Path("/srv/x/data")


def test_double_dollar_brace_is_a_literal(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            source: {api_key: "$${NOT_A_VAR}"}
        """
    source = only_dataset(load(tmp_path, body)).source
    assert source.api_key.get_secret_value() == "${NOT_A_VAR}"


def test_unquoted_variable_takes_the_type_of_its_value(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            workers: ${N}
            catalog_only: ${CATALOG_ONLY:-false}
        """
    dataset = only_dataset(load(tmp_path, body, {"N": "4"}))
    assert dataset.workers == 4
    assert dataset.catalog_only is False


def test_quoted_variable_stays_a_string_and_fails_strictly(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            workers: "${N}"
        """
    err = spec_error(tmp_path, body, {"N": "4"})
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].workers", "got str '4'")


def test_variable_value_that_looks_like_an_impossible_date_is_a_spec_error(
    tmp_path: Path,
) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            datetime: ${WHEN}
        """
    err = spec_error(tmp_path, body, {"WHEN": "2019-02-30"})
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].datetime", "'2019-02-30'")


def test_duplicate_key_is_rejected_naming_both_lines(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            workers: 2
            bbox: [0, 0, 1, 1]
            workers: 8
        """
    err = spec_error(tmp_path, body)
    first, second = line_of(body, "workers"), line_of(body, "workers", 2)
    assert_issue(
        err,
        tmp_path / "spec.yaml",
        second,
        "datasets[0].workers",
        "duplicate key 'workers'",
        f"first given on line {first}",
    )


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
           workers: 2
        """
    err = spec_error(tmp_path, body)
    assert len(err.issues) == 1
    assert err.issues[0].location == f"{tmp_path / 'spec.yaml'}:4"
    assert "invalid YAML" in err.issues[0].message


def test_control_character_is_a_spec_error_with_its_line(tmp_path: Path) -> None:
    err = spec_error(tmp_path, "version: 1\ndatasets:\n  - id: a\x00\n")
    assert str(err) == (
        f"{tmp_path / 'spec.yaml'}:3: invalid YAML: the control character U+0000 is not allowed"
    )


BILLION_LAUGHS = """
    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
    """


def test_alias_bomb_is_refused_at_the_node_limit(tmp_path: Path) -> None:
    err = spec_error(tmp_path, BILLION_LAUGHS)
    assert f"over {MAX_NODES} values" in str(err)
    assert "aliases" in (err.hint or "")
    assert err.issues[0].location.startswith(f"{tmp_path / 'spec.yaml'}:")


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets: &d
          - id: a
            extra: *d
        """
    err = spec_error(tmp_path, body)
    (issue,) = err.issues
    assert issue.message == "the spec is nested too deeply"
    assert issue.field.startswith("datasets[0].extra[0].extra[0]")
    assert issue.location.startswith(f"{tmp_path / 'spec.yaml'}:")


def test_mapping_that_merges_itself_is_refused(tmp_path: Path) -> None:
    body = """
        version: 1
        defaults: &d
          <<: *d
        datasets:
          - id: a
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 2, "defaults", "merges itself")


def test_deeply_nested_flow_collections_are_a_spec_error(tmp_path: Path) -> None:
    err = spec_error(tmp_path, "version: " + "[" * 1000 + "]" * 1000 + "\n")
    assert "nested too deeply" in str(err)


def test_merges_of_merges_stay_linear(tmp_path: Path) -> None:
    # Each level merges the previous one 9 times: 9**14 pairs if merges were expanded naively
    # (PyYAML < 6.0.2 flatten_mapping does). The merged mapping still has one key.
    levels = ["      - &m0 {workers: 3}"]
    levels += [f"      - &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 9)}]}}" for i in range(1, 15)]
    body = "version: 1\ndefaults:\n  <<:\n" + "\n".join(levels) + "\ndatasets:\n  - id: a\n"
    assert only_dataset(load(tmp_path, body)).workers == 3


def test_merge_keys_give_defaults_that_explicit_keys_override(tmp_path: Path) -> None:
    body = """
        version: 1
        defaults:
          output_dir: ./data
        datasets:
          - &common
            id: a
            workers: 2
            checksum: required
          - <<: *common
            id: b
            workers: 8
        """
    a, b = load(tmp_path, body).datasets
    assert (a.id, a.workers, a.checksum) == ("a", 2, "required")
    assert (b.id, b.workers, b.checksum) == ("b", 8, "required")


def test_merge_list_gives_precedence_to_the_first_mapping(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            <<: [{workers: 1, checksum: from_the_first}, {workers: 2, checksum: required}]
        """
    # YAML merge keys: the first mapping wins. (PyYAML 6.0.4's own flatten_mapping lets the
    # last one win for keys longer than one character.)
    err = spec_error(tmp_path, body)
    assert "datasets[0].checksum" in str(err) and "from_the_first" in str(err)
    body = body.replace("checksum: from_the_first", "prune: true")
    dataset = only_dataset(load(tmp_path, body))
    assert (dataset.workers, dataset.checksum, dataset.prune) == (1, "required", True)


def test_aliased_mapping_with_merge_and_override_is_not_a_duplicate_key(tmp_path: Path) -> None:
    # Regression: PyYAML's flatten_mapping rewrote the shared node in place, so the second use
    # of the alias saw `workers` twice and was reported as a duplicate key.
    body = """
        version: 1
        defaults:
          retry: &fast
            <<: {max_retries: 1, backoff: 0.1}
            max_retries: 2
        datasets:
          - id: a
            retry: *fast
          - id: b
            output_dir: ./b
            retry: *fast
        """
    a, b = load(tmp_path, body).datasets
    assert a.retry.max_retries == b.retry.max_retries == 2
    assert a.retry.backoff == 0.1


def test_merge_of_a_scalar_is_rejected(tmp_path: Path) -> None:
    body = """
        version: 1
        defaults:
          <<: 3
        datasets:
          - id: a
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 3, "defaults", "`<<` merges mappings")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("!!python/name:os.system 1", "unsupported YAML tag !!python/name:os.system"),
        ("!!int abc", "'abc' is not a valid int"),
        ("!!float x", "is not a valid float"),
    ],
)
def test_unsupported_or_broken_tags_are_spec_errors(
    tmp_path: Path, value: str, message: str
) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            workers: {value}
        """
    err = spec_error(tmp_path, body)
    assert_issue(err, tmp_path / "spec.yaml", 4, "datasets[0].workers", message)


def test_complex_keys_are_rejected(tmp_path: Path) -> None:
    body = """
        version: 1
        ? [a, b]
        : 1
        datasets:
          - id: a
        """
    err = spec_error(tmp_path, body)
    assert f"{tmp_path / 'spec.yaml'}:2: keys must be plain text" in str(err)


# ---------------------------------------------------------------------------------------------
# valid specs resolve as documented


def test_defaults_are_inherited_and_overridden_per_dataset(tmp_path: Path) -> None:
    body = """
        version: 1
        defaults:
          output_dir: ./data
          workers: 8
          checksum: required
          source: {type: archive, url: 'https://example.org/catalog.tar.gz'}
          intersects: {type: Point, coordinates: [1, 2]}
          datetime: 2019-04-01
        datasets:
          - id: inherits
          - id: overrides
            output_dir: ./other
            workers: 2
            checksum: "off"
            source: {type: mlhub, profile: research}
            bbox: [0, 0, 10, 10]
        """
    inherits, overrides = load(tmp_path, body).datasets
    assert inherits.output_dir == tmp_path / "data"
    assert inherits.dataset_dir == tmp_path / "data" / "inherits"
    assert (inherits.workers, inherits.checksum) == (8, "required")
    assert isinstance(inherits.source, ArchiveSource)
    assert inherits.source.url == "https://example.org/catalog.tar.gz"
    assert inherits.filters.intersects == {"type": "Point", "coordinates": [1, 2]}
    assert inherits.filters.bbox is None

    assert overrides.output_dir == tmp_path / "other"
    assert (overrides.workers, overrides.checksum) == (2, "off")
    # the source is replaced as a whole: nothing of the archive source leaks in
    assert overrides.source == MlhubSource(type="mlhub", profile="research")
    # a dataset bbox replaces the default intersects (they cannot be combined)
    assert overrides.filters.bbox == (0, 0, 10, 10)
    assert overrides.filters.intersects is None
    # a key the dataset does not set is still inherited
    assert overrides.filters.time == inherits.filters.time is not None


def test_dataset_source_replaces_default_source_without_merging_fields(tmp_path: Path) -> None:
    body = """
        version: 1
        defaults:
          source: {type: mlhub, root_url: 'https://mirror.example/api/', api_key: k}
        datasets:
          - id: a
            source: {profile: other}
        """
    source = only_dataset(load(tmp_path, body)).source
    assert isinstance(source, MlhubSource)
    assert (source.root_url, source.api_key, source.profile) == (None, None, "other")


def test_built_in_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    dataset = only_dataset(load(tmp_path, "version: 1\ndatasets: [{id: a}]\n"))
    assert dataset.output_dir == tmp_path
    assert dataset.source == MlhubSource()
    assert (dataset.workers, dataset.checksum, dataset.catalog_only) == (16, "auto", False)
    assert "documentation" in dataset.common_asset_keys
    assert dataset.filters.describe() == []


def test_relative_paths_resolve_against_the_spec_folder_from_any_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir = tmp_path / "specs" / "team"
    path = write_spec(
        spec_dir,
        """
        version: 1
        defaults:
          output_dir: ../data
          asset_output_dir: ./assets
        datasets:
          - id: my_dataset
            source: {type: archive, path: ./catalogs/my_dataset.tar.gz}
          - id: abs
            output_dir: /srv/mlhub
            source: {type: stac, path: /srv/catalog.json}
        """,
    )
    monkeypatch.chdir(tmp_path)
    relative, absolute = load_spec(path.relative_to(tmp_path), {}).datasets
    assert relative.dataset_dir == tmp_path / "specs" / "data" / "my_dataset"
    assert relative.asset_dir == spec_dir / "assets" / "my_dataset"
    assert relative.source.path == str(spec_dir / "catalogs" / "my_dataset.tar.gz")
    assert absolute.dataset_dir == Path("/srv/mlhub/abs")
    assert absolute.source.path == "/srv/catalog.json"


def test_single_date_is_that_whole_utc_day(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            datetime: 2019-04-01
        """
    window = only_dataset(load(tmp_path, body)).filters.time
    next_midnight = utc(2019, 4, 2)
    assert window.start == utc(2019, 4, 1)
    assert next_midnight - 0.001 < window.end < next_midnight
    assert window.admits(utc(2019, 4, 1, 23, 59, 59), None)
    assert not window.admits(next_midnight, None)
    assert not window.admits(utc(2019, 4, 1) - 0.001, None)


@pytest.mark.parametrize("when", ["'20190401'", "'2019-04-01'", "2019-04-01"])
def test_a_date_in_any_iso_form_means_the_whole_day(tmp_path: Path, when: str) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            datetime: {{start: {when}, end: {when}}}
        """
    window = only_dataset(load(tmp_path, body)).filters.time
    assert window.start == utc(2019, 4, 1)
    assert utc(2019, 4, 2) - 0.001 < window.end < utc(2019, 4, 2)


def test_single_aware_datetime_is_its_utc_day(tmp_path: Path) -> None:
    # 02:00 at +05:00 is 21:00 UTC the day before
    body = """
        version: 1
        datasets:
          - id: a
            datetime: 2019-04-01T02:00:00+05:00
        """
    window = only_dataset(load(tmp_path, body)).filters.time
    assert window.start == utc(2019, 3, 31)
    assert utc(2019, 4, 1) - 0.001 < window.end < utc(2019, 4, 1)


def test_naive_datetimes_are_utc(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            datetime: {start: 2019-04-01T06:00:00, end: "2019-04-01T18:30:00"}
        """
    window = only_dataset(load(tmp_path, body)).filters.time
    assert (window.start, window.end) == (utc(2019, 4, 1, 6), utc(2019, 4, 1, 18, 30))


def test_range_of_dates_includes_the_whole_end_day(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            datetime: {start: 2019-04-01, end: 2019-04-07}
          - id: b
            output_dir: ./b
            datetime: "2019-04-01/2019-04-07"
        """
    a, b = load(tmp_path, body).datasets
    assert a.filters.time == b.filters.time
    assert a.filters.time.start == utc(2019, 4, 1)
    assert utc(2019, 4, 8) - 0.001 < a.filters.time.end < utc(2019, 4, 8)


@pytest.mark.parametrize(
    ("interval", "start", "end"),
    [
        ("../2019-04-07", None, (2019, 4, 8)),
        ("/2019-04-07", None, (2019, 4, 8)),
        ("2019-04-01/..", (2019, 4, 1), None),
        ("2019-04-01T12:00:00Z/2019-04-02T00:00:00Z", (2019, 4, 1, 12), (2019, 4, 2)),
    ],
)
def test_interval_strings_with_open_ends(
    tmp_path: Path, interval: str, start: tuple[int, ...] | None, end: tuple[int, ...] | None
) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            datetime: "{interval}"
        """
    window = only_dataset(load(tmp_path, body)).filters.time
    assert window.start == (utc(*start) if start else None)
    if end is None:
        assert window.end is None
    elif "T" in interval.split("/")[1]:
        assert window.end == utc(*end)
    else:
        assert utc(*end) - 0.001 < window.end < utc(*end)


def test_collection_filter_empty_list_keeps_every_key(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            collection_filter:
              s2_source: [B02, B03]
              s2_labels: []
        """
    filters = only_dataset(load(tmp_path, body)).filters
    assert filters.admits_asset("s2_source", "B02")
    assert not filters.admits_asset("s2_source", "B08")
    assert filters.admits_asset("s2_labels", "anything")
    assert not filters.admits_collection("other")


@pytest.mark.parametrize("no_keys", ["", "null", "~", "[]"])
def test_collection_filter_without_keys_keeps_every_key(tmp_path: Path, no_keys: str) -> None:
    body = f"""
        version: 1
        datasets:
          - id: a
            collection_filter:
              s2_source: [B02]
              s2_labels: {no_keys}
        """
    filters = only_dataset(load(tmp_path, body)).filters
    assert filters.admits_asset("s2_labels", "anything")
    assert not filters.admits_asset("s2_source", "B08")


DESIGN_EXAMPLE = """
    version: 1
    defaults:                        # inherited by every dataset, each key overridable
      output_dir: ./data
      source:
        type: mlhub                  # mlhub | archive | stac
        root_url: https://api.radiant.earth/mlhub/v1/   # MLHUB_ROOT_URL overrides the default
        api_key: ${MLHUB_API_KEY}    # ${VAR} interpolation; or `profile: default` (~/.mlhub/profiles)
      workers: 16
      checksum: auto                 # auto: verify when a hash is known | required | off
    datasets:
      - id: nasa_marine_debris
      - id: sen12floods
        collection_filter:           # allow-list {collection_id: [asset_key, ...]}; [] = all keys
          sen12floods_s2_source: [B02, B03, B04, B08]
          sen12floods_s2_labels: [labels, documentation]
        datetime: {start: 2019-04-01T00:00:00Z, end: 2019-04-07T00:00:00Z}  # or one day: 2019-04-01
      - id: sen12floods
        output_dir: ./aoi
        bbox: [-13.278254, 8.447033, -13.231551, 8.493532]   # or intersects: GeoJSON / {path: aoi.geojson}
      - id: my_dataset
        source: {type: archive, path: ./catalogs/my_dataset.tar.gz}   # local or https archive
        catalog_only: true
    """  # noqa: E501  (verbatim from DESIGN.md §1.2)


def test_the_design_example_spec_loads(tmp_path: Path) -> None:
    loaded = load(tmp_path, DESIGN_EXAMPLE, {"MLHUB_API_KEY": API_KEY})
    debris, floods, floods_aoi, mine = loaded.datasets
    assert [d.id for d in loaded.datasets] == [
        "nasa_marine_debris",
        "sen12floods",
        "sen12floods",
        "my_dataset",
    ]
    assert debris.dataset_dir == tmp_path / "data" / "nasa_marine_debris"
    assert isinstance(debris.source, MlhubSource)
    assert debris.source.api_key is not None
    assert debris.source.api_key.get_secret_value() == API_KEY
    assert floods.filters.collections == {
        "sen12floods_s2_source": frozenset({"B02", "B03", "B04", "B08"}),
        "sen12floods_s2_labels": frozenset({"labels", "documentation"}),
    }
    assert (floods.filters.time.start, floods.filters.time.end) == (
        utc(2019, 4, 1),
        utc(2019, 4, 7),
    )
    assert floods_aoi.dataset_dir == tmp_path / "aoi" / "sen12floods"
    assert floods_aoi.filters.bbox == (-13.278254, 8.447033, -13.231551, 8.493532)
    assert floods_aoi.filters.time is None
    assert isinstance(mine.source, ArchiveSource)
    assert mine.source.path == str(tmp_path / "catalogs" / "my_dataset.tar.gz")
    assert mine.catalog_only and not debris.catalog_only


def test_the_design_example_needs_its_variable(tmp_path: Path) -> None:
    err = spec_error(tmp_path, DESIGN_EXAMPLE, {})
    assert_issue(
        err, tmp_path / "spec.yaml", 7, "defaults.source.api_key", "MLHUB_API_KEY is not set"
    )


# ---------------------------------------------------------------------------------------------
# secrets


SECRET = "s3cr3t-Value-9f2d"


def test_api_key_is_not_in_repr_or_str_of_the_loaded_spec(tmp_path: Path) -> None:
    body = f"""
        version: 1
        defaults:
          source: {{api_key: {SECRET}}}
        datasets:
          - id: a
          - id: b
            source: {{api_key: "${{KEY}}"}}
            output_dir: ./b
        """
    loaded = load(tmp_path, body, {"KEY": SECRET + "-env"})
    for text in (repr(loaded), str(loaded), repr(loaded.spec), str(loaded.datasets)):
        assert SECRET not in text
    assert loaded.datasets[0].source.api_key.get_secret_value() == SECRET
    assert SECRET not in loaded.spec.model_dump_json()


def test_api_key_of_the_wrong_type_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    body = """
        version: 1
        datasets:
          - id: a
            source:
              api_key: ${KEY}
        """
    err = spec_error(tmp_path, body, {"KEY": "73519462084211"})  # unquoted: read as an int
    assert_issue(err, tmp_path / "spec.yaml", 5, "datasets[0].source.api_key", "got int")
    assert "73519462084211" not in str(err)


# ---------------------------------------------------------------------------------------------
# fuzz: whatever the input, only SpecError


SPEC_KEYS = [
    "version", "defaults", "datasets", "id", "output_dir", "asset_output_dir", "source", "type",
    "root_url", "api_key", "profile", "path", "url", "workers", "checksum", "catalog_only",
    "common_asset_keys", "prune", "max_delete", "retry", "max_retries", "backoff", "max_backoff",
    "timeout", "connect", "read", "collection_filter", "datetime", "start", "end", "bbox",
    "intersects", "coordinates", "geometry", "features", "properties", "<<",
]  # fmt: skip
TYPE_WORDS = [
    "mlhub", "archive", "stac", "Point", "Polygon", "MultiPolygon", "LineString", "Feature",
    "FeatureCollection", "GeometryCollection", "auto", "required", "off", "2019-04-01",
    "2019-04-01/..", "../2019-04-07", "9999-12-31", "${X}", "${UNSET}", "$${X}", "${X:-3}",
    "https://h/x", "./a", "../x", "aoi.geojson",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(TYPE_WORDS),
    st.text(max_size=12),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, dt.UTC])),
)
nested = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.sampled_from(SPEC_KEYS) | st.text(max_size=6), children, max_size=5),
    ),
    max_leaves=15,
)
dataset_like = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "../x", ""]) | st.text(max_size=5)},
    optional={key: nested for key in SPEC_KEYS[4:]},
)
spec_like = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 1, 2, "1", True])},
    optional={
        "defaults": st.dictionaries(st.sampled_from(SPEC_KEYS[4:]), nested, max_size=6),
        "datasets": st.lists(dataset_like, max_size=4),
    },
)
YAML_TOKENS = [
    "version: 1\n", "datasets:\n", "  - id: a\n", "    ", "  ", "- ", ": ", "&a ", "*a", "<<: ",
    "[", "]", "{", "}", ",", "!!int ", "!!python/object ", "'", '"', "${X}", "$${", "#", "\n",
    "? ", "---\n", "|\n", "2019-02-30", "1e400", "bbox: ", "intersects: ", "datetime: ", "\t",
]  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "aoi.geojson").write_text(json.dumps(AOI))
    return folder


def only_spec_errors(text: str, base: Path) -> None:
    try:
        loaded = load_yaml(text, "fuzz.yaml", {"X": "7"})
        resolve_spec(loaded, base)
    except SpecError as exc:
        assert exc.issues, "a SpecError must carry at least one issue"
        assert str(exc)


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.fuzz
@FUZZ
@given(text=st.text(max_size=200))
def test_fuzz_random_text_only_raises_spec_error(fuzz_dir: Path, text: str) -> None:
    only_spec_errors(text, fuzz_dir)


@pytest.mark.fuzz
@FUZZ
@given(tokens=st.lists(st.sampled_from(YAML_TOKENS), max_size=40))
def test_fuzz_yaml_token_soup_only_raises_spec_error(fuzz_dir: Path, tokens: list[str]) -> None:
    only_spec_errors("".join(tokens), fuzz_dir)


@pytest.mark.fuzz
@FUZZ
@given(data=spec_like | nested)
def test_fuzz_random_nested_data_only_raises_spec_error(fuzz_dir: Path, data: Any) -> None:
    only_spec_errors(yaml.safe_dump(data, allow_unicode=True), fuzz_dir)


def test_unquoted_checksum_off_means_off(tmp_path: Path) -> None:
    # YAML 1.1 reads `off` as false; for `checksum` that can only mean "off".
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\ndefaults: {checksum: off}\ndatasets: [{id: a}]\n")
    assert load_spec(spec).datasets[0].checksum == "off"
