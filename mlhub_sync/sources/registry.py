"""Which :class:`~mlhub_sync.sources.base.Source` serves which spec ``source.type``."""

from __future__ import annotations

from mlhub_sync.config.sources import (
    ArchiveSource,
    AzureSource,
    MlhubSource,
    S3Source,
    StacApiSource,
    StacSource,
)
from mlhub_sync.sources.archive import ArchiveCatalog
from mlhub_sync.sources.base import Source
from mlhub_sync.sources.mlhub import MlhubCatalog
from mlhub_sync.sources.s3 import S3Catalog
from mlhub_sync.sources.stac import StaticCatalog
from mlhub_sync.sources.stac_api import StacApiCatalog

SourceSpec = MlhubSource | ArchiveSource | StacSource | StacApiSource | S3Source | AzureSource


def source_for(spec: SourceSpec) -> Source:
    """The source a dataset's ``source:`` mapping describes."""
    if isinstance(spec, MlhubSource):
        return MlhubCatalog(spec)
    if isinstance(spec, ArchiveSource):
        return ArchiveCatalog(spec)
    if isinstance(spec, StacApiSource):
        return StacApiCatalog(spec)
    if isinstance(spec, S3Source):
        return S3Catalog(spec)
    if isinstance(spec, AzureSource):  # sources/azure.py (its own branch) serves these
        raise NotImplementedError("the azure source is not wired in yet")
    return StaticCatalog(spec)
