"""Secrets are redacted by the parameter's parsed and decoded name, wherever the URL is: as a
URL, nested in another URL's query, or inside free text (a log line, an exception)."""

from __future__ import annotations

import logging

import pytest

from mlhub_sync.net.redact import SecretFilter, redact_text, redact_url, scrub
from mlhub_sync.stac.href import href_identity

# (url, redacted): every secret below is spelled SECRET, so a leak is easy to see.
URLS = [
    # the cases redaction always handled
    ("https://api/x?key=SECRET", "https://api/x?key=***"),
    ("https://h/b.tif?sv=2021-06-08&sig=SECRET", "https://h/b.tif?sv=2021-06-08&sig=***"),
    ("https://h/b?X-Amz-Credential=SECRET&X-Amz-Signature=SECRET",
     "https://h/b?X-Amz-Credential=***&X-Amz-Signature=***"),
    ("https://user:SECRET@h/b", "https://***@h/b"),
    ("https://h/b?API_KEY=SECRET&page=2", "https://h/b?API_KEY=***&page=2"),
    ("https://h/b?x=1&y=2", "https://h/b?x=1&y=2"),
    ("https://h/b", "https://h/b"),
    ("not a url", "not a url"),
    # a ;-separated signature
    ("https://h/b?a=1;sig=SECRET", "https://h/b?a=1;sig=***"),
    ("https://h/b?sv=1;se=2;sig=SECRET;sp=r", "https://h/b?sv=1;se=2;sig=***;sp=r"),
    # an encoded parameter name (once, twice, upper-case hex)
    ("https://h/b?a=1&%73ig=SECRET", "https://h/b?a=1&%73ig=***"),
    ("https://h/b?%2573ig=SECRET", "https://h/b?%2573ig=***"),
    ("https://h/b?%4B%45%59=SECRET", "https://h/b?%4B%45%59=***"),
    # a signed URL nested (percent-encoded) in another URL's query
    ("https://h/r?to=https%3A%2F%2Fs%2Fb%3Fsv%3D1%26sig%3DSECRET&n=2",
     "https://h/r?to=https://s/b%3Fsv%3D1%26sig%3D***&n=2"),
    ("https://h/r?to=https%253A%252F%252Fs%252Fb%253Fsig%253DSECRET",
     "https://h/r?to=https://s/b%3Fsig%3D***"),
    ("https://h/r?next=%2Fpath%3Ftoken%3DSECRET", "https://h/r?next=/path%3Ftoken%3D***"),
    ("https://h/r?to=https%3A%2F%2Fu%3ASECRET%40s%2Fb", "https://h/r?to=https://***@s/b"),
    # a token in the fragment (OAuth's implicit flow)
    ("https://h/cb#access_token=SECRET&state=1", "https://h/cb#access_token=***&state=1"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "redacted"), URLS)
def test_a_url_is_redacted_by_decoded_parameter_name(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@pytest.mark.parametrize(("url", "redacted"), URLS)
def test_the_same_url_inside_free_text_is_redacted_too(url: str, redacted: str) -> None:
    text = redact_text(f"GET {url} failed: 403")
    assert "SECRET" not in text
    assert text.startswith("GET ") and text.endswith(" failed: 403")


@pytest.mark.parametrize(
    "text",
    [
        "curl: (22) https://h/b?a=1;sig=SECRET returned 403",
        "redirected to https%3A%2F%2Fh%2Fb%3Fa%3D1%26sig%3DSECRET (a quoted URL)",
        "<Error>https://h/b?a=1&amp;sig=SECRET</Error>",
        "'https://h/b?%73ig=SECRET'",
        "fetch https://me:SECRET@h/b",
    ],
)
def test_secrets_in_messages_are_masked(text: str) -> None:
    assert "SECRET" not in redact_text(text)
    assert "SECRET" not in scrub(text, ())


def test_text_without_a_secret_is_unchanged() -> None:
    text = "item a=1 b=2: 50% done, see https://h/b?page=3&size=10"
    assert redact_text(text) == text


def test_the_lock_identity_drops_a_semicolon_separated_signature() -> None:
    assert href_identity("https://h/b.tif?v=1;sig=SECRET") == "https://h/b.tif?v=1"
    assert href_identity("https://h/b.tif?v=1&%73ig=SECRET") == "https://h/b.tif?v=1"
    assert href_identity("https://h/b.tif?v=1&sig=SECRET") == "https://h/b.tif?v=1"
    assert href_identity("https://h/b.tif?v=a+b&x=%2F") == "https://h/b.tif?v=a+b&x=%2F"


def test_the_log_filter_masks_every_gap() -> None:
    record = logging.LogRecord("mlhub_sync", logging.DEBUG, __file__, 1, "GET %s %s %s", None, None)
    record.args = (
        "https://h/b?a=1;sig=SECRET",
        "https://h/r?to=https%3A%2F%2Fs%2Fb%3Fsig%3DSECRET",
        "https://h/b?%73ig=SECRET",
    )
    SecretFilter().filter(record)
    assert "SECRET" not in record.getMessage()
    assert record.getMessage().count("***") == 3
