"""The sync spec: pydantic models (the source of truth for ``schema/``) and its loader.

A spec names datasets, where they go and which assets to keep::

    version: 1
    defaults: {output_dir: ./data, source: {type: mlhub, api_key: "${MLHUB_API_KEY}"}}
    datasets:
      - id: sen12floods
        collection_filter: {sen12floods_s2_source: [B02, B03]}
        datetime: {start: 2019-04-01, end: 2019-04-07}

Every key of ``defaults`` can be set per dataset; a dataset's value replaces the default as a
whole (a dataset ``source`` replaces the default source; a dataset ``bbox`` or ``intersects``
replaces both default spatial filters). Relative paths (``output_dir``, archive/stac ``path``,
``intersects: {path: ...}``) are relative to the spec file's folder, so a spec means the same
thing wherever it is run from.

The models are strict where lax coercion would hide a mistake: ``catalog_only: "no"`` or
``bbox: "1,2,3,4"`` are errors, not ``False`` and a guess.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .catalog import ExtractLimits
from .errors import SpecError, SpecIssue
from .filters import FilterSet, TimeWindow, geometry_from_geojson
from .retry import RetryPolicy
from .yamlsource import LoadedYaml, Path_, format_path, load_yaml

DEFAULT_ROOT_URL = "https://api.radiant.earth/mlhub/v1/"
DEFAULT_COMMON_ASSET_KEYS = ("documentation", "readme", "test_split", "train_split",
                             "validation_split")  # fmt: skip
DEFAULT_WORKERS = 16
DEFAULT_MAX_DELETE = 1000

_DATASET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


# ---------------------------------------------------------------------------------------------
# Sources


class MlhubSource(_Model):
    """The Radiant MLHub API (or a mirror speaking it): ``GET {root_url}/catalog/{id}``."""

    type: Literal["mlhub"] = "mlhub"
    root_url: str | None = Field(
        None, description="API root; default $MLHUB_ROOT_URL, else " + DEFAULT_ROOT_URL
    )
    api_key: SecretStr | None = Field(
        None, description="API key; else $MLHUB_API_KEY, then the profile (never printed)"
    )
    profile: str | None = Field(
        None, description="profile in $MLHUB_HOME/profiles (default ~/.mlhub/profiles)"
    )

    _check_root = field_validator("root_url")(lambda v: v if v is None else _http_url(v))


class _LocationSource(_Model):
    path: str | None = Field(None, description="local file, relative to the spec's folder")
    url: str | None = Field(None, description="http(s) URL")

    _check_url = field_validator("url")(lambda v: v if v is None else _http_url(v))

    @model_validator(mode="after")
    def _exactly_one(self) -> _LocationSource:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of `path` (a local file) or `url`")
        return self


class ArchiveSource(_LocationSource):
    """A STAC catalog archive (``.tar.gz``), local or remote."""

    type: Literal["archive"]


class StacSource(_LocationSource):
    """A static STAC catalog (``catalog.json``), crawled through its child and item links."""

    type: Literal["stac"]


def _default_source_type(value: Any) -> Any:
    if isinstance(value, Mapping) and "type" not in value:
        return {**value, "type": "mlhub"}
    return value


Source = Annotated[
    MlhubSource | ArchiveSource | StacSource,
    Field(discriminator="type"),
    BeforeValidator(_default_source_type),
]

# ---------------------------------------------------------------------------------------------
# Filters


def _parse_time(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        try:
            # A date in any ISO form (2019-04-01, 20190401) stays a date, so that it means the
            # whole day; datetime.fromisoformat would read 20190401 as its first instant.
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return dt.datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO 8601 date or datetime (e.g. 2019-04-01 or "
                "2019-04-01T00:00:00Z)"
            ) from None
    return value


def _representable(value: dt.date | dt.datetime) -> dt.date | dt.datetime:
    # The filters work on the UTC day around a bound; year 1 and 9999 can overflow there.
    try:
        TimeWindow.from_bounds(value, value)
        TimeWindow.day_of(_aware(value))
    except OverflowError:
        raise ValueError(f"{value} is outside the supported range of dates") from None
    return value


def _aware(value: dt.date | dt.datetime) -> dt.date | dt.datetime:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # naive means UTC
    return value


TimeBound = Annotated[
    dt.datetime | dt.date, BeforeValidator(_parse_time), AfterValidator(_representable)
]


class DatetimeRange(_Model):
    """An inclusive time range; a date as ``end`` includes that whole (UTC) day."""

    start: TimeBound | None = None
    end: TimeBound | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DatetimeRange:
        if self.start is None and self.end is None:
            raise ValueError("give `start`, `end` or both")
        window = self.window()
        if window.start is not None and window.end is not None and window.end < window.start:
            raise ValueError(f"the range ends ({self.end}) before it starts ({self.start})")
        return self

    def window(self) -> TimeWindow:
        """The range as a :class:`TimeWindow`."""
        start = _aware(self.start) if self.start is not None else None
        end = _aware(self.end) if self.end is not None else None
        return TimeWindow.from_bounds(start, end)


def _split_interval(value: Any) -> Any:
    # STAC-style "start/end" (".." or empty for an open end) given as one string.
    if isinstance(value, str) and "/" in value:
        start, _, end = value.partition("/")
        bounds = {"start": start.strip(), "end": end.strip()}
        return {k: v for k, v in bounds.items() if v not in ("", "..")}
    return value


DatetimeFilter = Annotated[DatetimeRange | TimeBound, BeforeValidator(_split_interval)]


def _check_bbox(bbox: list[float]) -> list[float]:
    minx, miny, maxx, maxy = bbox
    for name, lon in (("min longitude", minx), ("max longitude", maxx)):
        if not -180.0 <= lon <= 180.0:
            raise ValueError(f"{name} {lon} is outside [-180, 180]")
    for name, lat in (("min latitude", miny), ("max latitude", maxy)):
        if not -90.0 <= lat <= 90.0:
            raise ValueError(f"{name} {lat} is outside [-90, 90]")
    if miny > maxy:
        raise ValueError(f"min latitude {miny} is greater than max latitude {maxy}")
    return bbox


BBox = Annotated[
    list[float],
    Field(
        min_length=4,
        max_length=4,
        description="[min lon, min lat, max lon, max lat] in EPSG:4326; "
        "min lon > max lon crosses the antimeridian",
    ),
]


class GeoJSONFile(_Model):
    """A GeoJSON file (Geometry, Feature or FeatureCollection), relative to the spec."""

    path: str


Intersects = Annotated[
    GeoJSONFile | dict[str, Any],
    Field(description="a GeoJSON Geometry, Feature or FeatureCollection, or {path: file}"),
]

# ---------------------------------------------------------------------------------------------
# Datasets


class Timeouts(_Model):
    """Network timeouts in seconds: to connect, and between two reads of a response."""

    connect: Annotated[float, Field(gt=0, le=600)] = 10.0
    read: Annotated[float, Field(gt=0, le=3600)] = 60.0


class ArchiveLimits(_Model):
    """Caps on what a catalog archive may unpack to (a decompression bomb is refused)."""

    max_members: Annotated[int, Field(ge=1)] = Field(10_000_000, description="files in it")
    max_unpacked_gib: Annotated[float, Field(gt=0)] = Field(
        64.0, description="total unpacked size, GiB"
    )
    max_ratio: Annotated[float, Field(ge=1)] = Field(
        200.0, description="unpacked / packed size (above a 256 MiB floor)"
    )

    def limits(self) -> ExtractLimits:
        """As the extractor's :class:`ExtractLimits`."""
        return ExtractLimits(
            max_members=self.max_members,
            max_unpacked_bytes=int(self.max_unpacked_gib * 2**30),
            max_ratio=self.max_ratio,
        )


class RetrySettings(_Model):
    """Retries of a failing transfer: exponential backoff with full jitter."""

    max_retries: Annotated[int, Field(ge=0, le=100)] = Field(
        8, description="attempts after the first without progress"
    )
    backoff: Annotated[float, Field(ge=0, le=60)] = Field(
        0.5, description="first backoff ceiling in seconds (doubles each failure)"
    )
    max_backoff: Annotated[float, Field(ge=0, le=3600)] = Field(
        30.0, description="largest backoff in seconds"
    )

    def policy(self) -> RetryPolicy:
        """As a :class:`RetryPolicy`."""
        return RetryPolicy(self.max_retries, self.backoff, self.max_backoff)


def _checksum_off(value: Any) -> Any:
    # YAML 1.1 reads an unquoted `off` as false; `checksum: off` is what people write.
    return "off" if value is False else value


class DatasetSettings(_Model):
    """Settings a dataset can take, and ``defaults`` can give to all datasets."""

    output_dir: str | None = Field(None, description="default: the spec's folder")
    asset_output_dir: str | None = Field(
        None, description="put assets under this root instead of output_dir"
    )
    source: Source | None = Field(
        None, description="a source mapping with type mlhub, archive or stac"
    )
    workers: Annotated[int, Field(ge=1, le=256)] | None = None
    checksum: (
        Annotated[Literal["auto", "required", "off"], BeforeValidator(_checksum_off)] | None
    ) = Field(
        None,
        description="auto: verify when a hash is known; required: fail assets without one; off",
    )
    catalog_only: bool | None = None
    common_asset_keys: list[str] | None = Field(
        None, description="asset keys stored once in _common/ (default: documentation, ...)"
    )
    prune: bool | None = Field(None, description="delete managed files no longer selected")
    max_delete: Annotated[int, Field(ge=0)] | None = None
    retry: RetrySettings | None = None
    timeout: Timeouts | None = None
    archive_limits: ArchiveLimits | None = None
    collection_filter: dict[str, list[str]] | None = Field(
        None, description="{collection_id: [asset_key, ...]}; [] keeps every key"
    )
    datetime: DatetimeFilter | None = Field(
        None, description="{start, end} (inclusive), 'start/end', or one day: 2019-04-01"
    )
    bbox: BBox | None = None
    intersects: Intersects | None = Field(
        None, description="a GeoJSON Geometry, Feature or FeatureCollection, or {path: file}"
    )

    _check_bbox = field_validator("bbox")(lambda v: v if v is None else _check_bbox(v))

    @model_validator(mode="after")
    def _one_spatial_filter(self) -> DatasetSettings:
        if self.bbox is not None and self.intersects is not None:
            raise ValueError("`bbox` and `intersects` cannot be used together; keep one")
        return self

    @field_validator("intersects")
    @classmethod
    def _valid_geojson(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        if isinstance(value, GeoJSONFile):
            base = Path((info.context or {}).get("base_dir", "."))
            value = _read_geojson(base / value.path)
        if not isinstance(value.get("type"), str):
            raise ValueError(
                "invalid GeoJSON: `type` must be a Geometry type (e.g. Polygon), Feature or "
                f"FeatureCollection (got {value.get('type')!r:.40})"
            )
        try:
            geometry_from_geojson(value)
        except (ValueError, TypeError, RecursionError) as exc:
            # TypeError: e.g. `type: [Polygon]` (an unhashable type name)
            raise ValueError(f"invalid GeoJSON: {exc}") from None
        return value


def _read_geojson(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"GeoJSON file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read GeoJSON file {path}: {exc}") from None
    except RecursionError:
        raise ValueError(f"GeoJSON file {path} is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"GeoJSON file {path} does not hold a JSON object")
    return data


class Defaults(DatasetSettings):
    """Values every dataset inherits unless it sets its own."""


class DatasetEntry(DatasetSettings):
    """One dataset to sync."""

    id: str = Field(description="the dataset id, e.g. sen12floods")

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not _DATASET_ID.match(value):
            raise ValueError(
                f"{value!r} is not a dataset id: use letters, digits, '.', '_' or '-' "
                "(it names a folder)"
            )
        return value


class SyncSpec(_Model):
    """The whole spec file."""

    version: Literal[1] = Field(description="spec format version; 1")
    defaults: Defaults = Defaults()
    datasets: Annotated[list[DatasetEntry], Field(min_length=1)]

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value: Any) -> Any:
        # Literal[1] alone accepts `true` and `1.0` (they compare equal to 1), even in strict mode.
        if type(value) is not int:
            raise ValueError(f"the spec format version must be the number 1 (got {value!r:.40})")
        return value


# ---------------------------------------------------------------------------------------------
# Resolution: a validated spec -> one concrete DatasetConfig per dataset


@dataclass(frozen=True)
class DatasetConfig:
    """Everything needed to sync one dataset, defaults applied and paths made absolute."""

    id: str
    index: int
    output_dir: Path
    asset_output_dir: Path
    source: MlhubSource | ArchiveSource | StacSource
    workers: int
    checksum: str
    catalog_only: bool
    common_asset_keys: frozenset[str]
    prune: bool
    max_delete: int
    retry: RetryPolicy
    timeout: Timeouts
    archive_limits: ExtractLimits
    filters: FilterSet
    spec_dir: Path  # relative paths in the spec (and in its lock file) start here

    @property
    def dataset_dir(self) -> Path:
        """``{output_dir}/{id}``: catalog, archive and state db."""
        return self.output_dir / self.id

    @property
    def asset_dir(self) -> Path:
        """``{asset_output_dir}/{id}``: where assets go (the dataset dir by default)."""
        return self.asset_output_dir / self.id

    @property
    def label(self) -> str:
        """How messages name this dataset: its id, and its position when ids repeat."""
        return f"{self.id} (datasets[{self.index}])"


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec and its resolved datasets."""

    path: Path | None
    spec: SyncSpec
    datasets: tuple[DatasetConfig, ...]


def load_spec(path: Path | str, environ: Mapping[str, str] | None = None) -> LoadedSpec:
    """Read, validate and resolve the spec at ``path``. Raises :class:`SpecError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue(str(path), "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(str(path), "", f"cannot read the spec: {exc}")]) from exc
    loaded = load_yaml(text, str(path), os.environ if environ is None else environ)
    return resolve_spec(loaded, path.resolve().parent, spec_path=path)


def resolve_spec(loaded: LoadedYaml, base_dir: Path, spec_path: Path | None = None) -> LoadedSpec:
    """Validate parsed spec data and resolve every dataset against ``base_dir``."""
    if not isinstance(loaded.data, dict):
        raise SpecError(
            [SpecIssue(loaded.location(()), "", "the spec must be a mapping (version, datasets)")]
        )
    try:
        spec = SyncSpec.model_validate(loaded.data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise SpecError(_issues_from(exc, loaded)) from None
    datasets = tuple(
        _resolve(entry, spec.defaults, index, base_dir) for index, entry in enumerate(spec.datasets)
    )
    _check_unique(datasets, loaded)
    return LoadedSpec(path=spec_path, spec=spec, datasets=datasets)


def _resolve(entry: DatasetEntry, defaults: Defaults, index: int, base: Path) -> DatasetConfig:
    def pick(name: str) -> Any:
        value = getattr(entry, name)
        return getattr(defaults, name) if value is None else value

    source = pick("source") or MlhubSource()
    if isinstance(source, ArchiveSource | StacSource) and source.path is not None:
        source = source.model_copy(update={"path": str(_absolute(source.path, base))})
    output_dir = _absolute(pick("output_dir") or ".", base)
    asset_root = pick("asset_output_dir")
    spatial = entry if entry.bbox is not None or entry.intersects is not None else defaults
    when = pick("datetime")
    if isinstance(when, DatetimeRange):
        window = when.window()
    elif when is not None:
        window = TimeWindow.day_of(_aware(when))
    else:
        window = None
    collection_filter = pick("collection_filter")
    filters = FilterSet(
        collections=None
        if collection_filter is None
        else {cid: frozenset(keys) for cid, keys in collection_filter.items()},
        time=window,
        bbox=tuple(spatial.bbox) if spatial.bbox is not None else None,  # type: ignore[arg-type]
        intersects=spatial.intersects,  # type: ignore[arg-type]
    )
    common = pick("common_asset_keys")
    return DatasetConfig(
        id=entry.id,
        index=index,
        output_dir=output_dir,
        asset_output_dir=_absolute(asset_root, base) if asset_root else output_dir,
        source=source,
        workers=pick("workers") or DEFAULT_WORKERS,
        checksum=pick("checksum") or "auto",
        catalog_only=bool(pick("catalog_only")),
        common_asset_keys=frozenset(DEFAULT_COMMON_ASSET_KEYS if common is None else common),
        prune=bool(pick("prune")),
        max_delete=DEFAULT_MAX_DELETE if pick("max_delete") is None else pick("max_delete"),
        retry=(pick("retry") or RetrySettings()).policy(),
        timeout=pick("timeout") or Timeouts(),
        archive_limits=(pick("archive_limits") or ArchiveLimits()).limits(),
        filters=filters,
        spec_dir=base,
    )


def _absolute(path: str, base: Path) -> Path:
    expanded = Path(os.path.expanduser(path))
    return Path(os.path.normpath(expanded if expanded.is_absolute() else base / expanded))


def _check_unique(datasets: Sequence[DatasetConfig], loaded: LoadedYaml) -> None:
    issues = []
    seen: dict[tuple[str, Path], int] = {}
    for ds in datasets:
        for key in ((ds.id, ds.dataset_dir), (ds.id, ds.asset_dir)):
            first = seen.setdefault(key, ds.index)
            if first != ds.index:
                issues.append(
                    SpecIssue(
                        loaded.location(("datasets", ds.index, "id")),
                        f"datasets[{ds.index}]",
                        f"dataset {ds.id!r} already goes to {key[1]} (datasets[{first}]); "
                        "give one of them another output_dir",
                    )
                )
                break
    if issues:
        raise SpecError(issues)


# ---------------------------------------------------------------------------------------------
# Turning pydantic errors into file:line issues


def _issues_from(exc: ValidationError, loaded: LoadedYaml) -> list[SpecIssue]:
    by_path: dict[Path_, list[Mapping[str, Any]]] = {}
    for error in exc.errors(include_url=False):
        path = _data_path(loaded.data, error["loc"], missing=error["type"] == "missing")
        by_path.setdefault(path, []).append(error)
    issues = []
    for path, errors in by_path.items():
        # A union (datetime, intersects...) reports one error per branch. When a branch matched
        # the input's shape and failed on its value, that is the error to show; when none did,
        # one line saying what was expected replaces a line per branch, unless a branch got
        # further and failed on something inside (`datetime.ends: unknown key`): that says more.
        specific = [e for e in errors if not str(e["type"]).endswith(("_type", "_parsing"))]
        deeper = any(len(other) > len(path) and other[: len(path)] == path for other in by_path)
        if specific:
            messages = [_message(e, path) for e in specific]
        elif len(errors) > 1 and deeper:
            continue
        elif len(errors) > 1:
            messages = [_expected(path, errors[0].get("input"))]
        else:
            messages = [_message(errors[0], path)]
        for message in dict.fromkeys(messages):
            issues.append(SpecIssue(loaded.location(path), format_path(path), message))
    return sorted(issues, key=lambda i: (loaded.line_of(_parse_field(i.field)) or 0, i.field))


def _parse_field(field: str) -> Path_:
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _data_path(data: Any, loc: Sequence[int | str], *, missing: bool) -> Path_:
    """Keep only the parts of a pydantic ``loc`` that exist in the data (drop union tags)."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(part)
        elif missing and i == len(loc) - 1 and isinstance(part, str):
            path.append(part)  # a required field that is absent: name it
    return tuple(path)


def _secret(path: Path_) -> bool:
    """True for fields whose value must never be echoed in a message (the API key)."""
    return "api_key" in path


def _expected(path: Path_, value: Any) -> str:
    name = next((p for p in reversed(path) if isinstance(p, str)), "")
    field = DatasetEntry.model_fields.get(name)
    what = field.description if field is not None and field.description else "another value"
    got = type(value).__name__ if _secret(path) else f"{type(value).__name__} {value!r:.60}"
    return f"invalid value (got {got}); expected {what}"


def _message(error: Mapping[str, Any], path: Path_) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        choices = _fields_at(path[:-1])
        close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = f"; allowed: {', '.join(sorted(choices))}" if choices and not close else ""
        return f"unknown key {key!r}{hint}{allowed}"
    if kind == "missing":
        return "this field is required"
    if kind == "union_tag_invalid":
        return "source type must be one of: mlhub, archive, stac"
    if kind == "too_short" and path == ("datasets",):
        return "list at least one dataset (each needs an `id`)"
    if kind in ("too_short", "too_long") and path[-1:] == ("bbox",):
        count = len(error["input"]) if isinstance(error.get("input"), list) else "?"
        return f"a bbox is 4 numbers [min lon, min lat, max lon, max lat], not {count}"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if (kind.endswith("_type") or kind == "literal_error") and "input" in error:
        value = error["input"]
        got = type(value).__name__ if _secret(path) else f"{type(value).__name__} {value!r:.60}"
        message += f" (got {got})"
        if isinstance(value, bool) and not kind.startswith("bool"):
            message += "; YAML reads unquoted yes/no/on/off as true/false: quote the text"
    return message


def _field_names(*models: type[BaseModel]) -> list[str]:
    return sorted({name for model in models for name in model.model_fields})


def _fields_at(path: Path_) -> list[str]:
    """The keys allowed at ``path`` (for did-you-mean)."""
    names = [p for p in path if isinstance(p, str)]
    if not names:
        return _field_names(SyncSpec)
    last = names[-1]
    if last == "defaults":
        return _field_names(Defaults)
    if last == "datasets":
        return _field_names(DatasetEntry)
    if last == "source":
        return _field_names(MlhubSource, ArchiveSource)
    if last == "datetime":
        return _field_names(DatetimeRange)
    if last == "timeout":
        return _field_names(Timeouts)
    if last == "retry":
        return _field_names(RetrySettings)
    if last == "archive_limits":
        return _field_names(ArchiveLimits)
    if last == "intersects":
        return _field_names(GeoJSONFile)
    return []


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec (what ``mlhub-sync schema`` prints)."""
    schema = SyncSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlhub-sync spec"
    return schema
