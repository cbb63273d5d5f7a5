"""Prune deletes only when a run went cleanly and the selection is known to be complete."""

from __future__ import annotations

import pytest

from mlhub_sync.apply.prune import prune_refusal


@pytest.mark.parametrize(
    ("errors", "invalid", "refused"),
    [
        (False, 0, None),
        (True, 0, "not pruning after a run with errors"),
        (False, 2, "not pruning: 2 catalog documents could not be read"),
        (True, 2, "not pruning after a run with errors"),
    ],
    ids=["clean run", "failures", "unreadable documents", "both"],
)
def test_prune_is_refused_unless_the_run_was_clean(
    errors: bool, invalid: int, refused: str | None
) -> None:
    why = prune_refusal(run_had_errors=errors, invalid_documents=invalid)
    if refused is None:
        assert why is None
    else:
        assert why is not None and why.startswith(refused)
