"""What the CLI process shows on its terminal: the one log handler (records made safe:
control characters escaped, secrets scrubbed; catalog text reaches log lines as arguments,
``log.warning("%s left out", key)``), the progress reporter, and a quiet end when stdout's
reader has left."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from mlhub_sync.net.display import terminal_safe
from mlhub_sync.net.redact import SecretFilter
from mlhub_sync.progress import LogReporter, NullReporter, Reporter, TqdmReporter

PROGRESS = "mlhub_sync.progress"  # the progress lines' logger


class EscapeArguments(logging.Filter):
    """Escapes control characters in a record's text arguments, newlines too: they are ids,
    keys, paths and hrefs from a catalog, and one must not forge a log line or reach the
    terminal as an escape sequence. (The formatter escapes the rest, but newlines.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(terminal_safe(a) if isinstance(a, str) else a for a in record.args)
        return True


class TerminalFormatter(logging.Formatter):
    """A formatter whose output has every control character escaped but newlines.

    Without ``-v`` a progress line is shown as it is (``tiny: download assets: 6/11 files``),
    not as an ``INFO:`` record: it is the run's output, not a log message."""

    def __init__(self, fmt: str, *, plain_progress: bool = False):
        super().__init__(fmt)
        self.plain_progress = plain_progress

    def format(self, record: logging.LogRecord) -> str:
        if self.plain_progress and record.name == PROGRESS and record.levelno == logging.INFO:
            return terminal_safe(record.getMessage(), keep_newlines=True)
        return terminal_safe(super().format(record), keep_newlines=True)


def configure_logging(verbose: int, quiet: bool, secrets: SecretFilter) -> None:
    """The CLI's one log handler on stderr: levels by -v/-q, escaped, secrets scrubbed."""
    level = (
        logging.ERROR
        if quiet
        else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        TerminalFormatter(
            "%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s",
            plain_progress=not verbose,
        )
    )
    handler.addFilter(EscapeArguments())  # before the secret filter merges the arguments
    handler.addFilter(secrets)
    root = logging.getLogger("mlhub_sync")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # Progress lines are the point of a non-interactive run: show them unless --quiet.
    logging.getLogger(PROGRESS).setLevel(logging.ERROR if quiet else logging.INFO)
    if verbose >= 2:
        for name in ("urllib3", "requests"):
            other = logging.getLogger(name)
            other.handlers[:] = [handler]
            other.setLevel(logging.DEBUG)


def choose_reporter(quiet: bool, environ: Mapping[str, str], interval: float = 10.0) -> Reporter:
    """Bars on a terminal, plain progress lines (one at least every ``interval`` seconds)
    elsewhere, nothing with --quiet."""
    if quiet:
        return NullReporter()
    if sys.stderr.isatty() and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb":
        return TqdmReporter(sys.stderr)
    return LogReporter(interval)


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush into the closed pipe does
    not print a second BrokenPipeError at exit."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (captured in a test): nothing will flush into a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
