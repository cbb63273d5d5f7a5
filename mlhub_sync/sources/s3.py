"""The ``s3`` source: the keys under an S3 prefix (AWS, Source Cooperative's
``https://data.source.coop``, any S3-compatible endpoint), read as STAC by ``sources/flat.py``.

Listing is ListObjectsV2 (``GET /{bucket}?list-type=2&prefix=...&max-keys=1000``, continuation
tokens), one page at a time through the run's :class:`~mlhub_sync.net.client.Http`: the one
retry decision, the request deadline, the body cap, judged redirects, redacted errors and our
User-Agent (Source Cooperative refuses requests without one) apply to it like to every catalog
request. Why not obstore: benchmarks/RESULTS.md (measured on 100k keys; the same data either
way, since an S3 listing says size, ETag and time and nothing more).

Requests are signed when the run has AWS credentials (``config/aws.py``: the environment's
``AWS_*`` keys, else the shared credentials file's profile; ``anonymous`` decides instead,
and Source Cooperative's proxy is anonymous by default), else anonymous (public buckets).
Signed means presigned URLs (``net/sigv4.py``): each listing page's request is presigned as
it is made (its whole query signed: list-type, prefix, max-keys, encoding-type,
continuation-token), as is the sidecar's GET, and the transfers get theirs from the run's
signer (``config/access.py``); the URLs listed, and so the index, state and lock, stay
unsigned. ``requester_pays`` sends ``x-amz-request-payer: requester`` on an anonymous
listing and, signed, the query parameter ``x-amz-request-payer=requester`` that S3 asks of
a presigned URL (on the listing and every transfer). The source's ``headers:`` go to its
own origins (``config/access.py``, sent by ``Http`` and by the transfers' signer).
Asset URLs are path-style ``{endpoint}/{bucket}/{key}`` for a custom endpoint and
virtual-hosted ``https://{bucket}.s3.{region}.amazonaws.com/{key}`` on AWS (path-style there
too for a bucket whose name has a dot, which no wildcard certificate covers); keys are
percent-encoded, ``.`` and ``..`` segments too, so no client or server reads them as dot
segments and fetches another object. Transfers GET them on the one libcurl engine.

An S3 ETag is kept as the asset's ``mlhub:etag`` (a change validator), never claimed as a
``file:checksum``: a multipart upload's is no MD5 and an SSE-KMS one's is 32 hex digits that
are not the MD5 either (the transfer's ``s3-etag`` rung weighs it on the GET).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from urllib.parse import quote, unquote_plus
from xml.etree import ElementTree

from mlhub_sync.config.aws import s3_presigner
from mlhub_sync.config.sources import S3Source
from mlhub_sync.errors import CatalogError, SourceAuthError
from mlhub_sync.net.client import Http
from mlhub_sync.net.redact import redact_url
from mlhub_sync.net.sigv4 import S3Presigner
from mlhub_sync.sources.base import CrawledCatalog, SourceContext
from mlhub_sync.sources.flat import flat_snapshot
from mlhub_sync.sources.listing import ListedObject

MAX_KEYS = 1000  # S3's own cap per page (and Source Cooperative's)

MAX_LISTING_PAGE = 16 * 2**20  # a page of 1,000 keys is ~350 KB of XML


def _quote_key(key: str) -> str:
    """A key as a URL path: percent-encoded, ``.``/``..`` segments included."""
    segments = []
    for segment in key.split("/"):
        if segment in (".", ".."):
            segments.append(segment.replace(".", "%2E"))
        else:
            segments.append(quote(segment, safe="~"))
    return "/".join(segments)


def bucket_url(spec: S3Source) -> str:
    """The bucket's URL, ending in ``/`` (:attr:`S3Source.bucket_url`)."""
    return spec.bucket_url


def object_url(spec: S3Source, key: str) -> str:
    """Where a GET of the full ``key`` goes (unsigned)."""
    return bucket_url(spec) + _quote_key(key)


def listing_headers(spec: S3Source, signed: bool = False) -> dict[str, str]:
    """The headers of a listing request besides the source's ``headers:`` (which the run's
    ``Http`` adds for the source's own origins only, hop by hop): the requester-pays flag,
    unless the request is presigned (then the flag is a signed query parameter: S3 wants
    every ``x-amz-*`` header signed, and a presigned URL signs only ``host``)."""
    return {"x-amz-request-payer": "requester"} if spec.requester_pays and not signed else {}


def page_url(spec: S3Source, token: str | None) -> str:
    """A listing page's URL, unsigned: the bucket's URL and its ListObjectsV2 query, each
    value percent-encoded as S3 signs it (``%20``, never ``+``), so a presign of it signs
    exactly what is sent."""
    params = [("list-type", "2"), ("prefix", spec.prefix), ("max-keys", str(MAX_KEYS)),
              ("encoding-type", "url")]  # fmt: skip
    if token is not None:
        params.append(("continuation-token", token))
    query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in params)
    return f"{bucket_url(spec)}?{query}"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def parse_page(data: bytes, url: str) -> tuple[list[dict[str, str]], str | None, bool]:
    """A ListObjectsV2 page: its objects (``Key``, ``Size``, ``ETag``, ``LastModified`` as
    text, keys URL-decoded when the page says ``EncodingType: url``), the next continuation
    token, and whether the listing is truncated (pure)."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise CatalogError(
            f"the listing is not S3 XML ({exc})",
            subject=redact_url(url),
            hint="check source.endpoint: it must be an S3-compatible endpoint",
        ) from None
    if _local(root.tag) != "ListBucketResult":
        raise CatalogError(
            f"the listing is not a ListObjectsV2 result (<{_local(root.tag)}>)",
            subject=redact_url(url),
            hint="check source.endpoint and source.bucket",
        )
    fields = {_local(child.tag): child for child in root if _local(child.tag) != "Contents"}
    encoding = fields.get("EncodingType")
    encoded = encoding is not None and (encoding.text or "").strip() == "url"
    objects = []
    for child in root:
        if _local(child.tag) != "Contents":
            continue
        entry = {_local(part.tag): part.text or "" for part in child}
        if encoded and "Key" in entry:
            entry["Key"] = unquote_plus(entry["Key"])
        objects.append(entry)
    flag = fields.get("IsTruncated")
    truncated = flag is not None and (flag.text or "").strip() == "true"
    token_field = fields.get("NextContinuationToken")
    token = (token_field.text or None) if token_field is not None else None
    return objects, token, truncated


def list_objects(
    spec: S3Source, http: Http, signer: S3Presigner | None = None
) -> Iterator[ListedObject]:
    """Every object under ``spec.prefix``, page by page (keys relative to the prefix; folder
    markers, keys ending in ``/``, left out); each page's request presigned by ``signer``
    when there is one (anonymous otherwise)."""
    url = bucket_url(spec)
    headers = listing_headers(spec, signed=signer is not None)
    token: str | None = None
    seen: set[str] = set()
    while True:
        unsigned = page_url(spec, token)
        request = signer.presign(unsigned) if signer is not None else unsigned
        try:
            reply = http.get(
                request, headers=headers, what="S3 listing", max_bytes=MAX_LISTING_PAGE
            )
        except SourceAuthError as exc:
            raise SourceAuthError(
                exc.message,
                subject=redact_url(url),
                hint=_refused_hint(spec, signer),
                status=exc.status,
                error_class=exc.error_class,
            ) from None
        except CatalogError as exc:
            exc.subject = redact_url(url)  # the bucket, not a page's (signed) query
            raise
        objects, token, truncated = parse_page(reply.content, url)
        for entry in objects:
            listed = _listed(spec, entry)
            if listed is not None:
                yield listed
        if not truncated:
            return
        if token is None or token in seen:
            raise CatalogError(
                "the S3 listing is truncated but gives no new continuation token",
                subject=redact_url(url),
                hint="the endpoint does not page ListObjectsV2 correctly",
            )
        seen.add(token)


def _refused_hint(spec: S3Source, signer: S3Presigner | None) -> str:
    """What to check when the listing was refused (401/403), signed or not."""
    if signer is None:
        why = "anonymous: true" if spec.anonymous else "no AWS credentials were found"
        return (
            f"the bucket does not allow anonymous listing ({why}): check source.bucket and "
            "source.prefix (Source Cooperative: the account is the bucket), or give AWS "
            "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile in "
            "~/.aws/credentials) or source.headers"
        )
    return (
        f"the bucket refused the key from {signer.credentials.source}: check that it may "
        f"list the bucket (s3:ListBucket) and read it (s3:GetObject), that source.region "
        f"({spec.region}) is the bucket's, and that a temporary key has not expired; "
        "anonymous: true reads a public bucket unsigned"
    )


def _listed(spec: S3Source, entry: dict[str, str]) -> ListedObject | None:
    key = entry.get("Key", "")
    if not key.startswith(spec.prefix) or key.endswith("/") or key == spec.prefix:
        return None
    try:
        size = int(entry.get("Size", ""))
    except ValueError:
        return None
    etag = entry.get("ETag") or None
    return ListedObject(
        key=key[len(spec.prefix) :],
        url=object_url(spec, key),
        size=size,
        etag=etag,
        last_modified=entry.get("LastModified") or None,
    )


class S3Catalog:
    """The ``s3`` source (see the module docstring)."""

    refetch_damaged = False  # no archive to be damaged

    def __init__(self, spec: S3Source):
        self.spec = spec

    def snapshot(self, ctx: SourceContext) -> CrawledCatalog:
        """The prefix's keys as a catalog, listed when the catalog stage stages it (signed
        when the run has credentials for the bucket; the sidecar's GET too)."""
        signer = s3_presigner(self.spec, ctx.environ)
        lister = functools.partial(list_objects, self.spec, ctx.http, signer)
        sign = (lambda url: signer.cached(url).url) if signer is not None else None
        return flat_snapshot(self.spec, lister, ctx, sign=sign)
