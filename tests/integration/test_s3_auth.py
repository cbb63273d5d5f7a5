"""The s3 source with credentials, against a private bucket: moto_server holds it, a verifying
front before it (tests/support/sigv4_front.py) recomputes every presigned URL with botocore's
signer and refuses what S3 would refuse. Credentials from the environment and from a
credentials-file profile, a wrong secret refused, ``anonymous: true`` unsigned, the secrets
and signatures in no file, log, JSON or lock, an expired presign renewed, a refreshed
credentials file read again, HEADs signed as HEADs, requester pays, odd keys."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from mlhub_sync.config.aws import s3_presigner
from mlhub_sync.config.sources import S3Source
from mlhub_sync.errors import ExitCode
from mlhub_sync.net.retry import RetryPolicy
from mlhub_sync.net.signing import Signer
from mlhub_sync.transfer.curl import CurlDriver
from mlhub_sync.transfer.ops import FetchState, TransferRequest, TransferResult
from mlhub_sync.transfer.rules import Transfers
from tests.support.moto_s3 import REGION, MotoS3, content
from tests.support.sigv4_front import SigV4Front

BUCKET = "private-data"
PAYERS = "payers"

KEY_ID, SECRET, TOKEN = "AKIDENVTESTS", "env+secret/Value=1", "session/token+Value==2"
FILE_KEY_ID, FILE_SECRET = "AKIDFILETESTS", "file-secret-Value-3"
NEW_KEY_ID, NEW_SECRET = "AKIDROTATEDTESTS", "rotated-secret-Value-4"

ENV = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN}

ODD = ["odd dir/a b+c~d.tif", "odd dir/ünï çødé/ß.tif", "odd dir/100%/x;y=z&w.tif"]


def _seed() -> dict[str, dict[str, int | bytes]]:
    keys: dict[str, int | bytes] = {f"ds/scene{i}/{b}.tif": 50 + i for i in range(3) for b in "ab"}
    keys.update({key: 40 for key in ODD})
    keys.update({f"rotate/k{i}.bin": 30 for i in range(2)})
    return {BUCKET: keys, PAYERS: {"pay/scene0/a.tif": 20, "pay/scene0/b.tif": 21}}


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigV4Front]:
    keys = {KEY_ID: (SECRET, TOKEN), FILE_KEY_ID: (FILE_SECRET, None)}
    folder = tmp_path_factory.mktemp("moto-private")
    with (
        MotoS3(folder, _seed(), private=(BUCKET, PAYERS)) as moto,
        SigV4Front(moto, keys, requester_pays=(PAYERS,)) as running,
    ):
        yield running


def write_spec(path: Path, front: SigV4Front, prefix: str, **source: Any) -> Path:
    spec = {
        "defaults": {
            "output_dir": "./out",
            "workers": 4,
            "retry": {"max_retries": 1, "backoff": 0.01, "max_backoff": 0.05},
        },
        "datasets": [
            {
                "id": "ds",
                "source": {"type": "s3", "bucket": BUCKET, "endpoint": front.url,
                           "region": REGION, "prefix": prefix, **source},
            }
        ],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def credentials_file(folder: Path, text: str) -> dict[str, str]:
    """A shared credentials file with ``text``, and the variables that point there."""
    path = folder / "aws" / "credentials"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return {"AWS_SHARED_CREDENTIALS_FILE": str(path)}


def synced(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.endswith(".json")
        and not p.name.startswith((".mlhub", "mlhub_"))
    }


def test_a_private_bucket_syncs_with_the_environments_key_and_no_secret_is_kept(
    tmp_path: Path, cli: Any, front: SigV4Front
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", front, "ds/")
    front.clear()
    applied = cli("apply", spec, "-vv", "--json", env=ENV)
    assert applied.code == ExitCode.OK, applied.stderr
    locked = cli("lock", spec, "-vv", env=ENV)
    assert locked.code == ExitCode.OK, locked.stderr
    out = tmp_path / "out" / "ds"
    assert synced(out) == {f"ds/scene{i}/{b}.tif" for i in range(3) for b in "ab"}
    assert (out / "ds/scene1/b.tif").read_bytes() == content("ds/scene1/b.tif", 51)
    # every request was presigned with the session's key, and verified
    seen = front.of(f"/{BUCKET}")
    listings = [r for r in seen if r.query.get("list-type") == "2"]
    assert len(listings) == 2 and len(seen) == 2 + 6  # apply and lock list; apply GETs 6
    assert all(r.signed and r.refusal is None and r.status == 200 for r in seen), seen
    assert all(r.query["X-Amz-Credential"].startswith(f"{KEY_ID}/") for r in seen)
    assert all(r.query["X-Amz-Security-Token"] == TOKEN for r in seen)
    assert listings[0].query["prefix"] == "ds/" and listings[0].query["max-keys"] == "1000"
    # neither the secret, the token nor a signature reached a file, the log or the JSON
    signatures = {r.query["X-Amz-Signature"] for r in seen}
    secrets = [SECRET, TOKEN, quote(SECRET, safe=""), quote(TOKEN, safe=""), *signatures]
    shown = applied.stdout + applied.stderr + locked.stdout + locked.stderr
    assert "X-Amz-Signature=***" in applied.stderr  # -vv logged the signed URLs, redacted
    for secret in secrets:
        assert secret not in shown
    kept = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "spec.yaml"]
    assert any(p.name.endswith(".lock") for p in kept)
    for path in kept:
        data = path.read_bytes()
        for secret in [*secrets, "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security"]:
            assert secret.encode() not in data, (path, secret)


def test_a_credentials_file_profile_signs_when_the_environment_has_no_key(
    tmp_path: Path, cli: Any, front: SigV4Front
) -> None:
    env = credentials_file(
        tmp_path,
        "[default]\naws_access_key_id = AKIDNOTTHISONE\naws_secret_access_key = no\n\n"
        f"[team]\naws_access_key_id = {FILE_KEY_ID}\naws_secret_access_key = {FILE_SECRET}\n",
    )
    spec = write_spec(tmp_path / "spec.yaml", front, "ds/scene0/", layout="mirror")
    front.clear()
    result = cli("apply", spec, env={**env, "AWS_PROFILE": "team"})
    assert result.code == ExitCode.OK, result.stderr
    assert synced(tmp_path / "out/ds") == {"a.tif", "b.tif"}
    seen = front.of(f"/{BUCKET}")
    assert len(seen) == 3 and all(r.refusal is None for r in seen)
    assert all(r.query["X-Amz-Credential"].startswith(f"{FILE_KEY_ID}/") for r in seen)
    assert all("X-Amz-Security-Token" not in r.query for r in seen)


def test_a_wrong_secret_is_refused_and_the_error_names_where_the_key_came_from(
    tmp_path: Path, cli: Any, front: SigV4Front
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", front, "ds/")
    front.clear()
    wrong = {**ENV, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    result = cli("plan", spec, env=wrong)
    assert result.code == ExitCode.FAILURES
    assert [r.refusal for r in front.of(f"/{BUCKET}")] == ["SignatureDoesNotMatch"]
    assert "HTTP 403" in result.stderr and "$AWS_ACCESS_KEY_ID" in result.stderr
    assert "not-the-secret" not in result.stderr + result.stdout


def test_anonymous_true_sends_no_signature_even_with_a_key_at_hand(
    tmp_path: Path, cli: Any, front: SigV4Front
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", front, "ds/", anonymous=True)
    front.clear()
    result = cli("plan", spec, env=ENV)
    assert result.code == ExitCode.FAILURES
    [request] = front.of(f"/{BUCKET}")
    assert not request.signed and request.refusal == "AccessDenied"
    assert not any(name.lower().startswith("x-amz-") for name in request.query)
    assert "anonymous: true" in result.stderr


def test_keys_with_spaces_plus_tilde_unicode_and_reserved_characters_are_signed_right(
    tmp_path: Path, cli: Any, front: SigV4Front
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", front, "odd dir/", layout="mirror")
    front.clear()
    result = cli("apply", spec, env=ENV)
    assert result.code == ExitCode.OK, result.stderr
    seen = front.of(f"/{BUCKET}")
    assert len(seen) == 1 + len(ODD) and all(r.refusal is None for r in seen), seen
    assert seen[0].query["prefix"] == "odd dir/"
    for key in ODD:
        assert (tmp_path / "out/ds" / key.removeprefix("odd dir/")).read_bytes() == content(key, 40)


def test_requester_pays_is_a_signed_query_parameter_on_the_listing_and_every_get(
    tmp_path: Path, cli: Any, front: SigV4Front
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", front, "pay/", bucket=PAYERS, requester_pays=True)
    front.clear()
    result = cli("apply", spec, env=ENV)
    assert result.code == ExitCode.OK, result.stderr
    seen = front.of(f"/{PAYERS}")
    assert len(seen) == 3 and all(r.refusal is None for r in seen), seen
    assert all(r.query["x-amz-request-payer"] == "requester" for r in seen)
    plain = write_spec(tmp_path / "plain.yaml", front, "pay/", bucket=PAYERS)
    assert cli("plan", plain, env=ENV).code == ExitCode.FAILURES  # the bucket wants the flag


# -- the transfer engine with the bucket's signer ------------------------------------------


class Clock:
    """Wall time, but the first ``stale`` readings are two hours old (a presign made then)."""

    def __init__(self, stale: int = 0) -> None:
        self.stale = stale
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return time.time() - (7200 if self.readings <= self.stale else 0)


def fetch(urls: list[str], dest: Path, signer: Signer | None) -> list[object]:
    """Fetch ``urls`` at once on one libcurl multi handle."""
    driver = CurlDriver(len(urls), stop=threading.Event())
    policy = RetryPolicy(max_retries=1, backoff=0.01, max_backoff=0.05)
    transfers = Transfers(policy=policy, rand=random.Random(0).random, signer=signer)
    ended: list[object] = []
    try:
        for i, url in enumerate(urls):
            request = TransferRequest(url=url, dest=dest / f"f{i}")
            driver.submit(transfers.fetch(request, FetchState()), lambda v, e: ended.append(e or v))
        while len(ended) < len(urls):
            driver.poll(0.05)
    finally:
        driver.close()
    return ended


def spec_for(front: SigV4Front, prefix: str) -> S3Source:
    return S3Source(type="s3", bucket=BUCKET, endpoint=front.url, region=REGION, prefix=prefix)


def test_an_expired_presign_is_refused_then_renewed_once(tmp_path: Path, front: SigV4Front) -> None:
    clock = Clock(stale=1)  # the first presign is two hours old: past its hour
    signer = s3_presigner(spec_for(front, "ds/"), ENV, clock=clock)
    assert signer is not None
    url = f"{spec_for(front, 'ds/').bucket_url}ds/scene2/a.tif"
    front.clear()
    [result] = fetch([url], tmp_path / "out", signer)
    assert isinstance(result, TransferResult) and result.url == url, result  # unsigned
    assert [r.refusal for r in front.of(f"/{BUCKET}")] == ["AccessDenied", None]
    assert (tmp_path / "out/f0").read_bytes() == content("ds/scene2/a.tif", 52)


def test_a_refused_key_is_read_again_from_a_refreshed_credentials_file(
    tmp_path: Path, front: SigV4Front
) -> None:
    def key_file(key_id: str, secret: str) -> dict[str, str]:
        text = f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
        return credentials_file(tmp_path, text)

    env = key_file(FILE_KEY_ID, FILE_SECRET)
    signer = s3_presigner(spec_for(front, "rotate/"), env)
    base = spec_for(front, "rotate/").bucket_url
    assert isinstance(fetch([f"{base}rotate/k0.bin"], tmp_path / "one", signer)[0], TransferResult)
    # the key is rotated: the old one revoked, the file rewritten by a tool
    front.keys[NEW_KEY_ID] = (NEW_SECRET, None)
    revoked = front.keys.pop(FILE_KEY_ID)
    try:
        key_file(NEW_KEY_ID, NEW_SECRET)
        front.clear()
        [result] = fetch([f"{base}rotate/k1.bin"], tmp_path / "two", signer)
    finally:
        front.keys[FILE_KEY_ID] = revoked
        del front.keys[NEW_KEY_ID]
    assert isinstance(result, TransferResult), result
    assert [r.refusal for r in front.of(f"/{BUCKET}")] == ["InvalidAccessKeyId", None]


def test_a_head_is_presigned_for_head(tmp_path: Path, front: SigV4Front) -> None:
    signer = s3_presigner(spec_for(front, "ds/"), ENV)
    url = f"{spec_for(front, 'ds/').bucket_url}ds/scene0/b.tif"
    driver = CurlDriver(1, stop=threading.Event())
    transfers = Transfers(policy=RetryPolicy(max_retries=0), rand=lambda: 0.0, signer=signer)
    ended: list[object] = []
    front.clear()
    try:
        driver.submit(transfers.head(url), lambda v, e: ended.append(e or v))
        while not ended:
            driver.poll(0.05)
    finally:
        driver.close()
    assert isinstance(ended[0], tuple), ended  # (size, server MD5), not a refusal
    assert ended[0][0] == 50
    [head] = front.of(f"/{BUCKET}")
    assert head.method == "HEAD" and head.signed and head.refusal is None
