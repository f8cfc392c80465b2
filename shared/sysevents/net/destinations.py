"""Where deliveries may go: public addresses only, unless a network is explicitly allowlisted.

Refuses loopback, private (RFC 1918, ULA), link-local (169.254.169.254, the metadata server),
site-local (fec0::/10), multicast, reserved and unspecified addresses, numeric hosts in any form but
a.b.c.d (`0x7f000001`, `2130706433`, `0177.0.0.1`, `127.1`: parsers and resolvers read them
differently), IPv6 addresses that embed a refused IPv4 address (IPv4-mapped, IPv4-compatible, 6to4,
Teredo, NAT64), the metadata host names, and names that resolve to any of them: a name is refused if any
of its addresses is. Numeric hosts are checked as addresses, at save time (`check_url`) and at send time
(`check_host`, which the guarded session runs before it connects).

`check_url` vets a URL (scheme, credentials, host, every address the host resolves to) for a clear
reason before anything is sent. The check that the connection relies on is in `guarded_session`: for
each request its adapter resolves the host once, refuses it unless every address is allowed, and
connects to one of those checked addresses (the IP is pinned; the name is not resolved again, so DNS
rebinding has no window), while the HTTP Host header, TLS SNI and certificate verification use the
host name. Connections are pooled per host name and pinned address. The peer address is checked again
after connect, before a byte is sent. The session uses no proxies and never follows redirects (the
sender treats 3xx as permanent).

What tenants see (`str(err)`) names the host only, never the addresses it resolves to, and a refused
destination is refused before any connection is made, so the answer does not depend on which ports
are open. `err.detail` has the addresses, for operator logs.
"""

from __future__ import annotations

import collections
import functools
import heapq
import ipaddress
import itertools
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.poolmanager import PoolKey, _default_key_normalizer
from urllib3.util.connection import HAS_IPV6

METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.google.internal."})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list]

# NAT64: the well-known prefix carries the IPv4 address in its last 32 bits (RFC 6052); where the
# local-use prefix (RFC 8215) puts it depends on the translator's configuration, so it is refused whole.
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d, deprecated (RFC 4291)


class RefusedDestination(ValueError):
    """A destination deliveries may not go to. `str(err)` is safe to show the tenant; `detail` (for
    operator logs) may name the addresses the host resolved to or the peer that was connected to."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (6to4, Teredo server and client, NAT64, compatible)."""
    found = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64_WELL_KNOWN or ip in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _is_public_as_such(ip: Address) -> bool:
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local  # fec0::/10, deprecated
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback or site_local
    )


def _is_public(ip: Address) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return _is_public_as_such(ip)
    if ip.ipv4_mapped is not None:
        return _is_public_as_such(ip.ipv4_mapped)
    if ip in _NAT64_LOCAL_USE or not _is_public_as_such(ip):
        return False
    return all(_is_public_as_such(v4) for v4 in _embedded_ipv4(ip))


def _allowed(addr: str, allowlist: Sequence[Network]) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    return any(ip in net for net in allowlist) or _is_public(ip)


def _not_public(host: str | None, detail: str) -> RefusedDestination:
    what = f"destination {host!r}" if host else "destination"
    return RefusedDestination(f"{what} is not a public address", detail)


def check_address(addr: str, allowlist: Sequence[Network] = (), host: str | None = None) -> None:
    """Raise RefusedDestination unless `addr` (an IP address) is public or allowlisted. The message
    names `host` if given, never `addr` (that goes to `detail`)."""
    if not _allowed(addr, allowlist):
        raise _not_public(host, f"{addr} is not public or allowlisted")


def _numeric_form(host: str) -> bool:
    """A host that libc would read as an IPv4 address but is not written a.b.c.d in decimal
    (`0x7f000001`, `2130706433`, `0177.0.0.1`, `127.1`): resolvers and parsers disagree on these."""
    try:
        socket.inet_aton(host)
    except (OSError, UnicodeError, ValueError):
        return bool(_NUMERIC.fullmatch(host))  # forms inet_aton refuses but some parsers take
    try:
        return str(ipaddress.IPv4Address(host)) != host
    except ValueError:
        return True


_NUMERIC = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?", re.IGNORECASE)


def _check_literal(host: str, allowlist: Sequence[Network]) -> None:
    """Refuse a numeric host in any form but the standard one, and a standard one that is not public."""
    if _numeric_form(host):
        raise RefusedDestination(
            f"destination {host!r} is a numeric address in a non-standard form (write it as a.b.c.d)"
        )
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return
    check_address(host.strip("[]"), allowlist, host)


def check_host(
    host: str, port: int, *, allowlist: Sequence[Network] = (), resolve: Resolver = socket.getaddrinfo
) -> list[str]:
    """Resolve `host` once; raise RefusedDestination unless every address is public or allowlisted.
    Return the addresses in the resolver's order of preference."""
    if host.lower() in METADATA_HOSTS:
        raise RefusedDestination(f"destination {host!r} is the metadata server")
    _check_literal(host, allowlist)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise RefusedDestination(f"destination {host!r} does not resolve", f"{host}: {err}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise RefusedDestination(f"destination {host!r} does not resolve", f"{host}: no addresses")
    refused = [addr for addr in addresses if not _allowed(addr, allowlist)]
    if refused:
        raise _not_public(
            host,
            f"{host} resolves to {', '.join(addresses)}; not public or allowlisted: {', '.join(refused)}",
        )
    return addresses


def check_url(
    url: str,
    *,
    allow_http: bool = False,
    allowlist: Sequence[Network] = (),
    resolve: Resolver | None = socket.getaddrinfo,
) -> list[str]:
    """Raise RefusedDestination unless the URL may be delivered to; return the vetted addresses. With
    `resolve=None` only the URL itself is checked (the guarded session resolves, checks and pins the
    address when it connects: one lookup per delivery)."""
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
    _check_literal(host, allowlist)  # even when nothing is resolved here
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise RefusedDestination("destination URL has an invalid port") from None
    if resolve is None:
        return []
    return sorted(check_host(host, port, allowlist=allowlist, resolve=resolve))


# Pools are keyed by the pinned address (key_host) and the host name it was checked for (key_destination):
# a connection is only reused for the name it was opened for.
_GuardedPoolKey = collections.namedtuple("_GuardedPoolKey", (*PoolKey._fields, "key_destination"))
_key_fn = functools.partial(_default_key_normalizer, _GuardedPoolKey)


_running = threading.local()


class _Watchdog:
    """One thread per process that expires the deadlines due (no thread per request)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline, seconds: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._seq), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sysevents-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2]._ended:
                    heapq.heappop(self._heap)  # ended in time: forget it
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _, deadline = self._heap[0]
                left = due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                heapq.heappop(self._heap)
            deadline._expire()


_watchdog = _Watchdog()


class Deadline:
    """A whole request's time limit, connect to last byte (`with Deadline(s): session.post(...)` in one
    thread). Read timeouts bound each wait for data only, so a receiver answering a byte at a time, each
    within the read timeout, could hold the thread for ever; past the deadline the connection the request
    runs on is shut down, and the request fails (`expired` says why)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._conn = None
        self._ended = False
        self._lock = threading.Lock()

    def __enter__(self) -> Deadline:
        _running.deadline = self
        _watchdog.add(self, self.seconds)
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._ended = True
        _running.deadline = None

    def _attach(self, conn) -> None:
        with self._lock:
            self._conn = conn
            expired = self.expired
        if expired:
            _shut(conn)

    def _expire(self) -> None:
        with self._lock:
            if self._ended:
                return
            self.expired = True
            conn = self._conn
        if conn is not None:
            _shut(conn)


def _shut(conn) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # a blocked read in the request's thread returns at once
        except OSError:
            pass


def _guarded(base: type, allowlist: tuple[Network, ...]) -> type:
    class Guarded(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, destination: str | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.destination = destination or self.host

        def request(self, *args, **kwargs):
            deadline = getattr(_running, "deadline", None)
            if deadline is not None:
                deadline._attach(self)
            return super().request(*args, **kwargs)

        def connect(self):
            super().connect()
            deadline = getattr(_running, "deadline", None)
            if deadline is not None:
                deadline._attach(self)  # the socket exists now (and is TLS-wrapped for https)

        def _new_conn(self):
            sock = super()._new_conn()
            peer = sock.getpeername()[0]
            if not _allowed(peer, allowlist):
                sock.close()
                raise _not_public(
                    self.destination, f"connected to {peer} for {self.destination}, which is not public"
                )
            return sock

    return Guarded


def _not_connected(err: requests.ConnectionError) -> bool:
    """Whether the request failed before its connection was made (so nothing was sent)."""
    cause = err.args[0] if err.args else None
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, ConnectTimeoutError)


class GuardedAdapter(HTTPAdapter):
    """A requests adapter that connects only to checked addresses: each request resolves the host once
    (with `resolve`), is refused unless every address is public or allowlisted, and connects to one of
    them, trying the next if a connection cannot be made. The peer is checked again after connect."""

    def __init__(
        self, allowlist: Sequence[Network] = (), *, resolve: Resolver = socket.getaddrinfo, **kwargs
    ):
        self.allowlist = tuple(allowlist)
        self.resolve = resolve
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
        self.poolmanager.key_fn_by_scheme = {"http": _key_fn, "https": _key_fn}

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        parts = urlsplit(request.url)
        host = parts.hostname or ""
        if select_proxy(request.url, proxies):
            raise RefusedDestination(f"destination {host!r} cannot be reached through a proxy")
        scheme = parts.scheme.lower()
        default_port = 443 if scheme == "https" else 80
        port = parts.port or default_port
        addresses = check_host(host, port, allowlist=self.allowlist, resolve=self.resolve)
        candidates = [a for a in addresses if HAS_IPV6 or ":" not in a] or addresses
        pinned = request.copy()  # the caller's request (reused for redirects) keeps its headers
        if "Host" not in pinned.headers:
            name = host.rstrip(".")
            name = f"[{name}]" if ":" in name else name
            pinned.headers["Host"] = name if port == default_port else f"{name}:{port}"
        for address in candidates[:-1]:
            pinned.pinned_address = address
            try:
                return super().send(pinned, stream, timeout, verify, cert, proxies)
            except requests.ConnectionError as err:
                if not _not_connected(err):
                    raise
        pinned.pinned_address = candidates[-1]
        return super().send(pinned, stream, timeout, verify, cert, proxies)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        """The pool for the request's pinned address (set by `send`), named for its host."""
        address = getattr(request, "pinned_address", None)
        if address is None:
            raise RefusedDestination("destination was not checked")  # only `send` gets here
        try:
            host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        except ValueError as err:
            raise requests.exceptions.InvalidURL(err, request=request) from None
        host = host_params["host"]
        pool_kwargs["destination"] = host
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = host  # SNI and certificate verification for the name
        return self.poolmanager.connection_from_host(
            **{**host_params, "host": address}, pool_kwargs=pool_kwargs
        )

    def get_connection(self, url, proxies=None):
        raise NotImplementedError("GuardedAdapter connects through send() only")


class _NoRedirects(requests.Session):
    def get_redirect_target(self, resp):
        return None


def guarded_session(
    allowlist: Sequence[Network] = (), pool_maxsize: int = 32, *, resolve: Resolver = socket.getaddrinfo
) -> requests.Session:
    """A session that connects only to public (or allowlisted) addresses it checked itself, ignores
    proxy variables and never follows redirects (a 3xx is returned as is)."""
    session = _NoRedirects()
    session.trust_env = False  # a proxy would make the peer check see the proxy, not the destination
    adapter = GuardedAdapter(
        allowlist, resolve=resolve, pool_connections=16, pool_maxsize=pool_maxsize, max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
