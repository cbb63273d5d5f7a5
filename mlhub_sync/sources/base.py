"""Where a catalog comes from.

Each source turns a dataset config into *documents to index* plus a staged copy of the catalog
tree: ``mlhub`` (the API's ``/catalog/{id}`` archive), ``archive`` (a local or remote
``.tar.gz``) and ``stac`` (a static ``catalog.json`` crawled through its links).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FetchedArchive:
    """A catalog archive ready to read.

    ``path`` is the file to read: the kept archive when nothing changed, else a freshly
    fetched ``.part`` that :func:`mlhub_sync.resolve.refresh_catalog` installs as the archive
    once it has proved sound. ``meta`` holds the validators to record on success.
    """

    path: Path
    sha256: str
    base_url: str
    allow_file_hrefs: bool
    meta: dict[str, str | None] = field(default_factory=dict)
    local_root: Path | None = None  # local file: hrefs must stay inside this folder

    @property
    def pending(self) -> bool:
        """True when ``path`` is a new download still to be installed."""
        return self.path.name.endswith(".part")
