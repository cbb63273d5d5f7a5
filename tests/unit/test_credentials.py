"""API key and root URL resolution (mlhub_sync/credentials.py), in the documented order:
spec api_key, $MLHUB_API_KEY, spec profile, $MLHUB_PROFILE, [default] in $MLHUB_HOME/profiles.
Every test uses its own MLHUB_HOME under tmp_path; the real ~/.mlhub is never read."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlhub_sync.config.credentials import profiles_path, resolve_api_key, resolve_root_url
from mlhub_sync.config.resolve import load_spec
from mlhub_sync.config.sources import DEFAULT_ROOT_URL, MlhubSource
from mlhub_sync.errors import SpecError

PROFILES = """
    [default]
    api_key = key-from-default

    [research]
    api_key = key-from-research

    [ci]
    api_key = key-from-ci

    [blank]
    api_key =
    """


def mlhub_home(tmp_path: Path, profiles: str | None = PROFILES) -> Path:
    """A fresh MLHUB_HOME folder, with a profiles file unless ``profiles`` is None."""
    home = tmp_path / "mlhub-home"
    home.mkdir(exist_ok=True)
    if profiles is not None:
        (home / "profiles").write_text(textwrap.dedent(profiles).lstrip(), encoding="utf-8")
    return home


def source(**fields: Any) -> MlhubSource:
    return MlhubSource.model_validate({"type": "mlhub", **fields})


def env(home: Path, **values: str) -> dict[str, str]:
    return {"MLHUB_HOME": str(home), **values}


# ---------------------------------------------------------------------------------------------
# the key, first match wins


def test_spec_api_key_wins_over_everything(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path)
    environ = env(home, MLHUB_API_KEY="key-from-env", MLHUB_PROFILE="ci")
    spec = source(api_key="key-from-spec", profile="research")
    assert resolve_api_key(spec, environ) == "key-from-spec"


def test_env_api_key_wins_over_spec_profile_and_env_profile(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path)
    environ = env(home, MLHUB_API_KEY="key-from-env", MLHUB_PROFILE="ci")
    assert resolve_api_key(source(profile="research"), environ) == "key-from-env"


def test_spec_profile_wins_over_env_profile(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path)
    environ = env(home, MLHUB_PROFILE="ci")
    assert resolve_api_key(source(profile="research"), environ) == "key-from-research"


def test_env_profile_wins_over_default_profile(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path)
    assert resolve_api_key(source(), env(home, MLHUB_PROFILE="ci")) == "key-from-ci"


def test_default_profile_is_the_last_resort(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path)
    assert resolve_api_key(source(), env(home)) == "key-from-default"


def test_empty_spec_key_and_empty_env_key_fall_through(tmp_path: Path) -> None:
    # `api_key: ${MLHUB_API_KEY:-}` gives an empty string: it means "not set", not "no key"
    home = mlhub_home(tmp_path)
    environ = env(home, MLHUB_API_KEY="")
    assert resolve_api_key(source(api_key=""), environ) == "key-from-default"


def test_profile_key_is_stripped(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path, "[default]\napi_key =   padded-key   \n")
    assert resolve_api_key(source(), env(home)) == "padded-key"


# ---------------------------------------------------------------------------------------------
# missing profiles


def test_named_profile_missing_from_the_file_is_a_spec_error_naming_the_file(
    tmp_path: Path,
) -> None:
    home = mlhub_home(tmp_path)
    with pytest.raises(SpecError) as caught:
        resolve_api_key(source(profile="nope"), env(home))
    assert str(home / "profiles") in str(caught.value)
    assert "profile 'nope' has no api_key" in str(caught.value)
    assert "[nope]" in (caught.value.hint or "")


def test_profile_named_by_env_and_missing_is_a_spec_error(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path)
    with pytest.raises(SpecError, match="profile 'nope' has no api_key"):
        resolve_api_key(source(), env(home, MLHUB_PROFILE="nope"))


def test_named_profile_with_an_empty_key_is_a_spec_error(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path)
    with pytest.raises(SpecError, match="profile 'blank' has no api_key"):
        resolve_api_key(source(profile="blank"), env(home))


def test_named_profile_without_a_profiles_file_is_a_spec_error_naming_the_file(
    tmp_path: Path,
) -> None:
    home = mlhub_home(tmp_path, profiles=None)
    with pytest.raises(SpecError) as caught:
        resolve_api_key(source(profile="research"), env(home))
    assert caught.value.issues[0].location == str(home / "profiles")


def test_missing_default_profile_means_no_key(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path, "[research]\napi_key = key-from-research\n")
    assert resolve_api_key(source(), env(home)) is None


def test_no_profiles_file_and_nothing_else_means_no_key(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path, profiles=None)
    assert resolve_api_key(source(), env(home)) is None


def test_unreadable_profiles_file_is_a_spec_error_naming_the_file(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path, "api_key = no section header\n")
    with pytest.raises(SpecError) as caught:
        resolve_api_key(source(), env(home))
    assert caught.value.issues[0].location == str(home / "profiles")
    assert "cannot read the profiles file" in str(caught.value)


def test_profiles_file_that_is_not_utf8_is_a_spec_error(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path, profiles=None)
    (home / "profiles").write_bytes(b"[default]\napi_key = \xff\xfe\n")
    with pytest.raises(SpecError, match="cannot read the profiles file"):
        resolve_api_key(source(), env(home))


def test_profiles_path_is_under_mlhub_home_else_the_home_folder(tmp_path: Path) -> None:
    assert profiles_path({"MLHUB_HOME": str(tmp_path)}) == tmp_path / "profiles"
    assert profiles_path({}) == Path.home() / ".mlhub" / "profiles"  # computed, never read


def test_profile_from_a_loaded_spec(tmp_path: Path) -> None:
    home = mlhub_home(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\ndatasets:\n  - id: a\n    source: {profile: research}\n")
    (dataset,) = load_spec(spec, {}).datasets
    assert isinstance(dataset.source, MlhubSource)
    assert resolve_api_key(dataset.source, env(home)) == "key-from-research"


# ---------------------------------------------------------------------------------------------
# root URL: spec, $MLHUB_ROOT_URL, default; always with a trailing slash


def test_root_url_from_the_spec_wins(tmp_path: Path) -> None:
    environ = {"MLHUB_ROOT_URL": "https://env.example/api/"}
    assert resolve_root_url(source(root_url="https://spec.example/api/"), environ) == (
        "https://spec.example/api/"
    )


def test_root_url_from_the_environment_next() -> None:
    environ = {"MLHUB_ROOT_URL": "http://127.0.0.1:8000/mlhub/v1/"}
    assert resolve_root_url(source(), environ) == "http://127.0.0.1:8000/mlhub/v1/"


def test_root_url_default_last() -> None:
    assert resolve_root_url(source(), {}) == DEFAULT_ROOT_URL
    assert DEFAULT_ROOT_URL == "https://api.radiant.earth/mlhub/v1/"


def test_empty_root_url_env_means_the_default() -> None:
    assert resolve_root_url(source(), {"MLHUB_ROOT_URL": ""}) == DEFAULT_ROOT_URL


@pytest.mark.parametrize(
    ("spec_url", "env_url"),
    [("https://spec.example/api", None), (None, "https://env.example/api")],
)
def test_root_url_always_ends_with_a_slash(spec_url: str | None, env_url: str | None) -> None:
    environ = {"MLHUB_ROOT_URL": env_url} if env_url else {}
    resolved = resolve_root_url(source(root_url=spec_url), environ)
    assert resolved == (spec_url or env_url or "") + "/"
