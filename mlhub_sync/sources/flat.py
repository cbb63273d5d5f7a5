"""A flat tree of files (an object-store prefix without STAC) read as a STAC catalog: the core
every object-store source (``s3``, ``azure``) hands its lister to.

Each listed key (relative to the prefix) is read through the source's path templates
(``selection/template.py``; without one, a key's folder is its item and its stem the asset)
into (collection, item, asset); the keys no template reads are counted and the first ones
named in the plan (:class:`~mlhub_sync.sources.base.Unmatched`). The keys of one item need
not be adjacent in the listing, so the matches go into a scratch table on disk
(``state/keys.py``) and come back grouped: memory stays flat at any size of listing.

The whole listing is in that table before the first document is made, and everything the
documents are made from is digested on the way (:class:`FlatTree`, the ``prepare`` phase of
:class:`~mlhub_sync.sources.base.CrawledCatalog`): a re-run whose digest is the index's keeps
the index, the installed catalog and the synced catalog, and fetches nothing but the listing.

Else the documents, staged in the layout and handed to the indexer like a crawled catalog's:
a root ``catalog.json``, one Item per pseudo-item and, after its items, one Collection per
collection (its extent theirs), made by ``sources/pseudo.py``. Each asset is ``{href,
file:size, mlhub:etag}`` (``file:checksum`` only where the store vouches for an MD5: an S3
ETag is no checksum, the transfer's ``s3-etag`` rung judges it on the GET), and with ``layout:
mirror`` its ``mlhub:path``: the key itself, which the indexer makes a safe path segment by
segment (``selection.layout.mirror_relpath``), so the tree on disk is the store's.

A sidecar given by ``key`` is a file of the store: it is also synced, as an asset of the
default collection (torchgeo's loaders read ``{split}_metadata.csv`` beside the images), and
read from the store once listed; one given by ``path`` is read from the local disk. The digest
takes a listed sidecar's ETag (no GET on a re-run) and a local one's bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlhub_sync.config.sources import AzureSource, S3Source
from mlhub_sync.errors import CatalogError
from mlhub_sync.net.redact import redact_url
from mlhub_sync.selection.layout import collection_dir, safe_component
from mlhub_sync.selection.template import KeyMatch, Template, compile_templates, match_key
from mlhub_sync.sources.base import CrawledCatalog, SourceContext, Unmatched, stage_document
from mlhub_sync.sources.listing import ListedObject, Lister
from mlhub_sync.sources.pseudo import (
    FORMAT,
    STAC_VERSION,
    Extent,
    asset_entry,
    collection_document,
    item_document,
)
from mlhub_sync.sources.sidecar import MAX_SIDECAR_BYTES, parse_sidecar
from mlhub_sync.stac.document import Document
from mlhub_sync.state.keys import KeyRow, KeyTable

log = logging.getLogger(__name__)

Signing = Callable[[str], str]  # an object's URL -> the URL to GET it with

SCRATCH_NAME = ".flat-keys.sqlite"  # in the staging folder, removed with it

FlatSource = S3Source | AzureSource


def default_match(key: str, collection: str) -> KeyMatch:
    """What a key is without a template: its folder (the whole path above it) is the item, its
    stem the asset; a key at the top is an item of its own, named by its stem."""
    folder, _, name = key.rpartition("/")
    stem = name.split(".", 1)[0] or name or "_"
    return KeyMatch(collection=collection, item=folder or stem, asset=stem)


def dot_segments(key: str) -> bool:
    """Whether ``key`` has a ``.`` or ``..`` segment: its URL cannot be fetched as is (libcurl
    and most HTTP clients remove dot segments, ``%2E`` ones too, and would GET another key),
    so it is counted with the keys no template reads rather than synced."""
    return any(segment in (".", "..") for segment in key.split("/"))


def read_key(templates: tuple[Template, ...] | None, key: str, collection: str) -> KeyMatch | None:
    """The reading of ``key`` (pure): the first template that matches, or the default rule
    when there are no templates; ``None`` when templates are given and none matches."""
    if templates is None:
        return default_match(key, collection)
    return match_key(templates, key, collection)


def item_place(collection: str, item: str) -> str:
    """Where an item's document is staged: ``{collection}/{item}/{item}.json``."""
    name = safe_component(item)
    return f"{collection_dir(collection)}/{name}/{name}.json"


def origin(spec: FlatSource) -> str:
    """The tree's own address, ``s3://bucket/prefix`` or ``az://account/container/prefix``:
    where its documents say they come from (they are made here, never fetched)."""
    if isinstance(spec, S3Source):
        return f"s3://{spec.bucket}/{spec.prefix}"
    return f"az://{spec.account}/{spec.container}/{spec.prefix}"


def default_collection(spec: FlatSource, dataset_id: str) -> str:
    """The collection of keys whose template has no ``{collection}``."""
    return spec.collection or dataset_id


def listing_digest_head(spec: FlatSource, dataset_id: str) -> bytes:
    """What a flat tree's documents depend on besides its listing and sidecar (pure): the
    pseudo-item format, the dataset id, the tree's address, the templates, the default
    collection, the layout and the sidecar's settings. The first bytes of its digest."""
    sidecar = spec.sidecar.model_dump(mode="json") if spec.sidecar is not None else None
    return json.dumps(
        [FORMAT, dataset_id, origin(spec), spec.template, spec.collection, spec.layout, sidecar],
        sort_keys=True,
    ).encode()


def listed_line(obj: ListedObject) -> bytes:
    """One listed object as its digest sees it: what a pseudo-item takes from it (pure; the
    ``last_modified`` is not in any document, so a touch that keeps the ETag is no change)."""
    return repr((obj.key, obj.url, obj.size, obj.etag, obj.md5)).encode() + b"\n"


def flat_documents(
    spec: FlatSource,
    lister: Lister,
    ctx: SourceContext,
    staging: Path,
    unmatched: Unmatched,
    sign: Signing | None = None,
) -> Iterator[Document]:
    """List the tree, read every key through the templates, and stage and yield its
    documents (see the module docstring)."""
    return FlatTree(spec, lister, ctx, unmatched, sign).documents(staging)


class FlatTree:
    """A flat tree read in two phases (the :class:`CrawledCatalog` ``prepare`` seam).

    :meth:`prepare` lists the tree into the scratch table and returns the digest of all the
    documents will be made from (:func:`listing_digest_head`, every listed object in listing
    order, the sidecar's bytes, or its listed ETag when the store gives one: no GET of it),
    so the catalog stage skips the re-index when the index was built from the same digest.
    :meth:`documents` then stages and yields them from the prepared table (preparing first
    when the caller did not). The unmatched keys are counted while listing, re-index or not.
    """

    def __init__(
        self,
        spec: FlatSource,
        lister: Lister,
        ctx: SourceContext,
        unmatched: Unmatched,
        sign: Signing | None = None,
    ):
        self.spec, self.lister, self.ctx, self.unmatched = spec, lister, ctx, unmatched
        self.sign = sign
        self.templates = compile_templates(spec.template) if spec.template is not None else None
        self.collection = default_collection(spec, ctx.dataset_id)
        self.sidecar_object: ListedObject | None = None
        self.sidecar_data: tuple[bytes, str] | None = None
        self.prepared: Path | None = None  # the staging folder whose scratch table is filled

    def prepare(self, staging: Path) -> str:
        """List the tree into ``staging``'s scratch table; the digest (see the class doc)."""
        spec, ctx, collection = self.spec, self.ctx, self.collection
        sidecar_key = spec.sidecar.key if spec.sidecar is not None else None
        digest = hashlib.sha256(listing_digest_head(spec, ctx.dataset_id))
        table = KeyTable(staging / SCRATCH_NAME)
        try:
            with ctx.reporter.stage("list keys", unit="keys") as stage:
                for obj in self.lister():
                    stage.update()
                    digest.update(listed_line(obj))
                    if obj.key == sidecar_key:
                        self.sidecar_object = obj
                        continue
                    found = (
                        None
                        if dot_segments(obj.key)
                        else read_key(self.templates, obj.key, collection)
                    )
                    if found is None:
                        self.unmatched.add(obj.key)
                        continue
                    when = found.datetime.strftime("%Y-%m-%dT%H:%M:%SZ") if found.datetime else None
                    table.add(
                        KeyRow(
                            found.collection, found.item, found.asset, obj.key, obj.url, obj.size,
                            obj.etag, obj.md5, obj.last_modified, when, dict(found.properties),
                        )
                    )  # fmt: skip
            table.close(remove=False)
        except BaseException:
            table.close()
            raise
        if self.unmatched.count:
            log.warning(
                "%s: keys that match no template (not synced): %d, e.g. %s",
                ctx.dataset_id, self.unmatched.count, ", ".join(self.unmatched.shown[:3]),
            )  # fmt: skip
        if spec.sidecar is not None:
            listed = self.sidecar_object
            if spec.sidecar.path is not None or listed is None or not listed.etag:
                self.sidecar_data = _sidecar_bytes(spec, listed, ctx, self.sign)
                digest.update(b"sidecar " + hashlib.sha256(self.sidecar_data[0]).digest())
        self.prepared = staging
        return "listing:" + digest.hexdigest()

    def documents(self, staging: Path) -> Iterator[Document]:
        """Stage and yield the documents: the root catalog, then the pseudo-items grouped."""
        if self.prepared != staging:
            self.prepare(staging)
        spec, ctx = self.spec, self.ctx
        base = origin(spec)
        root = {
            "type": "Catalog",
            "stac_version": STAC_VERSION,
            "id": ctx.dataset_id,
            "description": f"{ctx.dataset_id}: the files under {base}, read as STAC by mlhub-sync",
            "links": [],
        }
        data = json.dumps(root).encode()
        if stage_document(staging, "catalog.json", data):
            yield Document("catalog.json", data, base + "catalog.json")
        with KeyTable(staging / SCRATCH_NAME, fresh=False) as table:
            if spec.sidecar is not None:
                data, name = self.sidecar_data or _sidecar_bytes(
                    spec, self.sidecar_object, ctx, self.sign
                )
                table.add_sidecar(parse_sidecar(data, spec.sidecar, name))
            yield from _grouped(
                table, spec, staging, self.collection, self.sidecar_object, spec.layout == "mirror"
            )


def _grouped(
    table: KeyTable,
    spec: FlatSource,
    staging: Path,
    default: str,
    sidecar_object: ListedObject | None,
    mirror: bool,
) -> Iterator[Document]:
    base = origin(spec)
    current: str | None = None
    extent = Extent()

    def collection_doc(collection: str) -> Iterator[Document]:
        assets: dict[str, Any] = {}
        if collection == default and sidecar_object is not None:
            row = KeyRow(collection, "", "", sidecar_object.key, sidecar_object.url,
                         sidecar_object.size, sidecar_object.etag, sidecar_object.md5)  # fmt: skip
            stem = posixpath.basename(sidecar_object.key).split(".", 1)[0] or "sidecar"
            assets[stem] = {**asset_entry(row, mirror), "roles": ["metadata"]}
        doc = collection_document(collection, extent, f"{collection}: files under {base}", assets)
        rel = f"{collection_dir(collection)}/collection.json"
        data = json.dumps(doc).encode()
        if stage_document(staging, rel, data):
            yield Document(rel, data, base + rel)

    seen_default = False
    for group in table.groups():
        if group.collection != current:
            if current is not None:
                yield from collection_doc(current)
            current, extent = group.collection, Extent()
            seen_default = seen_default or current == default
        doc = item_document(group, mirror)
        extent.add(doc)
        rel = item_place(group.collection, group.item)
        data = json.dumps(doc).encode()
        if stage_document(staging, rel, data):
            yield Document(rel, data, base + rel)
    if current is not None:
        yield from collection_doc(current)
    if not seen_default and sidecar_object is not None:
        extent = Extent()
        yield from collection_doc(default)


def _sidecar_bytes(
    spec: FlatSource, listed: ListedObject | None, ctx: SourceContext, sign: Signing | None
) -> tuple[bytes, str]:
    sidecar = spec.sidecar
    assert sidecar is not None
    if sidecar.path is not None:
        try:
            with open(sidecar.path, "rb") as handle:
                return handle.read(MAX_SIDECAR_BYTES + 1)[:MAX_SIDECAR_BYTES], sidecar.path
        except OSError as exc:
            raise CatalogError(
                f"cannot read the sidecar: {exc.strerror or exc}",
                subject=sidecar.path,
                hint="sidecar.path is relative to the spec's folder",
            ) from None
    if listed is None:
        raise CatalogError(
            f"the sidecar key {sidecar.key!r} is not in the listing of {origin(spec)}",
            subject=origin(spec),
            hint="sidecar.key is relative to the source's prefix; check it against the keys",
        )
    url = sign(listed.url) if sign is not None else listed.url
    reply = ctx.http.get(url, what="sidecar", max_bytes=MAX_SIDECAR_BYTES)
    return reply.content, redact_url(listed.url)


def flat_snapshot(
    spec: S3Source | AzureSource,
    lister: Lister,
    ctx: SourceContext,
    sign: Signing | None = None,
) -> CrawledCatalog:
    """The snapshot of a flat tree: listed and digested first (:meth:`FlatTree.prepare`), its
    documents made from the listing only when the index was built from another digest, its
    unmatched keys counted, its assets placed by ``mlhub:path`` when the layout is ``mirror``.
    ``sign`` signs the source's own reads of its objects (the sidecar): a private SAS."""
    unmatched = Unmatched()
    tree = FlatTree(spec, lister, ctx, unmatched, sign)
    return CrawledCatalog(
        documents=tree.documents,
        allow_file_hrefs=False,  # a store on the network never names local files
        unmatched=unmatched,
        asset_paths=spec.layout == "mirror",
        prepare=tree.prepare,
    )
