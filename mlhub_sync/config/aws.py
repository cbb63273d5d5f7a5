"""AWS credentials for the ``s3`` source: the local links of AWS's default credential chain,
in its order, read from the run's environment (the ``environ`` given, never the process's).

1. ``$AWS_ACCESS_KEY_ID`` with ``$AWS_SECRET_ACCESS_KEY`` (and ``$AWS_SESSION_TOKEN``, or its
   older name ``$AWS_SECURITY_TOKEN``, for temporary credentials); skipped when the spec
   names a ``profile`` (as an SDK skips them for an explicit profile);
2. the shared credentials file ``$AWS_SHARED_CREDENTIALS_FILE`` (default
   ``~/.aws/credentials``), section ``[{profile}]``: the spec's ``profile``, else
   ``$AWS_PROFILE``, else ``$AWS_DEFAULT_PROFILE``, else ``default``;
3. the config file ``$AWS_CONFIG_FILE`` (default ``~/.aws/config``), section
   ``[profile {profile}]`` (``[default]``), when it holds static keys.

None found: anonymous, as for a public bucket. A profile asked for by name that neither file
has, half a key (an id without its secret), or an unreadable file is a :class:`SpecError`
naming where, never the values.

Not covered, and why: the instance metadata service (IMDS) and the ECS/EKS container
endpoints, which are network services of the machine the run is on (mlhub-sync makes no
request a spec did not name, and a metadata request that times out off EC2 would slow every
run); SSO, web identity (``$AWS_WEB_IDENTITY_TOKEN_FILE``), assume-role profiles
(``role_arn``) and ``credential_process``, which each need an STS call or a program run on
our behalf. A profile that needs one of them is refused with a hint rather than read as
anonymous: ``aws configure export-credentials --profile NAME --format env`` prints
temporary keys as ``AWS_*`` variables, which a run (or a spec, through ``${VAR}``) can give.

Whether a dataset signs at all is :func:`s3_credentials`: ``anonymous: true`` never does
(public buckets must not be signed with someone's unrelated keys), ``anonymous: false``
must, and by default Source Cooperative's proxy (``https://data.source.coop``) is
anonymous: its data is public, its proxy does not know AWS keys, and a presigned URL
would hand it the key id of whoever runs the sync.
"""

from __future__ import annotations

import configparser
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from mlhub_sync.config.sources import S3Source
from mlhub_sync.errors import MlhubSyncError, SpecError, SpecIssue
from mlhub_sync.net.sigv4 import Credentials, S3Presigner

# Keys of a profile that ask for credentials we do not fetch (an STS call, a program).
_UNSUPPORTED = ("role_arn", "credential_process", "sso_session", "sso_start_url",
                "web_identity_token_file", "credential_source")  # fmt: skip

EXPORT_HINT = (
    "export temporary keys instead: `aws configure export-credentials --profile {profile} "
    "--format env` prints AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN"
)


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ["HOME"]) if environ.get("HOME") else Path.home()


def _path(environ: Mapping[str, str], variable: str, default: str) -> Path:
    value = environ.get(variable) or f"~/.aws/{default}"
    return _home(environ) / value[2:] if value.startswith("~/") else Path(value)


def credentials_path(environ: Mapping[str, str]) -> Path:
    """The shared credentials file: ``$AWS_SHARED_CREDENTIALS_FILE``, else
    ``~/.aws/credentials`` (``~`` the run's ``$HOME``)."""
    return _path(environ, "AWS_SHARED_CREDENTIALS_FILE", "credentials")


def config_path(environ: Mapping[str, str]) -> Path:
    """The config file: ``$AWS_CONFIG_FILE``, else ``~/.aws/config``."""
    return _path(environ, "AWS_CONFIG_FILE", "config")


def profile_name(spec: S3Source, environ: Mapping[str, str]) -> tuple[str, bool]:
    """The profile to read and whether it was asked for by name (spec or environment)."""
    named = spec.profile or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE")
    return (named or "default"), bool(named)


def from_environment(environ: Mapping[str, str]) -> Credentials | None:
    """The ``AWS_*`` variables' key, if they hold one."""
    key_id = environ.get("AWS_ACCESS_KEY_ID", "").strip()
    secret = environ.get("AWS_SECRET_ACCESS_KEY", "").strip()
    if not key_id and not secret:
        return None
    if not key_id or not secret:
        given, missing = (
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            if key_id
            else ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
        )
        raise SpecError(
            [SpecIssue(f"${given}", "", f"is set but ${missing} is not")],
            hint="set both (and AWS_SESSION_TOKEN for temporary keys), or neither for "
            "anonymous access",
        )
    token = (environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or "").strip()
    return Credentials(key_id, secret, token or None, "$AWS_ACCESS_KEY_ID")


def _read(path: Path) -> configparser.ConfigParser | None:
    # no DEFAULT section that leaks keys into every profile; a repeated section as AWS reads it
    parser = configparser.ConfigParser(interpolation=None, default_section="\0", strict=False)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(
            [SpecIssue(str(path), "", f"cannot read the AWS file: {exc.__class__.__name__}")],
            hint="it must be a readable INI file (as `aws configure` writes it)",
        ) from None
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:  # its message quotes the line: never shown
        raise SpecError(
            [SpecIssue(str(path), _line(exc), f"not an AWS INI file ({type(exc).__name__})")],
            hint="sections are [profile-name] with key = value lines, as `aws configure` "
            "writes them",
        ) from None
    return parser


def _line(exc: configparser.Error) -> str:
    """Where a parse error is (``line N``), from its line number only."""
    number = getattr(exc, "lineno", None)
    errors = getattr(exc, "errors", None)
    if number is None and errors:
        number = errors[0][0]
    return f"line {number}" if number else ""


def _from_section(
    parser: configparser.ConfigParser, section: str, path: Path, profile: str
) -> Credentials | None:
    if not parser.has_section(section):
        return None
    values = {k.lower(): v.strip() for k, v in parser.items(section)}
    key_id = values.get("aws_access_key_id", "")
    secret = values.get("aws_secret_access_key", "")
    if key_id and secret:
        token = values.get("aws_session_token") or values.get("aws_security_token") or None
        return Credentials(key_id, secret, token, f"{path} [{section}]")
    if key_id or secret:
        half = "has half a key (an id without its secret, or a secret without its id)"
        raise SpecError(
            [SpecIssue(str(path), f"[{section}]", half)],
            hint="give both aws_access_key_id and aws_secret_access_key",
        )
    needs = [k for k in _UNSUPPORTED if k in values]
    if needs:
        why = f"uses {needs[0]}, which mlhub-sync does not run (it reads static keys only)"
        raise SpecError(
            [SpecIssue(str(path), f"[{section}]", why)],
            hint=EXPORT_HINT.format(profile=profile),
        )
    return None


def from_files(spec: S3Source, environ: Mapping[str, str]) -> Credentials | None:
    """The profile's key from the shared credentials file, else the config file; a
    profile asked for by name that neither has is an error, a missing ``default`` is not."""
    profile, named = profile_name(spec, environ)
    shared, config = credentials_path(environ), config_path(environ)
    found_section = False
    parser = _read(shared)
    if parser is not None:
        found_section = parser.has_section(profile)
        if (creds := _from_section(parser, profile, shared, profile)) is not None:
            return creds
    parser = _read(config)
    if parser is not None:
        section = "default" if profile == "default" else f"profile {profile}"
        found_section = found_section or parser.has_section(section)
        if (creds := _from_section(parser, section, config, profile)) is not None:
            return creds
    if named and not found_section:
        raise SpecError(
            [SpecIssue(str(shared), "profile", f"no AWS profile {profile!r} (nor in {config})")],
            hint=f"add a [{profile}] section to {shared} (`aws configure --profile "
            f"{profile}`), or correct source.profile / $AWS_PROFILE",
        )
    return None


def find_credentials(spec: S3Source, environ: Mapping[str, str]) -> Credentials | None:
    """The first key of the chain (see the module docstring), ``None``: none anywhere."""
    if not spec.profile and (creds := from_environment(environ)) is not None:
        return creds
    return from_files(spec, environ)


def s3_credentials(spec: S3Source, environ: Mapping[str, str]) -> Credentials | None:
    """The key a dataset signs with, ``None`` for anonymous access (``anonymous: true``;
    by default also Source Cooperative's proxy, and a chain that has none)."""
    if spec.anonymous or (spec.anonymous is None and spec.public_endpoint):
        return None
    creds = find_credentials(spec, environ)
    if creds is None and spec.anonymous is False:
        profile, _ = profile_name(spec, environ)
        raise SpecError(
            [SpecIssue("source", "anonymous", "is false, but no AWS credentials were found")],
            hint=f"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile "
            f"[{profile}] to {credentials_path(environ)}",
        )
    return creds


def s3_presigner(
    spec: S3Source, environ: Mapping[str, str], clock: Callable[[], float] = time.time
) -> S3Presigner | None:
    """The bucket's signer (``net/sigv4.py``), ``None`` when access is anonymous. It signs
    the bucket's URLs only, with the requester-pays flag when the spec says so; after a
    refusal it re-reads a key that came from a file (a tool may have refreshed it)."""
    creds = s3_credentials(spec, environ)
    if creds is None:
        return None

    def reload() -> Credentials | None:
        if creds.source.startswith("$"):
            return None  # the environment does not change during a run
        try:
            return find_credentials(spec, environ)
        except MlhubSyncError:
            return None  # unreadable now: keep the key we have (the refusal stands)

    return S3Presigner(
        creds,
        spec.region,
        (spec.bucket_url,),
        clock=clock,
        request_payer=spec.requester_pays,
        reload=reload,
    )
