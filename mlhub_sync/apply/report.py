"""The error report: ``{dataset_dir}/mlhub_errors.csv``, one row per failed asset.

Columns: dataset, collection, item, asset_key, url (secrets redacted), error (HTTP status or
error class), message, attempts; a cell a spreadsheet would run as a formula starts with
``'`` (``net.display.csv_cell``). Rows are streamed to a ``.part`` file as failures happen, so
memory stays flat; the report replaces the previous one at the end of the run, and is removed
when a run has no failures. Both names are reached in the dataset folder without following
links (``tree.py``): a link planted as either is replaced or removed, never written through.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from mlhub_sync.errors import FatalLocalError, MlhubSyncError, TransferError
from mlhub_sync.net.display import csv_cell
from mlhub_sync.net.redact import redact_url, scrub
from mlhub_sync.tree import opened

REPORT_NAME = "mlhub_errors.csv"


HEADER = ("dataset", "collection", "item", "asset_key", "url", "error", "message", "attempts")


class ErrorReport:
    """Collects failures of one dataset's run."""

    def __init__(self, dataset_dir: Path, dataset_id: str, secrets: Sequence[str] = ()):
        self.folder = dataset_dir
        self.path = dataset_dir / REPORT_NAME
        self._tmp = dataset_dir / f"{REPORT_NAME}.part"
        self.dataset_id = dataset_id
        self.secrets = tuple(secrets)
        self.rows = 0
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None

    def add(
        self,
        collection: str,
        item: str | None,
        asset_key: str,
        url: str,
        error: MlhubSyncError,
        attempts: int,
    ) -> None:
        """Record one failed asset."""
        if self._writer is None:
            try:
                with opened(self.folder) as folder:  # a fresh inode, whatever had the name
                    fd = folder.create(self._tmp.name)
                self._file = open(fd, "w", newline="", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise FatalLocalError(
                    f"cannot write the error report: {exc.strerror or exc}",
                    subject=str(self._tmp),
                    hint="free disk space or make the dataset folder writable",
                ) from exc
            self._writer = csv.DictWriter(self._file, fieldnames=HEADER)
            self._writer.writeheader()
        kind = error.error_class if isinstance(error, TransferError) else type(error).__name__
        message = error.message + (f" ({error.hint})" if error.hint else "")
        self._writer.writerow(
            {
                "dataset": self.dataset_id,
                "collection": csv_cell(collection),
                "item": csv_cell(item or ""),
                "asset_key": csv_cell(asset_key),
                "url": csv_cell(scrub(redact_url(url), self.secrets)),
                "error": kind,
                "message": csv_cell(scrub(message, self.secrets)),
                "attempts": attempts,
            }
        )
        self.rows += 1

    def close(self) -> Path | None:
        """Publish the report (or remove the old one when nothing failed); its path or None."""
        if self._file is not None:
            self._file.close()
            self._file = None
            with opened(self.folder) as folder:
                folder.replace(self._tmp.name, folder, REPORT_NAME)
            return self.path
        with contextlib.suppress(FileNotFoundError), opened(self.folder) as folder:
            folder.unlink(REPORT_NAME)
        return None
