"""The Azurite test support itself: blobs preloaded into the workspace are what uploads
through the Blob API would have made (so a change of Azurite's format fails here, by name),
and a missing emulator is an error naming the install command, never a skip."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import azurite as support
from tests.support.azurite import Blob, Container, azurite

VOLATILE = re.compile(rb"<(Name|Etag|Creation-Time|Last-Modified|AccessTierChangeTime)>[^<]*</\1>")


def listing(service: support.Azurite, container: str) -> list[bytes]:
    status, body = service.request(
        "GET", container, {"restype": "container", "comp": "list"}, signed=False
    )
    assert status == 200, body
    return [VOLATILE.sub(b"", blob) for blob in re.findall(rb"<Blob>.*?</Blob>", body)]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.Azurite]:
    blobs = {"pre/md5.bin": Blob(b"same bytes"), "pre/none.bin": Blob(b"no md5", md5=None)}
    with azurite(tmp_path_factory.mktemp("ws"), [Container("box", True, blobs)]) as running:
        yield running


def test_preloaded_blobs_list_and_read_like_uploaded_ones(service: support.Azurite) -> None:
    service.put_blob("box", "up/md5.bin", Blob(b"same bytes"))
    service.put_blob("box", "up/none.bin", Blob(b"no md5", md5=None))
    pre, up = listing(service, "box")[:2], listing(service, "box")[2:]
    assert pre == up and len(pre) == 2
    assert b"<Content-MD5>" in pre[0] and b"<Content-MD5>" not in pre[1]
    assert service.request("GET", "box/pre/md5.bin", signed=False) == (200, b"same bytes")


def test_a_missing_emulator_is_an_error_naming_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURITE_BLOB", raising=False)
    monkeypatch.setattr(support, "REPO", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"npm install --prefix \.ci/node"):
        support.azurite_binary()


def test_the_access_log_holds_every_request_answered(service: support.Azurite) -> None:
    before = service.requests()
    assert service.request("GET", "box/pre/none.bin", signed=False) == (200, b"no md5")
    assert service.requests()[len(before) :] == [("GET", "/devstoreaccount1/box/pre/none.bin", 200)]
