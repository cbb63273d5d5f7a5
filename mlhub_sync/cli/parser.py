"""The command line's grammar: every command, option and help text (argparse)."""

from __future__ import annotations

import argparse

from mlhub_sync._version import __version__


def build_parser() -> argparse.ArgumentParser:
    """The command line: global options, one subcommand per command."""

    def options(defaults: bool) -> argparse.ArgumentParser:
        # The options are accepted before and after the command; after it, they must not reset
        # what was given before it (argparse copies a subcommand's defaults over the top level).
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument(
            "-v",
            "--verbose",
            action="count",
            help="more detail: -v for INFO, -vv for DEBUG",
            default=0 if defaults else argparse.SUPPRESS,
        )
        common.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            help="only errors (no progress, no summary)",
            default=False if defaults else argparse.SUPPRESS,
        )
        return common

    parser = argparse.ArgumentParser(
        prog="mlhub-sync",
        description="Declarative sync of STAC / Radiant MLHub datasets to disk.",
        parents=[options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"mlhub-sync {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help_text, description=help_text, parents=[options(defaults=False)]
        )

    def spec_args(sub: argparse.ArgumentParser, json_help: str | None = None) -> None:
        sub.add_argument("spec", metavar="SPEC", help="the spec file (YAML)")
        sub.add_argument(
            "--dataset",
            action="append",
            metavar="ID",
            default=[],
            help="only this dataset id (repeatable)",
        )
        if json_help:
            sub.add_argument("--json", action="store_true", help=json_help)

    def strict_arg(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--strict",
            action="store_true",
            help="stop when a catalog document cannot be read (default: skip it, report it, "
            "sync the rest; the spec's strict: true does the same)",
        )

    def lock_args(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--locked",
            action="store_true",
            help="refuse (exit 3) when the catalog or selection drifted from the lock",
        )
        sub.add_argument(
            "--lock-file", metavar="PATH", help="the lock file (default: SPEC.lock beside it)"
        )

    spec_args(
        command("validate", "check a spec, and that its local sources exist (no network)"),
        "print the resolved datasets as JSON",
    )
    plan = command("plan", "show what apply would do, and why")
    spec_args(plan, "print the plan as JSON (format mlhub-sync.plan/1)")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when changes are pending, 0 when in sync",
    )
    lock_args(plan)
    strict_arg(plan)
    apply = command("apply", "download what is missing, partial or corrupt")
    spec_args(apply, "print the result as JSON (format mlhub-sync.apply/1)")
    apply.add_argument(
        "--prune", action="store_true", help="delete managed files the spec no longer selects"
    )
    apply.add_argument(
        "--force", action="store_true", help="let prune delete more than max_delete files"
    )
    lock_args(apply)
    strict_arg(apply)
    spec_args(command("lock", "pin the catalogs and the selection in SPEC.lock"))
    spec_args(
        command("status", "what is on disk vs desired, from the state db (no network)"),
        "print the status as JSON (format mlhub-sync.status/1)",
    )
    verify = command("verify", "re-check managed files against their records")
    spec_args(verify, "print the result as JSON (format mlhub-sync.verify/1)")
    verify.add_argument(
        "--deep", action="store_true", help="hash every file instead of comparing size and mtime"
    )
    watch = command("watch", "keep the output in sync: apply on spec edits and file changes")
    spec_args(watch)
    watch.add_argument(
        "--refresh-interval",
        type=float,
        metavar="SECONDS",
        help="also re-apply this often, to pick up upstream catalog changes",
    )
    watch.add_argument(
        "--debounce",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="wait for this much quiet after a change before applying (1.0)",
    )
    watch.add_argument(
        "--polling",
        action="store_true",
        help="poll the file system instead of using inotify (network shares)",
    )
    command("schema", "print the JSON Schema of the spec")
    command(
        "datasets", "list where the former Radiant MLHub datasets went (the registry)"
    ).add_argument("--json", action="store_true", help="print the registry as JSON")
    return parser
