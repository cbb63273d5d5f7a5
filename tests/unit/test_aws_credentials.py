"""AWS credentials for the s3 source (config/aws.py): the chain's local links in AWS's order
(the environment, the shared credentials file's profile, the config file), what is refused
with a hint (half a key, a profile that does not exist, one that needs SSO or a role),
``anonymous`` and the Source Cooperative default, and the secrets handed to redaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.config.access import access_secrets, transfer_signer
from mlhub_sync.config.aws import s3_credentials, s3_presigner
from mlhub_sync.config.sources import S3Source
from mlhub_sync.errors import SpecError
from mlhub_sync.net.client import Http
from mlhub_sync.net.sigv4 import Credentials, S3Presigner

ENV = {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"}


def spec(**fields: Any) -> S3Source:
    return S3Source(type="s3", bucket="b", **fields)


def files(tmp_path: Path, credentials: str = "", config: str | None = None) -> dict[str, str]:
    """An environment whose AWS files are ``credentials`` (and ``config``) under tmp_path."""
    (tmp_path / "credentials").write_text(credentials)
    if config is not None:
        (tmp_path / "config").write_text(config)
    return {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
    }


PROFILES = """[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = default-secret

[team]
aws_access_key_id = AKIDTEAM
aws_secret_access_key = team-secret
aws_session_token = team-token
"""


def test_the_environments_key_comes_first(tmp_path: Path) -> None:
    env = {**files(tmp_path, PROFILES), **ENV, "AWS_SESSION_TOKEN": "env-token"}
    assert s3_credentials(spec(), env) == Credentials(
        "AKIDENV", "env-secret", "env-token", "$AWS_ACCESS_KEY_ID"
    )
    legacy = {**ENV, "AWS_SECURITY_TOKEN": "old-name-token"}
    creds = s3_credentials(spec(), legacy)
    assert creds is not None and creds.session_token == "old-name-token"


def test_then_the_profile_of_the_shared_credentials_file(tmp_path: Path) -> None:
    env = files(tmp_path, PROFILES)
    default = s3_credentials(spec(), env)
    assert default is not None and default.access_key_id == "AKIDDEFAULT"
    assert default.source == f"{tmp_path / 'credentials'} [default]"
    team = s3_credentials(spec(), {**env, "AWS_PROFILE": "team"})
    assert team == Credentials(
        "AKIDTEAM", "team-secret", "team-token", f"{tmp_path / 'credentials'} [team]"
    )
    named = s3_credentials(spec(profile="team"), {**env, **ENV})  # the spec's profile wins
    assert named is not None and named.access_key_id == "AKIDTEAM"


def test_then_the_config_files_profile(tmp_path: Path) -> None:
    config = "[profile lab]\nregion = us-west-2\naws_access_key_id = AKIDLAB\n"
    config += "aws_secret_access_key = lab\n"
    env = {**files(tmp_path, "", config), "AWS_PROFILE": "lab"}
    creds = s3_credentials(spec(), env)
    assert creds is not None and creds.access_key_id == "AKIDLAB"


def test_no_key_anywhere_is_anonymous(tmp_path: Path) -> None:
    assert s3_credentials(spec(), files(tmp_path)) is None
    assert s3_credentials(spec(), {"HOME": str(tmp_path / "nobody")}) is None


def test_the_default_files_are_under_the_runs_home(tmp_path: Path) -> None:
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / "credentials").write_text(PROFILES)
    creds = s3_credentials(spec(), {"HOME": str(tmp_path)})
    assert creds is not None and creds.access_key_id == "AKIDDEFAULT"


@pytest.mark.parametrize(
    ("env", "credentials", "where", "hint"),
    [
        ({"AWS_ACCESS_KEY_ID": "AKIDHALF"}, "", "$AWS_ACCESS_KEY_ID", "set both"),
        ({"AWS_SECRET_ACCESS_KEY": "half-secret"}, "", "$AWS_SECRET_ACCESS_KEY", "set both"),
        ({"AWS_PROFILE": "missing"}, PROFILES, "no AWS profile 'missing'", "aws configure"),
        ({}, "[default]\naws_secret_access_key = lonely-secret\n", "half a key", "give both"),
        ({}, "[default]\nrole_arn = arn:aws:iam::1:role/r\nsource_profile = x\n", "role_arn",
         "aws configure export-credentials --profile default --format env"),
        ({"AWS_PROFILE": "sso"}, "", "sso_session", "export-credentials --profile sso"),
        ({}, "aws_secret_access_key = line-without-section\n", "line 1", "aws configure"),
    ],
)  # fmt: skip
def test_what_cannot_be_used_is_refused_with_where_and_how(
    tmp_path: Path, env: dict[str, str], credentials: str, where: str, hint: str
) -> None:
    config = "[profile sso]\nsso_session = corp\nsso_account_id = 1\n"
    with pytest.raises(SpecError) as raised:
        s3_credentials(spec(), {**files(tmp_path, credentials, config), **env})
    text = str(raised.value)
    assert where in text and hint in (raised.value.hint or "")
    for secret in ("half-secret", "lonely-secret", "line-without-section"):
        assert secret not in text  # a value is never echoed


def test_anonymous_decides_and_source_cooperative_is_anonymous_by_default(
    tmp_path: Path,
) -> None:
    assert s3_credentials(spec(anonymous=True), ENV) is None
    coop = spec(endpoint="https://data.source.coop")
    assert s3_credentials(coop, ENV) is None  # its public data is never signed with our key
    forced = s3_credentials(spec(endpoint="https://data.source.coop", anonymous=False), ENV)
    assert forced is not None and forced.access_key_id == "AKIDENV"
    with pytest.raises(SpecError, match="anonymous: is false, but no AWS credentials"):
        s3_credentials(spec(anonymous=False), files(tmp_path))


def test_the_transfer_signer_presigns_the_buckets_urls_when_there_is_a_key(
    tmp_path: Path,
) -> None:
    source = spec(endpoint="http://127.0.0.1:9000", requester_pays=True)
    signer = transfer_signer(source, Http(), ENV)
    assert isinstance(signer, S3Presigner) and signer.prefixes == ("http://127.0.0.1:9000/b/",)
    assert "x-amz-request-payer=requester" in signer.cached("http://127.0.0.1:9000/b/k").url
    assert transfer_signer(source, Http(), files(tmp_path)) is None  # anonymous: none
    presigner = s3_presigner(spec(), ENV)
    assert presigner is not None
    assert presigner.prefixes == ("https://b.s3.us-west-2.amazonaws.com/",)


def test_the_secret_key_and_session_token_are_secrets_to_redact(tmp_path: Path) -> None:
    env = {**ENV, "AWS_SESSION_TOKEN": "env-token"}
    assert access_secrets(spec(), env) == ["env-secret", "env-token"]
    assert access_secrets(spec(anonymous=True), env) == []
    broken = {**files(tmp_path, PROFILES), "AWS_PROFILE": "missing"}
    assert access_secrets(spec(), broken) == []  # reported when the dataset runs
