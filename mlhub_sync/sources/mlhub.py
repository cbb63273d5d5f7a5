"""The Radiant MLHub API: ``/catalog/{id}`` (the archive, usually a 302 to blob storage) and
``/datasets/{id}`` (the dataset's metadata). The API key travels as the ``key`` query
parameter on API calls only; redirects to blob storage do not carry it.

The API itself (``api.radiant.earth``, the default root) was retired in 2023, so the first
thing many users meet is its absence: a root whose host does not resolve or cannot be
reached, or that has no such dataset, is said on one line (:func:`unavailable`), with where
to go instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from mlhub_sync.config.credentials import resolve_api_key, resolve_root_url
from mlhub_sync.config.sources import MlhubSource
from mlhub_sync.errors import CatalogError, SourceUnavailableError
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.sources.archive import archive_path, fetch_remote
from mlhub_sync.sources.base import FetchedArchive, SourceContext
from mlhub_sync.state.db import StateDB

log = logging.getLogger(__name__)


def catalog_url(root_url: str, dataset_id: str) -> str:
    """``{root}/catalog/{dataset_id}``."""
    return urljoin(root_url, f"catalog/{quote(dataset_id, safe='')}")


RETIRED_HOSTS = frozenset({"api.radiant.earth"})  # the Radiant MLHub API, shut down in 2023


UNREACHABLE = frozenset({"dns", "connection", "timeout"})  # error classes: no answer at all


def unavailable(exc: CatalogError, dataset_id: str, root_url: str) -> SourceUnavailableError | None:
    """``exc`` (a failed API call for ``dataset_id`` on ``root_url``) as what it means: when
    the root's host does not resolve or cannot be reached, or it has no such dataset
    (404/410), a one-line :class:`SourceUnavailableError` saying so and what to do (on the
    retired Radiant MLHub API: that it was retired, and the sources that work instead);
    ``None`` for any other failure (it stands as it is)."""
    root = redact_url(root_url)
    host = urlsplit(root_url).hostname or root
    if host in RETIRED_HOSTS:
        root = f"the Radiant MLHub API (retired in 2023) at {root}"
    if exc.status in (404, 410):
        what = f"dataset {dataset_id} not found on {root} (HTTP {exc.status})"
    elif exc.error_class == "dns":
        what = f"cannot reach {root}: the host name {host} does not resolve"
    elif exc.error_class in UNREACHABLE:
        what = f"cannot reach {root}: {exc.message.removeprefix(f'{dataset_id}: ')}"
    else:
        return None
    hint = (
        f"sync {dataset_id} from where it is kept now: a source of type archive (url or path "
        "of its .tar.gz), stac (of its catalog.json), stac-api, s3 or azure, see the README's "
        "Sources; `mlhub-sync datasets` lists where the former MLHub datasets went"
    )
    if host not in RETIRED_HOSTS:
        check = "the dataset id" if exc.status else "source.root_url (or $MLHUB_ROOT_URL)"
        hint = f"check {check}, or {hint}"
    return SourceUnavailableError(what, hint=hint, status=exc.status, error_class=exc.error_class)


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
    try:
        return fetch_remote(
            http,
            catalog_url(root, dataset_id),
            kept,
            db,
            params=key_params(key),
            what=f"{dataset_id}: fetch stac catalog",
            reporter=reporter,
        )
    except CatalogError as exc:
        gone = unavailable(exc, dataset_id, root)
        if gone is None:
            raise
        log.info("%s", exc)  # the request as it failed, its URL redacted (-v shows it)
        raise gone from exc


def get_dataset(http: Http, root_url: str, dataset_id: str, api_key: str | None) -> dict[str, Any]:
    """The dataset object of ``GET /datasets/{id}``."""
    url = urljoin(root_url, f"datasets/{quote(dataset_id, safe='')}")
    try:
        resp = http.get(url, params=key_params(api_key), what=f"look up dataset {dataset_id!r}")
    except CatalogError as exc:
        gone = unavailable(exc, dataset_id, root_url)
        if gone is None:
            raise
        log.info("%s", exc)  # the request as it failed, its URL redacted (-v shows it)
        raise gone from exc
    with resp:
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
