"""The dead API: the default source is the Radiant MLHub API, retired in 2023. A new user's
first ``apply`` of ``datasets: [{id: bigearthnet_v1}]`` (an id the registry of where the
MLHub datasets went does not know) says in one line what happened and what to
do, fast; a 404 says the dataset is not found, without the server's page; ``plan --json`` is
a document with the error per dataset (issue 12, C9). No test here needs the internet."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.errors import CatalogError, ExitCode
from mlhub_sync.net.client import Http
from mlhub_sync.net.retry import RetryPolicy
from tests.conftest import Hub
from tests.support.server import TestServer

PAGE = (
    b"<!DOCTYPE html>\n<html>\n<head><title>404 Not Found</title></head>\n<body>\n"
    + b"<p>There is nothing here.</p>\n" * 200
    + b"<p>\x1b[31mred</p></body></html>\n"
)


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening (held, so no other
    process takes it meanwhile)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mlhub-sync: error")]


def test_a_root_whose_name_does_not_resolve_fails_fast_on_one_line(
    tmp_path: Path, cli: Any
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "datasets: [{id: sen12floods, source: {type: mlhub, root_url: 'https://mlhub.invalid/v1/'}}]\n"
    )
    started = time.monotonic()
    result = cli("apply", spec)
    assert time.monotonic() - started < 5  # the name is tried twice, not nine times
    assert result.code == ExitCode.FAILURES
    assert result.stderr.splitlines() == error_lines(result.stderr)  # nothing else
    (line,) = error_lines(result.stderr)
    assert line.startswith(
        "mlhub-sync: error: sen12floods (datasets[0]): cannot reach https://mlhub.invalid/v1/: "
        "the host name mlhub.invalid does not resolve; check source.root_url"
    )
    assert "a source of type archive" in line and ", stac (" in line
    assert line.endswith("`mlhub-sync datasets` lists where the former MLHub datasets went")


def test_the_default_root_says_the_api_was_retired_and_where_to_go(
    tmp_path: Path, cli: Any, refusing_port: int
) -> None:
    # The spec names no source and the id is not in the registry of where the MLHub datasets
    # went: the default root, https://api.radiant.earth/mlhub/v1/. Every request goes to a
    # proxy on a local port that refuses it, so no byte leaves this machine.
    proxy = f"http://127.0.0.1:{refusing_port}"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "defaults: {retry: {backoff: 0.01, max_backoff: 0.01}}\ndatasets: [{id: bigearthnet_v1}]\n"
    )
    env = {name: proxy for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")}
    result = cli("apply", spec, env={**env, "no_proxy": "", "NO_PROXY": ""})
    assert result.code == ExitCode.FAILURES
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "mlhub-sync: error: bigearthnet_v1 (datasets[0]): cannot reach the Radiant MLHub API "
        "(retired in 2023) at https://api.radiant.earth/mlhub/v1/: "
    )
    assert line.endswith(
        "; sync bigearthnet_v1 from where it is kept now: a source of type archive (url or path "
        "of its .tar.gz), stac (of its catalog.json), stac-api, s3 or azure, see the README's "
        "Sources; `mlhub-sync datasets` lists where the former MLHub datasets went"
    )


@pytest.fixture
def page_404(tmp_path: Path) -> Iterator[TestServer]:
    """A server answering every API path with a 404 and a long HTML page."""
    with TestServer(tmp_path / "served") as server:
        for path in ("/api/catalog/sen12floods", "/api/datasets/sen12floods", "/stac.json"):
            server.add_stream_route(
                path,
                lambda stopping: iter([PAGE]),
                framing="length",
                length=len(PAGE),
                headers={"Content-Type": "text/html"},
                status=404,
            )
        yield server


def test_a_404_says_the_dataset_is_not_found_without_the_servers_page(
    tmp_path: Path, cli: Any, page_404: TestServer
) -> None:
    spec = tmp_path / "spec.yaml"
    root = f"{page_404.url}/api/"
    spec.write_text(
        f"datasets: [{{id: sen12floods, source: {{type: mlhub, root_url: '{root}'}}}}]\n"
    )
    result = cli("apply", spec)
    assert result.code == ExitCode.FAILURES
    (line,) = error_lines(result.stderr)
    assert line.startswith(
        f"mlhub-sync: error: sen12floods (datasets[0]): dataset sen12floods not found on {root} "
        "(HTTP 404); check the dataset id"
    )
    assert "<" not in result.stderr and "\x1b" not in result.stderr


def test_an_error_page_is_cut_to_its_title(tmp_path: Path, cli: Any, page_404: TestServer) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"datasets: [{{id: s, source: {{type: stac, url: '{page_404.url}/stac.json'}}}}]\n"
    )
    result = cli("plan", spec)
    assert result.code == ExitCode.FAILURES
    (line,) = error_lines(result.stderr)
    assert line.endswith("fetch STAC document failed: HTTP 404: 404 Not Found")
    assert "nothing here" not in result.stderr and "\x1b" not in result.stderr


def test_plan_json_is_a_document_with_the_error_per_dataset(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    dead = {"type": "mlhub", "root_url": "https://mlhub.invalid/v1/"}
    spec = hub.spec(tmp_path / "spec.yaml", [{"id": "sen12floods", "source": dead}, {"id": "tiny"}])
    for command in ("plan", "apply"):
        result = cli(command, spec, "--json")
        assert result.code == ExitCode.FAILURES
        first, second = result.json()["datasets"]
        assert (first["id"], first["index"], second["id"], second["index"]) == (
            "sen12floods",
            0,
            "tiny",
            1,
        )
        assert first["dataset_dir"] == str(tmp_path / "out" / "sen12floods")
        assert first["error"]["message"] == (
            "cannot reach https://mlhub.invalid/v1/: the host name mlhub.invalid does not resolve"
        )
        assert first["error"]["hint"].startswith("check source.root_url")
        assert (first["error"]["exit_code"], first["error"]["error_class"]) == (1, "dns")
        assert "actions" not in first  # a dataset without a plan has no plan fields
        assert second["error"] is None and second["actions"]["download"]["files"] > 0
        assert len(error_lines(result.stderr)) == 1  # and people still read it on stderr


def test_the_api_client_says_a_dead_name_in_words_after_one_retry() -> None:
    http = Http()  # the default retry policy: the name is retried once, within a second
    started = time.monotonic()
    with pytest.raises(CatalogError) as caught:
        http.get("http://no-such-host.invalid/api/datasets/x", what="look up dataset 'x'")
    assert time.monotonic() - started < 3
    assert caught.value.message == (
        "look up dataset 'x' failed after 2 attempt(s): the host name no-such-host.invalid "
        "does not resolve"
    )
    assert caught.value.error_class == "dns"


def test_the_api_client_says_a_refused_connection_in_words(refusing_port: int) -> None:
    url = f"http://127.0.0.1:{refusing_port}/api/datasets/x"
    with pytest.raises(CatalogError) as caught:
        Http(policy=RetryPolicy(max_retries=0)).get(url)
    assert caught.value.message == (
        "request failed after 1 attempt(s): cannot connect: Connection refused"
    )
    assert caught.value.error_class == "connection"
