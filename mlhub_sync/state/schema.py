"""The state db's schema: ``{output_dir}/{dataset_id}/mlhub_stac_assets.db`` (SQLite, WAL).

It holds the catalog index (so filters and plans run without re-reading JSON) and what we
know about the files on disk (so a re-run needs one ``stat`` per file and no request).
Deleting it is safe: the index is rebuilt from the archive, and files found on disk are adopted
only on evidence (see ``plan.py``).

Schema (version 2, in ``PRAGMA user_version``; version 1 lacked ``items.digest`` and gets it
added on open)::

    meta(key PRIMARY KEY, value)
        archive_sha256, archive_size, archive_etag, archive_last_modified, archive_url:
            the catalog archive as last fetched (validators for the conditional GET);
        indexed_digest: the archive sha256 (or crawl digest) the index was built from;
        rejected_assets: how many assets the index left out (bad href...).
    items(item_pk PRIMARY KEY, collection_id, item_id, minx, miny, maxx, maxy,
          geometry (GeoJSON text), start_ts, end_ts (epoch seconds; NULL = no time),
          digest (a hash of the item document: a re-index tells changed items from kept ones))
    assets(asset_pk PRIMARY KEY, item_pk (NULL for collection-level), collection_id,
           item_id, asset_key, href, media_type, size (file:size), checksum (file:checksum),
           path (its layout path when it is not a common asset; see layout.py))
    rejected(collection_id, item_id, asset_key, href, reason)
        assets the index refused (unsupported scheme...), for the plan and the report.
    documents(doc_pk PRIMARY KEY, path, url, kind, collection_id, item_pk)
        every STAC document indexed: its path in the dataset folder, the URL it was read
        from, catalog / collection / item, its collection, its row in ``items``;
    links(doc_pk, rel, url)
        their ``child`` and ``item`` links, resolved to absolute URLs (``documents.py``
        derives the synced catalog's tree from them).
    files(path PRIMARY KEY, href, size, mtime_ns, md5, checksum, validator, verified_by,
          synced_at)
        a file we wrote or verified: ``path`` is relative to the dataset's asset folder;
        ``checksum`` is the catalog's file:checksum it was verified against (if any);
        ``verified_by`` names the evidence (``file:checksum``, ``content-md5``,
        ``x-ms-blob-content-md5``, ``s3-etag``, ``size``, ``none``).
    partials(path PRIMARY KEY, href, validator, total_size, updated_at)
        a download in progress in ``{path}.part``: the validator makes the resume safe.

Only one thread writes (the coordinator); transactions are explicit and batched.
"""

from __future__ import annotations

from dataclasses import dataclass

DB_NAME = "mlhub_stac_assets.db"


SCHEMA_VERSION = 2


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    item_pk INTEGER PRIMARY KEY,
    collection_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    minx REAL, miny REAL, maxx REAL, maxy REAL,
    geometry TEXT,
    start_ts REAL, end_ts REAL,
    digest TEXT
);
CREATE TABLE IF NOT EXISTS assets (
    asset_pk INTEGER PRIMARY KEY,
    item_pk INTEGER,
    collection_id TEXT NOT NULL,
    item_id TEXT,
    asset_key TEXT NOT NULL,
    href TEXT NOT NULL,
    media_type TEXT,
    size INTEGER,
    checksum TEXT,
    path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    collection_id TEXT NOT NULL,
    item_id TEXT,
    asset_key TEXT NOT NULL,
    href TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    doc_pk INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,
    collection_id TEXT,
    item_pk INTEGER
);
CREATE INDEX IF NOT EXISTS documents_by_url ON documents(url);
CREATE TABLE IF NOT EXISTS links (
    doc_pk INTEGER NOT NULL,
    rel TEXT NOT NULL,
    url TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS links_by_doc ON links(doc_pk);
CREATE INDEX IF NOT EXISTS links_by_url ON links(url);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    href TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    md5 TEXT,
    checksum TEXT,
    validator TEXT,
    verified_by TEXT NOT NULL,
    synced_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partials (
    path TEXT PRIMARY KEY,
    href TEXT NOT NULL,
    validator TEXT,
    total_size INTEGER,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class FileRecord:
    """A row of ``files``: a file on disk we vouch for."""

    path: str
    href: str
    size: int
    mtime_ns: int
    md5: str | None
    checksum: str | None
    validator: str | None
    verified_by: str


@dataclass(frozen=True)
class PartialRecord:
    """A row of ``partials``: enough to resume ``{path}.part`` safely."""

    path: str
    href: str
    validator: str | None
    total_size: int | None
