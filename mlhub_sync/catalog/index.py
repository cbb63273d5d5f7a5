"""The indexer: STAC documents streamed into the ``items``, ``assets`` and ``rejected``
tables in batches (invalid JSON counted and reported, non-STAC JSON ignored, neither fatal),
and into ``documents`` and ``links`` (where each document lies and what it links: the synced
catalog's shape, ``catalog.synced``).

An archive's relative asset hrefs that stay inside it may name files it bundles: those assets
wait in ``bundle_candidates`` until the whole archive is read (``catalog.bundled``).

Each item gets a digest of its document's bytes (a re-index says what changed). The spec's
``rewrite`` rules move asset hrefs here, before anything is planned; an object-store source's
assets may carry their ``mirror`` layout path (``mlhub:path``), honoured only when the
source says it wrote them (``own_paths``)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from mlhub_sync.net.redact import redact_url
from mlhub_sync.selection.layout import CommonLayout, asset_relpath, mirror_relpath
from mlhub_sync.sources.base import Unreadable
from mlhub_sync.stac.document import (
    AssetFacts,
    Document,
    asset_facts,
    document_kind,
    fallback_collection_id,
    parse_item,
    tree_links,
)
from mlhub_sync.stac.href import LocalHrefs, rewrite_href
from mlhub_sync.state.db import StateDB

log = logging.getLogger(__name__)

NO_COMMON = CommonLayout()


BATCH = 5000


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class Indexer:
    """Writes items, collection assets and rejected assets into the db in batches."""

    def __init__(
        self,
        db: StateDB,
        *,
        allow_file_hrefs: bool,
        local: LocalHrefs | None = None,
        members_base: str | None = None,
        unreadable: Unreadable | None = None,
        rewrites: Sequence[tuple[str, str]] = (),
        own_paths: bool = False,
    ):
        """``file:`` hrefs need ``allow_file_hrefs`` (a local catalog) and must reach only
        what ``local`` allows (nothing, by default). ``members_base``: the documents are an
        archive's, their URLs this prefix and their member paths (relative hrefs inside it
        become ``bundle_candidates``). Unusable documents are added to ``unreadable``.
        ``rewrites``: ``(from, to)`` href prefixes; ``own_paths``: an asset's ``mlhub:path``
        is its path (the ``mirror`` layout)."""
        self.db = db
        self.allow_file = allow_file_hrefs
        self.local = local
        self.members_base = members_base
        self.unreadable = unreadable if unreadable is not None else Unreadable()
        self.rewrites = tuple(rewrites)
        self.own_paths = own_paths
        self.items = 0
        self.assets = 0
        self.rejected = 0
        self._items: list[tuple[Any, ...]] = []
        self._assets: list[tuple[Any, ...]] = []
        self._rejected: list[tuple[Any, ...]] = []
        self._documents: list[tuple[Any, ...]] = []
        self._links: list[tuple[Any, ...]] = []
        self._candidates: list[tuple[Any, ...]] = []
        self._next_item_pk = db.index.next_item_pk()
        self._next_doc_pk = db.documents.next_doc_pk()
        if members_base is not None:
            db.documents.reset_candidates()

    @property
    def invalid_documents(self) -> int:
        """Documents that could not be read or used (they hold prune back)."""
        return self.unreadable.count

    def _invalid(self, doc: Document, why: str) -> None:
        shown = doc.name if self.members_base is not None else redact_url(doc.url)
        shown = shown.encode("utf-8", "backslashreplace").decode("utf-8")  # storable, printable
        self.unreadable.add(shown, why)
        log.warning("skipping %s: %s", shown, why)

    def add(self, doc: Document) -> None:
        """Index one JSON document (non-STAC JSON is ignored; invalid JSON is counted)."""
        try:
            # UTF-8 only, as RFC 8259 asks of JSON exchanged between systems: then the byte
            # check below sees every escape that could smuggle in a lone surrogate.
            parsed = json.loads(doc.data.decode("utf-8"))
            if _SURROGATE_ESCAPE.search(doc.data):
                # JSON may escape a lone surrogate, which no text column (or file name) can hold.
                json.dumps(parsed, ensure_ascii=False).encode("utf-8")
        except (ValueError, UnicodeError, RecursionError) as exc:  # ValueError: also the
            # int digit limit of a 4,300-digit number, which is not a JSONDecodeError
            self._invalid(doc, f"invalid JSON ({exc})")
            return
        if not isinstance(parsed, dict) or "stac_version" not in parsed:
            return
        if not _encodable(doc.name) or not _encodable(doc.url):
            # a member name no file system or text column holds (a lone surrogate)
            self._invalid(doc, "its name is not valid UTF-8")
            return
        kind = document_kind(parsed)
        placed: tuple[str | None, int | None] | None = (None, None)
        if kind == "item":
            placed = self._add_item(doc, parsed)
        elif kind == "collection":
            placed = self._add_collection_assets(doc, parsed)
        if placed is not None:
            self._add_document(doc, parsed, kind, *placed)
        if len(self._assets) + len(self._items) + len(self._documents) >= BATCH:
            self.flush()

    def _add_document(
        self,
        doc: Document,
        parsed: dict[str, Any],
        kind: str,
        collection_id: str | None,
        item_pk: int | None,
    ) -> None:
        doc_pk = self._next_doc_pk
        self._next_doc_pk += 1
        self._documents.append((doc_pk, doc.name, doc.url, kind, collection_id, item_pk))
        self._links.extend((doc_pk, rel, url) for rel, url in tree_links(parsed, doc.url))

    def _add_item(self, doc: Document, parsed: dict[str, Any]) -> tuple[str, int] | None:
        try:
            record, rejected = parse_item(
                parsed,
                doc.url,
                fallback_collection_id(doc.name),
                allow_file=self._allow_file(doc),
                local=self.local,
                members_base=self.members_base,
            )
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep geometry
            self._invalid(doc, str(exc) if isinstance(exc, ValueError) else "too deeply nested")
            return None
        item_pk = self._next_item_pk
        self._next_item_pk += 1
        bbox = record.bbox or (None, None, None, None)
        self._items.append(
            (
                item_pk,
                record.collection_id,
                record.item_id,
                *bbox,
                record.geometry_json,
                record.start,
                record.end,
                doc.digest or hashlib.blake2b(doc.data, digest_size=16).hexdigest(),
            )
        )
        self.items += 1
        for asset in record.assets:
            self._queue_asset(item_pk, record.collection_id, record.item_id, asset)
        for bad in rejected:
            self._queue_rejected(
                record.collection_id, record.item_id, bad.key, bad.href, bad.reason
            )
        return record.collection_id, item_pk

    def _add_collection_assets(
        self, doc: Document, parsed: dict[str, Any]
    ) -> tuple[str, None] | None:
        collection_id = parsed.get("id")
        if not isinstance(collection_id, str) or not collection_id:
            self._invalid(doc, "the collection has no id")
            return None
        for facts in asset_facts(
            parsed.get("assets"),
            doc.url,
            allow_file=self._allow_file(doc),
            local=self.local,
            members_base=self.members_base,
        ):
            if isinstance(facts, AssetFacts):
                self._queue_asset(None, collection_id, None, facts)
            else:
                self._queue_rejected(collection_id, None, facts.key, facts.href, facts.reason)
        return collection_id, None

    def _allow_file(self, doc: Document) -> bool:
        # Decided per document: a remote document linked from a local catalog gets no file:.
        return self.allow_file and doc.url.startswith("file:")

    def _queue_asset(
        self, item_pk: int | None, collection_id: str, item_id: str | None, asset: AssetFacts
    ) -> None:
        if asset.member is not None:  # found out once the whole archive is read
            self._candidates.append(
                (*_columns(item_pk, collection_id, item_id, asset), asset.member, asset.written)
            )
            return
        self.add_asset(item_pk, collection_id, item_id, asset)

    def add_asset(
        self, item_pk: int | None, collection_id: str, item_id: str | None, asset: AssetFacts
    ) -> None:
        """Queue one asset for the index (``asset.href`` final but for the rewrites)."""
        if self.rewrites:
            asset = dataclasses.replace(asset, href=rewrite_href(asset.href, self.rewrites))
        if self.own_paths and asset.path is not None:
            try:
                path = mirror_relpath(asset.path)
            except ValueError as exc:
                self._queue_rejected(collection_id, item_id, asset.key, asset.href, str(exc))
                return
        else:
            path = asset_relpath(
                collection_id, item_id, asset.key, asset.href, asset.media_type, NO_COMMON
            )
        self._assets.append((*_columns(item_pk, collection_id, item_id, asset), path))
        self.assets += 1

    def add_rejected(
        self, collection_id: str, item_id: str | None, key: str, href: str, reason: str
    ) -> None:
        """Queue one asset the index refuses, with why."""
        self._queue_rejected(collection_id, item_id, key, href, reason)

    def _queue_rejected(
        self, collection_id: str, item_id: str | None, key: str, href: str, reason: str
    ) -> None:
        self._rejected.append((collection_id, item_id, key, href, reason))
        self.rejected += 1
        if self.rejected <= 20:
            log.warning("asset %s/%s/%s left out: %s", collection_id, item_id or "-", key, reason)

    def flush(self) -> None:
        """Write queued rows (the queues are emptied even if writing fails)."""
        try:
            self._write_queued()
        finally:
            for queue in (
                self._items,
                self._assets,
                self._rejected,
                self._documents,
                self._links,
                self._candidates,
            ):
                queue.clear()

    def _write_queued(self) -> None:
        self.db.index.insert(self._items, self._assets, self._rejected)
        self.db.documents.insert(self._documents, self._links)
        if self._candidates:
            self.db.documents.add_candidates(self._candidates)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _columns(
    item_pk: int | None, collection_id: str, item_id: str | None, asset: AssetFacts
) -> tuple[Any, ...]:
    """An asset's columns shared by ``assets`` and ``bundle_candidates``, in their order."""
    return (
        item_pk, collection_id, item_id, asset.key, asset.href, asset.media_type, asset.size,
        asset.checksum,
    )  # fmt: skip
