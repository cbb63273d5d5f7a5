"""The catalog's documents as the indexer found them, and the synced catalog's shape.

``documents(doc_pk, path, url, kind, collection_id, item_pk)``: every STAC document indexed,
where it lies in the dataset folder and the URL it was read from; ``links(doc_pk, rel, url)``:
its ``child`` and ``item`` links, resolved to absolute URLs (see ``schema``). Both are written
by the indexer with the rest of the index, so they describe the catalog the index describes.

From them, :meth:`DocumentTables.build_tree` derives the synced catalog's tree (TEMP
``doc_tree(doc_pk, parent_pk, level)``): breadth-first from the root through the links, each
document's parent the first document that links it on the level above; a document nothing
reachable links (an archive whose collections do not list their items) is attached to its
collection's document, or to the root. Every document ends up in the tree exactly once, so
the synced catalog has no cycle and nothing unreachable. All of it is SQL over indexed
tables: memory stays flat however many documents there are.

The TEMP ``bundle_candidates`` holds assets whose relative href may name a file the archive
bundles, until the archive has been read and their members can be looked for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

DocumentRow = tuple[Any, ...]  # doc_pk, path, url, kind, collection_id, item_pk
LinkRow = tuple[Any, ...]  # doc_pk, rel, url
# doc_pk, path, url, kind, collection_id, item_pk, parent path, collection document path,
# admitted (the filters admit the item; 1 when not filtered), managed (an asset is recorded
# at the document's path)
PlacedRow = tuple[Any, ...]
ChildRow = tuple[Any, ...]  # path, url, kind, collection_id, admitted
# item_pk (None for a collection's), collection_id, asset_key, href, selected path, recorded
# href, verified_by
AssetStateRow = tuple[Any, ...]
CandidateRow = tuple[Any, ...]  # item_pk, collection_id, item_id, key, href, media_type, size,
# checksum, member, the href as written

_TREE = (
    "DROP TABLE IF EXISTS temp.doc_tree",
    "DROP TABLE IF EXISTS temp.doc_collections",
    "CREATE TEMP TABLE doc_tree (doc_pk INTEGER PRIMARY KEY, parent_pk INTEGER, "
    "level INTEGER NOT NULL)",
    "CREATE INDEX temp.doc_tree_by_parent ON doc_tree(parent_pk, doc_pk)",
    "CREATE TEMP TABLE doc_collections (collection_id TEXT PRIMARY KEY, doc_pk INTEGER)",
)

# The first document that links each unplaced document, among those placed on ``level``.
_NEXT_LEVEL = (
    "INSERT INTO temp.doc_tree (doc_pk, parent_pk, level) "
    "SELECT d.doc_pk, MIN(t.doc_pk), :next FROM temp.doc_tree t "
    "JOIN links l ON l.doc_pk = t.doc_pk JOIN documents d ON d.url = l.url "
    "WHERE t.level = :level AND d.doc_pk NOT IN (SELECT doc_pk FROM temp.doc_tree) "
    "GROUP BY d.doc_pk"
)

# Unplaced documents that no other unplaced document links: catalogs and collections go
# under the root; items (once no catalog or collection is left to place) under their
# collection's document, or the root.
_ORPHANS = (
    "INSERT INTO temp.doc_tree (doc_pk, parent_pk, level) "
    "SELECT o.doc_pk, COALESCE(CASE WHEN o.kind = 'item' THEN "
    "(SELECT c.doc_pk FROM temp.doc_collections c WHERE c.collection_id = o.collection_id) "
    "END, :root), :next FROM documents o "
    "WHERE (o.kind = 'item') = :items "
    "AND o.doc_pk NOT IN (SELECT doc_pk FROM temp.doc_tree) AND NOT EXISTS ("
    "  SELECT 1 FROM links l WHERE l.url = o.url AND l.doc_pk != o.doc_pk "
    "  AND l.doc_pk NOT IN (SELECT doc_pk FROM temp.doc_tree))"
)

_COLLECTIONS = (
    "INSERT OR IGNORE INTO temp.doc_collections (collection_id, doc_pk) "
    "SELECT d.collection_id, MIN(d.doc_pk) FROM documents d "
    "JOIN temp.doc_tree t ON t.doc_pk = d.doc_pk "
    "WHERE d.kind = 'collection' GROUP BY d.collection_id"
)

# The root: the catalog.json at the top when there is one, else the shallowest document.
_ROOT = (
    "SELECT doc_pk FROM documents ORDER BY path != 'catalog.json', "
    "length(path) - length(replace(path, '/', '')), doc_pk LIMIT 1"
)


_ADMITTED = (
    "(d.item_pk IS NULL OR EXISTS (SELECT 1 FROM temp.admitted_items a "
    "WHERE a.item_pk = d.item_pk))"
)


class DocumentTables:
    """The ``documents`` and ``links`` tables and what is derived from them."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    # -- written by the indexer -----------------------------------------------------------------

    def clear(self) -> None:
        """Forget every document (inside the caller's transaction)."""
        self._conn.execute("DELETE FROM documents")
        self._conn.execute("DELETE FROM links")

    def next_doc_pk(self) -> int:
        """The first free document key."""
        row = self._conn.execute("SELECT COALESCE(MAX(doc_pk), 0) FROM documents").fetchone()
        return 1 + int(row[0])

    def insert(self, documents: Sequence[DocumentRow], links: Sequence[LinkRow]) -> None:
        """Add a batch of documents and their links."""
        self._conn.executemany(
            "INSERT INTO documents (doc_pk, path, url, kind, collection_id, item_pk) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            documents,
        )
        self._conn.executemany("INSERT INTO links (doc_pk, rel, url) VALUES (?, ?, ?)", links)

    def strip_prefix(self, prefix: str) -> None:
        """Make paths relative to the folder ``prefix`` of the staged tree (an archive's top
        folder, which installing leaves out); ``prefix`` ends with ``/``."""
        self._conn.execute(
            "UPDATE documents SET path = substr(path, :n + 1) WHERE substr(path, 1, :n) = :p",
            {"n": len(prefix), "p": prefix},
        )

    def count(self) -> int:
        """How many documents are indexed."""
        return int(self._conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    # -- bundled assets, while an archive is indexed ----------------------------------------------

    def reset_candidates(self) -> None:
        """Start an empty ``bundle_candidates`` (plain statements: this runs inside the
        refresh's transaction, which ``executescript`` would commit)."""
        self._conn.execute("DROP TABLE IF EXISTS temp.bundle_candidates")
        self._conn.execute(
            "CREATE TEMP TABLE bundle_candidates (item_pk INTEGER, collection_id TEXT NOT NULL,"
            " item_id TEXT, asset_key TEXT NOT NULL, href TEXT NOT NULL, media_type TEXT,"
            " size INTEGER, checksum TEXT, member TEXT NOT NULL, written TEXT NOT NULL)"
        )

    def add_candidates(self, rows: Sequence[CandidateRow]) -> None:
        """Assets whose relative href may name a member of the archive."""
        self._conn.executemany(
            "INSERT INTO temp.bundle_candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )

    def candidates(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        """The next ``limit`` candidates after ``rowid`` ``after``: ``(rowid, *CandidateRow)``
        (keyset pages: the caller inserts into the index between pages)."""
        return self._conn.execute(
            "SELECT rowid, * FROM temp.bundle_candidates WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, limit),
        ).fetchall()

    def reset_in_place(self) -> None:
        """Start an empty TEMP ``bundled_in_place``: the paths where a bundled file is its
        own asset path."""
        self._conn.execute("DROP TABLE IF EXISTS temp.bundled_in_place")
        self._conn.execute("CREATE TEMP TABLE bundled_in_place (path TEXT PRIMARY KEY)")

    def add_in_place(self, paths: Sequence[str]) -> None:
        """More paths for ``bundled_in_place``."""
        self._conn.executemany(
            "INSERT OR IGNORE INTO temp.bundled_in_place VALUES (?)", [(p,) for p in paths]
        )

    def in_place(self, path: str) -> bool:
        """True when ``path`` is in ``bundled_in_place`` (see :meth:`set_in_place`)."""
        try:
            row = self._conn.execute(
                "SELECT 1 FROM temp.bundled_in_place WHERE path = ?", (path,)
            ).fetchone()
        except sqlite3.OperationalError:  # no archive indexed in this run
            return False
        return row is not None

    # -- the synced catalog's shape -------------------------------------------------------------

    def build_tree(self) -> int | None:
        """Place every document in ``temp.doc_tree`` (see the module doc); the root's key, or
        ``None`` when there is no document."""
        root_row = self._conn.execute(_ROOT).fetchone()
        if root_row is None:
            return None
        root = int(root_row[0])
        for statement in _TREE:
            self._conn.execute(statement)
        self._conn.execute("INSERT INTO temp.doc_tree VALUES (?, NULL, 0)", (root,))
        level = 0
        while self._place_level(level, root):
            level += 1
        self._conn.execute(_COLLECTIONS)  # collections placed on the last levels too
        return root

    def _place_level(self, level: int, root: int) -> bool:
        """Place the documents of the next level; False when every document is placed."""
        args = {"level": level, "next": level + 1, "root": root, "items": False}
        execute = self._conn.execute
        if execute(_NEXT_LEVEL, args).rowcount or execute(_ORPHANS, args).rowcount:
            return True
        execute(_COLLECTIONS)
        if execute(_ORPHANS, {**args, "items": True}).rowcount:
            return True
        # only cycles are left unplaced: break one at its first document
        return bool(
            execute(
                "INSERT INTO temp.doc_tree (doc_pk, parent_pk, level) "
                "SELECT MIN(doc_pk), :root, :next FROM documents "
                "WHERE doc_pk NOT IN (SELECT doc_pk FROM temp.doc_tree) "
                "HAVING MIN(doc_pk) IS NOT NULL",
                args,
            ).rowcount
        )

    def path_of(self, doc_pk: int) -> str:
        """The path of a document."""
        return str(
            self._conn.execute("SELECT path FROM documents WHERE doc_pk = ?", (doc_pk,)).fetchone()[
                0
            ]
        )

    def placed(self, *, by_item: bool) -> Iterator[PlacedRow]:
        """Every document with its place (see :data:`PlacedRow`), by key; ``by_item``: the
        run's ``temp.admitted_items`` says which items the time and space filters admit."""
        admitted = _ADMITTED if by_item else "1"
        yield from self._conn.cursor().execute(
            "SELECT d.doc_pk, d.path, d.url, d.kind, d.collection_id, d.item_pk, p.path, c.path, "
            f"{admitted}, f.path IS NOT NULL "
            "FROM documents d JOIN temp.doc_tree t ON t.doc_pk = d.doc_pk "
            "LEFT JOIN documents p ON p.doc_pk = t.parent_pk "
            "LEFT JOIN temp.doc_collections dc "
            "  ON d.kind = 'item' AND dc.collection_id = d.collection_id "
            "LEFT JOIN documents c ON c.doc_pk = dc.doc_pk "
            "LEFT JOIN files f ON f.path = d.path "
            "ORDER BY d.doc_pk"
        )

    def children(self, doc_pk: int, *, by_item: bool) -> Iterator[ChildRow]:
        """The documents placed under ``doc_pk``, in key order (see :data:`ChildRow`), read
        from a cursor as they are consumed (a collection may have a million)."""
        admitted = _ADMITTED if by_item else "1"
        yield from self._conn.cursor().execute(
            f"SELECT d.path, d.url, d.kind, d.collection_id, {admitted} "
            "FROM temp.doc_tree t JOIN documents d ON d.doc_pk = t.doc_pk "
            "WHERE t.parent_pk = ? ORDER BY t.doc_pk",
            (doc_pk,),
        )

    def asset_states(self, *, selected: bool, items: bool) -> Iterator[AssetStateRow]:
        """Every item asset (``items``) by item and catalog order, or every collection asset
        by collection, with its selected path (``selected``: the run's ``temp.selection`` and
        ``temp.common_paths``) and the file recorded there (see :data:`AssetStateRow`)."""
        where, order = (
            ("a.item_pk IS NOT NULL", "a.item_pk, a.asset_pk")
            if items
            else ("a.item_pk IS NULL", "a.collection_id, a.asset_pk")
        )
        if not selected:
            yield from self._conn.cursor().execute(
                "SELECT a.item_pk, a.collection_id, a.asset_key, a.href, NULL, NULL, NULL "
                f"FROM assets a WHERE {where} ORDER BY {order}"
            )
            return
        yield from self._conn.cursor().execute(
            "SELECT a.item_pk, a.collection_id, a.asset_key, a.href, s.path, f.href, "
            "f.verified_by FROM assets a "
            "LEFT JOIN temp.selection s ON s.path = COALESCE("
            "  (SELECT c.path FROM temp.common_paths c WHERE c.asset_key = a.asset_key "
            "   AND (c.collection_id IS NULL OR c.collection_id = a.collection_id)), a.path) "
            "  AND s.href = a.href "
            "LEFT JOIN files f ON f.path = s.path "
            f"WHERE {where} ORDER BY {order}"
        )

    def files_fingerprint(self) -> str:
        """What the file records add up to: it changes when a file is recorded, forgotten or
        marked corrupt (a synced catalog built from other records is out of date)."""
        row = self._conn.execute(
            "SELECT COUNT(*), MAX(synced_at), TOTAL(size), TOTAL(verified_by = 'corrupt') "
            "FROM files"
        ).fetchone()
        return ":".join(str(v) for v in row)
