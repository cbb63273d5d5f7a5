"""What a failed API call tells a user: a root that cannot be reached or has no such dataset is
said on one line with what to do, the retired Radiant MLHub API by name; an error page is cut
to a line (issue 12, C9)."""

from __future__ import annotations

import pytest

from mlhub_sync.config.sources import DEFAULT_ROOT_URL
from mlhub_sync.errors import CatalogError, SourceUnavailableError
from mlhub_sync.net.failures import excerpt
from mlhub_sync.sources.mlhub import RETIRED_HOSTS, unavailable

MIRROR = "https://mlhub.example.org/v1/"


def failure(error_class: str, status: int | None = None) -> CatalogError:
    return CatalogError(
        "sen12floods: fetch stac catalog failed after 2 attempt(s): connection error: refused",
        subject=f"{DEFAULT_ROOT_URL}catalog/sen12floods?key=***",
        status=status,
        error_class=error_class,
    )


def test_the_default_root_is_the_retired_api() -> None:
    assert "api.radiant.earth" in RETIRED_HOSTS and "api.radiant.earth" in DEFAULT_ROOT_URL


@pytest.mark.parametrize(
    ("root", "error", "says", "hint"),
    [
        (
            DEFAULT_ROOT_URL,
            failure("dns"),
            "cannot reach the Radiant MLHub API (retired in 2023) at "
            "https://api.radiant.earth/mlhub/v1/: the host name api.radiant.earth does not "
            "resolve",
            "sync sen12floods from where it is kept now: a source of type archive",
        ),
        (
            DEFAULT_ROOT_URL,
            failure("http-404", 404),
            "dataset sen12floods not found on the Radiant MLHub API (retired in 2023) at "
            "https://api.radiant.earth/mlhub/v1/ (HTTP 404)",
            "sync sen12floods from where it is kept now",
        ),
        (
            DEFAULT_ROOT_URL,
            failure("connection"),
            "cannot reach the Radiant MLHub API (retired in 2023) at "
            "https://api.radiant.earth/mlhub/v1/: fetch stac catalog failed after 2 "
            "attempt(s): connection error: refused",
            "sync sen12floods",
        ),
        (
            MIRROR,
            failure("http-410", 410),
            f"dataset sen12floods not found on {MIRROR} (HTTP 410)",
            "check the dataset id, or sync sen12floods",
        ),
        (
            MIRROR,
            failure("dns"),
            f"cannot reach {MIRROR}: the host name mlhub.example.org does not resolve",
            "check source.root_url (or $MLHUB_ROOT_URL), or sync sen12floods",
        ),
    ],
)
def test_an_api_that_cannot_serve_the_dataset_is_said_on_one_line(
    root: str, error: CatalogError, says: str, hint: str
) -> None:
    gone = unavailable(error, "sen12floods", root)
    assert isinstance(gone, SourceUnavailableError)
    assert gone.message == says
    assert gone.hint is not None and gone.hint.startswith(hint)
    assert "stac (of its catalog.json)" in gone.hint
    text = str(gone)
    assert "\n" not in text and text == f"{says}; {gone.hint}"
    assert ("retired in 2023" in text) == (root == DEFAULT_ROOT_URL)


@pytest.mark.parametrize(
    "error",
    [
        failure("http-500", 500),
        failure("http-401", 401),
        failure("html-response"),
        CatalogError("the archive is damaged"),
    ],
)
def test_other_failures_stand_as_they_are(error: CatalogError) -> None:
    assert unavailable(error, "sen12floods", DEFAULT_ROOT_URL) is None


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (
            "<!DOCTYPE html>\n<html><head>\n<title>404 Not\n Found</title></head>"
            "<body><h1>Not Found</h1>" + "<p>filler</p>\n" * 500 + "</body></html>",
            "404 Not Found",
        ),
        (
            "<html><style>p {color: red}</style><body>\n<p>no such\tdataset</p>"
            "<script>alert(1)</script></body></html>",
            "no such dataset",
        ),
        ('{"detail": "Not Found"}', '{"detail": "Not Found"}'),
        ("<title>\x1b[31mred &amp; bold</title>", "\\x1b[31mred & bold"),
        ("x" * 500, "x" * 119 + "…"),
        ("", ""),
    ],
)
def test_an_error_page_becomes_one_short_escaped_line(body: str, line: str) -> None:
    assert excerpt(body) == line
