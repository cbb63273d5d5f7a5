"""``mlhub-sync datasets [--json]``: the registry of where the former MLHub datasets went
(``config/homes.py``).

Text: one line per dataset (id, title, where, verified or not, the note), counts with their
nouns, every control character escaped. JSON (``format: mlhub-sync.datasets/1``): a list of
objects in registry order with a stable set of keys; a source is its spec mapping (as a spec
would write it), so a consumer can paste it into a spec."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from mlhub_sync.cli.render import count
from mlhub_sync.config.homes import Home, load_homes, where
from mlhub_sync.config.sources import AzureSource, S3Source
from mlhub_sync.errors import ExitCode
from mlhub_sync.net.display import terminal_safe

DATASETS_FORMAT = "mlhub-sync.datasets/1"


def datasets_text(homes: tuple[Home, ...], files: tuple[str, ...]) -> str:
    """The registry for people."""
    verified = sum(1 for home in homes if home.verified)
    out = [
        f"{count(len(homes), 'dataset')} in the registry ({verified} verified); "
        "a dataset with no source and one of these ids syncs from there"
    ]
    for home in homes:
        state = "verified" if home.verified else "unverified"
        also = f", also as {', '.join(home.aliases)}" if home.aliases else ""
        out.append(f"{home.id}: {home.title}{also}")
        out.append(f"  {where(home.source)} [{state}]")
        out.extend(f"  mirror: {where(mirror)}" for mirror in home.mirrors)
        if home.note:
            out.append(f"  note: {home.note}")
    if len(files) > 1:
        out.append(f"entries from {files[0]} replace the packaged ones of the same id")
    return "\n".join(terminal_safe(line) for line in out)


def datasets_json(homes: tuple[Home, ...], files: tuple[str, ...]) -> dict[str, Any]:
    """The registry as JSON (``format: mlhub-sync.datasets/1``)."""
    return {
        "format": DATASETS_FORMAT,
        "files": list(files),
        "datasets": [_home_json(home) for home in homes],
    }


def _home_json(home: Home) -> dict[str, Any]:
    return {
        "id": home.id,
        "aliases": list(home.aliases),
        "title": home.title,
        "doi": home.doi,
        "citation": home.citation,
        "license": home.license,
        "collections": {cid: {"kind": info.kind} for cid, info in home.collections.items()},
        "verified": home.verified,
        "note": home.note,
        "where": where(home.source),
        "source": _source_json(home.source),
        "mirrors": [_source_json(mirror) for mirror in home.mirrors],
    }


def _source_json(source: S3Source | AzureSource) -> dict[str, Any]:
    # Only what the entry sets, as a spec would write it (no secrets: registry entries have none).
    return source.model_dump(mode="json", by_alias=True, exclude_unset=True)


def run_datasets(as_json: bool, environ: Mapping[str, str]) -> int:
    """The ``datasets`` command: print the registry; exit 0 (64 for a bad ``$MLHUB_SYNC_HOMES``,
    raised as a :class:`~mlhub_sync.errors.SpecError`)."""
    homes = load_homes(environ)
    if as_json:
        json.dump(datasets_json(homes.entries, homes.files), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(datasets_text(homes.entries, homes.files))
    return ExitCode.OK
