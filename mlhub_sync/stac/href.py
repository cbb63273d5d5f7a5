"""Hrefs: normalised against their document's URL (schemes allowed, control characters and
hostless URLs refused), local ``file:`` hrefs checked against what the spec allows
(:class:`LocalHrefs`), an href's *identity* (without rotating signature parameters), the
version a listing gives an object (:func:`with_version`) and the spec's ``rewrite`` rules
(:func:`rewrite_href`)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))


VERSION_FRAGMENT = "etag="


def with_version(href: str, etag: str | None) -> str:
    """``href`` naming one version of its object: ``#etag=<etag>`` (the listing's ETag).

    An object-store key is the same href whatever its bytes are; the version in the
    fragment makes new bytes a new href, so everything that compares hrefs sees the change:
    the plan (``replace upstream-changed``), a ``.part`` of the old version (not resumed),
    a lock pinned to it (drift). No HTTP client sends a fragment, so the request is the
    same. A weak or empty ETag says nothing and is left out.
    """
    if not etag:
        return href
    tag = etag.strip().strip('"')
    if not tag or etag.startswith("W/"):
        return href
    return f"{href.split('#', 1)[0]}#{VERSION_FRAGMENT}{quote(tag, safe='')}"


def rewrite_href(href: str, rules: Sequence[tuple[str, str]]) -> str:
    """``href`` with the first rule whose ``from`` prefix it starts with applied (pure).

    Rules move the hosts of a kept catalog's assets (``rewrite: [{from, to}]``); an href no
    rule names is returned as it is.
    """
    for old, new in rules:
        if href.startswith(old):
            return new + href[len(old) :]
    return href


_CONTROL = re.compile(r"[\x00-\x1f]")


def normalize_href(href: str, base_url: str, *, allow_file: bool) -> str:
    """An absolute, fetchable URL for ``href``, or raise ``ValueError`` saying why not.

    A relative href's backslashes are read as ``/`` (``.\\item.json``, ``..\\labels\\a.tif``:
    what a catalog written on Windows holds), in its path only: a query keeps its own.
    """
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
    if not scheme and "\\" in href:  # written on Windows: its path separators are "/"
        ends = [i for i in (href.find("?"), href.find("#")) if i >= 0]
        cut = min(ends, default=len(href))
        href = href[:cut].replace("\\", "/") + href[cut:]
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


@dataclass(frozen=True)
class LocalHrefs:
    """What the ``file:`` hrefs of a local catalog may reach.

    ``allowed``: the folders they may name, symlinks resolved (the spec's ``allow_local``;
    none by default). ``root``: the catalog's own folder (where an archive unpacks, or a static
    catalog's folder), which *relative* hrefs never leave. Build it with :meth:`of`.
    """

    allowed: tuple[str, ...] = ()
    root: str | None = None

    @classmethod
    def of(cls, allowed: Iterable[Path], root: Path | None) -> LocalHrefs:
        """From absolute folders, resolving their symlinks now (once, not per href)."""
        return cls(
            tuple(sorted({os.path.realpath(p) for p in allowed})),
            os.path.normpath(root) if root is not None else None,
        )

    @property
    def key(self) -> str:
        """A fingerprint: an index built under another one must be rebuilt."""
        return json.dumps([self.allowed, self.root])


def check_local_href(url: str, local: LocalHrefs | None, href: str = "") -> None:
    """Refuse (``ValueError``, saying why and what would allow it) a ``file:`` URL that
    ``local`` does not let a catalog reach; other URLs pass. ``href`` is the one the catalog
    wrote, before :func:`normalize_href`.

    - a ``file:`` URL naming a host (``file://host/...``) is refused;
    - a relative ``href`` must land inside ``local.root`` (``..``, encoded or not, counted);
    - the file, its symlinks resolved, must lie inside one of ``local.allowed``.
    """
    if not url.startswith("file:"):
        return
    local = local or LocalHrefs()
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"a file: href naming a host ({parts.netloc}) is refused")
    path = url2pathname(parts.path)  # decoded exactly as the copy will decode it
    if not os.path.isabs(path):
        raise ValueError("a file: href without an absolute path is refused")
    root = local.root
    if root is not None and is_relative(href) and not _inside(os.path.normpath(path), root):
        raise ValueError(
            f"a relative href that leaves the catalog's folder {root} is refused "
            "(relative hrefs resolve inside the catalog, never outside it)"
        )
    target = os.path.realpath(path)
    if not any(_inside(target, folder) for folder in local.allowed):
        if local.allowed:
            why = f"a local file outside allow_local ({', '.join(local.allowed)}) is refused"
        else:
            why = "a local file is refused: the spec allows none (allow_local)"
        raise ValueError(f"{why}; it is {target}; to copy it, add its folder to allow_local")


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def is_relative(href: str) -> bool:
    """True when ``href`` names no scheme, as :func:`normalize_href` reads it (a Windows
    drive letter is no scheme)."""
    href = href.strip()
    return bool(href) and len(urlsplit(href).scheme) <= 1
