"""The indexer: STAC documents streamed into the ``items``, ``assets`` and ``rejected``
tables in batches (invalid JSON and non-STAC JSON counted, not fatal)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from mlhub_sync.selection.layout import CommonLayout, asset_relpath
from mlhub_sync.stac.document import (
    AssetFacts,
    Document,
    asset_facts,
    document_kind,
    fallback_collection_id,
    parse_item,
)
from mlhub_sync.stac.href import LocalHrefs
from mlhub_sync.state.db import StateDB

log = logging.getLogger(__name__)

NO_COMMON = CommonLayout()


BATCH = 5000


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class Indexer:
    """Writes items, collection assets and rejected assets into the db in batches."""

    def __init__(self, db: StateDB, *, allow_file_hrefs: bool, local: LocalHrefs | None = None):
        """``file:`` hrefs need ``allow_file_hrefs`` (a local catalog) and must reach only
        what ``local`` allows (nothing, by default)."""
        self.db = db
        self.allow_file = allow_file_hrefs
        self.local = local
        self.items = 0
        self.assets = 0
        self.rejected = 0
        self.invalid_documents = 0
        self._items: list[tuple[Any, ...]] = []
        self._assets: list[tuple[Any, ...]] = []
        self._rejected: list[tuple[Any, ...]] = []
        self._next_item_pk = db.index.next_item_pk()

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
            self.invalid_documents += 1
            log.warning("skipping %s: invalid JSON (%s)", doc.name, exc)
            return
        if not isinstance(parsed, dict) or "stac_version" not in parsed:
            return
        kind = document_kind(parsed)
        if kind == "item":
            self._add_item(doc, parsed)
        elif kind == "collection":
            self._add_collection_assets(doc, parsed)
        if len(self._assets) + len(self._items) >= BATCH:
            self.flush()

    def _add_item(self, doc: Document, parsed: dict[str, Any]) -> None:
        try:
            record, rejected = parse_item(
                parsed,
                doc.url,
                fallback_collection_id(doc.name),
                allow_file=self._allow_file(doc),
                local=self.local,
            )
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep geometry
            self.invalid_documents += 1
            log.warning("skipping %s: %s", doc.name, exc)
            return
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
            )
        )
        self.items += 1
        for asset in record.assets:
            self._queue_asset(item_pk, record.collection_id, record.item_id, asset)
        for bad in rejected:
            self._queue_rejected(
                record.collection_id, record.item_id, bad.key, bad.href, bad.reason
            )

    def _add_collection_assets(self, doc: Document, parsed: dict[str, Any]) -> None:
        collection_id = parsed.get("id")
        if not isinstance(collection_id, str) or not collection_id:
            self.invalid_documents += 1
            log.warning("skipping %s: the collection has no id", doc.name)
            return
        for facts in asset_facts(
            parsed.get("assets"),
            doc.url,
            allow_file=self._allow_file(doc),
            local=self.local,
        ):
            if isinstance(facts, AssetFacts):
                self._queue_asset(None, collection_id, None, facts)
            else:
                self._queue_rejected(collection_id, None, facts.key, facts.href, facts.reason)

    def _allow_file(self, doc: Document) -> bool:
        # Decided per document: a remote document linked from a local catalog gets no file:.
        return self.allow_file and doc.url.startswith("file:")

    def _queue_asset(
        self, item_pk: int | None, collection_id: str, item_id: str | None, asset: AssetFacts
    ) -> None:
        path = asset_relpath(
            collection_id, item_id, asset.key, asset.href, asset.media_type, NO_COMMON
        )
        self._assets.append(
            (
                item_pk,
                collection_id,
                item_id,
                asset.key,
                asset.href,
                asset.media_type,
                asset.size,
                asset.checksum,
                path,
            )
        )
        self.assets += 1

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
            self._items.clear()
            self._assets.clear()
            self._rejected.clear()

    def _write_queued(self) -> None:
        self.db.index.insert(self._items, self._assets, self._rejected)
