"""Lock files: ``SPEC.lock`` pins what a spec selected, for reproducible team setups.

``mlhub-sync lock SPEC`` writes, per dataset: the catalog archive's sha256 and ETag, the
number and total size of the selected assets, a digest of the selected
``(path, href, size, checksum)`` set, and every selected asset with its checksum where known
(the catalog's ``file:checksum``, else the MD5 we verified when we downloaded it). Then
``apply --locked`` refuses (exit 3) when upstream or the selection drifted, and verifies files
against the lock's checksums where the catalog has none.

The file is deterministic JSON (sorted; hrefs without rotating signatures), laid out one asset
per line so a diff reads well and a reader can stream it::

    {
      "format": "mlhub-sync.lock/1",
      "datasets": [
        {"catalog": {...}, "id": "tiny", "output_dir": "data", "selection": {...}, "assets": [
          ["_common/documentation.pdf", "https://host/doc.pdf", 1500, "d50110...", "catalog"],
          ...
        ]}
      ]
    }
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mlhub_sync.errors import StateError

LOCK_FORMAT = "mlhub-sync.lock/1"


# path, href (no signatures), size, checksum, where the checksum comes from ("catalog": the
# catalog's file:checksum; "download": the MD5 we verified when we downloaded it; None)
Asset = tuple[str, str, int | None, str | None, str | None]


Key = tuple[str, str]  # dataset id, output_dir relative to the spec


def lock_path(spec: Path) -> Path:
    """``datasets.yaml`` -> ``datasets.yaml.lock``."""
    return spec.with_name(spec.name + ".lock")


def output_key(spec_dir: Path, dataset_id: str, output_dir: Path) -> Key:
    """How a lock names a dataset: its id and its output folder relative to the spec."""
    try:
        rel = os.path.relpath(output_dir, spec_dir)
    except ValueError:  # another drive (Windows)
        rel = str(output_dir)
    return dataset_id, Path(rel).as_posix()


def selection_digest(assets: Iterable[Asset]) -> str:
    """sha256 over what the *catalog* says of the sorted assets (path, href, size, checksum).

    Checksums we computed ourselves are left out: a machine that has downloaded nothing yet
    must get the same digest as one that has.
    """
    digest = hashlib.sha256()
    for path, href, size, checksum, source in assets:
        canonical = [path, href, size, checksum if source == "catalog" else None]
        digest.update(json.dumps(canonical, separators=(",", ":")).encode() + b"\n")
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class LockedDataset:
    """A dataset's header in a lock (its assets are streamed separately)."""

    key: Key
    header: dict[str, Any]

    @property
    def archive_sha256(self) -> str | None:
        """The pinned catalog archive (None for a crawled static catalog)."""
        value = self.header.get("catalog", {}).get("sha256")
        return value if isinstance(value, str) else None

    @property
    def digest(self) -> str:
        """The pinned selection digest."""
        return str(self.header.get("selection", {}).get("digest", ""))


def write_lock(path: Path, datasets: Iterable[tuple[dict[str, Any], Iterable[Asset]]]) -> None:
    """Write a lock atomically; ``datasets`` must come sorted by (id, output_dir)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as out:
        out.write('{\n  "format": ' + json.dumps(LOCK_FORMAT) + ',\n  "datasets": [')
        for n, (header, assets) in enumerate(datasets):
            head = json.dumps(header, sort_keys=True, ensure_ascii=False)
            out.write(("," if n else "") + "\n    " + head[:-1] + ', "assets": [')
            for i, asset in enumerate(assets):
                line = json.dumps(list(asset), ensure_ascii=False)
                out.write(("," if i else "") + "\n      " + line)
            out.write("\n    ]}")
        out.write("\n  ]\n}\n")
    os.replace(tmp, path)


class LockFile:
    """A lock on disk: dataset headers up front, assets streamed on demand."""

    def __init__(self, path: Path):
        self.path = path
        self.datasets: dict[Key, LockedDataset] = {}
        for header in self._headers():
            key = (str(header.get("id")), str(header.get("output_dir")))
            self.datasets[key] = LockedDataset(key, header)

    def _lines(self) -> Iterator[str]:
        try:
            with self.path.open(encoding="utf-8") as f:
                yield from _check_format(f, self.path)
        except FileNotFoundError:
            raise StateError(
                "no lock file",
                subject=str(self.path),
                hint="create it with `mlhub-sync lock SPEC` (and commit it next to the spec)",
            ) from None
        except UnicodeDecodeError as exc:
            raise _malformed(self.path, str(exc)) from exc

    def _headers(self) -> Iterator[dict[str, Any]]:
        for line in self._lines():
            stripped = line.strip()
            if stripped.startswith("{") and stripped.endswith('"assets": ['):
                try:
                    header = json.loads(stripped[: -len('"assets": [')].rstrip(", ") + "}")
                except json.JSONDecodeError as exc:
                    raise _malformed(self.path, str(exc)) from exc
                if not isinstance(header, dict):
                    raise _malformed(self.path, "a dataset header is not an object")
                yield header

    def assets(self, key: Key) -> Iterator[Asset]:
        """The locked assets of one dataset, in path order."""
        inside = False
        for line in self._lines():
            stripped = line.strip()
            if stripped.endswith('"assets": ['):
                header = json.loads(stripped[: -len('"assets": [')].rstrip(", ") + "}")
                inside = (str(header.get("id")), str(header.get("output_dir"))) == key
                continue
            if inside and stripped.startswith("["):
                try:
                    path, href, size, checksum, source = json.loads(stripped.rstrip(","))
                except (json.JSONDecodeError, ValueError) as exc:
                    raise _malformed(self.path, str(exc)) from exc
                yield str(path), str(href), size, checksum, source
            elif inside and stripped.startswith("]"):
                return


def _check_format(lines: TextIO, path: Path) -> Iterator[str]:
    first_lines = []
    for line in lines:
        first_lines.append(line)
        if len(first_lines) == 2:
            break
    if len(first_lines) < 2 or f'"format": "{LOCK_FORMAT}"' not in first_lines[1]:
        raise _malformed(path, f"it is not a {LOCK_FORMAT} file")
    yield from first_lines
    yield from lines


def _malformed(path: Path, why: str) -> StateError:
    return StateError(
        f"the lock file is malformed ({why})",
        subject=str(path),
        hint="regenerate it with `mlhub-sync lock SPEC`; do not edit it by hand",
    )


@dataclass
class Drift:
    """How the current catalog and selection differ from the lock."""

    missing_from_lock: bool = False
    catalog_changed: bool = False
    added: int = 0
    removed: int = 0
    changed: int = 0
    samples: list[str] | None = None

    @property
    def drifted(self) -> bool:
        """True when anything differs."""
        return (
            self.missing_from_lock
            or self.catalog_changed
            or bool(self.added or self.removed or self.changed)
        )

    def describe(self) -> str:
        """One line for people."""
        if self.missing_from_lock:
            return "the dataset is not in the lock file"
        parts = []
        if self.catalog_changed:
            parts.append("the upstream catalog changed")
        if self.added or self.removed or self.changed:
            parts.append(
                f"selection: {self.added} added, {self.removed} removed, {self.changed} changed"
            )
        return "; ".join(parts) or "matches the lock"
