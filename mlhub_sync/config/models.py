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
``intersects: {path: ...}``, ``allow_local``) are relative to the spec file's folder, so a spec
means the same thing wherever it is run from.

The models are strict where lax coercion would hide a mistake: ``catalog_only: "no"`` or
``bbox: "1,2,3,4"`` are errors, not ``False`` and a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ByteSize,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlhub_sync.config.base import StrictModel
from mlhub_sync.config.filter_settings import (
    BBox,
    DatetimeFilter,
    GeoJSONFile,
    Intersects,
    check_bbox,
    read_geojson,
)
from mlhub_sync.config.sources import Source
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.selection.filters import geometry_from_geojson

_DATASET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class Timeouts(StrictModel):
    """Timeouts and deadlines in seconds (see ``net/settings.py``): every permanently failing
    asset is reported within a few minutes, and a file still moving at ``min_rate`` or more is
    never cut."""

    connect: Annotated[float, Field(gt=0, le=600)] = 10.0
    read: Annotated[float, Field(gt=0, le=3600)] = Field(
        30.0, description="seconds a response may stay below min_rate (silence included)"
    )
    min_rate: Annotated[ByteSize, Field(gt=0)] = Field(
        ByteSize(1024), description="bytes per second, e.g. 1 KiB; slower for `read` is a timeout"
    )
    asset: Annotated[float, Field(gt=0, le=86400)] = Field(
        120.0, description="seconds an asset may go without progress before no retry starts"
    )
    request: Annotated[float, Field(gt=0, le=86400)] = Field(
        120.0, description="seconds for one API or catalog-document request, retries included"
    )
    progress: Annotated[float, Field(gt=0, le=3600)] = Field(
        10.0, description="seconds between progress lines when stderr is not a terminal"
    )


class ArchiveLimits(StrictModel):
    """Caps on what a catalog archive may unpack to (a decompression bomb is refused)."""

    max_members: Annotated[int, Field(ge=1)] = Field(10_000_000, description="files in it")
    max_unpacked_gib: Annotated[float, Field(gt=0)] = Field(
        64.0, description="total unpacked size, GiB (and the most an archive download may be)"
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


class RetrySettings(StrictModel):
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
    max_dns_retries: Annotated[int, Field(ge=0, le=100)] = Field(
        1, description="retries of a host name that does not resolve"
    )

    def policy(self) -> RetryPolicy:
        """As a :class:`RetryPolicy`."""
        return RetryPolicy(
            self.max_retries, self.backoff, self.max_backoff, max_dns_retries=self.max_dns_retries
        )


def _checksum_off(value: Any) -> Any:
    # YAML 1.1 reads an unquoted `off` as false; `checksum: off` is what people write.
    return "off" if value is False else value


class DatasetSettings(StrictModel):
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
    strict: bool | None = Field(
        None,
        description="a catalog document that cannot be read stops the run (default: it is "
        "skipped and reported, the rest syncs, prune is held back)",
    )
    common_asset_keys: list[str] | None = Field(
        None, description="asset keys stored once in _common/ (default: documentation, ...)"
    )
    prune: bool | None = Field(None, description="delete managed files no longer selected")
    max_delete: Annotated[int, Field(ge=0)] | None = None
    retry: RetrySettings | None = None
    timeout: Timeouts | None = None
    max_asset_size: Annotated[ByteSize, Field(gt=0)] | None = Field(
        None, description="largest asset body when no size is known (default 50 GiB), e.g. 2 TiB"
    )
    allow_private_redirects: bool | None = Field(
        None, description="follow redirects from another host into loopback/private networks"
    )
    archive_limits: ArchiveLimits | None = None
    allow_local: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None,
        description="folders a local catalog's file: hrefs may be copied from (relative to "
        "the spec's folder); default none",
    )
    collection_filter: dict[str, list[str] | None] | None = Field(
        None,
        description="{collection_id: [asset_key, ...]}; [] or no value keeps every key",
    )
    datetime: DatetimeFilter | None = Field(
        None, description="{start, end} (inclusive), 'start/end', or one day: 2019-04-01"
    )
    bbox: BBox | None = None
    intersects: Intersects | None = Field(
        None, description="a GeoJSON Geometry, Feature or FeatureCollection, or {path: file}"
    )

    _check_bbox = field_validator("bbox")(lambda v: v if v is None else check_bbox(v))

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
            value = read_geojson(base / value.path)
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


class SyncSpec(StrictModel):
    """The whole spec file."""

    version: Literal[1] = Field(1, description="spec format version; 1 (the default)")
    defaults: Defaults = Defaults()
    datasets: Annotated[list[DatasetEntry], Field(min_length=1)]

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value: Any) -> Any:
        # Literal[1] alone accepts `true` and `1.0` (they compare equal to 1), even in strict mode.
        if type(value) is not int:
            raise ValueError(f"the spec format version must be the number 1 (got {value!r:.40})")
        return value


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the spec (what ``mlhub-sync schema`` prints)."""
    schema = SyncSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlhub-sync spec"
    return schema


@dataclass(frozen=True)
class ExtractLimits:
    """Caps against decompression bombs: members, and unpacked bytes (absolute and a ratio)."""

    max_members: int = 10_000_000
    max_unpacked_bytes: int = 64 * 2**30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 256 * 2**20  # small archives may expand more than max_ratio

    def byte_cap(self, archive_size: int) -> int:
        """The most unpacked bytes an archive of ``archive_size`` bytes may hold."""
        by_ratio = max(self.ratio_floor_bytes, int(archive_size * self.max_ratio))
        return min(self.max_unpacked_bytes, by_ratio)


DEFAULT_LIMITS = ExtractLimits()
