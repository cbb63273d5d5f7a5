"""A static STAC catalog: crawled from its ``catalog.json`` through ``child`` and ``item`` links.

Each document fetched is staged at its place in the standard layout (``catalog.json``,
``{collection}/collection.json``, ``{collection}/{item}/{item}.json``) and handed to the
indexer with its own URL, so relative asset hrefs resolve where the catalog really lives.
A local catalog may have ``file:`` hrefs (to files in the spec's ``allow_local`` folders); a
remote one may not (it could make us read local files). The crawl runs on every plan: a static
catalog has no single validator to ask.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests

from mlhub_sync.config.sources import StacSource
from mlhub_sync.errors import CatalogError
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.selection.layout import collection_dir, safe_component
from mlhub_sync.sources.base import CrawledCatalog, SourceContext, Unreadable, stage_document
from mlhub_sync.stac.document import Document, document_kind
from mlhub_sync.stac.href import LocalHrefs, check_local_href, normalize_href

log = logging.getLogger(__name__)


MAX_DOCUMENT_BYTES = 64 * 2**20


def root_url(source: StacSource) -> str:
    """The catalog's URL (a ``file:`` URL for a local path)."""
    if source.url is not None:
        return source.url
    assert source.path is not None
    return Path(source.path).resolve().as_uri()


def _read(url: str, http: Http) -> bytes:
    if urlsplit(url).scheme == "file":
        path = Path(url2pathname(urlsplit(url).path))
        try:
            if path.stat().st_size > MAX_DOCUMENT_BYTES:
                raise CatalogError("the STAC document is too large", subject=str(path))
            return path.read_bytes()
        except OSError as exc:
            raise CatalogError(
                f"cannot read the STAC document: {exc.strerror or exc}", subject=str(path)
            ) from exc
    data = bytearray()
    with http.get(url, what="fetch STAC document", stream=True) as response:
        try:
            for chunk in response.iter_content(1 << 16):
                data += chunk
                if len(data) > MAX_DOCUMENT_BYTES:
                    break
        except requests.RequestException as exc:
            raise CatalogError(
                f"cannot read the STAC document: {http.describe(exc)}", subject=redact_url(url)
            ) from exc
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CatalogError("the STAC document is too large", subject=redact_url(url))
    return bytes(data)


def local_root(source: StacSource) -> Path | None:
    """A local catalog's folder: its ``file:`` links stay inside it, and so do its relative
    asset hrefs (other local files need the spec's ``allow_local``)."""
    return Path(source.path).resolve().parent if source.path is not None else None


def crawl(
    source: StacSource,
    staging: Path,
    http: Http,
    reporter: Reporter = NULL_REPORTER,
    unreadable: Unreadable | None = None,
    *,
    strict: bool = False,
) -> Iterator[Document]:
    """Fetch every document reachable from the root, staging and yielding each once.

    A linked document that cannot be read (gone, refused after the retries, not JSON) is
    skipped and added to ``unreadable``, and the rest is crawled: the plan names it, and prune
    is held back while any remain (a transient outage must not delete good files). With
    ``strict`` it fails the crawl instead, as does an unreadable root, a run being stopped,
    and a catalog beyond ``source.max_documents`` documents or ``source.max_depth`` links from
    the root (links that never end: the limit is named).
    """
    start = root_url(source)
    root = local_root(source)
    unreadable = unreadable if unreadable is not None else Unreadable()
    # The catalog's own documents: file: links only inside its folder (symlinks resolved).
    documents_here = LocalHrefs.of([root], root) if root is not None else None
    queue: deque[tuple[str, str | None, int]] = deque([(start, None, 0)])
    seen = {start}
    with reporter.stage("crawl STAC catalog", unit="docs") as stage:
        while queue:
            url, parent_collection, depth = queue.popleft()
            doc = _fetch(url, url == start, http, unreadable, strict)
            if doc is None:
                continue
            data, parsed = doc
            rel, collection = _place(parsed, url == start, parent_collection)
            if stage_document(staging, rel, data):
                stage.update()
                yield Document(rel, data, url)
            for link in parsed.get("links") or []:
                if not isinstance(link, dict) or link.get("rel") not in ("child", "item"):
                    continue
                href = link.get("href")
                if not isinstance(href, str):
                    continue
                try:
                    # file: links only from local documents, and only inside the root folder
                    target = normalize_href(
                        href, url, allow_file=url.startswith("file:") and root is not None
                    )
                    check_local_href(target, documents_here, href)
                except ValueError as exc:
                    log.warning("%s: ignoring link %r: %s", redact_url(url), href[:200], exc)
                    continue
                if target not in seen:
                    _check_limits(source, url, target, depth + 1, len(seen))
                    seen.add(target)
                    queue.append((target, collection, depth + 1))


def _fetch(
    url: str, is_root: bool, http: Http, unreadable: Unreadable, strict: bool
) -> tuple[bytes, dict[str, Any]] | None:
    """A document's bytes and JSON object; ``None`` when it is skipped as unreadable (a
    non-object JSON document is skipped silently: it is no STAC document)."""
    try:
        data = _read(url, http)
        doc = json.loads(data)
    except (CatalogError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        why = exc.message if isinstance(exc, CatalogError) else f"invalid JSON ({exc})"
        if is_root or http.stop.is_set():
            if isinstance(exc, CatalogError):
                raise
            raise CatalogError(
                f"cannot read the root catalog: {why}", subject=redact_url(url)
            ) from exc
        if strict:
            raise CatalogError(
                f"strict: a linked STAC document could not be read: {why}",
                subject=redact_url(url),
                hint="fix the catalog, or run without --strict (and strict: true in the spec) "
                "to skip it, sync the rest and hold prune back; the previous index is kept",
            ) from exc
        log.warning("skipping %s: %s", redact_url(url), why)
        unreadable.add(redact_url(url), why)
        return None
    return (data, doc) if isinstance(doc, dict) else None


def _check_limits(source: StacSource, url: str, target: str, depth: int, documents: int) -> None:
    """Refuse to follow a link beyond the crawl's limits (the previous index stays)."""
    if depth > source.max_depth:
        raise CatalogError(
            f"the STAC catalog goes deeper than source.max_depth ({source.max_depth} links "
            f"from the root): {redact_url(url)} links to {redact_url(target)}",
            subject=redact_url(root_url(source)),
            hint="links that never end (a server making up children?); if the catalog is "
            "really this deep, raise source.max_depth",
        )
    if documents >= source.max_documents:
        raise CatalogError(
            f"the STAC catalog has more than source.max_documents ({source.max_documents}) "
            f"documents: {redact_url(url)} links to one more",
            subject=redact_url(root_url(source)),
            hint="links that never end (a server making up children?); if the catalog is "
            "really this large, raise source.max_documents",
        )


def _place(
    doc: dict[str, object], is_root: bool, parent_collection: str | None
) -> tuple[str, str | None]:
    """Where a document is staged, and the collection its children belong to."""
    doc_id = doc.get("id")
    raw = doc_id if isinstance(doc_id, str) and doc_id else "_unnamed"
    kind = document_kind(doc)
    if is_root:
        return "catalog.json", parent_collection
    if kind == "collection":  # beside its assets, in the layout's collection folder
        return f"{collection_dir(raw)}/collection.json", str(doc_id)
    if kind == "item":
        own = doc.get("collection")
        collection = own if isinstance(own, str) and own else parent_collection or "_default"
        name = safe_component(raw)
        return f"{collection_dir(collection)}/{name}/{name}.json", parent_collection
    return f"{collection_dir(raw)}/catalog.json", parent_collection


class StaticCatalog:
    """The ``stac`` source: a static catalog crawled from its ``catalog.json``, local or
    remote. It has no single validator to ask, so it is crawled on every plan."""

    refetch_damaged = False  # no archive to be damaged

    def __init__(self, spec: StacSource):
        self.spec = spec

    def snapshot(self, ctx: SourceContext) -> CrawledCatalog:
        """The crawl, to run when the catalog stage is ready to stage what it finds."""
        unreadable = Unreadable()
        return CrawledCatalog(
            documents=lambda staging: crawl(
                self.spec, staging, ctx.http, ctx.reporter, unreadable, strict=ctx.strict
            ),
            allow_file_hrefs=self.spec.path is not None,
            local_root=local_root(self.spec),
            unreadable=unreadable,
        )
