"""A static STAC catalog: crawled from its ``catalog.json`` through ``child`` and ``item`` links.

Each document fetched is staged at its place in the standard layout (``catalog.json``,
``{collection}/collection.json``, ``{collection}/{item}/{item}.json``) and handed to the
indexer with its own URL, so relative asset hrefs resolve where the catalog really lives.
A local catalog may have ``file:`` hrefs; a remote one may not (it could make us read local
files). The crawl runs on every plan: a static catalog has no single validator to ask.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests

from mlhub_sync.config.sources import StacSource
from mlhub_sync.errors import CatalogError
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.progress import NULL_REPORTER, Reporter
from mlhub_sync.selection.layout import safe_component
from mlhub_sync.sources.base import CrawledCatalog, SourceContext
from mlhub_sync.stac.document import Document, document_kind
from mlhub_sync.stac.href import check_local_href, normalize_href
from mlhub_sync.tree import create_new

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
    """The folder a local catalog's ``file:`` links and hrefs must stay inside."""
    return Path(source.path).resolve().parent if source.path is not None else None


def crawl(
    source: StacSource,
    staging: Path,
    http: Http,
    reporter: Reporter = NULL_REPORTER,
    invalid: list[str] | None = None,
) -> Iterator[Document]:
    """Fetch every document reachable from the root, staging and yielding each once.

    A linked document that cannot be fetched fails the crawl (a transient outage must not
    shrink the index, or prune would delete good files); one that is not valid JSON is skipped
    and noted in ``invalid``.
    """
    start = root_url(source)
    root = local_root(source)
    queue: deque[tuple[str, str | None]] = deque([(start, None)])
    seen = {start}
    with reporter.stage("crawl STAC catalog", unit="docs") as stage:
        while queue:
            url, parent_collection = queue.popleft()
            data = _read(url, http)
            try:
                doc = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                if url == start:
                    raise CatalogError(
                        f"cannot read the root catalog: {exc}", subject=redact_url(url)
                    ) from exc
                log.warning("skipping %s: invalid JSON (%s)", redact_url(url), exc)
                if invalid is not None:
                    invalid.append(redact_url(url))
                continue
            if not isinstance(doc, dict):
                continue
            rel, collection = _place(doc, url == start, parent_collection)
            if _stage(staging, rel, data):
                stage.update()
                yield Document(rel, data, url)
            for link in doc.get("links") or []:
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
                    check_local_href(target, root)
                except ValueError as exc:
                    log.warning("%s: ignoring link %r: %s", redact_url(url), href[:200], exc)
                    continue
                if target not in seen:
                    seen.add(target)
                    queue.append((target, collection))


def _place(
    doc: dict[str, object], is_root: bool, parent_collection: str | None
) -> tuple[str, str | None]:
    """Where a document is staged, and the collection its children belong to."""
    doc_id = doc.get("id")
    name = safe_component(doc_id if isinstance(doc_id, str) and doc_id else "_unnamed")
    kind = document_kind(doc)
    if is_root:
        return "catalog.json", parent_collection
    if kind == "collection":
        return f"{name}/collection.json", str(doc_id)
    if kind == "item":
        own = doc.get("collection")
        collection = own if isinstance(own, str) and own else parent_collection or "_default"
        return f"{safe_component(collection)}/{name}/{name}.json", parent_collection
    return f"{name}/catalog.json", parent_collection


def _stage(staging: Path, rel: str, data: bytes) -> bool:
    # staging is a folder of the dataset folder: from there on, no link is followed (tree.py)
    try:
        fd = create_new(staging.parent, staging / rel)
    except FileExistsError:
        log.warning("two STAC documents map to %s; keeping the first", rel)
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return True


class StaticCatalog:
    """The ``stac`` source: a static catalog crawled from its ``catalog.json``, local or
    remote. It has no single validator to ask, so it is crawled on every plan."""

    refetch_damaged = False  # no archive to be damaged

    def __init__(self, spec: StacSource):
        self.spec = spec

    def snapshot(self, ctx: SourceContext) -> CrawledCatalog:
        """The crawl, to run when the catalog stage is ready to stage what it finds."""
        invalid: list[str] = []
        return CrawledCatalog(
            documents=lambda staging: crawl(self.spec, staging, ctx.http, ctx.reporter, invalid),
            allow_file_hrefs=self.spec.path is not None,
            local_root=local_root(self.spec),
            invalid=invalid,
        )
