"""Which :class:`~mlhub_sync.sources.base.Source` serves which spec ``source.type``."""

from __future__ import annotations

from mlhub_sync.config.sources import ArchiveSource, MlhubSource, StacSource
from mlhub_sync.sources.archive import ArchiveCatalog
from mlhub_sync.sources.base import Source
from mlhub_sync.sources.mlhub import MlhubCatalog
from mlhub_sync.sources.stac import StaticCatalog

SourceSpec = MlhubSource | ArchiveSource | StacSource


def source_for(spec: SourceSpec) -> Source:
    """The source a dataset's ``source:`` mapping describes."""
    if isinstance(spec, MlhubSource):
        return MlhubCatalog(spec)
    if isinstance(spec, ArchiveSource):
        return ArchiveCatalog(spec)
    return StaticCatalog(spec)
