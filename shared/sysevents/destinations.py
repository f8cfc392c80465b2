"""Where deliveries may go: public addresses only, unless a network is explicitly allowlisted.

Refuses loopback, private (RFC 1918, ULA), link-local (169.254.169.254, the metadata server),
multicast, reserved and unspecified addresses, the metadata host names, and names that resolve to any
of them. The check runs on every address a name resolves to, at delivery time.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.google.internal."})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedDestination(ValueError):
    pass


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def check_url(
    url: str, *, allow_http: bool = False, allowlist: Sequence[Network] = (), resolve=socket.getaddrinfo
) -> list[str]:
    """Raise RefusedDestination unless the URL may be delivered to; return the vetted addresses."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_http and scheme == "http"):
        raise RefusedDestination(f"destination must use https, not {scheme or 'no scheme'!r}")
    host = (parts.hostname or "").lower()
    if not host:
        raise RefusedDestination("destination URL has no host")
    if parts.username or parts.password:
        raise RefusedDestination("destination URL must not carry credentials; use headers")
    if host in METADATA_HOSTS:
        raise RefusedDestination(f"destination {host!r} is the metadata server")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise RefusedDestination("destination URL has an invalid port") from None
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise RefusedDestination(f"destination host {host!r} does not resolve: {err}") from None
    addresses = sorted({info[4][0] for info in infos})
    for addr in addresses:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
        if any(ip in net for net in allowlist):
            continue
        if not _is_public(ip):
            raise RefusedDestination(f"destination {host!r} resolves to non-public address {addr}")
    return addresses
