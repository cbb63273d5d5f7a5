"""What a command runs on: the datasets ``--dataset`` selects (:func:`selected`) and the
secrets they carry, for the log filter to scrub (:func:`secrets_of`)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

from mlhub_sync.config.access import access_secrets
from mlhub_sync.config.credentials import resolve_api_key
from mlhub_sync.config.resolve import DatasetConfig, LoadedSpec
from mlhub_sync.config.sources import MlhubSource
from mlhub_sync.errors import MlhubSyncError, UsageError
from mlhub_sync.net.redact import SecretFilter


def selected(loaded: LoadedSpec, ids: Sequence[str]) -> list[DatasetConfig]:
    """The datasets a command runs on: those ``--dataset`` names, else every one."""
    if not ids:
        return list(loaded.datasets)
    unknown = sorted(set(ids) - {d.id for d in loaded.datasets})
    if unknown:
        raise UsageError(
            f"--dataset {', '.join(unknown)}: not in the spec",
            hint="use an id listed under datasets:",
        )
    return [d for d in loaded.datasets if d.id in ids]


def secrets_of(loaded: LoadedSpec, environ: Mapping[str, str], secrets: SecretFilter) -> None:
    """Add every secret the spec's datasets carry to ``secrets`` (the log filter's list)."""
    secrets.add(environ.get("MLHUB_API_KEY"))
    for ds in loaded.datasets:
        for secret in access_secrets(ds.source, environ):  # headers:, a signing key
            secrets.add(secret)
        if isinstance(ds.source, MlhubSource):
            # the key may come from a profile file: it must be scrubbed too (an unusable
            # profile is reported when the dataset runs)
            with contextlib.suppress(MlhubSyncError):
                secrets.add(resolve_api_key(ds.source, environ))
