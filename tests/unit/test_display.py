"""Catalog text is shown safely: control characters escaped for a terminal, and no CSV cell a
spreadsheet would run as a formula."""

from __future__ import annotations

import pytest

from mlhub_sync.net.display import csv_cell, terminal_safe


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("sen12floods_s2_source", "sen12floods_s2_source"),
        ("résumé – ünïcode ✓", "résumé – ünïcode ✓"),
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # retitles the terminal
        ("red\x1b[31m", "red\\x1b[31m"),  # recolours it
        ("a\x9b31mb", "a\\x9b31mb"),  # C1 CSI: the same in one byte
        ("line\nINFO: forged", "line\\x0aINFO: forged"),  # an id may not forge a log line
        ("cr\roverwrite", "cr\\x0doverwrite"),
        ("tab\tdel\x7f", "tab\\x09del\\x7f"),
        ("bidi \u202egnp.exe", "bidi \\u202egnp.exe"),  # reorders what is shown
        ("sep\u2028x", "sep\\u2028x"),
    ],
)
def test_control_characters_are_escaped(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown


def test_our_own_newlines_can_be_kept() -> None:
    assert terminal_safe("a\nb\x1b[2J", keep_newlines=True) == "a\nb\\x1b[2J"


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("B02", "B02"),
        ("https://h/b.tif", "https://h/b.tif"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\\x09=1"),
        ("\r=1", "'\\x0d=1"),
        ("\uff1d1+1", "'\uff1d1+1"),  # a full-width '=' that some spreadsheets honour
        ("a=b", "a=b"),  # only a leading sign makes a formula
        ("x\x1b[31m", "x\\x1b[31m"),  # `cat mlhub_errors.csv` must not colour the terminal
        ("two\nlines", "two\\x0alines"),  # `cat` would show a forged line
        ("", ""),
    ],
)
def test_csv_cells_never_start_a_formula(cell: str, written: str) -> None:
    assert csv_cell(cell) == written
