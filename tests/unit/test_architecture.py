"""The package's shape, as docs/architecture.md draws it: which stage may import which, no
import cycles, and modules that fit in a reader's head."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mlhub_sync"

# A stage (a subpackage, or a top-level module) and the stages it may import. The order is the
# pipeline's: a stage never imports one that comes after it.
MAY_IMPORT: dict[str, set[str]] = {
    "_version": set(),
    "errors": set(),
    "tree": {"errors"},
    "progress": set(),
    "net": {"errors", "_version", "progress"},
    "state": {"errors", "tree"},
    "stac": {"errors", "net"},
    "transfer": {"errors", "tree", "net", "stac"},
    "selection": {"errors", "stac", "state"},
    "config": {"errors", "net", "selection"},
    "sources": {
        "errors", "tree", "net", "progress", "state", "stac", "selection", "config", "transfer",
    },
    "catalog": {
        "errors", "tree", "net", "progress", "state", "stac", "selection", "config", "sources",
    },
    "plan": {"errors", "stac", "state"},
    "apply": {"errors", "tree", "net", "progress", "state", "stac", "plan", "transfer"},
    "lockfile": {"errors"},
    "lockcheck": {"errors", "net", "stac", "state", "lockfile"},
    "session": {
        "errors", "net", "progress", "state", "stac", "selection", "config", "catalog", "plan",
        "apply", "lockfile", "lockcheck",
    },
    "status": {"errors", "state", "selection", "config", "catalog", "plan", "session"},
    "verify": {"errors", "state", "stac", "config"},
    "watch": {"errors", "net", "progress", "state", "config", "catalog", "apply", "session"},
    "api": {"errors", "net", "progress", "config", "sources", "session"},
    "cli": {
        "errors", "_version", "net", "progress", "config", "plan", "lockfile", "lockcheck",
        "session",
        "status", "verify", "watch",
    },
    "__main__": {"cli"},
    "__init__": {"_version", "api"},
}  # fmt: skip

MAX_LINES = 420  # "about 400": a module a reader can hold in mind


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        yield ".".join(p for p in parts if p != "__init__") or "__init__", path


def stage_of(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def imports_of(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (the package uses absolute imports)")
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name == "mlhub_sync":
                yield "__init__"
            elif name.startswith("mlhub_sync."):
                yield name.removeprefix("mlhub_sync.")


def test_every_stage_is_in_the_map() -> None:
    assert {stage_of(m) for m, _ in modules()} == set(MAY_IMPORT)


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=[m for m, _ in modules()])
def test_a_stage_imports_only_the_stages_before_it(module: str, path: Path) -> None:
    stage = stage_of(module)
    wrong = sorted(
        target
        for target in imports_of(path)
        if stage_of(target) != stage and stage_of(target) not in MAY_IMPORT[stage]
    )
    assert not wrong, f"{module} may not import {wrong}"


def test_there_is_no_import_cycle() -> None:
    graph = {module: set(imports_of(path)) for module, path in modules()}
    graph = {m: {t for t in targets if t in graph} for m, targets in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycle = [*trail[trail.index(target) :], target] if target in trail else [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=[m for m, _ in modules()])
def test_a_module_fits_on_a_few_screens(module: str, path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines"


def test_every_package_says_what_it_owns_and_may_import() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init} has no docstring"
        assert "May import" in doc or init.parent.name == "cli", f"{init}: say what it may import"
