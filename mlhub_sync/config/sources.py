"""The spec models of the catalog sources (``mlhub``, ``archive``, ``stac``, ``stac-api``, and
the object-store prefixes ``s3`` and ``azure``), one per type, discriminated by ``type`` (a
source without one is ``mlhub``).

Every source also takes the access settings of :class:`_Access`: ``headers`` (``${VAR}``
interpolated, redacted like a key), ``rewrite`` (asset hrefs moved before planning) and
``sign`` (``planetary-computer``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from mlhub_sync.config.base import StrictModel
from mlhub_sync.selection.query import query_problems
from mlhub_sync.selection.template import compile_templates

DEFAULT_ROOT_URL = "https://api.radiant.earth/mlhub/v1/"


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


# What the transfer rules send themselves: a spec's value would break resume or verification.
_OWN_HEADERS = frozenset({"host", "range", "if-range", "accept-encoding", "if-none-match",
                          "if-modified-since", "content-length", "transfer-encoding"})  # fmt: skip


class Rewrite(StrictModel):
    """One href rewrite: an asset href that starts with ``from`` starts with ``to`` instead."""

    from_: str = Field(alias="from", description="the old prefix, e.g. https://old-host/mlhub/")
    to: str = Field(
        description="the new prefix, e.g. https://radiantearth.blob.core.windows.net/mlhub/"
    )

    _check = field_validator("from_", "to")(_http_url)


class _Access(StrictModel):
    """How requests to a source's hosts are made: extra headers, href rewrites, signing."""

    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="headers sent to the source's hosts, e.g. {Authorization: 'Bearer ${TOKEN}'}"
        " (${VAR} from the environment; values are never printed)",
    )
    rewrite: list[Rewrite] = Field(
        default_factory=list,
        description="asset href prefixes moved before planning (the first that matches wins)",
    )
    sign: Literal["none", "planetary-computer"] = Field(
        "none", description="sign asset URLs: planetary-computer SAS tokens, renewed before expiry"
    )

    @field_validator("headers")
    @classmethod
    def _headers_are_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower() in _OWN_HEADERS:
                raise ValueError(f"{name}: mlhub-sync sets this header itself")
            if any(c in secret.get_secret_value() for c in "\r\n\0"):  # never echoed
                raise ValueError(f"{name}: a header value cannot hold a line break")
        return value


class MlhubSource(_Access):
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


class _LocationSource(_Access):
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


class StacApiSource(_Access):
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

    @field_validator("query")
    @classmethod
    def _query_well_formed(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and (problems := query_problems(value)):
            raise ValueError("; ".join(problems))
        return value


class Sidecar(StrictModel):
    """A table joined on the item id: geometry, datetime and properties for a flat tree's
    pseudo-items (CSV with a WKT or GeoJSON ``geometry`` column, or a GeoJSON
    FeatureCollection), so bbox, intersects and datetime filters work on it."""

    key: str | None = Field(None, description="the table's key, relative to the prefix")
    path: str | None = Field(None, description="a local table, relative to the spec's folder")
    id_column: str = Field("id", description="the column (or feature property) with the item id")
    datetime_column: str | None = Field(
        "datetime", description="the column with the item datetime (ISO 8601), if any"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Sidecar:
        if (self.key is None) == (self.path is None):
            raise ValueError("give exactly one of `key` (in the store) or `path` (a local file)")
        return self


class _FlatTree(_Access):
    """An object-store prefix of plain files, read as STAC through path templates."""

    prefix: str = Field("", description="the key prefix to list, e.g. kenya-crop-challenge/")
    template: str | list[str | dict[str, str]] | None = Field(
        None,
        description="key pattern(s) relative to the prefix, e.g. '{split}_features/{item}/"
        "{asset}.tif', or {pattern, collection, asset} with constants (default: a key's "
        "folder is its item, its stem the asset)",
    )
    collection: str | None = Field(
        None, description="the collection of keys whose template has no {collection}"
    )
    sidecar: Sidecar | None = None
    layout: Literal["stac", "mirror"] = Field(
        "stac",
        description="stac: {collection}/{item}/{asset}{ext}; mirror: the keys as listed "
        "(what aws s3 sync / azcopy sync write, the tree torchgeo opens)",
    )

    @field_validator("template")
    @classmethod
    def _templates_compile(
        cls, value: str | list[str | dict[str, str]] | None
    ) -> str | list[str | dict[str, str]] | None:
        if value is not None:
            compile_templates(value)
        return value


SOURCE_COOP_HOSTS = frozenset({"data.source.coop"})  # its data proxy: public, unsigned


class S3Source(_FlatTree):
    """Keys under an S3 prefix (AWS, Source Cooperative's ``https://data.source.coop``, any
    S3-compatible endpoint). Credentials from the usual AWS chain when present, else
    anonymous (``config/aws.py``); ``anonymous`` decides it instead."""

    type: Literal["s3"]
    bucket: Annotated[str, Field(min_length=1)] = Field(
        description="the bucket (Source Cooperative: the account, e.g. radiantearth)"
    )
    endpoint: str | None = Field(
        None,
        description="endpoint URL (default AWS's; https://data.source.coop for Source Cooperative)",
    )
    region: str = Field("us-west-2", description="the bucket's region")
    requester_pays: bool = Field(False, description="send x-amz-request-payer: requester")
    anonymous: bool | None = Field(
        None,
        description="true: never sign (a public bucket); false: sign, and fail without "
        "credentials; default: sign when AWS credentials are found, except for "
        "https://data.source.coop (public)",
    )
    profile: str | None = Field(
        None, description="the AWS profile to read (default $AWS_PROFILE, else default)"
    )

    _check_endpoint = field_validator("endpoint")(lambda v: v if v is None else _http_url(v))

    @property
    def bucket_url(self) -> str:
        """The bucket's URL, unsigned, ending in ``/``: ``{endpoint}/{bucket}/`` (path-style)
        for a custom endpoint, else AWS's virtual-hosted address (path-style for a bucket
        whose name has a dot, which no wildcard certificate covers). Listing, object URLs
        and the signer's prefix all start with it."""
        if self.endpoint is not None:
            return f"{self.endpoint.rstrip('/')}/{quote(self.bucket, safe='')}/"
        if "." in self.bucket:
            return f"https://s3.{self.region}.amazonaws.com/{quote(self.bucket, safe='')}/"
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/"

    @property
    def public_endpoint(self) -> bool:
        """Whether the endpoint is one that serves public data unsigned (Source
        Cooperative's proxy), so that it is anonymous unless ``anonymous: false``."""
        if self.endpoint is None:
            return False
        return (urlsplit(self.endpoint).hostname or "").lower() in SOURCE_COOP_HOSTS


class AzureSource(_FlatTree):
    """Blobs under an Azure container prefix: anonymous when the container allows it, else
    with a SAS token."""

    type: Literal["azure"]
    account: Annotated[str, Field(min_length=1)]
    container: Annotated[str, Field(min_length=1)]
    endpoint: str | None = Field(
        None, description="endpoint URL (default https://{account}.blob.core.windows.net)"
    )
    sas_token: SecretStr | None = Field(
        None, description="a SAS token (else $AZURE_STORAGE_SAS_TOKEN; never printed)"
    )

    _check_endpoint = field_validator("endpoint")(lambda v: v if v is None else _http_url(v))

    @property
    def container_url(self) -> str:
        """The container's URL, unsigned: ``endpoint`` (else the account's public one, an
        emulator's path-style ``http://127.0.0.1:10000/devstoreaccount1``) and the container.
        Listing, asset hrefs and the transfer signer's prefix all start with it."""
        endpoint = self.endpoint or f"https://{self.account}.blob.core.windows.net"
        return f"{endpoint.rstrip('/')}/{quote(self.container, safe='')}"


def _default_source_type(value: Any) -> Any:
    if isinstance(value, Mapping) and "type" not in value:
        return {**value, "type": "mlhub"}
    return value


Source = Annotated[
    MlhubSource | ArchiveSource | StacSource | StacApiSource | S3Source | AzureSource,
    Field(discriminator="type"),
    BeforeValidator(_default_source_type),
]
