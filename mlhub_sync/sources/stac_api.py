"""The ``stac-api`` source: the items a STAC API's search returns, page by page.

The search itself is pystac-client's (conformance, parameters, ``next`` links); every
request it makes goes through the run's :class:`~mlhub_sync.net.client.Http`
(:class:`_ViaHttp`), so a STAC API gets what every catalog request gets: the one retry
decision, the total deadline, the body cap, judged redirects and redacted errors. Searches
are POSTed where the API conforms to item search (GET otherwise); ``intersects`` is sent as
its bounding box and, like every filter, checked again locally by the selection.

``source.query`` goes to the API only when its conformance lists the query extension, and
is checked on every returned item either way (``selection.query``); ``source.filter`` (CQL2)
needs the API's filter extension, and a clear error says so when it is missing.
``max_items`` counts the items that passed those checks.

Each item is staged at its place in the layout as it arrives, and its collections'
documents once each, so memory stays flat however many items match. The landing page is
staged as the root ``catalog.json``. Asset hrefs resolve against the item's own ``self``
link, else the page it came on. An API has no validator for "the results did not change",
so the search runs on every plan (like a static catalog's crawl); the plan then says which
items were added, changed (their content, links aside, differs) and removed since the last.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pystac_client import Client
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from mlhub_sync.config.sources import StacApiSource
from mlhub_sync.errors import CatalogError
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.selection.filters import FilterSet, geometry_from_geojson
from mlhub_sync.selection.layout import collection_dir, safe_component
from mlhub_sync.selection.query import matches
from mlhub_sync.sources.base import CrawledCatalog, SourceContext, Stager
from mlhub_sync.stac.document import Document

log = logging.getLogger(__name__)


def search_parameters(spec: StacApiSource, filters: FilterSet) -> dict[str, Any]:
    """The search a dataset asks of its API (pure): its source's collections, query, filter
    and item cap, and the dataset's filters, pushed down where the API can apply them.

    Collections: those the source names, narrowed to the ``collection_filter``'s when both
    are given; else the filter's. Space: the ``bbox``, or the bounds of ``intersects``.
    Time: the window as an ISO interval, ``..`` for an open end. ``max_items`` is not sent:
    it counts the items that pass the local checks (:func:`search`).
    """
    wanted = set(filters.collections) if filters.collections else None
    collections: list[str] | None = None
    if spec.collections is not None:
        collections = [c for c in spec.collections if wanted is None or c in wanted]
        if not collections:
            raise CatalogError(
                "source.collections and collection_filter have no collection in common: "
                "the search would return nothing",
                subject=redact_url(spec.url),
                hint="make collection_filter name collections of source.collections",
            )
    elif wanted is not None:
        collections = sorted(wanted)
    params: dict[str, Any] = {"limit": spec.page_size}
    if collections is not None:
        params["collections"] = collections
    if filters.bbox is not None:
        params["bbox"] = list(filters.bbox)
    elif filters.intersects is not None:
        params["bbox"] = list(geometry_from_geojson(filters.intersects).bounds)
    if filters.time is not None:
        params["datetime"] = "/".join(_iso(t) for t in (filters.time.start, filters.time.end))
    if spec.query is not None:
        params["query"] = spec.query
    if spec.filter is not None:
        params["filter"] = spec.filter
        params["filter_lang"] = "cql2-json"
    return params


def _iso(instant: float | None) -> str:
    if instant is None:
        return ".."
    return dt.datetime.fromtimestamp(instant, dt.UTC).isoformat().replace("+00:00", "Z")


class _ViaHttp(StacApiIO):
    """pystac-client's I/O, with every request made by the run's :class:`Http`."""

    def __init__(self, http: Http):
        super().__init__(max_retries=0)  # retries are Http's (the one retry decision)
        self.http = http
        self.last_url = ""

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        if method == "POST":  # a search: its parameters are the JSON body
            reply = self.http.get(
                href, headers=headers, json_body=parameters or {}, what="STAC API search"
            )
        else:
            params = {k: _param(v) for k, v in (parameters or {}).items()}
            reply = self.http.get(
                href, params=params or None, headers=headers, what="STAC API request"
            )
        self.last_url = reply.url
        return reply.content.decode("utf-8")


def _param(value: Any) -> str:
    """A GET parameter as the STAC API spec writes it (lists comma-separated, objects JSON)."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def search(
    spec: StacApiSource,
    filters: FilterSet,
    staging: Path,
    http: Http,
    reporter: Reporter = NULL_REPORTER,
) -> Iterator[Document]:
    """Stage and yield the landing page, then each matching item and, once, each of their
    collections' documents."""
    io = _ViaHttp(http)
    params = search_parameters(spec, filters)
    with Stager(staging) as stager:
        try:
            client = Client.open(spec.url, stac_io=io)
            landing = json.dumps(client.to_dict(transform_hrefs=False)).encode()
            if stager.stage("catalog.json", landing):
                yield Document("catalog.json", landing, spec.url)
            method = "POST" if client.conforms_to(ConformanceClasses.ITEM_SEARCH) else "GET"
            _fit_to_conformance(client, spec, params)
            item_search = client.search(method=method, **params)
            seen: set[str] = set()
            taken = 0
            with reporter.stage("search STAC API", unit="items") as stage:
                for page in item_search.pages_as_dicts():
                    page_url = io.last_url or spec.url
                    for item in page.get("features") or []:
                        if not isinstance(item, dict) or not _passes(spec, item):
                            continue
                        if spec.max_items is not None and taken >= spec.max_items:
                            return
                        taken += 1
                        collection = item.get("collection")
                        if isinstance(collection, str) and collection and collection not in seen:
                            seen.add(collection)
                            yield from _collection(client, io, stager, collection)
                        document = _item(stager, item, page_url)
                        if document is not None:
                            stage.update()
                            yield document
        except APIError as exc:
            raise CatalogError(
                f"the STAC API refused the search: {str(exc)[:300]}",
                subject=redact_url(spec.url),
                hint="check source.query / source.filter against what the API supports "
                "(its /conformance)",
            ) from exc


def _fit_to_conformance(client: Client, spec: StacApiSource, params: dict[str, Any]) -> None:
    """Leave out of ``params`` what the API does not support and we check ourselves."""
    if spec.query is not None and not client.conforms_to(ConformanceClasses.QUERY):
        log.info("the STAC API has no query extension: applying source.query to each item")
        del params["query"]
    if spec.filter is not None and not client.conforms_to(ConformanceClasses.FILTER):
        raise CatalogError(
            "the STAC API does not support the filter extension (CQL2), so source.filter "
            "cannot be applied",
            subject=redact_url(spec.url),
            hint="express the condition as source.query (checked locally when the API "
            "lacks it too), or use an API whose /conformance lists item-search#filter",
        )


def _passes(spec: StacApiSource, item: Mapping[str, Any]) -> bool:
    if spec.query is None:
        return True
    properties = item.get("properties")
    return isinstance(properties, Mapping) and matches(spec.query, properties)


def _collection(
    client: Client, io: _ViaHttp, stager: Stager, collection: str
) -> Iterator[Document]:
    url = f"{client.get_self_href() or ''}".rstrip("/") + f"/collections/{collection}"
    try:
        data = io.request(url).encode("utf-8")
    except CatalogError as exc:
        log.warning("collection %s: its document could not be read (%s)", collection, exc)
        return
    rel = f"{collection_dir(collection)}/collection.json"
    if stager.stage(rel, data):
        yield Document(rel, data, url)


def _item(stager: Stager, item: Mapping[str, Any], page_url: str) -> Document | None:
    item_id = item.get("id")
    name = safe_component(item_id if isinstance(item_id, str) and item_id else "_unnamed")
    collection = item.get("collection")
    own = collection if isinstance(collection, str) and collection else "_default"
    rel = f"{collection_dir(own)}/{name}/{name}.json"
    selves = [
        link.get("href")
        for link in item.get("links") or []
        if isinstance(link, dict) and link.get("rel") == "self"
    ]
    url = next((href for href in selves if isinstance(href, str)), page_url)
    data = json.dumps(item).encode("utf-8")
    content = {k: v for k, v in item.items() if k != "links"}  # links change per response
    digest = hashlib.blake2b(json.dumps(content, sort_keys=True).encode(), digest_size=16)
    if not stager.stage(rel, data):
        return None
    return Document(rel, data, url, digest.hexdigest())


class StacApiCatalog:
    """The ``stac-api`` source (see the module docstring)."""

    refetch_damaged = False  # no archive to be damaged

    def __init__(self, spec: StacApiSource):
        self.spec = spec

    def snapshot(self, ctx: SourceContext) -> CrawledCatalog:
        """The search, to run when the catalog stage is ready to stage what it returns."""
        spec = self.spec
        return CrawledCatalog(
            documents=lambda staging: search(spec, ctx.filters, staging, ctx.http, ctx.reporter),
            allow_file_hrefs=False,  # an API on the network may never name local files
        )
