"""Resolution: a validated spec becomes one :class:`DatasetConfig` per dataset, defaults
applied and paths made absolute (relative to the spec's folder); ``load_spec`` is the entry."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from mlhub_sync.config.diagnostics import issues_from
from mlhub_sync.config.filter_settings import DatetimeRange, as_aware
from mlhub_sync.config.homes import registry_source
from mlhub_sync.config.loader import LoadedYaml, load_yaml
from mlhub_sync.config.models import (
    ArchiveLimits,
    DatasetEntry,
    Defaults,
    ExtractLimits,
    RetrySettings,
    SyncSpec,
    Timeouts,
)
from mlhub_sync.config.sources import (
    ArchiveSource,
    AzureSource,
    MlhubSource,
    S3Source,
    StacApiSource,
    StacSource,
)
from mlhub_sync.errors import SpecError, SpecIssue
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.settings import NetSettings
from mlhub_sync.selection.filters import FilterSet, TimeWindow

DEFAULT_COMMON_ASSET_KEYS = ("documentation", "readme", "test_split", "train_split",
                             "validation_split")  # fmt: skip


DEFAULT_WORKERS = 16


DEFAULT_MAX_DELETE = 1000


DEFAULT_MAX_ASSET_SIZE = NetSettings().max_asset_size


@dataclass(frozen=True)
class DatasetConfig:
    """Everything needed to sync one dataset, defaults applied and paths made absolute."""

    id: str
    index: int
    output_dir: Path
    asset_output_dir: Path
    source: MlhubSource | ArchiveSource | StacSource | StacApiSource | S3Source | AzureSource
    workers: int
    checksum: str
    catalog_only: bool
    common_asset_keys: frozenset[str]
    prune: bool
    max_delete: int
    retry: RetryPolicy
    timeout: Timeouts
    archive_limits: ExtractLimits
    filters: FilterSet
    spec_dir: Path  # relative paths in the spec (and in its lock file) start here
    allow_local: tuple[Path, ...] = ()  # folders file: hrefs may reach (absolute)
    max_asset_size: int = DEFAULT_MAX_ASSET_SIZE
    allow_private_redirects: bool = False
    strict: bool = False  # an unreadable catalog document is fatal (spec or --strict)
    resolved_via: str | None = None  # why a dataset without a source goes where it goes

    @property
    def net(self) -> NetSettings:
        """The network limits of this dataset (timeouts, deadlines, byte caps, redirects).

        A catalog archive may not be larger than what it may unpack to (``archive_limits``):
        a gzip stream is never much larger than what it holds."""
        return NetSettings(
            connect=self.timeout.connect,
            read=self.timeout.read,
            min_rate=int(self.timeout.min_rate),
            asset_deadline=self.timeout.asset,
            request_deadline=self.timeout.request,
            max_asset_size=self.max_asset_size,
            max_archive_size=self.archive_limits.max_unpacked_bytes,
            allow_private_redirects=self.allow_private_redirects,
        )

    @property
    def dataset_dir(self) -> Path:
        """``{output_dir}/{id}``: catalog, archive and state db."""
        return self.output_dir / self.id

    @property
    def asset_dir(self) -> Path:
        """``{asset_output_dir}/{id}``: where assets go (the dataset dir by default)."""
        return self.asset_output_dir / self.id

    @property
    def label(self) -> str:
        """How messages name this dataset: its id, and its position when ids repeat."""
        return f"{self.id} (datasets[{self.index}])"


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec and its resolved datasets."""

    path: Path | None
    spec: SyncSpec
    datasets: tuple[DatasetConfig, ...]


def load_spec(path: Path | str, environ: Mapping[str, str] | None = None) -> LoadedSpec:
    """Read, validate and resolve the spec at ``path``. Raises :class:`SpecError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue(str(path), "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(str(path), "", f"cannot read the spec: {exc}")]) from exc
    loaded = load_yaml(text, str(path), os.environ if environ is None else environ)
    return resolve_spec(loaded, path.resolve().parent, spec_path=path, environ=environ)


def resolve_spec(
    loaded: LoadedYaml,
    base_dir: Path,
    spec_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedSpec:
    """Validate parsed spec data and resolve every dataset against ``base_dir``; a dataset
    without a source looks its id up in the registry (``config/homes.py``) in ``environ``."""
    env = os.environ if environ is None else environ
    if not isinstance(loaded.data, dict):
        raise SpecError(
            [SpecIssue(loaded.location(()), "", "the spec must be a mapping (version, datasets)")]
        )
    try:
        spec = SyncSpec.model_validate(loaded.data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise SpecError(issues_from(exc, loaded)) from None
    datasets = tuple(
        _resolve(entry, spec.defaults, index, base_dir, env)
        for index, entry in enumerate(spec.datasets)
    )
    _check_unique(datasets, loaded)
    return LoadedSpec(path=spec_path, spec=spec, datasets=datasets)


def _resolve(
    entry: DatasetEntry, defaults: Defaults, index: int, base: Path, environ: Mapping[str, str]
) -> DatasetConfig:
    def pick(name: str) -> Any:
        value = getattr(entry, name)
        return getattr(defaults, name) if value is None else value

    source, resolved_via = pick("source"), None
    if source is None:
        source, resolved_via = registry_source(entry.id, environ)
    if isinstance(source, ArchiveSource | StacSource) and source.path is not None:
        source = source.model_copy(update={"path": str(_absolute(source.path, base))})
    sidecar = source.sidecar if isinstance(source, S3Source | AzureSource) else None
    if sidecar is not None and sidecar.path is not None:  # relative to the spec's folder
        sidecar = sidecar.model_copy(update={"path": str(_absolute(sidecar.path, base))})
        source = source.model_copy(update={"sidecar": sidecar})
    output_dir = _absolute(pick("output_dir") or ".", base)
    asset_root = pick("asset_output_dir")
    spatial = entry if entry.bbox is not None or entry.intersects is not None else defaults
    when = pick("datetime")
    if isinstance(when, DatetimeRange):
        window = when.window()
    elif when is not None:
        window = TimeWindow.day_of(as_aware(when))
    else:
        window = None
    collection_filter = pick("collection_filter")
    filters = FilterSet(
        collections=None
        if collection_filter is None
        else {cid: frozenset(keys or ()) for cid, keys in collection_filter.items()},
        time=window,
        bbox=tuple(spatial.bbox) if spatial.bbox is not None else None,  # type: ignore[arg-type]
        intersects=spatial.intersects,  # type: ignore[arg-type]
    )
    common = pick("common_asset_keys")
    return DatasetConfig(
        id=entry.id,
        index=index,
        output_dir=output_dir,
        asset_output_dir=_absolute(asset_root, base) if asset_root else output_dir,
        source=source,
        workers=pick("workers") or DEFAULT_WORKERS,
        checksum=pick("checksum") or "auto",
        catalog_only=bool(pick("catalog_only")),
        common_asset_keys=frozenset(DEFAULT_COMMON_ASSET_KEYS if common is None else common),
        prune=bool(pick("prune")),
        max_delete=DEFAULT_MAX_DELETE if pick("max_delete") is None else pick("max_delete"),
        retry=(pick("retry") or RetrySettings()).policy(),
        timeout=pick("timeout") or Timeouts(),
        archive_limits=(pick("archive_limits") or ArchiveLimits()).limits(),
        filters=filters,
        spec_dir=base,
        allow_local=tuple(_absolute(folder, base) for folder in pick("allow_local") or ()),
        max_asset_size=int(pick("max_asset_size") or DEFAULT_MAX_ASSET_SIZE),
        allow_private_redirects=bool(pick("allow_private_redirects")),
        strict=bool(pick("strict")),
        resolved_via=resolved_via,
    )


def _absolute(path: str, base: Path) -> Path:
    expanded = Path(os.path.expanduser(path))
    return Path(os.path.normpath(expanded if expanded.is_absolute() else base / expanded))


def _check_unique(datasets: Sequence[DatasetConfig], loaded: LoadedYaml) -> None:
    issues = []
    seen: dict[tuple[str, Path], int] = {}
    for ds in datasets:
        for key in ((ds.id, ds.dataset_dir), (ds.id, ds.asset_dir)):
            first = seen.setdefault(key, ds.index)
            if first != ds.index:
                issues.append(
                    SpecIssue(
                        loaded.location(("datasets", ds.index, "id")),
                        f"datasets[{ds.index}]",
                        f"dataset {ds.id!r} already goes to {key[1]} (datasets[{first}]); "
                        "give one of them another output_dir",
                    )
                )
                break
    if issues:
        raise SpecError(issues)


def missing_inputs(config: DatasetConfig) -> list[str]:
    """What a dataset needs on this machine and lacks (an ``apply`` would fail on it)."""
    source = config.source
    if not isinstance(source, ArchiveSource | StacSource) or source.path is None:
        return []
    if Path(source.path).is_file():
        return []
    what = "archive" if isinstance(source, ArchiveSource) else "catalog"
    return [
        f"source.path: the {what} {source.path} does not exist, so apply would fail "
        "(paths are relative to the spec's folder)"
    ]
