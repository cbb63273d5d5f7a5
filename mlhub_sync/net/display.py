"""Text from a catalog, made safe for where people look at it: pure functions.

Ids, keys, hrefs and member names come from catalogs nobody vetted. On a terminal an escape
sequence in an id can retitle, recolour or rewrite what the screen shows; in a spreadsheet a
CSV cell that starts with ``=`` (``=cmd|' /C calc'!A0``) runs as a formula. So:

- :func:`terminal_safe` escapes control characters (C0, DEL, C1, and the Unicode line
  separators and bidirectional overrides that reorder or break what is shown) as ``\\xNN`` /
  ``\\uNNNN``, the way Python's ``repr`` shows them; ``keep_newlines`` leaves ``\\n`` for text
  that is ours and has lines (a log message, an error with its hint);
- :func:`csv_cell` neutralises a cell a spreadsheet would read as a formula (one starting with
  ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, or their full-width forms) by putting
  a ``'`` in front, as OWASP recommends, and escapes control characters (newlines too: a
  report is read with ``cat`` as often as with a spreadsheet).
"""

from __future__ import annotations

import re

# C0 (tab, CR and LF included), DEL, C1, line/paragraph separators, bidi embeddings,
# overrides and isolates, and the byte-order mark / zero-width no-break space.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_CONTROL_BUT_NEWLINE = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control characters escaped (``"\\x1b]0;pwned"`` -> ``"\\\\x1b]0;pwned"``)."""
    pattern = _CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL
    if text.isprintable() and not keep_newlines:
        return text  # the common case, no regex (isprintable is False for every control)
    return pattern.sub(_escape, text)


# What makes Excel, LibreOffice or Google Sheets read a cell as a formula (or DDE command).
_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def csv_cell(text: str) -> str:
    """``text`` as a CSV cell no spreadsheet runs: ``=1+1`` -> ``'=1+1``; controls escaped."""
    if text[:1] in _FORMULA_START:
        text = "'" + text
    return terminal_safe(text)
