"""API root and key resolution, as the original radiant-mlhub client did it.

Key, first match wins: the spec's ``api_key``, ``$MLHUB_API_KEY``, the spec's ``profile``,
``$MLHUB_PROFILE``, the ``[default]`` profile; profiles are sections of the INI file
``$MLHUB_HOME/profiles`` (``~/.mlhub/profiles`` by default), each with an ``api_key`` entry.
A profile that was asked for by name and is missing is an error; a missing ``[default]`` just
means no key (a self-hosted mirror may not want one).
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from pathlib import Path

from mlhub_sync.config.sources import DEFAULT_ROOT_URL, MlhubSource
from mlhub_sync.errors import SpecError, SpecIssue


def profiles_path(environ: Mapping[str, str]) -> Path:
    """The profiles INI file: ``$MLHUB_HOME/profiles``, else ``~/.mlhub/profiles``."""
    home = environ.get("MLHUB_HOME")
    return (Path(home) if home else Path.home() / ".mlhub") / "profiles"


def resolve_root_url(source: MlhubSource, environ: Mapping[str, str]) -> str:
    """The API root with a trailing slash: spec, then ``$MLHUB_ROOT_URL``, then the default."""
    root = source.root_url or environ.get("MLHUB_ROOT_URL") or DEFAULT_ROOT_URL
    return root if root.endswith("/") else root + "/"


def resolve_api_key(source: MlhubSource, environ: Mapping[str, str]) -> str | None:
    """The API key to use, or ``None`` when none is configured anywhere."""
    if source.api_key is not None and source.api_key.get_secret_value():
        return source.api_key.get_secret_value()
    if environ.get("MLHUB_API_KEY"):
        return environ["MLHUB_API_KEY"]
    named = source.profile or environ.get("MLHUB_PROFILE")
    profile = named or "default"
    path = profiles_path(environ)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise SpecError(
            [SpecIssue(str(path), "", f"cannot read the profiles file: {exc.__class__.__name__}")],
            hint="it must be an INI file with an api_key entry per [profile] section",
        ) from None
    if parser.has_option(profile, "api_key"):
        key = parser.get(profile, "api_key").strip()
        if key:
            return key
    if named:
        raise SpecError(
            [SpecIssue(str(path), "profile", f"profile {profile!r} has no api_key")],
            hint=f"add a [{profile}] section with api_key = ... to {path}, or set MLHUB_API_KEY",
        )
    return None
