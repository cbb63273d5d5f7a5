"""Log records made safe for a terminal: control characters escaped (the CLI's handler uses
both). Catalog text reaches log lines as arguments (``log.warning("%s left out", key)``)."""

from __future__ import annotations

import logging

from mlhub_sync.net.display import terminal_safe


class EscapeArguments(logging.Filter):
    """Escapes control characters in a record's text arguments, newlines too: they are ids,
    keys, paths and hrefs from a catalog, and one must not forge a log line or reach the
    terminal as an escape sequence. (The formatter escapes the rest, but newlines.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(terminal_safe(a) if isinstance(a, str) else a for a in record.args)
        return True


class TerminalFormatter(logging.Formatter):
    """A formatter whose output has every control character escaped but newlines."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record), keep_newlines=True)
