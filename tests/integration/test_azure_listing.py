"""The azure source's lister against a real Blob service (Azurite on 127.0.0.1): a public
container over more than one 5,000-blob page, a prefix, Content-MD5 present and absent, a
private container that refuses anonymous listing and lists with a SAS token (which appears in
nothing it returns or raises), and listings that are not Azure's (a TestServer) refused
with the URL and the fix."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydantic import SecretStr

from mlhub_sync.config.credentials import resolve_sas_token as sas_token
from mlhub_sync.config.sources import AzureSource
from mlhub_sync.errors import CatalogError, SourceAuthError
from mlhub_sync.net.client import Http
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.sources.azure import container_url, list_blobs, sas_signer
from tests.support.azurite import Azurite, Blob, Container, account_sas, azurite
from tests.support.server import TestServer

CHIPS = 5_100  # more than Azure's 5,000 a page: the listing must follow NextMarker
FAST = RetryPolicy(max_retries=1, backoff=0.01, max_backoff=0.02)


def chip(i: int) -> bytes:
    return b"chip %05d " % i * (1 + i % 3)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    public = {f"train_features/{i:05d}/B02.tif": Blob(chip(i)) for i in range(CHIPS)}
    public["labels/no-md5.tif"] = Blob(b"no checksum here", md5=None)
    public["labels/with md5 & space.tif"] = Blob(b"with one")
    private = {"secret/a.tif": Blob(b"private a"), "secret/b.tif": Blob(b"private b")}
    preload = [Container("public", True, public), Container("private", False, private)]
    with azurite(tmp_path_factory.mktemp("azurite"), preload) as running:
        yield running


def spec(service: Azurite, container: str, **extra: object) -> AzureSource:
    return AzureSource(
        type="azure", account="devstoreaccount1", container=container,
        endpoint=service.endpoint, **extra,
    )  # fmt: skip


def test_a_public_container_lists_every_blob_across_pages_in_name_order(service: Azurite) -> None:
    url = container_url(spec(service, "public"))
    listed = list(list_blobs(Http(policy=FAST), url, "train_features/"))
    assert len(listed) == CHIPS
    assert [o.key for o in listed] == [f"{i:05d}/B02.tif" for i in range(CHIPS)]
    last = listed[-1]
    assert last.size == len(chip(CHIPS - 1))
    assert last.md5 == hashlib.md5(chip(CHIPS - 1)).hexdigest()
    assert last.url == f"{url}/train_features/{CHIPS - 1:05d}/B02.tif"
    assert last.etag is not None and last.etag.startswith('"0x')
    assert last.last_modified is not None and last.last_modified.endswith("Z")
    assert requests.get(last.url, timeout=5).content == chip(CHIPS - 1)  # unsigned, anonymous


def test_small_pages_list_the_same_blobs_as_full_ones(service: Azurite) -> None:
    url = container_url(spec(service, "public"))
    small = [o.key for o in list_blobs(Http(), url, "train_features/000", page_size=7)]
    assert small == [f"{i:02d}/B02.tif" for i in range(100)]  # keys relative to the prefix


def test_a_prefix_lists_only_its_blobs_with_content_md5_where_the_blob_has_one(
    service: Azurite,
) -> None:
    listed = {
        o.key: o for o in list_blobs(Http(), container_url(spec(service, "public")), "labels")
    }
    assert sorted(listed) == ["no-md5.tif", "with md5 & space.tif"]
    assert listed["no-md5.tif"].md5 is None
    assert listed["with md5 & space.tif"].md5 == hashlib.md5(b"with one").hexdigest()
    url = listed["with md5 & space.tif"].url
    assert url.endswith("/labels/with%20md5%20%26%20space.tif")
    assert requests.get(url, timeout=5).content == b"with one"


def test_a_private_container_refuses_anonymous_listing_and_says_to_give_a_sas_token(
    service: Azurite,
) -> None:
    with pytest.raises(SourceAuthError) as caught:
        list(list_blobs(Http(policy=FAST), container_url(spec(service, "private"))))
    assert "403" in str(caught.value)
    assert "/devstoreaccount1/private" in str(caught.value)
    assert "source.sas_token" in (caught.value.hint or "")


def test_a_sas_token_lists_a_private_container_and_appears_in_nothing_returned(
    service: Azurite,
) -> None:
    token = account_sas("rl")
    source = spec(service, "private", sas_token=SecretStr(token))
    sas = sas_token(source, {})
    listed = list(list_blobs(Http(), container_url(source), "secret/", sas=sas))
    assert [o.key for o in listed] == ["a.tif", "b.tif"]
    signature = dict(p.split("=", 1) for p in token.split("&"))["sig"]
    for obj in listed:
        assert "sig" not in obj.url and signature not in repr(obj)
        assert requests.get(obj.url, timeout=5).status_code == 403  # unsigned: refused
    signer = sas_signer(source, {})
    assert signer is not None
    assert requests.get(signer(listed[0].url), timeout=5).content == b"private a"
    versioned = signer(listed[0].url + "#etag=0x1")  # the index's href carries its ETag
    assert versioned.endswith("#etag=0x1") and "&sig=" in versioned.split("#")[0]
    other = "https://elsewhere.example/private/secret/a.tif"
    assert signer(other) == other  # the token goes to this container only


def test_a_token_without_list_permission_is_refused_naming_its_permissions_not_its_signature(
    service: Azurite,
) -> None:
    token = account_sas("r")
    source = spec(service, "private", sas_token=SecretStr(token))
    sas = sas_token(source, {})
    with pytest.raises(SourceAuthError) as caught:
        list(list_blobs(Http(policy=FAST), container_url(source), sas=sas))
    text = f"{caught.value}"
    assert "sp=r" in text and "list (l)" in text
    signature = dict(p.split("=", 1) for p in token.split("&"))["sig"]
    assert "sig=" not in text and signature not in text


@pytest.mark.parametrize(
    ("token", "environ", "message"),
    [
        ("sv=2021-08-06&sp=rl&se=2099-01-01T00:00:00Z", {}, "no signature"),
        ("sv=2021-08-06&sp=rl&se=2001-01-01T00:00:00Z&sig=abc", {}, "expired at 2001-01-01"),
        (None, {"AZURE_STORAGE_SAS_TOKEN": "sp=rl&se=2001-01-01&sig=abc"}, "expired"),
    ],
)
def test_an_unusable_sas_token_is_refused_before_any_request(
    token: str | None, environ: dict[str, str], message: str
) -> None:
    source = AzureSource(
        type="azure", account="a", container="c",
        sas_token=SecretStr(token) if token is not None else None,
    )  # fmt: skip
    with pytest.raises(CatalogError, match=message) as caught:
        sas_token(source, environ)
    assert caught.value.subject == ("source.sas_token" if token else "$AZURE_STORAGE_SAS_TOKEN")
    assert "abc" not in str(caught.value)


def test_the_environment_token_is_used_when_the_spec_has_none_and_a_pasted_plus_stays_a_plus() -> (
    None
):
    source = AzureSource(type="azure", account="a", container="c")
    env = {"AZURE_STORAGE_SAS_TOKEN": "?sv=2021-08-06&sp=rl&sig=ab+c/d%3D"}
    assert sas_token(source, env) == "sv=2021-08-06&sp=rl&sig=ab%2Bc%2Fd%3D"
    assert sas_token(source, {}) is None


PAGE = (
    '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="c"><Blobs>'
    "{blobs}</Blobs><NextMarker>{marker}</NextMarker></EnumerationResults>"
)
BLOB = "<Blob><Name>{name}</Name><Properties>{props}</Properties></Blob>"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            "<html><head><title>Sign in</title></head><body>portal</body></html>",
            "element is <html>",
        ),
        ("<!doctype html><html><body><p>Sign in<br></body></html>", "an HTML page"),
        ('{"detail": "not here"}', "not XML"),
        (
            '<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
            "<EnumerationResults><Blobs><Blob><Name>&b;</Name></Blob></Blobs></EnumerationResults>",
            "DTD or entities",
        ),
        ("<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>", "root element"),
        (PAGE.format(blobs=BLOB.format(name="p/a.tif", props=""), marker=""), "Content-Length"),
        (
            PAGE.format(
                blobs=BLOB.format(name="p/a.tif", props="<Content-Length>-5</Content-Length>"),
                marker="",
            ),
            "Content-Length",
        ),
        (PAGE.format(blobs="<Blob><Properties/></Blob>", marker=""), "no <Name>"),
        (
            PAGE.format(
                blobs=BLOB.format(name="p/a.tif", props="<Content-Length>1</Content-Length>"),
                marker="m1",
            ),
            "repeats its page",
        ),
        (
            PAGE.format(
                blobs=BLOB.format(name="../up.tif", props="<Content-Length>1</Content-Length>"),
                marker="",
            ),
            "outside it",
        ),
    ],
)
def test_a_listing_that_is_not_azures_is_refused_naming_the_url_and_the_fix(
    tmp_path: Path, body: str, why: str
) -> None:
    data = body.encode()
    with TestServer(tmp_path) as server:
        server.add_stream_route(
            "/acct/c", lambda _stop: [data], framing="length", length=len(data),
            headers={"Content-Type": "application/xml"},
        )  # fmt: skip
        token = "sv=2021-08-06&sp=rl&sig=SECRETSIG"
        with pytest.raises(CatalogError) as caught:
            list(list_blobs(Http(policy=FAST), f"{server.url}/acct/c", "p/", sas=token))
        text = str(caught.value)
        assert why in text
        assert caught.value.subject == f"{server.url}/acct/c"
        assert "SECRETSIG" not in text
        if why != "repeats its page" and why != "outside it":
            assert "source.endpoint must be an Azure Blob service" in (caught.value.hint or "")
        assert server.requests[0].query["sig"] == "SECRETSIG"  # it was sent, just never shown


def test_a_container_that_does_not_exist_is_named_with_the_fields_to_check(
    service: Azurite,
) -> None:
    url = container_url(spec(service, "nosuchcontainer"))
    with pytest.raises(CatalogError) as caught:  # anonymous, Azurite answers 403; signed, 404
        list(list_blobs(Http(policy=FAST), url, sas=account_sas("rl")))
    assert caught.value.status == 404
    assert "/devstoreaccount1/nosuchcontainer" in str(caught.value)
    assert "source.container" in (caught.value.hint or "")
