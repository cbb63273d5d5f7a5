"""API root and key resolution, as the original radiant-mlhub client did it; an Azure SAS
token's lookup and checks (:func:`resolve_sas_token`).

Key, first match wins: the spec's ``api_key``, ``$MLHUB_API_KEY``, the spec's ``profile``,
``$MLHUB_PROFILE``, the ``[default]`` profile; profiles are sections of the INI file
``$MLHUB_HOME/profiles`` (``~/.mlhub/profiles`` by default), each with an ``api_key`` entry.
A profile that was asked for by name and is missing is an error; a missing ``[default]`` just
means no key (a self-hosted mirror may not want one).
"""

from __future__ import annotations

import configparser
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, unquote, urlencode

from mlhub_sync.config.sources import DEFAULT_ROOT_URL, AzureSource, MlhubSource
from mlhub_sync.errors import CatalogError, SpecError, SpecIssue

SAS_ENV = "AZURE_STORAGE_SAS_TOKEN"


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


def resolve_sas_token(spec: AzureSource, environ: Mapping[str, str]) -> str | None:
    """The SAS token to use (``sas_token``, else ``$AZURE_STORAGE_SAS_TOKEN``) as a query
    string, each value percent-encoded once; ``None`` for anonymous access.

    Refused with a :class:`CatalogError` naming the field (never the value): a token with no
    signature (``sig``), and one whose expiry (``se``) has passed.
    """
    secret = spec.sas_token.get_secret_value() if spec.sas_token is not None else None
    where = "source.sas_token" if secret else f"${SAS_ENV}"
    token = (secret or environ.get(SAS_ENV) or "").strip().lstrip("?")
    if not token:
        return None
    pairs = [(unquote(k), unquote(v)) for k, _, v in (p.partition("=") for p in token.split("&"))]
    fields = dict(pairs)
    if not fields.get("sig"):
        raise CatalogError(
            "the SAS token has no signature (sig=)",
            subject=where,
            hint="give the whole token as the portal or `az storage container generate-sas` "
            "prints it (sv=...&sp=...&se=...&sig=...), without the URL before the `?`",
        )
    expiry = _instant(fields.get("se", ""))
    if expiry is not None and expiry <= dt.datetime.now(dt.UTC):
        raise CatalogError(
            f"the SAS token expired at {fields['se']}",
            subject=where,
            hint="make a new token with read (r) and list (l) permissions",
        )
    # one spelling from here on: each value percent-encoded once (a `+` pasted raw in the
    # signature stays a `+`, not the space a query's `+` would mean)
    return urlencode([(k, v) for k, v in pairs if k], quote_via=quote, safe="")


def _instant(text: str) -> dt.datetime | None:
    """An ISO 8601 instant (a SAS's ``se``, UTC when it names no zone), else ``None``."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
