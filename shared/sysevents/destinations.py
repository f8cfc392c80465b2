"""Where deliveries may go: public addresses only, unless a network is explicitly allowlisted.

Refuses loopback, private (RFC 1918, ULA), link-local (169.254.169.254, the metadata server),
multicast, reserved and unspecified addresses, the metadata host names, and names that resolve to any
of them. The check runs twice at delivery time: on every address the name resolves to (`check_url`, for a
clear reason), and on the address the socket actually connected to (`GuardedAdapter`), so a name that
resolves to a public address for the check and to a private one for the connection (DNS rebinding)
is refused before a byte is sent. Redirects are never followed (the sender treats 3xx as permanent).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.google.internal."})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedDestination(ValueError):
    pass


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)


def check_address(addr: str, allowlist: Sequence[Network] = ()) -> None:
    """Raise RefusedDestination unless `addr` (an IP address) is public or allowlisted."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if any(ip in net for net in allowlist):
        return
    if not _is_public(ip):
        raise RefusedDestination(f"connected address {addr} is not public")


def _guarded(base: type, allowlist: tuple[Network, ...]) -> type:
    class Guarded(base):  # type: ignore[misc, valid-type]
        def _new_conn(self):
            sock = super()._new_conn()
            peer = sock.getpeername()[0]
            try:
                check_address(peer, allowlist)
            except RefusedDestination as err:
                sock.close()
                raise RefusedDestination(f"destination {self.host!r} {err} (DNS rebinding?)") from None
            return sock

    return Guarded


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections check the peer address (after connect, before any byte)."""

    def __init__(self, allowlist: Sequence[Network] = (), **kwargs):
        self.allowlist = tuple(allowlist)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        http = type(
            "GuardedHTTPPool",
            (HTTPConnectionPool,),
            {"ConnectionCls": _guarded(HTTPConnection, self.allowlist)},
        )
        https = type(
            "GuardedHTTPSPool",
            (HTTPSConnectionPool,),
            {"ConnectionCls": _guarded(HTTPSConnection, self.allowlist)},
        )
        self.poolmanager.pool_classes_by_scheme = {"http": http, "https": https}


def guarded_session(allowlist: Sequence[Network] = (), pool_maxsize: int = 32) -> requests.Session:
    """A session that connects only to public (or allowlisted) addresses, ignores proxy variables and
    never follows redirects by itself."""
    session = requests.Session()
    session.trust_env = False  # a proxy would make the peer check see the proxy, not the destination
    adapter = GuardedAdapter(allowlist, pool_connections=16, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


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
