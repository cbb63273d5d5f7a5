"""What a ``collection_filter`` names that the catalog does not have (pure).

A misspelt collection id or asset key selects nothing for that entry, silently; this module
compares the filter with the catalog's real ids and keys (``catalog``: collection id → the
asset keys of its assets, item and collection level alike) and says, for each entry that
matches nothing, what the nearest real name is. When no entry of the filter matches
anything, the filter as a whole selects nothing: the caller makes that an error, since a
sync that silently does nothing is worse than one that stops.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Set
from dataclasses import dataclass

MAX_LISTED = 20  # names listed in a hint; beyond that, a count


@dataclass(frozen=True)
class Miss:
    """One entry of the filter that matches nothing: a collection (``key`` is ``None``) or
    an asset key of a collection, with the nearest real name when one is close."""

    collection: str
    key: str | None
    suggestion: str | None

    def describe(self) -> str:
        """One line for a warning."""
        if self.key is None:
            what = f"collection {self.collection!r} is not in the catalog"
        else:
            what = f"asset key {self.key!r} matches no asset of collection {self.collection!r}"
        return what + (f" (did you mean {self.suggestion!r}?)" if self.suggestion else "")


@dataclass(frozen=True)
class FilterMisses:
    """Every entry of a ``collection_filter`` that matches nothing in the catalog."""

    misses: tuple[Miss, ...]
    matches_nothing: bool  # no entry of the filter matches any asset of the catalog


def filter_misses(wanted: Mapping[str, Set[str]], catalog: Mapping[str, Set[str]]) -> FilterMisses:
    """Compare a filter (collection id → keys, empty keys meaning every key) with the
    catalog's collection ids and asset keys."""
    misses: list[Miss] = []
    matched = False
    for collection in sorted(wanted):
        keys = wanted[collection]
        known = catalog.get(collection)
        if known is None:
            misses.append(Miss(collection, None, nearest(collection, catalog)))
            continue
        if not keys:
            matched = matched or bool(known)
            continue
        for key in sorted(keys):
            if key in known:
                matched = True
            else:
                misses.append(Miss(collection, key, nearest(key, known)))
    return FilterMisses(tuple(misses), matches_nothing=bool(wanted) and not matched)


def nearest(name: str, candidates: Set[str] | Mapping[str, object]) -> str | None:
    """The real name closest to ``name``, when one is close enough to be a typo of it."""
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    if name.lower() in lowered:  # a difference of case only
        return lowered[name.lower()]
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.75)
    return close[0] if close else None


def listing(catalog: Mapping[str, Set[str]]) -> str:
    """The catalog's collections and their keys, for a hint (long lists shortened)."""
    parts = []
    for collection in sorted(catalog)[:MAX_LISTED]:
        keys = sorted(catalog[collection])
        shown = ", ".join(keys[:MAX_LISTED])
        if len(keys) > MAX_LISTED:
            shown += f", … ({len(keys) - MAX_LISTED} more)"
        parts.append(f"{collection}: [{shown}]")
    if len(catalog) > MAX_LISTED:
        parts.append(f"… ({len(catalog) - MAX_LISTED} more collections)")
    return "; ".join(parts) if parts else "the catalog has no assets"
