"""Which redirects may be followed: never from another host into a private network.

A public catalog must not steer the client into the user's own network (a router's admin page,
a cloud metadata service, a database on localhost). Redirects are followed within the same
host; a redirect to *another* host is refused when the address it leads to is loopback,
link-local, private, unique-local or otherwise not public (IPv4 and IPv6; an IPv4-mapped IPv6
address counts as its IPv4 address), unless the spec says ``allow_private_redirects: true``.

The address judged is the one the connection really reached (libcurl's pre-request callback,
the socket's peer for requests), not the name in the URL: a DNS name that resolves to
127.0.0.1 is loopback, and a name that first resolved publicly and now resolves privately (DNS
rebinding) is refused even on the same host. The first URL of a request is never judged: the
spec or the catalog named it, and loopback test servers are how the tests run.

Behind a proxy the connection reaches the proxy, which resolves names in its own network: then
a redirect is judged by its host as written (an IP address in any form libcurl accepts, or a
``localhost`` name).

Everything here is pure (no I/O), apart from reading the proxy variables of an environment
the caller passes in.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from mlhub_sync.net.redact import redact_url

HINT = (
    "a redirect from another host may not lead into a private network; if this host is "
    "trusted to do so, set allow_private_redirects: true in the spec"
)

_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")


def address_kind(address: str) -> str | None:
    """What makes the IP ``address`` non-public (``"loopback"``, ``"private"``...), or ``None``
    for a public address (or text that is not an IP address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone (%eth0)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"  # 0.0.0.0 and :: reach the local host
    if ip in _UNIQUE_LOCAL:
        return "unique-local"
    if ip.is_private:
        return "private"
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "reserved"  # shared address space (100.64/10), documentation ranges...
    return None


def literal_address(host: str) -> str | None:
    """The address a host names by itself: an IP literal (IPv4 in the forms libcurl also
    accepts, e.g. ``2130706433`` or ``0x7f.1``), or loopback for ``localhost`` names."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefx." for c in host) and host[0].isdigit():
        try:
            return socket.inet_ntoa(socket.inet_aton(host))  # the classic numeric forms
        except OSError:
            return None
    return None


def refusal(
    origin_url: str,
    origin_address: str | None,
    hop_url: str,
    hop_address: str | None,
    *,
    proxied: bool = False,
) -> str | None:
    """Why a redirect of a request for ``origin_url`` (first connected to ``origin_address``)
    to ``hop_url`` (connected to ``hop_address``) must not be followed; ``None``: follow it.

    ``proxied``: the hop goes through a proxy, so ``hop_address`` is the proxy's.
    """
    hop_host = _host(hop_url)
    if proxied or not hop_address:
        address = literal_address(hop_host)
        if address is None:
            return None  # a name only the proxy resolves: not ours to judge
    else:
        address = hop_address
    kind = address_kind(address)
    if kind is None:
        return None
    if hop_host == _host(origin_url):
        # The same host, unless a public name now resolves into a private network (rebinding).
        reached_publicly = (
            not proxied and origin_address is not None and address_kind(origin_address) is None
        )
        if not reached_publicly:
            return None
    return f"refused a redirect to {redact_url(hop_url)}: it leads to {address}, a {kind} address"


def curl_proxied(url: str, environ: Mapping[str, str]) -> bool:
    """Whether libcurl sends a request for ``url`` through a proxy from ``environ`` (its rules:
    ``http_proxy`` lower case only, ``https_proxy``/``HTTPS_PROXY``, ``all_proxy``/``ALL_PROXY``,
    and ``no_proxy``/``NO_PROXY`` host suffixes, or ``*``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    names = ["http_proxy"] if scheme == "http" else [f"{scheme}_proxy", f"{scheme.upper()}_PROXY"]
    if not any(environ.get(n) for n in (*names, "all_proxy", "ALL_PROXY")):
        return False
    host = (parts.hostname or "").rstrip(".")
    bypass = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    for entry in (e.strip().lower().lstrip(".") for e in bypass.split(",")):
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return False
    return True


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return ""
