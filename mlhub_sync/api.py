"""The Python API, shaped like the original radiant-mlhub client's::

    from mlhub_sync import Dataset

    ds = Dataset.fetch_by_id("sen12floods")          # GET {root}/datasets/sen12floods
    print(ds.title, [c["id"] for c in ds.collections])
    ds.download(output_dir="data", collection_filter={"sen12floods_s2_source": ["B02"]},
                datetime=(start, end), bbox=[...])

    ds = Dataset.from_source("my_dataset", "catalogs/my_dataset.tar.gz")  # no API: any source

``download`` builds the same dataset config a spec would and runs the same plan/apply engine,
so a re-run downloads only what is missing, partial or corrupt. Failures raise
:class:`~mlhub_sync.errors.ApplyError` naming the error report.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from mlhub_sync.config.access import source_headers
from mlhub_sync.config.credentials import resolve_api_key, resolve_root_url
from mlhub_sync.config.loader import LoadedYaml
from mlhub_sync.config.resolve import DatasetConfig, resolve_spec
from mlhub_sync.config.sources import MlhubSource
from mlhub_sync.errors import ApplyError, FatalLocalError, UsageError
from mlhub_sync.net.client import Http
from mlhub_sync.progress import LogReporter, Reporter, TqdmReporter
from mlhub_sync.session import ApplyOutcome, DatasetRun
from mlhub_sync.sources.mlhub import get_dataset

IfExists = Literal["resume", "skip", "overwrite"]


_FIELDS = (
    "id", "title", "description", "doi", "citation", "registry", "status", "tags",
    "collections", "bbox", "date_added", "date_modified", "documentation_link",
    "creator_contact", "publications", "tools_applications", "tutorials",
)  # fmt: skip


class Dataset:
    """An MLHub dataset: its metadata (``/datasets/{id}``) and a ``download`` method."""

    id: str
    title: str | None
    description: str | None
    doi: str | None
    citation: str | None
    registry: str | None
    status: str | None
    tags: list[str]
    collections: list[dict[str, Any]]
    bbox: dict[str, Any] | None
    date_added: str | None
    date_modified: str | None
    documentation_link: str | None
    creator_contact: dict[str, Any] | None
    publications: list[dict[str, Any]]
    tools_applications: list[Any]
    tutorials: list[Any]

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        api_key: str | None = None,
        profile: str | None = None,
        root_url: str | None = None,
    ):
        self.data = dict(data)
        for name in _FIELDS:
            default: Any = (
                []
                if name
                in ("tags", "collections", "publications", "tools_applications", "tutorials")
                else None
            )
            setattr(self, name, self.data.get(name, default))
        self._api_key = api_key
        self._profile = profile
        self._root_url = root_url
        self._source: dict[str, Any] | None = None  # from_source: the spec's source mapping
        self._allow_local: list[str] = []

    def __repr__(self) -> str:
        return f"Dataset(id={self.id!r}, title={self.title!r})"

    @classmethod
    def fetch_by_id(
        cls,
        dataset_id: str,
        *,
        api_key: str | None = None,
        profile: str | None = None,
        root_url: str | None = None,
    ) -> Dataset:
        """Look a dataset up in the API. The key resolves as in the original client."""
        source = _source(api_key, profile, root_url)
        root = resolve_root_url(source, os.environ)
        key = resolve_api_key(source, os.environ)
        http = Http(secrets=(key,) if key else ())
        with http.session:
            data = get_dataset(http, root, dataset_id, key)
        return cls(data, api_key=api_key, profile=profile, root_url=root_url)

    @classmethod
    def from_source(
        cls,
        dataset_id: str,
        source: str | Path | Mapping[str, Any],
        *,
        allow_local: Sequence[str | Path] = (),
        title: str | None = None,
    ) -> Dataset:
        """A dataset whose catalog comes from ``source`` rather than the MLHub API: a catalog
        archive (``.tar.gz``) or a static catalog (``catalog.json``) as a local path or an
        http(s) URL, or a spec ``source:`` mapping (``{"type": "stac", "url": ...}``).
        ``allow_local``: the folders its ``file:`` hrefs may be copied from, as in a spec.
        Local paths are taken relative to the current directory now. Nothing is fetched
        until :meth:`download`.
        """
        dataset = cls({"id": dataset_id, "title": title})
        dataset._source = _source_mapping(source)
        dataset._allow_local = [str(Path(folder).absolute()) for folder in allow_local]
        return dataset

    def download(
        self,
        output_dir: str | Path = ".",
        *,
        asset_output_dir: str | Path | None = None,
        catalog_only: bool = False,
        collection_filter: Mapping[str, Sequence[str]] | None = None,
        datetime: dt.datetime
        | dt.date
        | tuple[dt.datetime | dt.date, dt.datetime | dt.date]
        | None = None,
        bbox: Sequence[float] | None = None,
        intersects: Mapping[str, Any] | None = None,
        if_exists: IfExists = "resume",
        workers: int | None = None,
        checksum: Literal["auto", "required", "off"] = "auto",
        progress: bool = True,
    ) -> Path:
        """Download (sync) the dataset; return the dataset folder.

        ``if_exists``: ``resume`` (default) keeps what is intact and fetches the rest;
        ``skip`` keeps any file already at an asset's path without checking it;
        ``overwrite`` downloads every selected asset again.
        """
        if if_exists not in ("resume", "skip", "overwrite"):
            raise UsageError(f"if_exists={if_exists!r}: use 'resume', 'skip' or 'overwrite'")
        config = self._config(
            output_dir,
            asset_output_dir,
            catalog_only,
            collection_filter,
            datetime,
            bbox,
            intersects,
            workers,
            checksum,
        )
        key = resolve_api_key(_source(self._api_key, self._profile, self._root_url), os.environ)
        http = Http(
            net=config.net,
            policy=config.retry,
            secrets=(key,) if key else (),
            access=source_headers(config.source, os.environ),
        )
        reporter: Reporter = TqdmReporter() if progress and sys.stderr.isatty() else LogReporter()
        with http.session, DatasetRun(config, http, os.environ, reporter) as run:
            outcome: ApplyOutcome = run.apply(if_exists=if_exists)
        if outcome.stats.fatal is not None:
            raise outcome.stats.fatal
        if outcome.failed:
            raise ApplyError(outcome.failed, [outcome.report] if outcome.report else [])
        if outcome.stats.interrupted:  # pragma: no cover - KeyboardInterrupt propagates first
            raise FatalLocalError("the download was interrupted")
        return config.dataset_dir

    def _config(
        self,
        output_dir: str | Path,
        asset_output_dir: str | Path | None,
        catalog_only: bool,
        collection_filter: Mapping[str, Sequence[str]] | None,
        when: Any,
        bbox: Sequence[float] | None,
        intersects: Mapping[str, Any] | None,
        workers: int | None,
        checksum: str,
    ) -> DatasetConfig:
        entry: dict[str, Any] = {
            "id": self.id,
            "output_dir": str(output_dir),
            "catalog_only": catalog_only,
            "checksum": checksum,
        }
        source: dict[str, Any] = {"type": "mlhub"}
        if self._api_key:
            source["api_key"] = self._api_key
        if self._profile:
            source["profile"] = self._profile
        if self._root_url:
            source["root_url"] = self._root_url
        entry["source"] = self._source if self._source is not None else source
        if self._allow_local:
            entry["allow_local"] = self._allow_local
        if asset_output_dir is not None:
            entry["asset_output_dir"] = str(asset_output_dir)
        if collection_filter is not None:
            entry["collection_filter"] = {k: list(v) for k, v in collection_filter.items()}
        if isinstance(when, tuple):
            if len(when) != 2:
                raise UsageError("datetime: give one datetime or a (start, end) pair")
            entry["datetime"] = {"start": when[0], "end": when[1]}
        elif when is not None:
            entry["datetime"] = when
        if bbox is not None:
            entry["bbox"] = [float(v) if isinstance(v, int) else v for v in bbox]
        if intersects is not None:
            entry["intersects"] = dict(intersects)
        if workers is not None:
            entry["workers"] = workers
        loaded = LoadedYaml(data={"version": 1, "datasets": [entry]}, file="download()")
        return resolve_spec(loaded, Path.cwd()).datasets[0]


def _source(api_key: str | None, profile: str | None, root_url: str | None) -> MlhubSource:
    data: dict[str, Any] = {"type": "mlhub", "profile": profile, "root_url": root_url}
    if api_key:
        data["api_key"] = api_key
    return MlhubSource.model_validate(data)


def _source_mapping(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A spec ``source:`` mapping for what :meth:`Dataset.from_source` was given."""
    if isinstance(source, Mapping):
        return dict(source)
    text = str(source)
    kind = "stac" if text.endswith(".json") else "archive"
    if "://" in text:
        return {"type": kind, "url": text}
    return {"type": kind, "path": str(Path(text).absolute())}
