"""What an object-store listing yields, whatever the store: one :class:`ListedObject` per key.

A lister (``s3.list_objects``, ``azure.list_blobs``) streams a prefix page by page and yields
these in the store's order (lexicographic by key for S3 and Azure); it never holds more than a
page. What a listing says about an object is what the plan may use without a HEAD: its size,
its ETag (a change validator; an MD5 only where the store makes it one) and a ``Content-MD5``
where the store keeps one (Azure lists it per blob).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One key of a listing.

    ``key`` is relative to the listed prefix (``/``-separated, no leading ``/``); ``url`` is
    where a GET of it goes, unsigned (signing happens per request, never in the index);
    ``md5`` is a hex MD5 the store vouches for (Azure's ``Content-MD5``), else ``None``.
    """

    key: str
    url: str
    size: int
    etag: str | None = None
    md5: str | None = None
    last_modified: str | None = None  # ISO 8601, as the store sent it


class Lister(Protocol):
    """A prefix's keys, streamed."""

    def __call__(self) -> Iterator[ListedObject]:
        """Every object under the prefix, page by page."""
