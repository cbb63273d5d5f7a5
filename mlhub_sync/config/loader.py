"""Reading a YAML spec safely, remembering where every value came from.

PyYAML's ``safe_load`` keeps the last of two duplicate keys, expands alias bombs without limit
and forgets line numbers. This module composes the node graph with the safe loader and builds
plain Python data itself, so that it can:

- reject duplicate keys (merge keys ``<<`` still work: explicit keys override merged ones, an
  earlier merged mapping overrides a later one; merges are resolved here, without rewriting
  shared nodes as PyYAML's ``flatten_mapping`` does, and a mapping that merges itself is refused);
- cap the number of nodes built (an alias bomb fails fast) and the nesting depth (a recursive
  alias fails instead of looping);
- report a scalar that cannot be read (an unquoted ``2019-13-45``, ``!!int abc``, a
  ``!!python/...`` tag) as an issue, never as a PyYAML exception;
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

from mlhub_sync.errors import SpecError, SpecIssue

Path_ = tuple[str | int, ...]


MAX_NODES = 100_000


MAX_DEPTH = 64


_MERGE_TAG = "tag:yaml.org,2002:merge"


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
    loader: yaml.SafeLoader | None = None
    try:
        # The reader checks the text's characters as soon as the loader is made: keep it inside.
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{file}:{mark.line + 1}" if mark else file
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError([SpecIssue(line, "", f"invalid YAML: {problem}")]) from exc
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (e.g. NUL)
        line_no = text.count("\n", 0, max(exc.position, 0)) + 1
        char: Any = exc.character  # the code point (an int) for text input, whatever the stubs say
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        problem = f"invalid YAML: the control character {shown} is not allowed"
        raise SpecError([SpecIssue(f"{file}:{line_no}", "", problem)]) from exc
    except yaml.YAMLError as exc:
        raise SpecError([SpecIssue(file, "", f"invalid YAML: {exc}")]) from exc
    except RecursionError:
        # PyYAML's composer recurses once per nesting level.
        raise SpecError([SpecIssue(file, "", "the spec is nested too deeply")]) from None
    finally:
        if loader is not None:
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
        self.merges: dict[int, list[tuple[yaml.Node, yaml.Node]]] = {}
        self.unreadable: set[yaml.Node] = set()  # scalars that failed to construct

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
            if key_node.tag == _MERGE_TAG:
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
        result: dict[str, Any] = {}
        for key_node, value_node in self.merged_pairs(node, path, ()):
            if not isinstance(key_node, yaml.ScalarNode):
                self.issues.append(
                    SpecIssue(self.where(key_node), format_path(path), "keys must be plain text")
                )
                continue
            key = str(key_node.value)
            result[key] = self.build(value_node, (*path, key))
        return result

    def merged_pairs(
        self, node: yaml.MappingNode, path: Path_, active: tuple[int, ...]
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """The mapping's pairs with ``<<`` merges applied, one pair per merged key.

        Explicit keys win over merged ones, an earlier merged mapping over a later one (the YAML
        merge-key rules). Unlike PyYAML's ``flatten_mapping`` this leaves the node graph as it
        is (a mapping reached again through an alias is read the same way), memoizes each
        mapping (repeated merges of merges stay linear, whatever the PyYAML version) and refuses
        a mapping that merges itself.
        """
        cached = self.merges.get(id(node))
        if cached is not None:
            return cached
        if id(node) in active:
            self.issues.append(
                SpecIssue(self.where(node), format_path(path), "a mapping merges itself (`<<`)")
            )
            return []
        explicit: list[tuple[yaml.Node, yaml.Node]] = []
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                explicit.append((key_node, value_node))
                continue
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    merged.extend(self.merged_pairs(source, path, (*active, id(node))))
                else:
                    self.issues.append(
                        SpecIssue(
                            self.where(source),
                            format_path(path),
                            f"`<<` merges mappings (or a list of them), not a {source.id}",
                        )
                    )
        taken = {k.value for k, _ in explicit if isinstance(k, yaml.ScalarNode)}
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in merged:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in taken:
                    continue
                taken.add(key_node.value)
            pairs.append((key_node, value_node))
        pairs.extend(explicit)
        self.merges[id(node)] = pairs
        return pairs

    def build_scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        if node.tag == "tag:yaml.org,2002:str" and "$" in node.value:
            text = self.interpolate(node, path)
            if node.style is None and text != node.value:
                # An unquoted `${VAR}` takes the type its value would have had if written there.
                tag = self.loader.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
                node = yaml.ScalarNode(tag, text, node.start_mark, node.end_mark)
            else:
                return text
        if node in self.unreadable:
            return None  # reported where it was first met (an alias reaches it again)
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError:
            self.unreadable.add(node)
            self.issues.append(
                SpecIssue(
                    self.where(node),
                    format_path(path),
                    f"unsupported YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')}",
                )
            )
            return None
        except Exception as exc:  # ValueError, IndexError, OverflowError... by constructor
            self.unreadable.add(node)
            # e.g. an unquoted 2019-13-45 (a timestamp by its form), `!!int abc` or `!!int`
            kind = node.tag.rsplit(":", 1)[-1]
            self.issues.append(
                SpecIssue(
                    self.where(node),
                    format_path(path),
                    f"{node.value!r} is not a valid {kind} ({exc}); quote it to mean a string",
                )
            )
            return None
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
