"""The CLI (in-process): each command's output, exit codes, golden plan text and JSON,
and the API key never leaking anywhere."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.conftest import API_KEY, Hub, run_cli
from tests.support.server import Fault

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def normalise(text: str, tmp_path: Path, hub: Hub) -> str:
    return text.replace(str(tmp_path), "<tmp>").replace(hub.server.url, "<server>")


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_plan_text_and_json_match_golden_files(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(
        tmp_path / "spec.yaml",
        [
            {
                "id": "tiny",
                "datetime": {"start": "2019-04-01", "end": "2019-04-30"},
                "collection_filter": {"tiny_source": ["B02"], "tiny_labels": []},
            }
        ],
    )
    text = cli("plan", spec)
    assert text.code == 0, text.stderr
    check_golden("plan_tiny.txt", normalise(text.stdout, tmp_path, hub))
    as_json = cli("plan", spec, "--json")
    check_golden("plan_tiny.json", normalise(as_json.stdout, tmp_path, hub))
    data = as_json.json()
    assert data["format"] == "mlhub-sync.plan/1"
    dataset = data["datasets"][0]
    assert dataset["selection"]["excluded_items"] == {"time": 2, "no_time": 1}


def test_detailed_exitcode_reports_drift(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    assert cli("plan", spec, "--detailed-exitcode").code == 2
    assert cli("apply", spec, "-q").code == 0
    in_sync = cli("plan", spec, "--detailed-exitcode")
    assert in_sync.code == 0 and "No changes" in in_sync.stdout
    assert cli("plan", spec).code == 0  # without the flag, pending changes are not an error


def test_filters_that_select_nothing_are_not_an_error(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", [{"id": "tiny", "datetime": "1999-01-01"}])
    result = cli("plan", spec)
    assert result.code == 0
    assert "selected: 0 files" in result.stdout
    assert "the filters select nothing" in result.stdout
    assert "datetime 1999-01-01T00:00:00Z" in result.stdout


def test_status_and_verify_need_no_network(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    before = cli("status", spec)
    assert before.code == 0 and "not synced yet" in before.stdout
    assert cli("apply", spec, "-q").code == 0
    hub.server.clear_log()
    status = cli("status", spec, "--json").json()
    assert status["format"] == "mlhub-sync.status/1"
    assert status["datasets"][0]["actions"]["keep"]["files"] == 20
    victim = tmp_path / "out/tiny/tiny_labels/lbl_3/labels.geojson"
    victim.write_bytes(b"y" * victim.stat().st_size)
    fast = cli("verify", spec, "--json")
    assert fast.code == 1
    assert fast.json()["datasets"][0]["changed"] == 1
    deep = cli("verify", spec, "--deep")
    assert deep.code == 1 and "1 corrupt" in deep.stdout
    assert hub.server.requests == []
    plan = cli("plan", spec, "--json").json()
    assert plan["datasets"][0]["actions"]["replace"]["reasons"]["checksum-mismatch"]["files"] == 1
    assert cli("apply", spec, "-q").code == 0
    assert cli("verify", spec, "--deep").code == 0


def test_dataset_option_limits_the_run(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", [{"id": "tiny"}, {"id": "tiny", "output_dir": "b"}])
    result = cli("plan", spec, "--dataset", "nope")
    assert result.code == 64 and "nope" in result.stderr
    both = cli("plan", spec)
    assert both.stdout.count("tiny:") == 2


def test_unreachable_source_fails_that_dataset_only(tmp_path: Path, hub: Hub, cli: Any) -> None:
    spec = hub.spec(tmp_path / "spec.yaml", [{"id": "missing_ds"}, {"id": "tiny"}])
    result = cli("apply", spec)
    assert result.code == 1
    assert "missing_ds" in result.stderr and "HTTP 404" in result.stderr
    assert (tmp_path / "out/tiny/_common/documentation.pdf").is_file()


def test_wrong_key_is_a_clear_error_without_the_key(tmp_path: Path, hub: Hub) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    result = run_cli("plan", spec, cwd=tmp_path, env={"MLHUB_API_KEY": "not-the-key-999"})
    assert result.code == 1
    assert "HTTP 401" in result.stderr and "API key" in result.stderr
    assert "not-the-key-999" not in result.stderr + result.stdout


def test_the_api_key_never_appears_in_any_output_or_file(
    tmp_path: Path, hub: Hub, cli: Any
) -> None:
    spec = hub.spec(tmp_path / "spec.yaml")
    hub.server.add_fault("/blobs/tiny/src/src_1/B02.tif", Fault("status", status=404))
    outputs = []
    for args in (
        ("validate", spec, "--json"),
        ("plan", spec, "--json"),
        ("apply", spec),
        ("status", spec, "--json"),
        ("verify", spec, "--deep"),
        ("plan", spec),
    ):
        result = cli(*args, "-vv")
        outputs += [result.stdout, result.stderr]
    assert any("DEBUG" in text for text in outputs)  # -vv really logged details
    for text in outputs:
        assert API_KEY not in text
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    report = (tmp_path / "out/tiny/mlhub_errors.csv").read_text()
    assert "http-404" in report


def test_usage_errors_exit_64(tmp_path: Path) -> None:
    assert run_cli("plan", cwd=tmp_path).code == 64
    missing = run_cli("plan", tmp_path / "nope.yaml", cwd=tmp_path)
    assert missing.code == 64 and "no such file" in missing.stderr
