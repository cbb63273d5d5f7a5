"""A source's ``headers:`` and ``sign:`` from the spec to the network layer
(config/access.py): interpolated, checked, sent to the source's own origins, secret."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.config.access import access_secrets, source_headers, transfer_signer
from mlhub_sync.config.resolve import load_spec
from mlhub_sync.errors import SpecError
from mlhub_sync.net.client import Http
from mlhub_sync.net.planetary import PlanetaryComputer
from mlhub_sync.net.signing import Chain, SourceHeaders


def source_of(tmp_path: Path, source: str, environ: dict[str, str] | None = None) -> Any:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: 1\ndatasets:\n  - id: ds\n    source:\n"
        + textwrap.indent(textwrap.dedent(source).strip(), "      ")
        + "\n"
    )
    return load_spec(spec, environ or {}).datasets[0].source


SOURCES = {
    "stac": ("type: stac\nurl: https://cat.example/stac/catalog.json", "https://cat.example/x"),
    "stac-api": ("type: stac-api\nurl: https://api.example/v1", "https://api.example/search"),
    "archive": ("type: archive\nurl: https://files.example/a.tar.gz", "https://files.example/"),
    "mlhub": ("root_url: https://hub.example/mlhub/v1/", "https://hub.example/other"),
    "azure": ("type: azure\naccount: acct\ncontainer: c", "https://acct.blob.core.windows.net/c/k"),
    "s3": (
        "type: s3\nbucket: b\nendpoint: https://data.source.coop",
        "https://data.source.coop/b/k",
    ),
}


@pytest.mark.parametrize(("source", "own"), SOURCES.values(), ids=SOURCES.keys())
def test_headers_are_interpolated_and_sent_to_the_sources_own_origin_only(
    tmp_path: Path, source: str, own: str
) -> None:
    spec = source_of(tmp_path, source + "\nheaders: {X-Api-Key: '${TOKEN}'}", {"TOKEN": "t0k3n"})
    headers = source_headers(spec, {})
    assert headers.for_url(own) == {"X-Api-Key": "t0k3n"}
    assert headers.for_url("https://elsewhere.example/x") == {}
    assert "t0k3n" not in repr(spec)  # a SecretStr: never printed
    assert access_secrets(spec, {}) == ["t0k3n"]


def test_a_bearer_token_is_a_secret_on_its_own_too(tmp_path: Path) -> None:
    spec = source_of(tmp_path, "type: stac-api\nurl: https://a.example\n"
                     "headers: {Authorization: Bearer abc123}")  # fmt: skip
    assert access_secrets(spec, {}) == ["Bearer abc123", "abc123"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ("{'Bad Name': x}", "is not a header name"),
        ("{Range: 'bytes=0-'}", "sets this header itself"),
        ('{X-Key: "a\\r\\nX-Evil: 1"}', "cannot hold a line break"),
    ],
)
def test_unusable_headers_are_refused_without_echoing_the_value(
    tmp_path: Path, headers: str, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        source_of(tmp_path, f"type: stac-api\nurl: https://a.example\nheaders: {headers}")
    assert message in str(caught.value)
    assert "X-Evil" not in str(caught.value) and "bytes=0-" not in str(caught.value)


def test_the_transfer_signer_follows_the_spec(tmp_path: Path) -> None:
    plain = source_of(tmp_path, "type: stac-api\nurl: https://a.example")
    assert transfer_signer(plain, Http(), {}) is None
    headers = source_of(tmp_path, "type: stac-api\nurl: https://a.example\nheaders: {X-K: v123}")
    assert isinstance(transfer_signer(headers, Http(), {}), SourceHeaders)
    both = source_of(
        tmp_path,
        "type: stac-api\nurl: https://a.example\nheaders: {X-K: v123}\nsign: planetary-computer",
    )
    http = Http()
    signer = transfer_signer(both, http, {"PC_SDK_SUBSCRIPTION_KEY": "sub-key-1"})
    assert isinstance(signer, Chain) and isinstance(signer.signers[0], PlanetaryComputer)
    assert signer.signers[0].sas_url == "https://planetarycomputer.microsoft.com/api/sas/v1/token"
    assert "sub-key-1" in http.secrets  # scrubbed from the token request's errors
    assert "sub-key-1" in access_secrets(both, {"PC_SDK_SUBSCRIPTION_KEY": "sub-key-1"})
