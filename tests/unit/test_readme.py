"""The README's commands table names every command and every option the parser has, so a new
flag cannot ship undocumented."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mlhub_sync.cli.parser import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
COMMANDS = README[README.index("## Commands") : README.index("### Machine-readable output")]
SHARED = {"--help", "--verbose", "--quiet", "--dataset", "-v", "-q", "-h"}  # said once, below


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_command_and_option_is_in_the_readme_table(name: str) -> None:
    row = next((line for line in COMMANDS.splitlines() if f"`mlhub-sync {name}" in line), None)
    assert row is not None, f"the README's commands table has no row for {name}"
    for action in subcommands()[name]._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag not in SHARED:
                assert flag in row, f"{name} {flag} is missing from the README's commands table"


def test_the_shared_options_are_described_once() -> None:
    for flag in ("-v", "-q", "--dataset", "--locked", "--lock-file"):
        assert f"`{flag}" in COMMANDS
