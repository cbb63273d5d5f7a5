"""A source's access settings (``headers:``, ``sign:``) as the network layer uses them.

- :func:`source_headers`: the spec's ``headers:`` (``${VAR}`` already interpolated by the
  loader, from the run's environment) for the source's own origins: its ``url``, ``root_url``
  or ``endpoint``. The run's :class:`~mlhub_sync.net.client.Http` sends them on the source's
  catalog and listing requests, asset transfers to the same origin get them through the
  signer; no other host ever does.
- :func:`transfer_signer`: the :class:`~mlhub_sync.net.signing.Signer` of a run's asset
  transfers: the headers, ``sign: planetary-computer`` tokens (``net/planetary.py``), an
  ``azure`` source's SAS token (for its own container's URLs only) and an ``s3`` source's
  presigned URLs when it has AWS credentials (``config/aws.py``; its own bucket's URLs
  only).
- :func:`access_secrets`: every secret value among them (header values, the Planetary
  Computer subscription key, a SAS token, an AWS secret key and session token), for
  redaction in logs, errors and reports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from mlhub_sync.config.aws import s3_credentials, s3_presigner
from mlhub_sync.config.credentials import resolve_root_url, resolve_sas_token
from mlhub_sync.config.sources import AzureSource, MlhubSource, S3Source
from mlhub_sync.errors import MlhubSyncError
from mlhub_sync.net.client import Http
from mlhub_sync.net.planetary import PlanetaryComputer
from mlhub_sync.net.signing import SasSigner, Signer, SourceHeaders, chain


def source_urls(source: Any, environ: Mapping[str, str]) -> list[str]:
    """The URLs whose origins are the source's own hosts (none for a local file)."""
    if isinstance(source, MlhubSource):
        return [resolve_root_url(source, environ)]
    urls = [u for u in (getattr(source, "url", None), getattr(source, "endpoint", None)) if u]
    if isinstance(source, AzureSource) and not source.endpoint:
        urls.append(f"https://{source.account}.blob.core.windows.net/")
    if isinstance(source, S3Source) and not source.endpoint:  # virtual-hosted and path style
        urls.append(f"https://{source.bucket}.s3.{source.region}.amazonaws.com/")
        urls.append(f"https://s3.{source.region}.amazonaws.com/")
    return urls


def source_headers(source: Any, environ: Mapping[str, str]) -> SourceHeaders:
    """The source's ``headers:`` for its own origins."""
    headers = {name: value.get_secret_value() for name, value in source.headers.items()}
    return SourceHeaders.of(source_urls(source, environ) if headers else (), headers)


def transfer_signer(source: Any, http: Http, environ: Mapping[str, str]) -> Signer | None:
    """The signer of the run's asset transfers (``None``: nothing to sign). Built once per
    run: its token cache is shared by every transfer."""
    tokens = PlanetaryComputer(http, environ) if source.sign == "planetary-computer" else None
    sas: Signer | None = None
    if isinstance(source, AzureSource) and (token := resolve_sas_token(source, environ)):
        sas = SasSigner(token, (source.container_url + "/",))  # its container only
    elif isinstance(source, S3Source):
        sas = s3_presigner(source, environ)  # its bucket only; None: anonymous
    return chain(tokens, sas, source_headers(source, environ))


def access_secrets(source: Any, environ: Mapping[str, str]) -> list[str]:
    """The secret values of the source's access settings (for redaction)."""
    found = []
    for value in source.headers.values():
        text = value.get_secret_value()
        found += [text, text.split()[-1]] if text.strip() else []  # `Bearer <token>`: both
    if source.sign == "planetary-computer":
        found.append(environ.get("PC_SDK_SUBSCRIPTION_KEY", ""))
    if isinstance(source, AzureSource) and (token := resolve_sas_token(source, environ)):
        found.append(token)
        found += [v for k, v in parse_qsl(token) if k == "sig"]
    if isinstance(source, S3Source):
        # a broken profile is reported when the dataset runs, not by every command
        with contextlib.suppress(MlhubSyncError):
            creds = s3_credentials(source, environ)
            found += creds.secrets if creds is not None else []
    return list(dict.fromkeys(value for value in found if value))
