"""The network limits of one dataset, as one value: timeouts, the minimum transfer rate, the
deadlines, the byte caps and whether redirects may lead into private networks.

The spec's ``timeout:``, ``max_asset_size``, ``archive_limits`` and
``allow_private_redirects`` resolve to a :class:`NetSettings` (``config/resolve.py``); the
transfer engine (libcurl) and the API client (requests) both read it, so both stacks keep the
same promises:

- **a minimum rate**: a response slower than ``min_rate`` bytes/s for ``read`` seconds (a
  silent one included) ends the attempt as a timeout;
- **a deadline per asset**: once an asset has gone ``asset_deadline`` seconds without
  progress, no new attempt starts. Progress is the part growing by at least ``min_rate`` bytes
  per second since the previous attempt ended (backoff included), and it moves the deadline,
  so a large file that keeps moving is never cut, however long it takes or however often its
  connection drops;
- **a deadline per API or catalog-document request**, retries, redirects and body included
  (``request_deadline``): those bodies are small, so this one is a hard limit;
- **byte caps**: a body stops as soon as it passes the size known for it (``file:size``, the
  lock's, or Content-Length); with no size known anywhere, at ``max_asset_size`` (an asset)
  or ``max_archive_size`` (a catalog archive).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30


@dataclass(frozen=True)
class NetSettings:
    """What every transfer and API request of one dataset is held to (see the module doc)."""

    connect: float = 10.0  # seconds to connect
    read: float = 30.0  # seconds a response may stay below min_rate (silence included)
    min_rate: int = 1024  # bytes per second
    asset_deadline: float = 120.0  # seconds without progress before an asset is given up
    request_deadline: float = 120.0  # seconds for one API/catalog request, retries included
    max_asset_size: int = 50 * GIB  # an asset's cap when no size is known
    max_archive_size: int = 64 * GIB  # a catalog archive's cap when no size is known
    allow_private_redirects: bool = False  # see net/redirects.py


DEFAULT_NET = NetSettings()


def human_size(n: int) -> str:
    """``n`` bytes as a person reads them: ``50 GiB``, ``1.5 MiB``, ``12 bytes``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{n} bytes"
