"""Datasets that failed (a catalog that cannot be reached, a spec problem found late), as
entries of a JSON document's ``datasets[]``: each keeps its place, in the spec's order, so a
machine reading ``plan --json`` sees every dataset it asked for, and why one has no plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlhub_sync.config.resolve import DatasetConfig
from mlhub_sync.errors import MlhubSyncError

Failures = Sequence[tuple[DatasetConfig, MlhubSyncError]]  # datasets that failed, and why


Failed = list[tuple[DatasetConfig, MlhubSyncError]]  # the same, as a command collects them


def error_json(config: DatasetConfig, exc: MlhubSyncError) -> dict[str, Any]:
    """A dataset that failed, as a ``datasets[]`` entry: ``id``, ``index``, ``dataset_dir``,
    ``asset_dir``, ``catalog_only``, and ``error`` {``message``, ``subject``, ``hint``,
    ``exit_code``, ``error_class`` (``dns``, ``http-404``...: null when not known)}."""
    return {
        "id": config.id,
        "index": config.index,
        "dataset_dir": str(config.dataset_dir),
        "asset_dir": str(config.asset_dir),
        "catalog_only": config.catalog_only,
        "error": {
            "message": exc.message,
            "subject": exc.subject,
            "hint": exc.hint,
            "exit_code": int(exc.exit_code),
            "error_class": getattr(exc, "error_class", None),
        },
    }


def in_spec_order(entries: list[dict[str, Any]], failed: Failures) -> list[dict[str, Any]]:
    """``entries`` and the failed datasets' entries together, in the spec's order."""
    every = entries + [error_json(config, exc) for config, exc in failed]
    return sorted(every, key=lambda entry: int(entry["index"]))
