"""The registry of where the Radiant MLHub datasets went (``homes.yaml``, package data).

The MLHub API shut down in 2023; its datasets live on as flat files in Source Cooperative
(``s3`` on ``https://data.source.coop``) and in the Azure container the old asset hrefs
pointed at (``azure``: ``radiantearth``/``mlhub``). Each :class:`Home` maps a legacy dataset id
(and its aliases) to the source a dataset with that id and no ``source`` of its own resolves
to (:func:`registry_source`), with its templates, the dataset's metadata, and whether public
code confirms the prefix and key shape (``verified``).

``$MLHUB_SYNC_HOMES`` names a file of the same format whose entries replace the packaged ones
by id: a team's own mirror (a MinIO bucket filled by ``aws s3 sync``), or a correction before
a release. ``mlhub-sync datasets`` lists the registry.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError

from mlhub_sync.config.base import StrictModel
from mlhub_sync.config.diagnostics import issues_from
from mlhub_sync.config.loader import load_yaml
from mlhub_sync.config.sources import AzureSource, MlhubSource, S3Source
from mlhub_sync.errors import SpecError, SpecIssue

HOMES_ENV = "MLHUB_SYNC_HOMES"

ROOT_URL_ENV = "MLHUB_ROOT_URL"

WHY = "the MLHub API shut down in 2023"

HomeSource = Annotated[S3Source | AzureSource, Field(discriminator="type")]


class CollectionInfo(StrictModel):
    """One of the dataset's MLHub collections: what it held, where known."""

    kind: Literal["source_imagery", "labels"] | None = None


class Home(StrictModel):
    """Where one former MLHub dataset is now, and what it is."""

    id: str = ""  # the key of its entry
    aliases: list[str] = Field(default_factory=list)
    title: str
    doi: str | None = None
    citation: str | None = None
    license: str | None = None
    collections: dict[str, CollectionInfo] = Field(default_factory=dict)
    verified: bool
    note: str | None = None
    source: HomeSource
    mirrors: list[HomeSource] = Field(default_factory=list)


class _File(StrictModel):
    version: Literal[1]
    datasets: dict[str, Home]


@dataclass(frozen=True)
class Homes:
    """The registry: entries in file order ($MLHUB_SYNC_HOMES's first), the files read (the
    packaged one last), and which file each entry came from."""

    entries: tuple[Home, ...]
    files: tuple[str, ...]
    origin: Mapping[str, str]  # entry id -> its file

    def find(self, dataset_id: str) -> Home | None:
        """The entry for ``dataset_id`` (its legacy id or an alias), or ``None``."""
        for home in self.entries:
            if dataset_id == home.id or dataset_id in home.aliases:
                return home
        return None


def where(source: S3Source | AzureSource) -> str:
    """A source's place in one phrase: ``s3://radiantearth/agrifieldnet-competition/ on
    data.source.coop``, ``azure://radiantearth/mlhub/nasa-marine-debris/``."""
    if isinstance(source, S3Source):
        host = urlsplit(source.endpoint).netloc if source.endpoint else "AWS"
        return f"s3://{source.bucket}/{source.prefix} on {host}"
    place = f"azure://{source.account}/{source.container}/{source.prefix}"
    return f"{place} on {urlsplit(source.endpoint).netloc}" if source.endpoint else place


def load_homes(environ: Mapping[str, str]) -> Homes:
    """The packaged registry, with the entries of ``$MLHUB_SYNC_HOMES`` (if set) replacing
    those of the same id. Raises :class:`SpecError` (``file:line``) on a bad file."""
    homes = _packaged()
    extra = environ.get(HOMES_ENV)
    if not extra:
        return homes
    path = Path(extra).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(
            [SpecIssue(str(path), "", f"cannot read the registry file: {exc}")],
            hint=f"${HOMES_ENV} names a registry file (the format of mlhub_sync/config/homes.yaml)",
        ) from None
    own = parse_homes(text, str(path))
    kept = tuple(home for home in homes.entries if home.id not in own.origin)
    return Homes(
        entries=own.entries + kept,
        files=own.files + homes.files,
        origin={**homes.origin, **own.origin},
    )


@functools.cache
def _packaged() -> Homes:
    resource = importlib.resources.files("mlhub_sync.config").joinpath("homes.yaml")
    return parse_homes(resource.read_text(encoding="utf-8"), "mlhub_sync/config/homes.yaml")


def parse_homes(text: str, file: str) -> Homes:
    """Validate registry text (every entry's source, templates and metadata); a problem is a
    :class:`SpecError` naming ``file:line`` and the field."""
    loaded = load_yaml(text, file, {})
    try:
        parsed = _File.model_validate(loaded.data)
    except ValidationError as exc:
        raise SpecError(issues_from(exc, loaded)) from None
    entries = tuple(home.model_copy(update={"id": key}) for key, home in parsed.datasets.items())
    return Homes(entries=entries, files=(file,), origin=dict.fromkeys(parsed.datasets, file))


def registry_source(
    dataset_id: str, environ: Mapping[str, str]
) -> tuple[MlhubSource | S3Source | AzureSource, str | None]:
    """Where a dataset with no ``source`` (neither its own nor ``defaults.source``) syncs from,
    and why: its registry entry's source, with the reason to print (``the registry:
    s3://... on data.source.coop (the MLHub API shut down in 2023)``); the MLHub API (no
    reason) when ``$MLHUB_ROOT_URL`` is set (a mirror speaking it) or the id is unknown."""
    if environ.get(ROOT_URL_ENV):
        return MlhubSource(), None
    homes = load_homes(environ)
    home = homes.find(dataset_id)
    if home is None:
        return MlhubSource(), None
    # an entry of $MLHUB_SYNC_HOMES names its file: the packaged registry did not send it there
    own = homes.origin[home.id]
    named = f" ({own})" if own != homes.files[-1] else ""
    why = WHY if home.verified else f"{WHY}; the entry is unverified: see `mlhub-sync datasets`"
    return home.source, f"the registry{named}: {where(home.source)} ({why})"
