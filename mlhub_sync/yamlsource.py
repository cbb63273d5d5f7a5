"""Reading a YAML spec safely, remembering where every value came from.

PyYAML's ``safe_load`` keeps the last of two duplicate keys, expands alias bombs without limit
and forgets line numbers. This module composes the node graph with the safe loader and builds
plain Python data itself, so that it can:

- reject duplicate keys (merge keys ``<<`` still work; explicit keys override merged ones);
- cap the number of nodes built (an alias bomb fails fast) and the nesting depth (a recursive
  alias fails instead of looping);
- record the line of every value by its path (``("datasets", 1, "bbox")``), so validation
  errors can say ``datasets.yaml:14``;
- interpolate ``${VAR}`` / ``${VAR:-default}`` in strings (``$${`` is a literal ``${``); an
  unquoted scalar that is only interpolation is re-typed (``workers: ${N}`` gives an int);
- make timestamps timezone-aware (a naive timestamp is UTC).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import SpecError, SpecIssue

Path_ = tuple[str | int, ...]

MAX_NODES = 100_000
MAX_DEPTH = 64

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_path(path: Path_) -> str:
    """``("datasets", 1, "bbox")`` -> ``datasets[1].bbox``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class LoadedYaml:
    """Parsed YAML data plus the 1-based line of every value, keyed by path."""

    data: Any
    file: str
    lines: Mapping[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def location(self, path: Path_) -> str:
        """``file:line`` for ``path`` (just ``file`` when no line is known)."""
        line = self.line_of(path)
        return f"{self.file}:{line}" if line else self.file


def load_yaml(text: str, file: str, environ: Mapping[str, str]) -> LoadedYaml:
    """Parse ``text`` (named ``file`` in messages), interpolating variables from ``environ``.

    Raises :class:`SpecError` with one issue per problem found.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{file}:{mark.line + 1}" if mark else file
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError([SpecIssue(line, "", f"invalid YAML: {problem}")]) from exc
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(file, "", f"invalid YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    if node is None:
        raise SpecError([SpecIssue(file, "", "the spec is empty")])
    builder = _Builder(loader, file, environ)
    data = builder.build(node, ())
    if builder.issues:
        raise SpecError(builder.issues)
    return LoadedYaml(data=data, file=file, lines=builder.lines)


class _Builder:
    """Turns a composed node graph into plain data, collecting issues instead of stopping."""

    def __init__(self, loader: yaml.SafeLoader, file: str, environ: Mapping[str, str]):
        self.loader = loader
        self.file = file
        self.environ = environ
        self.lines: dict[Path_, int] = {}
        self.issues: list[SpecIssue] = []
        self.nodes = 0

    def where(self, node: yaml.Node) -> str:
        return f"{self.file}:{node.start_mark.line + 1}"

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES or len(path) > MAX_DEPTH:
            what = "nested too deeply" if len(path) > MAX_DEPTH else f"over {MAX_NODES} values"
            raise SpecError(
                [SpecIssue(self.where(node), format_path(path), f"the spec is {what}")],
                hint="recursive or exponentially repeated aliases (&anchor / *alias) are refused",
            )
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self.build_mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self.build_scalar(node, path)

    def build_mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(key_node.value)
            if key in seen:
                self.issues.append(
                    SpecIssue(
                        self.where(key_node),
                        format_path((*path, key)),
                        f"duplicate key {key!r} (first given on line {seen[key]}); "
                        "YAML would silently keep only the last one",
                    )
                )
            seen[key] = key_node.start_mark.line + 1
        try:
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys in place
        except yaml.MarkedYAMLError as exc:
            self.issues.append(SpecIssue(self.where(node), format_path(path), str(exc.problem)))
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.issues.append(
                    SpecIssue(self.where(key_node), format_path(path), "keys must be plain text")
                )
                continue
            key = str(key_node.value)
            result[key] = self.build(value_node, (*path, key))
        return result

    def build_scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        if node.tag == "tag:yaml.org,2002:str" and "$" in node.value:
            text = self.interpolate(node, path)
            if node.style is None and text != node.value:
                # An unquoted `${VAR}` takes the type its value would have had if written there.
                tag = self.loader.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
                node = yaml.ScalarNode(tag, text, node.start_mark, node.end_mark)
            else:
                return text
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value

    def interpolate(self, node: yaml.ScalarNode, path: Path_) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            value = self.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                self.issues.append(
                    SpecIssue(
                        self.where(node),
                        format_path(path),
                        f"environment variable {name} is not set "
                        f"(set it, or give a default: ${{{name}:-value}})",
                    )
                )
                return ""
            return value

        return _VAR.sub(substitute, str(node.value))
