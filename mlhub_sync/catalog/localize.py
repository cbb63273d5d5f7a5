"""A catalog document rewritten for its place in the synced tree: a pure function.

:func:`localize` takes a parsed STAC document, where it lies in the dataset folder and what
it links (:class:`Place`), and where each of its assets is (:class:`AssetPlace`), and returns
the document as the synced catalog holds it:

- **Structural links** (``self``, ``root``, ``parent``, ``child``, ``item``, ``collection``)
  are made from the synced tree, never from the document's own hrefs, as relative paths
  (``./x/collection.json``, ``../../catalog.json``): ``root`` to the dataset's root document,
  ``parent`` to the document it is placed under, ``collection`` to an item's collection, one
  ``child``/``item`` per document placed under it that the filters admit. A link the
  document had to the same target keeps its other fields (a title). ``self`` is left out: it
  must be absolute, and an absolute path would break when the folder moves (a
  self-contained catalog has none).
- **Other links** keep their place; a relative one of a document that was moved (a crawled
  catalog is staged in the layout, not where it lay upstream) is made absolute against the
  URL the document was read from, so it still names what it named.
- **An asset on disk** gets an ``href`` relative to the document pointing at the synced file,
  and its upstream location as the ``origin`` entry of ``alternate`` (alternate-assets
  extension; secrets redacted), ``alternate:name: local`` naming the main href.
- **Any other asset** (left out by the filters, not downloaded yet, failed) keeps its
  upstream location: the absolute URL it was fetched from, or the relative path of a file
  the archive bundles. So a relative asset href always names a file in the folder.

Applying it to its own output gives the same document (the entries it wrote are recognised
and replaced): a later sync rewrites the documents it wrote before.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from mlhub_sync.net.redact import redact_url
from mlhub_sync.stac.href import is_relative

STRUCTURAL = frozenset({"self", "root", "parent", "child", "item", "collection"})


ALTERNATE_ASSETS = "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json"


ORIGIN = "origin"  # the alternate entry that holds an asset's upstream location


LOCAL = "local"  # alternate:name of a synced asset's main href


JSON = "application/json"


@dataclass(frozen=True)
class Target:
    """A document another one links: its path in the dataset folder, and its URL upstream
    (to recognise the link the document had to it)."""

    path: str
    url: str = ""


@dataclass(frozen=True)
class Place:
    """Where a document lies in the synced tree and what it links there.

    Paths are relative to the dataset folder, ``/``-separated. ``children`` are the
    ``(rel, target)`` links to write (``child`` or ``item``). ``moved``: the document does not
    lie where it lay upstream (its relative non-structural links must become absolute
    against ``url``, the URL it was read from).
    """

    path: str
    url: str
    root: str
    parent: Target | None = None
    collection: Target | None = None
    children: tuple[tuple[str, Target], ...] = ()
    moved: bool = False


@dataclass(frozen=True)
class AssetPlace:
    """Where one asset is: ``synced`` (the file on disk, relative to the dataset folder; it
    may start with ``../`` when assets live in another folder) or ``None``; ``upstream``, the
    href it came from (a URL), or ``bundled``, the path of the archive's file in the dataset
    folder when the archive bundles it."""

    upstream: str
    synced: str | None = None
    bundled: str | None = None


def relative(target: str, start: str) -> str:
    """``target`` as an href from the folder of the document at ``start`` (both relative to
    one folder, ``/``-separated): ``./x`` below, ``../x`` above."""
    return _From(start).href(target)


class _From:
    """Hrefs from one document's folder (its parts split once, not once per href)."""

    __slots__ = ("folder", "parts")

    def __init__(self, start: str):
        self.folder = start.rpartition("/")[0]
        self.parts = self.folder.split("/") if self.folder else []

    def href(self, target: str) -> str:
        """See :func:`relative`."""
        folder, _, name = target.rpartition("/")
        if folder == self.folder and ".." not in target.split("/"):
            return "./" + name  # the common case: an asset beside its item
        there = posixpath.normpath(target).split("/")
        here = self.parts
        common = 0
        while (
            common < len(here)
            and common < len(there) - 1
            and here[common] == there[common]
            and there[common] != ".."
        ):
            common += 1
        joined = "/".join([".."] * (len(here) - common) + there[common:])
        return joined if joined.startswith("../") else "./" + joined


def localize(doc: dict[str, Any], place: Place, assets: Mapping[str, AssetPlace]) -> dict[str, Any]:
    """``doc`` as the synced catalog holds it (see the module doc). ``assets`` by key; an
    asset without an entry (the index refused its href) is left as it is. ``doc`` itself is
    not changed."""
    parts = localize_parts(doc, place, assets)
    links = parts.doc["links"]
    links[parts.at : parts.at] = [parts.child(rel, target) for rel, target in place.children]
    return parts.doc


@dataclass(frozen=True)
class Localized:
    """A synced document without its ``child``/``item`` links, and how to make them: what
    :func:`localize` returns is ``doc`` with ``child(rel, target)`` for each of
    ``place.children`` inserted into ``doc["links"]`` at ``at``. A writer that streams the
    children (a collection of a million items) makes them one at a time."""

    doc: dict[str, Any]
    at: int
    had: _Had

    def child(self, rel: str, target: Target) -> dict[str, Any]:
        """The ``rel`` link to ``target``, with the fields of a link the document had to it."""
        return self.had.link(rel, target)


def localize_parts(
    doc: dict[str, Any], place: Place, assets: Mapping[str, AssetPlace]
) -> Localized:
    """:func:`localize` with the child links left to the caller (see :class:`Localized`);
    ``place.children`` is not read."""
    out = dict(doc)
    had = _Had(doc.get("links"), place)
    written = [had.link("root", Target(place.root))]
    if place.parent is not None:
        written.append(had.link("parent", place.parent))
    if place.collection is not None:
        written.append(had.link("collection", place.collection))
    others = [_other(link, place) for link in doc.get("links") or [] if _is_other(link)]
    out["links"] = written + others
    if isinstance(doc.get("assets"), Mapping):
        out["assets"], synced = _assets(doc["assets"], place, assets)
        if synced:
            extensions = doc.get("stac_extensions")
            listed = list(extensions) if isinstance(extensions, list) else []
            if ALTERNATE_ASSETS not in listed:
                out["stac_extensions"] = [*listed, ALTERNATE_ASSETS]
    return Localized(out, len(written), had)


def carries_fields(link: Any) -> bool:
    """Whether a link matters to :func:`localize` beyond its target: False for a structural
    link with only ``rel``, ``href`` and the JSON ``type`` (in that order), written the same
    whether or not the document had it. A reader may leave those out of the document it
    gives :func:`localize` (a collection's million ``item`` links from the last rewrite) and
    get the same output, except that among several links to one target the first that
    carries fields is kept."""
    if _is_other(link):
        return True
    kind = link.get("type")
    plain = list(link) in (["rel", "href"], ["rel", "href", "type"])
    return not (plain and (not kind or kind == JSON))


class _Had:
    """The structural links a document had, found by the href written (an earlier rewrite)
    or by the URL it resolves to upstream: one lookup per link written, however many."""

    def __init__(self, links: Any, place: Place):
        self.place = place
        self.here = _From(place.path)
        self.by_href: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._by_url: dict[tuple[str, str], Mapping[str, Any]] | None = None
        for link in links if isinstance(links, list) else []:
            if not isinstance(link, Mapping) or link.get("rel") not in STRUCTURAL:
                continue
            href = link.get("href")
            if isinstance(href, str):
                self.by_href.setdefault((str(link["rel"]), href.strip()), link)

    def link(self, rel: str, target: Target) -> dict[str, Any]:
        """The link to ``target``, with the other fields of a link the document had to it."""
        href = self.here.href(target.path)
        old = self.by_href.get((rel, href))
        if old is None and target.url and self.by_href:
            old = self.by_url().get((rel, target.url))
        if old is None:
            return {"rel": rel, "href": href, "type": JSON}
        return {**old, "rel": rel, "href": href, "type": old.get("type") or JSON}

    def by_url(self) -> dict[tuple[str, str], Mapping[str, Any]]:
        """The links by the URL they resolve to upstream (made on the first miss)."""
        if self._by_url is None:
            self._by_url = {}
            for (rel, href), link in self.by_href.items():
                with contextlib.suppress(ValueError):
                    self._by_url.setdefault((rel, urljoin(self.place.url, href)), link)
        return self._by_url


def _is_other(link: Any) -> bool:
    return not isinstance(link, Mapping) or link.get("rel") not in STRUCTURAL


def _other(link: Any, place: Place) -> Any:
    """A non-structural link: relative hrefs of a moved document made absolute."""
    if not isinstance(link, Mapping) or not place.moved:
        return link
    href = link.get("href")
    if not isinstance(href, str) or not is_relative(href):
        return link
    return {**link, "href": urljoin(place.url, href.strip())}


def _assets(
    own: Mapping[str, Any], place: Place, assets: Mapping[str, AssetPlace]
) -> tuple[dict[str, Any], bool]:
    here = _From(place.path)
    out: dict[str, Any] = {}
    synced_any = False
    for key, asset in own.items():
        facts = assets.get(str(key))
        if (
            facts is None
            or not isinstance(asset, Mapping)
            or not isinstance(asset.get("href"), str)
        ):
            out[key] = asset
            continue
        new = _without_ours(asset)
        if facts.synced is not None:
            href = here.href(facts.synced)
            origin = (
                here.href(facts.bundled)
                if facts.bundled is not None
                else redact_url(facts.upstream)
            )
            new["href"] = href
            if origin != href:
                alternate = dict(new.get("alternate") or {})
                alternate[ORIGIN] = {"href": origin}
                new["alternate"] = alternate
                new["alternate:name"] = LOCAL
            synced_any = True
        elif facts.bundled is not None:
            new["href"] = here.href(facts.bundled)
        elif is_relative(new["href"]):  # ours, or the catalog's: it no longer names it here
            new["href"] = facts.upstream
        out[key] = new
    return out, synced_any


def _was_ours(asset: Mapping[str, Any]) -> bool:
    alternate = asset.get("alternate")
    return (
        asset.get("alternate:name") == LOCAL
        and isinstance(alternate, Mapping)
        and isinstance(alternate.get(ORIGIN), Mapping)
    )


def _without_ours(asset: Mapping[str, Any]) -> dict[str, Any]:
    """The asset without the entries :func:`localize` writes (its ``origin`` alternate and
    ``alternate:name``), so writing them again replaces them."""
    new = dict(asset)
    if not _was_ours(asset):
        return new
    del new["alternate:name"]
    alternate = {k: v for k, v in asset["alternate"].items() if k != ORIGIN}
    if alternate:
        new["alternate"] = alternate
    else:
        del new["alternate"]
    return new
