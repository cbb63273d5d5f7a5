"""Hrefs: normalised against their document's URL (schemes allowed, control characters and
hostless URLs refused), local ``file:`` hrefs kept inside their catalog, and an href's
*identity* (without rotating signature parameters)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, urlencode, urljoin, urlsplit, urlunsplit
from urllib.request import url2pathname

from mlhub_sync.net.redact import param_name, query_params

# Query parameters that rotate with every signed URL and say nothing about the object.
_SIGNATURE_PARAMS = frozenset(
    {"sig", "se", "st", "sp", "sv", "sr", "spr", "skoid", "sktid", "skt", "ske", "sks", "skv",
     "signature", "expires", "key-pair-id", "policy", "token"}
)  # fmt: skip


def href_identity(href: str) -> str:
    """``href`` without rotating signature parameters (SAS, presigned S3/GCS, CloudFront).

    Two hrefs with the same identity name the same object, so a fresh SAS token in a new
    catalog does not make every file look changed.
    """
    parts = urlsplit(href)
    if not parts.query:
        return href
    kept = [
        (k, v)
        for k, v in query_params(parts.query)
        if (name := param_name(k)) not in _SIGNATURE_PARAMS
        and not name.startswith(("x-amz-", "x-goog-"))
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), ""))


_CONTROL = re.compile(r"[\x00-\x1f]")


def normalize_href(href: str, base_url: str, *, allow_file: bool) -> str:
    """An absolute, fetchable URL for ``href``, or raise ``ValueError`` saying why not."""
    href = href.strip()
    if not href:
        raise ValueError("empty href")
    if _CONTROL.search(href):
        raise ValueError("href contains control characters")
    if href.startswith(("https://", "http://")):
        if href.partition("://")[2][:1] in ("", "/", "?", "#"):
            raise ValueError("http(s) href without a host")
        return href  # the common case, already absolute (a million of these per catalog)
    scheme = urlsplit(href).scheme.lower()
    if scheme == "s3":
        parts = urlsplit(href)
        if not parts.netloc:
            raise ValueError("s3 href without a bucket")
        key = parts.path.lstrip("/")
        return f"https://{parts.netloc}.s3.amazonaws.com/{quote(key, safe='/~')}" + (
            f"?{parts.query}" if parts.query else ""
        )
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    url = href if scheme else urljoin(base_url, href)
    if _CONTROL.search(url):  # the base may carry what the href did not
        raise ValueError("href contains control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.netloc:
            raise ValueError("http(s) href without a host")
        return url
    if scheme == "file":
        if allow_file:
            return url
        raise ValueError("a file: href in a remote catalog is refused (it would read local files)")
    raise ValueError(f"unsupported URL scheme {scheme + ':' if scheme else '(none)'}")


def check_local_href(url: str, local_root: Path | None) -> None:
    """Refuse a ``file:`` URL outside ``local_root`` (symlinks resolved); others pass."""
    if local_root is None or not url.startswith("file:"):
        return
    target = os.path.realpath(url2pathname(urlsplit(url).path))
    root = os.path.realpath(local_root)
    if os.path.commonpath([target, root]) != root:
        raise ValueError(
            f"a local href outside the catalog's folder {root} is refused "
            "(a catalog must not make us copy arbitrary local files)"
        )
