"""The Radiant MLHub API: ``/catalog/{id}`` (the archive, usually a 302 to blob storage) and
``/datasets/{id}`` (the dataset's metadata). The API key travels as the ``key`` query
parameter on API calls only; redirects to blob storage do not carry it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

from mlhub_sync.config.credentials import resolve_api_key, resolve_root_url
from mlhub_sync.config.sources import MlhubSource
from mlhub_sync.errors import CatalogError
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.sources.archive import archive_path, fetch_remote
from mlhub_sync.sources.base import FetchedArchive, SourceContext
from mlhub_sync.state.db import StateDB


def catalog_url(root_url: str, dataset_id: str) -> str:
    """``{root}/catalog/{dataset_id}``."""
    return urljoin(root_url, f"catalog/{quote(dataset_id, safe='')}")


def key_params(api_key: str | None) -> dict[str, str]:
    """Query parameters carrying the key (none without a key)."""
    return {"key": api_key} if api_key else {}


def fetch_archive(
    source: MlhubSource,
    dataset_id: str,
    kept: Path,
    db: StateDB,
    http: Http,
    environ: Mapping[str, str],
    reporter: Reporter = NULL_REPORTER,
) -> FetchedArchive:
    """Fetch the dataset's catalog archive from the API (conditionally)."""
    root = resolve_root_url(source, environ)
    key = resolve_api_key(source, environ)
    if key and key not in http.secrets:  # e.g. read from a profile: scrub it from messages
        http.secrets = (*http.secrets, key)
    return fetch_remote(
        http,
        catalog_url(root, dataset_id),
        kept,
        db,
        params=key_params(key),
        what=f"{dataset_id}: fetch stac catalog",
        reporter=reporter,
    )


def get_dataset(http: Http, root_url: str, dataset_id: str, api_key: str | None) -> dict[str, Any]:
    """The dataset object of ``GET /datasets/{id}``."""
    url = urljoin(root_url, f"datasets/{quote(dataset_id, safe='')}")
    with http.get(url, params=key_params(api_key), what=f"look up dataset {dataset_id!r}") as resp:
        try:
            data = resp.json()
        except ValueError as exc:
            raise CatalogError(
                "the API answered with something that is not JSON", subject=redact_url(url)
            ) from exc
    if not isinstance(data, dict):
        raise CatalogError(
            "the API answered with an unexpected dataset object", subject=redact_url(url)
        )
    return data


class MlhubCatalog:
    """The ``mlhub`` source: the Radiant MLHub API (or a mirror speaking it)."""

    refetch_damaged = True  # blob storage behind the API: damage happened on the way

    def __init__(self, spec: MlhubSource):
        self.spec = spec

    def snapshot(self, ctx: SourceContext) -> FetchedArchive:
        """The dataset's catalog archive from ``/catalog/{id}``, fetched conditionally."""
        kept = archive_path(ctx.dataset_dir, ctx.dataset_id)
        return fetch_archive(
            self.spec, ctx.dataset_id, kept, ctx.db, ctx.http, ctx.environ, ctx.reporter
        )
