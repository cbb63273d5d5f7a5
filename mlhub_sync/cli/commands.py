"""The ``mlhub-sync`` command: argument parsing, logging, exit codes. The only module that prints.

Exit codes are :class:`~mlhub_sync.errors.ExitCode`: 0 ok; 1 a run finished with failures; 2
changes pending (``--detailed-exitcode``); 3 state problem (locked, newer schema, lock drift); 64
bad spec or usage; 70 internal error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mlhub_sync.cli.datasets import run_datasets
from mlhub_sync.cli.failed import Failed
from mlhub_sync.cli.parser import build_parser
from mlhub_sync.cli.render import (
    apply_json,
    apply_line,
    count,
    kept_line,
    plan_json,
    plan_line,
    plan_text,
    status_json,
    status_text,
)
from mlhub_sync.cli.render_verify import verify_json, verify_text
from mlhub_sync.cli.scope import secrets_of, selected
from mlhub_sync.cli.terminal import choose_reporter, configure_logging, silence_stdout
from mlhub_sync.config.access import source_headers
from mlhub_sync.config.models import json_schema
from mlhub_sync.config.resolve import DatasetConfig, LoadedSpec, load_spec, missing_inputs
from mlhub_sync.errors import (
    ExitCode,
    MlhubSyncError,
    UsageError,
)
from mlhub_sync.lockcheck import lock_assets, lock_header
from mlhub_sync.lockfile import Asset, Key, LockFile, lock_path, output_key, write_lock
from mlhub_sync.net.client import Http
from mlhub_sync.net.display import terminal_safe
from mlhub_sync.net.redact import SecretFilter, scrub
from mlhub_sync.session import ApplyOutcome, DatasetPlan, DatasetRun
from mlhub_sync.status import dataset_status
from mlhub_sync.verify import verify_dataset
from mlhub_sync.watch import Watcher

log = logging.getLogger("mlhub_sync")


T = TypeVar("T")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False))


def _error(exc: BaseException | str) -> None:
    print(terminal_safe(f"mlhub-sync: error: {exc}", keep_newlines=True), file=sys.stderr)


class _Context:
    def __init__(
        self,
        args: argparse.Namespace,
        environ: Mapping[str, str],
        secrets: SecretFilter,
        loaded: LoadedSpec,
    ):
        self.args = args
        self.environ = environ
        self.secrets = secrets
        # one progress interval for the run: the shortest any dataset asks for
        interval = min((d.timeout.progress for d in loaded.datasets), default=10.0)
        self.reporter = choose_reporter(args.quiet, environ, interval)
        self.lock: LockFile | None = None

    def http_for(self, config: DatasetConfig) -> Http:
        return Http(
            net=config.net,
            policy=config.retry,
            secrets=self.secrets.values,
            access=source_headers(config.source, self.environ),
        )


def _cmd_validate(ctx: _Context, loaded: LoadedSpec) -> int:
    datasets = selected(loaded, ctx.args.dataset)
    problems = {d.label: missing_inputs(d) for d in datasets}
    if ctx.args.json:
        _print_json(
            {
                "format": "mlhub-sync.validate/1",
                "spec": str(loaded.path),
                "datasets": [
                    {
                        "id": d.id,
                        "index": d.index,
                        "dataset_dir": str(d.dataset_dir),
                        "asset_dir": str(d.asset_dir),
                        "source": d.source.type,
                        "resolved_via": d.resolved_via,
                        "filters": d.filters.describe(),
                        "catalog_only": d.catalog_only,
                        "problems": problems[d.label],
                    }
                    for d in datasets
                ],
            }
        )
    elif not ctx.args.quiet:
        bad = sum(1 for found in problems.values() if found)
        verdict = f"valid ({count(len(datasets), 'dataset')})"
        if bad:
            verdict = f"valid, but {count(bad, 'dataset')} cannot run ({len(datasets)} in all)"
        print(f"{loaded.path}: {verdict}")
        for d in datasets:
            filters = "; ".join(d.filters.describe()) or "no filters"
            print(f"  {d.label}: {d.source.type} -> {d.dataset_dir} ({filters})")
            print("".join(f"    problem: {problem}\n" for problem in problems[d.label]), end="")
    return ExitCode.USAGE if any(problems.values()) else ExitCode.OK


def _each(
    ctx: _Context, datasets: Sequence[DatasetConfig], work: Callable[[DatasetConfig], T]
) -> tuple[list[T], Failed, int]:
    """Run ``work`` per dataset; one dataset's failure is reported (and returned, for the
    JSON document) and the others go on."""
    results: list[T] = []
    failed: Failed = []
    worst: int = ExitCode.OK
    for config in datasets:
        try:
            results.append(work(config))
        except MlhubSyncError as exc:
            _error(f"{config.label}: {exc}")
            worst = max(worst, exc.exit_code)
            failed.append((config, exc))
    return results, failed, worst


def _lock_for(
    ctx: _Context, loaded: LoadedSpec, config: DatasetConfig
) -> tuple[LockFile, Key] | None:
    if not getattr(ctx.args, "locked", False):
        return None
    spec_path = loaded.path or Path(ctx.args.spec)
    if ctx.lock is None:
        ctx.lock = LockFile(
            Path(ctx.args.lock_file) if ctx.args.lock_file else lock_path(spec_path)
        )
    return ctx.lock, output_key(spec_path.resolve().parent, config.id, config.output_dir)


def _strict(ctx: _Context, config: DatasetConfig) -> DatasetConfig:
    """``config`` with ``--strict`` applied (the spec's ``strict: true`` is already in it)."""
    return dataclasses.replace(config, strict=True) if ctx.args.strict else config


def _plan_one(ctx: _Context, loaded: LoadedSpec, config: DatasetConfig) -> DatasetPlan:
    config = _strict(ctx, config)
    with DatasetRun(config, ctx.http_for(config), ctx.environ, ctx.reporter) as run:
        return run.plan(lock=_lock_for(ctx, loaded, config))


def _cmd_plan(ctx: _Context, loaded: LoadedSpec) -> int:
    plans, failed, worst = _each(
        ctx, selected(loaded, ctx.args.dataset), lambda c: _plan_one(ctx, loaded, c)
    )
    drifted = [p for p in plans if p.drift is not None and p.drift.drifted]
    for p in drifted:
        _error(f"{p.config.label}: --locked: {p.drift.describe() if p.drift else ''}")
    if ctx.args.json:
        _print_json(plan_json(plans, failed))
    elif ctx.args.quiet:
        pass
    elif ctx.args.verbose or len(plans) == 1:
        print(plan_text(plans))
    else:
        for p in plans:
            print(plan_line(p))
    if worst:
        return worst
    if drifted:
        return ExitCode.STATE
    if ctx.args.detailed_exitcode and any(p.pending for p in plans):
        return ExitCode.CHANGES
    return ExitCode.OK


def _cmd_apply(ctx: _Context, loaded: LoadedSpec) -> int:
    datasets = selected(loaded, ctx.args.dataset)
    outcomes: list[ApplyOutcome] = []
    failed: Failed = []
    worst: int = ExitCode.OK
    talk = not ctx.args.quiet and not ctx.args.json

    def planned(p: DatasetPlan) -> None:  # before the bars: what is about to happen
        if talk and (p.pending or p.config.resolved_via):  # the registry's note, once
            print(plan_line(p), flush=True)

    for config in datasets:
        config = _strict(ctx, config)  # noqa: PLW2901 - the same dataset, with --strict
        try:
            with DatasetRun(config, ctx.http_for(config), ctx.environ, ctx.reporter) as run:
                try:
                    outcome = run.apply(
                        force=ctx.args.force,
                        prune=ctx.args.prune or None,
                        lock=_lock_for(ctx, loaded, config),
                        on_planned=planned,
                    )
                except KeyboardInterrupt:  # Ctrl-C, SIGTERM: say what the next run resumes
                    note = kept_line(run.db.count("partials"), ctx.args.spec)
                    raise KeyboardInterrupt(note) from None
                kept = run.db.count("partials") if outcome.stats.interrupted else 0
        except MlhubSyncError as exc:
            _error(f"{config.label}: {exc}")
            worst = max(worst, exc.exit_code)
            failed.append((config, exc))
            continue
        outcomes.append(outcome)
        if talk:
            print(apply_line(outcome), flush=True)
        if (
            outcome.failed
            or outcome.stats.fatal
            or outcome.stats.interrupted
            or outcome.prune_refused
        ):
            worst = max(worst, ExitCode.FAILURES)
        if outcome.stats.fatal is not None:
            _error(f"{config.label}: {outcome.stats.fatal}")
        if outcome.stats.interrupted:
            raise KeyboardInterrupt(kept_line(kept, ctx.args.spec))
    if ctx.args.json:
        _print_json(apply_json(outcomes, failed))
    return worst


def _cmd_status(ctx: _Context, loaded: LoadedSpec) -> int:
    statuses, failed, worst = _each(ctx, selected(loaded, ctx.args.dataset), dataset_status)
    if ctx.args.json:
        _print_json(status_json(statuses, failed))
    elif not ctx.args.quiet:
        print(status_text(statuses))
    return worst


def _cmd_verify(ctx: _Context, loaded: LoadedSpec) -> int:
    results, failed, worst = _each(
        ctx, selected(loaded, ctx.args.dataset), lambda c: verify_dataset(c, deep=ctx.args.deep)
    )
    if ctx.args.json:
        _print_json(verify_json(results, ctx.args.deep, failed))
    elif not ctx.args.quiet:
        print(verify_text(results, ctx.args.deep))
        if any(r.bad for r in results):
            print(f"run `mlhub-sync apply {ctx.args.spec}` to fetch those files again")
    if any(r.bad for r in results):
        worst = max(worst, ExitCode.FAILURES)
    return worst


def _cmd_lock(ctx: _Context, loaded: LoadedSpec) -> int:
    if ctx.args.dataset:
        raise UsageError("lock pins the whole spec; --dataset is not supported here")
    spec_path = loaded.path or Path(ctx.args.spec)
    base = spec_path.resolve().parent
    configs = sorted(loaded.datasets, key=lambda c: output_key(base, c.id, c.output_dir))
    stack = contextlib.ExitStack()
    with stack:

        def entries() -> Iterator[tuple[dict[str, Any], Iterator[Asset]]]:
            for config in configs:
                run = stack.enter_context(
                    DatasetRun(config, ctx.http_for(config), ctx.environ, ctx.reporter)
                )
                run.select()
                key = output_key(base, config.id, config.output_dir)
                yield (
                    lock_header(run.db, key, config.spec_dir),
                    lock_assets(run.db, config.spec_dir),
                )

        target = lock_path(spec_path)
        write_lock(target, entries())
    if not ctx.args.quiet:
        print(f"wrote {target} ({count(len(configs), 'dataset')})")
    return ExitCode.OK


def _cmd_watch(ctx: _Context, loaded: LoadedSpec) -> int:
    selected(loaded, ctx.args.dataset)  # unknown ids are a usage error up front
    if ctx.args.refresh_interval is not None and ctx.args.refresh_interval <= 0:
        raise UsageError("--refresh-interval must be a positive number of seconds")

    def report(outcomes: list[ApplyOutcome], errors: list[str]) -> None:
        if not ctx.args.quiet:
            for outcome in outcomes:
                print(apply_line(outcome), flush=True)
        for error in errors:
            _error(error)

    watcher = Watcher(
        loaded.path or Path(ctx.args.spec),
        ctx.environ,
        ctx.reporter,
        ctx.http_for,
        dataset_ids=tuple(ctx.args.dataset),
        debounce=ctx.args.debounce,
        refresh_interval=ctx.args.refresh_interval,
        on_result=report,
        polling=ctx.args.polling,
    )

    def stop(signum: int, frame: object) -> None:
        watcher.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"watching {ctx.args.spec} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    watcher.run(loaded)
    print("mlhub-sync: watch stopped", file=sys.stderr)
    return ExitCode.OK


_COMMANDS: dict[str, Callable[[_Context, LoadedSpec], int]] = {
    "validate": _cmd_validate,
    "plan": _cmd_plan,
    "apply": _cmd_apply,
    "status": _cmd_status,
    "verify": _cmd_verify,
    "watch": _cmd_watch,
    "lock": _cmd_lock,
}


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a run like Ctrl-C: parts kept, journal flushed


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``mlhub-sync`` console script."""
    environ = os.environ if environ is None else environ
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error
        return ExitCode.USAGE if exc.code not in (0, None) else ExitCode.OK
    secrets = SecretFilter()
    configure_logging(args.verbose, args.quiet, secrets)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command == "schema":
            _print_json(json_schema())
            return ExitCode.OK
        if args.command == "datasets":
            return run_datasets(args.json, environ)
        loaded = load_spec(args.spec, environ)
        secrets_of(loaded, environ, secrets)
        ctx = _Context(args, environ, secrets, loaded)
        # Nothing is silent while a command talks to the network (watch reports per run).
        beating = args.command in ("plan", "apply", "lock")
        with ctx.reporter.heartbeat(args.command) if beating else contextlib.nullcontext():
            return _COMMANDS[args.command](ctx, loaded)
    except MlhubSyncError as exc:
        _error(exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # what was kept, when apply knows
        print(f"mlhub-sync: interrupted{f': {exc}' if str(exc) else ''}", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # the reader left (`| head`): stop quietly
        silence_stdout()
        return ExitCode.FAILURES
    except Exception as exc:  # a bug: say so plainly, keep the traceback for -v
        log.info("internal error", exc_info=True)  # -v shows it (secrets scrubbed)
        _error(
            f"internal error: {scrub(repr(exc), secrets.values)} (this is a bug in "
            "mlhub-sync; run with -v for the traceback and report it)"
        )
        return ExitCode.INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
