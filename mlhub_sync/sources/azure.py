"""The ``azure`` source: the blobs under an Azure container prefix, read as a flat tree.

Listing is Azure's own *List Blobs* (``GET {endpoint}/{container}?restype=container&comp=list
&prefix=...&marker=...``, at most 5,000 blobs a page, ``NextMarker`` paging), made through
the run's :class:`~mlhub_sync.net.client.Http` (the one retry decision, the total deadline,
the body cap, judged redirects, redacted errors) and parsed here: one page in memory at a
time, each blob yielded as a :class:`~mlhub_sync.sources.listing.ListedObject` with its size,
ETag (an opaque validator: never an MD5 on Azure), ``Content-MD5`` as hex (the flat core
turns it into a ``file:checksum``) and ``Last-Modified``. Why not obstore: its listings
carry no ``Content-MD5`` (``ObjectMeta``: path, size, last_modified, e_tag, version), and
that MD5 is the only checksum Azure offers before a download (benchmarks/RESULTS.md).

Access is anonymous (a public container) or a SAS token (``sas_token``, else
``$AZURE_STORAGE_SAS_TOKEN``: :func:`~mlhub_sync.config.credentials.resolve_sas_token`). The
token is added to a request's query as it is made and nowhere else: listed URLs stay unsigned
(they are what the index, the state db and the lock record), the listing's errors name the
container URL without it, and its value is one of the secrets the run's :class:`Http`
scrubs. Asset downloads need it added per request too, by the transfer's signer
(:func:`sas_signer` says what that signature is).
"""

from __future__ import annotations

import binascii
import dataclasses
import datetime as dt
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, quote, unquote

from mlhub_sync.config.credentials import resolve_sas_token
from mlhub_sync.config.sources import AzureSource
from mlhub_sync.errors import CatalogError, SourceAuthError
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.sources.base import CrawledCatalog, SourceContext
from mlhub_sync.sources.flat import flat_snapshot
from mlhub_sync.sources.listing import ListedObject

log = logging.getLogger(__name__)

MAX_RESULTS = 5000  # Azure's cap per page
API_VERSION = "2021-08-06"  # x-ms-version: a version every Azure and Azurite serves
MAX_PAGE_BYTES = 64 * 2**20  # a full page is ~3 MiB (about 640 bytes a blob)


def container_url(spec: AzureSource) -> str:
    """The container's URL (unsigned; :attr:`AzureSource.container_url`)."""
    return spec.container_url


def blob_url(container: str, name: str) -> str:
    """A blob's URL under ``container`` (its name percent-encoded, ``/`` kept), unsigned."""
    return f"{container}/{quote(name, safe='/')}"


def sign(url: str, token: str) -> str:
    """``url`` with the SAS ``token`` added to its query (before a ``#fragment``: a listed
    href carries its ETag as ``#etag=...``)."""
    base, hash_, fragment = url.partition("#")
    return f"{base}{'&' if '?' in base else '?'}{token}{hash_}{fragment}"


def sas_signer(spec: AzureSource, environ: Mapping[str, str]) -> Callable[[str], str] | None:
    """The signature of an asset request: a URL under this source's container with its SAS
    token added; any other URL unchanged, so the token never goes to another host (or to
    another container of the same host). ``None`` when access is anonymous."""
    token = resolve_sas_token(spec, environ)
    if token is None:
        return None
    base = container_url(spec) + "/"
    return lambda url: sign(url, token) if url.startswith(base) else url


def list_blobs(
    http: Http,
    container: str,
    prefix: str = "",
    *,
    sas: str | None = None,
    page_size: int = MAX_RESULTS,
) -> Iterator[ListedObject]:
    """Every blob whose name starts with ``prefix`` in the container at ``container`` (its
    URL), page by page, in the service's order (by name). Keys are relative to ``prefix``
    (a leading ``/`` dropped); names ending in ``/`` (folder markers) are skipped.

    Raises :class:`SourceAuthError` when the service refuses the listing (a private
    container without a SAS, or a token without list permission) and :class:`CatalogError`
    when a page is not a blob listing.
    """
    if sas is not None:
        http = dataclasses.replace(http, secrets=(*http.secrets, sas, *_signature(sas)))
    params = {"restype": "container", "comp": "list", "maxresults": str(page_size)}
    if prefix:
        params["prefix"] = prefix
    if sas is not None:
        params.update(parse_qsl(sas, keep_blank_values=True))
    marker = ""
    shown = redact_url(container)
    while True:
        page = _fetch(http, container, {**params, "marker": marker} if marker else params, sas)
        names, next_marker = parse_page(page, shown)
        for name, size, etag, md5, modified in names:
            if not name.startswith(prefix):
                raise CatalogError(
                    f"the listing for prefix {prefix!r} names blob {name!r}, outside it",
                    subject=shown,
                    hint="the endpoint does not behave like Azure Blob Storage: "
                    "check source.endpoint",
                )
            key = name[len(prefix) :].lstrip("/")
            if not key or key.endswith("/"):
                continue  # the prefix itself, or a folder marker: no file to sync
            yield ListedObject(key, blob_url(container, name), size, etag, md5, modified)
        if not next_marker:
            return
        if next_marker == marker:
            raise CatalogError(
                f"the listing repeats its page (NextMarker {next_marker!r} again)",
                subject=shown,
                hint="the endpoint does not behave like Azure Blob Storage: check source.endpoint",
            )
        marker = next_marker


def _signature(sas: str) -> list[str]:
    """The token's signature, decoded and as it is written in a URL (secrets to scrub)."""
    found = [v for k, v in parse_qsl(sas, keep_blank_values=True) if k == "sig" and v]
    return found + [quote(v, safe="") for v in found]


def _fetch(http: Http, container: str, params: Mapping[str, str], sas: str | None) -> bytes:
    """One page's body; a refusal said in Azure's words."""
    try:
        reply = http.get(
            container,
            params=params,
            headers={"x-ms-version": API_VERSION},
            what="Azure blob listing",
            max_bytes=MAX_PAGE_BYTES,
        )
    except SourceAuthError as exc:
        if sas is None:
            hint = (
                "the container is not public (or does not exist): give source.sas_token (or "
                "$AZURE_STORAGE_SAS_TOKEN) with read (r) and list (l) permissions"
            )
        else:
            fields = dict(parse_qsl(sas, keep_blank_values=True))
            hint = (
                f"the SAS token was refused (permissions sp={fields.get('sp', '?')}, "
                f"expiry se={fields.get('se', '?')}): it needs list (l) and read (r) on this "
                "container, and must not have expired"
            )
        raise SourceAuthError(
            exc.message,
            subject=exc.subject,
            hint=hint,
            status=exc.status,
            error_class=exc.error_class,
        ) from None
    except CatalogError as exc:
        if (exc.status != 404 and exc.error_class != "dns") or exc.hint:
            raise
        raise CatalogError(
            exc.message,
            subject=exc.subject,
            hint="no such account or container: check source.account and source.container "
            "(and source.endpoint, when given)",
            status=exc.status,
            error_class=exc.error_class,
        ) from None
    return reply.content


_Entry = tuple[str, int, str | None, str | None, str | None]


def parse_page(content: bytes, shown: str) -> tuple[list[_Entry], str]:
    """A List Blobs page (pure): its blobs as ``(name, size, etag, md5 hex, last modified
    ISO 8601)`` and its ``NextMarker`` (``""`` on the last page).

    Refused with a :class:`CatalogError` naming ``shown`` (the listing's URL, redacted):
    a body that is not XML, XML that declares a DTD or entities (Azure never does; refusing
    them keeps entity expansion out), another document than ``EnumerationResults``, a blob
    without a name or with an unusable ``Content-Length``.
    """
    head = content[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
        raise _not_a_listing(shown, "it declares a DTD or entities")
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        what = "an HTML page" if head[:1] == b"<" and b"html" in head[:200].lower() else "not XML"
        raise _not_a_listing(shown, f"{what} ({exc})") from None
    if root.tag != "EnumerationResults":
        raise _not_a_listing(shown, f"its root element is <{root.tag[:60]}>")
    entries = [_entry(blob, shown) for blob in root.iterfind("Blobs/Blob")]
    return entries, (root.findtext("NextMarker") or "")


def _entry(blob: ET.Element, shown: str) -> _Entry:
    name_el = blob.find("Name")
    name = name_el.text if name_el is not None else None
    if not name:
        raise _not_a_listing(shown, "a <Blob> has no <Name>")
    if name_el is not None and name_el.get("Encoded") == "true":
        name = unquote(name)  # names with characters XML cannot carry come percent-encoded
    props = blob.find("Properties")

    def get(tag: str) -> str | None:
        return props.findtext(tag) if props is not None else None

    length = get("Content-Length")
    try:
        size = int(length or "")
    except ValueError:
        size = -1
    if size < 0:
        raise _not_a_listing(shown, f"blob {name!r} has no usable Content-Length ({length!r})")
    etag = get("Etag")
    if etag and not etag.startswith(('"', "W/")):
        etag = f'"{etag}"'  # quoted as in the ETag header the blob's GET sends
    return name, size, etag or None, _md5_hex(get("Content-MD5"), name), _iso(get("Last-Modified"))


def _md5_hex(value: str | None, name: str) -> str | None:
    """A base64 ``Content-MD5`` as hex; ``None`` when absent or not an MD5 (a blob whose
    uploader set a bad property is then checked by size only, not failed)."""
    if not value:
        return None
    try:
        digest = binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        log.warning("blob %s: its Content-MD5 %r is not an MD5; not used", name, value[:40])
        return None
    return digest.hex()


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: f"{number:02d}" for number, name in enumerate(_MONTH_NAMES, 1)}


def _iso(value: str | None) -> str | None:
    """An HTTP date (``Fri, 04 Dec 2026 21:24:44 GMT``) as ISO 8601 UTC, else ``None``.

    Azure's own form is rewritten as text (a tenth of the cost of parsing it: this runs once
    per listed blob); any other form goes through the email parser."""
    if not value:
        return None
    parts = value.split()
    if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS and len(parts[4]) == 8:
        day, month, year, clock = parts[1], _MONTHS[parts[2]], parts[3], parts[4]
        if day.isdigit() and year.isdigit() and len(year) == 4:
            return f"{year}-{month}-{int(day):02d}T{clock}Z"
    try:
        instant = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.UTC)
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _not_a_listing(shown: str, why: str) -> CatalogError:
    return CatalogError(
        f"the response is not an Azure blob listing: {why}",
        subject=shown,
        hint="source.endpoint must be an Azure Blob service (https://{account}.blob.core."
        "windows.net, or an emulator's http://host:port/{account}) and source.container a "
        "container in it",
    )


class AzureCatalog:
    """The ``azure`` source (see the module docstring)."""

    refetch_damaged = False  # no archive to be damaged

    def __init__(self, spec: AzureSource):
        self.spec = spec

    def lister(self, ctx: SourceContext) -> Callable[[], Iterator[ListedObject]]:
        """The prefix's listing, signed when a SAS token is configured."""
        spec, sas = self.spec, resolve_sas_token(self.spec, ctx.environ)
        return lambda: list_blobs(ctx.http, container_url(spec), spec.prefix, sas=sas)

    def snapshot(self, ctx: SourceContext) -> CrawledCatalog:
        """The listing mapped to pseudo-items by the flat-tree core."""
        return flat_snapshot(
            self.spec, self.lister(ctx), ctx, sign=sas_signer(self.spec, ctx.environ)
        )
