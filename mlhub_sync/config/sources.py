"""The spec models of the catalog sources (``mlhub``, ``archive``, ``stac``, ``stac-api``), one
per type, discriminated by ``type`` (a source without one is ``mlhub``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from mlhub_sync.config.base import StrictModel

DEFAULT_ROOT_URL = "https://api.radiant.earth/mlhub/v1/"


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class MlhubSource(StrictModel):
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


class _LocationSource(StrictModel):
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


DEFAULT_MAX_DOCUMENTS = 1_000_000


DEFAULT_MAX_DEPTH = 32


class StacSource(_LocationSource):
    """A static STAC catalog (``catalog.json``), crawled through its child and item links.

    The crawl is bounded, so a catalog whose links never end (a server that makes up a new
    child for every document) stops with an error instead of running for ever."""

    type: Literal["stac"]
    max_documents: Annotated[int, Field(ge=1)] = Field(
        DEFAULT_MAX_DOCUMENTS, description="the most documents a crawl may read"
    )
    max_depth: Annotated[int, Field(ge=1, le=10_000)] = Field(
        DEFAULT_MAX_DEPTH, description="the most links from the root catalog to any document"
    )


class StacApiSource(StrictModel):
    """A STAC API's item search (``/search``, paged through its ``next`` links).

    The dataset's ``bbox`` (or the bounds of ``intersects``), ``datetime`` and the collections
    of ``collection_filter`` go into the search and are checked again locally."""

    type: Literal["stac-api"]
    url: str = Field(
        description="the API's landing page, e.g. https://earth-search.aws.element84.com/v1"
    )
    collections: list[Annotated[str, Field(min_length=1)]] | None = Field(
        None, description="collections to search (default: those of collection_filter, else all)"
    )
    query: dict[str, Any] | None = Field(
        None, description="the query extension's object, e.g. {eo:cloud_cover: {lt: 10}}"
    )
    filter: dict[str, Any] | None = Field(
        None, description="a CQL2-JSON filter (the filter extension)"
    )
    max_items: Annotated[int, Field(ge=1)] | None = Field(
        None, description="stop after this many items (default: every match)"
    )
    page_size: Annotated[int, Field(ge=1, le=10_000)] = Field(
        250, description="items asked for per page (the server may send fewer)"
    )

    _check_url = field_validator("url")(_http_url)


def _default_source_type(value: Any) -> Any:
    if isinstance(value, Mapping) and "type" not in value:
        return {**value, "type": "mlhub"}
    return value


Source = Annotated[
    MlhubSource | ArchiveSource | StacSource | StacApiSource,
    Field(discriminator="type"),
    BeforeValidator(_default_source_type),
]
