"""Pydantic validation errors as ``file:line: field: message`` issues: one line per problem,
union noise folded, did-you-mean for unknown keys, and secrets never echoed."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from mlhub_sync.config.filter_settings import DatetimeRange, GeoJSONFile
from mlhub_sync.config.loader import LoadedYaml, Path_, format_path
from mlhub_sync.config.models import (
    ArchiveLimits,
    DatasetEntry,
    Defaults,
    RetrySettings,
    SyncSpec,
    Timeouts,
)
from mlhub_sync.config.sources import ArchiveSource, MlhubSource
from mlhub_sync.errors import SpecIssue


def issues_from(exc: ValidationError, loaded: LoadedYaml) -> list[SpecIssue]:
    by_path: dict[Path_, list[Mapping[str, Any]]] = {}
    for error in exc.errors(include_url=False):
        path = _data_path(loaded.data, error["loc"], missing=error["type"] == "missing")
        by_path.setdefault(path, []).append(error)
    issues = []
    for path, errors in by_path.items():
        # A union (datetime, intersects...) reports one error per branch. When a branch matched
        # the input's shape and failed on its value, that is the error to show; when none did,
        # one line saying what was expected replaces a line per branch, unless a branch got
        # further and failed on something inside (`datetime.ends: unknown key`): that says more.
        specific = [e for e in errors if not str(e["type"]).endswith(("_type", "_parsing"))]
        deeper = any(len(other) > len(path) and other[: len(path)] == path for other in by_path)
        if specific:
            messages = [_message(e, path) for e in specific]
        elif len(errors) > 1 and deeper:
            continue
        elif len(errors) > 1:
            messages = [_expected(path, errors[0].get("input"))]
        else:
            messages = [_message(errors[0], path)]
        for message in dict.fromkeys(messages):
            issues.append(SpecIssue(loaded.location(path), format_path(path), message))
    return sorted(issues, key=lambda i: (loaded.line_of(_parse_field(i.field)) or 0, i.field))


def _parse_field(field: str) -> Path_:
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _data_path(data: Any, loc: Sequence[int | str], *, missing: bool) -> Path_:
    """Keep only the parts of a pydantic ``loc`` that exist in the data (drop union tags)."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(part)
        elif missing and i == len(loc) - 1 and isinstance(part, str):
            path.append(part)  # a required field that is absent: name it
    return tuple(path)


def _secret(path: Path_) -> bool:
    """True for fields whose value must never be echoed in a message (the API key)."""
    return "api_key" in path


def _expected(path: Path_, value: Any) -> str:
    name = next((p for p in reversed(path) if isinstance(p, str)), "")
    field = DatasetEntry.model_fields.get(name)
    what = field.description if field is not None and field.description else "another value"
    got = type(value).__name__ if _secret(path) else f"{type(value).__name__} {value!r:.60}"
    return f"invalid value (got {got}); expected {what}"


def _message(error: Mapping[str, Any], path: Path_) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else "?"
        choices = _fields_at(path[:-1])
        close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = f"; allowed: {', '.join(sorted(choices))}" if choices and not close else ""
        return f"unknown key {key!r}{hint}{allowed}"
    if kind == "missing":
        return "this field is required"
    if kind == "union_tag_invalid":
        return "source type must be one of: mlhub, archive, stac"
    if kind == "too_short" and path == ("datasets",):
        return "list at least one dataset (each needs an `id`)"
    if kind in ("too_short", "too_long") and path[-1:] == ("bbox",):
        count = len(error["input"]) if isinstance(error.get("input"), list) else "?"
        return f"a bbox is 4 numbers [min lon, min lat, max lon, max lat], not {count}"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if (kind.endswith("_type") or kind == "literal_error") and "input" in error:
        value = error["input"]
        got = type(value).__name__ if _secret(path) else f"{type(value).__name__} {value!r:.60}"
        message += f" (got {got})"
        if isinstance(value, bool) and not kind.startswith("bool"):
            message += "; YAML reads unquoted yes/no/on/off as true/false: quote the text"
    return message


def _field_names(*models: type[BaseModel]) -> list[str]:
    return sorted({name for model in models for name in model.model_fields})


def _fields_at(path: Path_) -> list[str]:
    """The keys allowed at ``path`` (for did-you-mean)."""
    names = [p for p in path if isinstance(p, str)]
    if not names:
        return _field_names(SyncSpec)
    last = names[-1]
    if last == "defaults":
        return _field_names(Defaults)
    if last == "datasets":
        return _field_names(DatasetEntry)
    if last == "source":
        return _field_names(MlhubSource, ArchiveSource)
    if last == "datetime":
        return _field_names(DatetimeRange)
    if last == "timeout":
        return _field_names(Timeouts)
    if last == "retry":
        return _field_names(RetrySettings)
    if last == "archive_limits":
        return _field_names(ArchiveLimits)
    if last == "intersects":
        return _field_names(GeoJSONFile)
    return []
