"""Where each asset goes: a pure function from an asset to a safe relative path.

::

    {collection_id}/{item_id}/{asset_key}{ext}   item assets
    {collection_id}/{asset_key}{ext}             collection-level assets
    _common/{asset_key}{ext}                     common assets (one href for the whole dataset)
    _common/{collection_id}/{asset_key}{ext}     common assets whose href differs by collection
    {key}                                        ``layout: mirror``: an object-store key as
                                                 listed (:func:`mirror_relpath`)

Every id and key becomes exactly one path component (:func:`safe_component`), so no input can
name a path outside the dataset folder. ``{ext}`` comes from the href's path (compound
suffixes such as ``.tar.gz`` kept, lower-cased), else from the media type.

No asset or catalog document lands on a name of the tool's own. A collection folder never
takes a name mlhub-sync writes at the top of a dataset or asset folder
(:func:`collection_dir`): one that starts like the state db, the folder lock, the staging
folder or the error report, or is ``catalog.json`` or ``_common``, gets a ``_`` in front (a
``_`` behind for ``_common`` and for one that ends like the kept archive, ``.tar.gz`` or
``.tar.gz.part``): a collection called ``.mlhub-staging-x`` goes to ``_.mlhub-staging-x/``,
which the next re-index does not sweep away. And no component ends in ``.part`` (a download in
progress is ``{path}.part``): ``x.part`` becomes ``x.part_``. Mapping rather than refusing keeps
the layout a total, pure function: such a catalog still syncs, under a name that says why.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import posixpath
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from mlhub_sync.state.db import DB_NAME
from mlhub_sync.state.lock import LOCK_NAME

COMMON_DIR = "_common"


MAX_COMPONENT_BYTES = 200


# What mlhub-sync writes at the top of a dataset or asset folder, lower-cased (file systems
# may ignore case). The staging prefix and the report's name are catalog.install.STAGING_PREFIX
# and apply.report.REPORT_NAME, stages after this one: tests/unit/test_layout.py holds the
# copies to them, and to catalog.install.is_bookkeeping.
RESERVED_PREFIXES = (DB_NAME, LOCK_NAME, ".mlhub-staging", "mlhub_errors.csv", "catalog.json")
RESERVED_SUFFIXES = (".tar.gz", ".tar.gz.part")
_PREFIXES = tuple(p.lower() for p in RESERVED_PREFIXES)


PART_SUFFIX = ".part"  # {path}.part: a download in progress, or a link being placed


# C0 and C1 controls, lone surrogates (they cannot be encoded), line and paragraph
# separators, and the characters Windows forbids in a name.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029/\\:*?\"<>|]")


_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)


# A suffix is short, plain, and has a letter: ``.0`` or ``.20190401`` is a version or a date.
_SUFFIX = re.compile(r"^\.(?=[0-9_+-]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9_+-]{0,9}$")


_COMPRESSION = frozenset({".gz", ".bz2", ".xz", ".zst", ".z", ".lz4"})


_MEDIA_EXTENSIONS = {
    "image/tiff": ".tif",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jp2": ".jp2",
    "application/json": ".json",
    "application/geo+json": ".geojson",
    "application/geopackage+sqlite3": ".gpkg",
    "application/x-hdf5": ".h5",
    "application/x-hdf": ".hdf",
    "application/x-netcdf": ".nc",
    "application/netcdf": ".nc",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/xml": ".xml",
    "text/csv": ".csv",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/markdown": ".md",
    "image/webp": ".webp",
}


# Python's built-in table only: the module-level functions also read the host's
# /etc/mime.types, which would make a path depend on the machine that computed it.
_BUILTIN_MIME_TYPES = mimetypes.MimeTypes()


@functools.lru_cache(maxsize=4096)  # an item's ids repeat per asset; keys repeat everywhere
def safe_component(name: str) -> str:
    """``name`` as one portable path component that cannot escape or collide with ``.``/``..``.

    Separators, control characters and characters Windows forbids become ``_``; reserved
    Windows device names get a ``_`` prefix; trailing dots and spaces are dropped; a name
    longer than 200 UTF-8 bytes is shortened and given a hash suffix so it stays unique.
    """
    text = unicodedata.normalize("NFC", name)
    text = _UNSAFE.sub("_", text).strip(" ").rstrip(". ")
    if text in ("", ".", ".."):
        text = "_" * max(1, len(text))
    if text.split(".", 1)[0].lower() in _WINDOWS_RESERVED:
        text = "_" + text
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_COMPONENT_BYTES:
        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        head = encoded[: MAX_COMPONENT_BYTES - 13].decode("utf-8", "ignore").rstrip(". ")
        text = f"{head}~{digest}"
    return _not_part(text)


def _not_part(name: str) -> str:
    """Keep a name off the tool's ``{path}.part`` files."""
    return name + "_" if name.lower().endswith(PART_SUFFIX) else name


@functools.lru_cache(maxsize=4096)
def collection_dir(collection_id: str) -> str:
    """The folder of a collection at the top of the dataset: :func:`safe_component`, and
    never one of the tool's own names there (see the module doc)."""
    name = safe_component(collection_id)
    lowered = name.lower()
    if lowered == COMMON_DIR:
        return name + "_"  # keep _common/ for common assets only
    if lowered.startswith(_PREFIXES):
        name = "_" + name
    if lowered.endswith(RESERVED_SUFFIXES):
        name += "_"
    return name


def asset_extension(href: str, media_type: str | None) -> str:
    """The file extension for an asset: from the href's path, else from its media type."""
    name = posixpath.basename(_url_path(href))
    suffixes = _suffixes(name)
    if suffixes:
        return "".join(suffixes).lower()
    if media_type:
        base = media_type.split(";", 1)[0].strip().lower()
        ext = _MEDIA_EXTENSIONS.get(base) or _BUILTIN_MIME_TYPES.guess_extension(base)
        if ext and _SUFFIX.match(ext):
            return ext
    return ""


def _url_path(href: str) -> str:
    """The unquoted path of a URL, as ``urlsplit`` gives it (fast for ``scheme://host/...``)."""
    marker = href.find("://")
    rest = href[marker + 3 :]
    scheme = href[:marker]
    # a scheme as urlsplit reads one: ASCII, a letter first ("0://x" is a path to urlsplit)
    if (
        0 < marker <= 10
        and scheme.isascii()
        and scheme.isalnum()
        and scheme[0].isalpha()
        and "[" not in rest
        and "]" not in rest  # urlsplit judges brackets (IPv6 hosts): leave them to it
    ):
        cut = min(
            (i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0),
            default=len(rest),
        )
        path = rest[cut:] if rest[cut : cut + 1] == "/" else ""
        path = path.split("?", 1)[0].split("#", 1)[0]
    else:
        try:
            path = urlsplit(href).path
        except ValueError:
            return ""
    return unquote(path) if "%" in path else path


def _suffixes(name: str) -> list[str]:
    stem, dot, last = name.rpartition(".")
    if not dot or not stem or not _SUFFIX.match("." + last):
        return []
    if "." + last.lower() in _COMPRESSION:
        inner = _suffixes(stem)
        if inner:
            return [inner[-1], "." + last]
    return ["." + last]


@dataclass(frozen=True)
class CommonLayout:
    """Which common-key assets are stored once, and how.

    ``dataset_wide`` holds the common keys with a single href in the whole dataset (stored in
    ``_common/``); ``per_collection`` holds ``(collection_id, key)`` pairs whose key has a
    single href within that collection but several across the dataset (stored in
    ``_common/{collection_id}/``). Other uses of a common key are ordinary assets.
    """

    dataset_wide: frozenset[str] = frozenset()
    per_collection: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def from_counts(
        cls,
        keys: Iterable[str],
        dataset_counts: dict[str, int],
        collection_counts: dict[tuple[str, str], int],
    ) -> CommonLayout:
        """Build from distinct-href counts per key and per (collection, key)."""
        wide = frozenset(k for k in keys if dataset_counts.get(k) == 1)
        per = frozenset(
            pair for pair, n in collection_counts.items() if n == 1 and pair[1] not in wide
        )
        return cls(dataset_wide=wide, per_collection=per)


def asset_relpath(
    collection_id: str,
    item_id: str | None,
    asset_key: str,
    href: str,
    media_type: str | None,
    common: CommonLayout,
) -> str:
    """The asset's path relative to the dataset's asset folder (always ``/``-separated)."""
    filename = _not_part(safe_component(asset_key) + asset_extension(href, media_type))
    if asset_key in common.dataset_wide:
        return f"{COMMON_DIR}/{filename}"
    collection = collection_dir(collection_id)
    if (collection_id, asset_key) in common.per_collection:
        return f"{COMMON_DIR}/{collection}/{filename}"
    if item_id is None:
        return f"{collection}/{_not_catalog(filename, 'collection.json')}"
    item = safe_component(item_id)
    return f"{collection}/{item}/{_not_catalog(filename, item + '.json')}"


def mirror_relpath(key: str) -> str:
    """An object-store key, relative to the listed prefix, as its path in the ``mirror``
    layout: the same folders and names (what ``aws s3 sync`` or ``azcopy sync`` would write),
    each through :func:`safe_component`, the first through :func:`collection_dir` (so it takes
    no name of the tool's own: not ``catalog.json``, the state db, the lock, staging).

    Empty segments (``a//b``, a leading ``/``) are dropped; ``.`` and ``..`` cannot climb
    (they become ``_``), so no key names a path outside the dataset folder.
    """
    parts = [p for p in key.split("/") if p]
    if not parts:
        raise ValueError(f"the key {key!r} names no file")
    return "/".join([collection_dir(parts[0]), *(safe_component(p) for p in parts[1:])])


def _not_catalog(filename: str, reserved: str) -> str:
    """Keep an asset off the catalog's own file beside it (``{item}.json``, ``collection.json``).

    Compared case-insensitively, as on macOS and Windows file systems.
    """
    if filename.lower() != reserved.lower():
        return filename
    stem, dot, ext = filename.rpartition(".")
    return f"{stem}.asset{dot}{ext}"
