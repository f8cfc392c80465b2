"""The guarded session against real servers on 127.0.0.1: resolve once, check, connect to the checked
address, keep the host name for Host, SNI and certificate verification."""

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from sysevents.net.destinations import GuardedAdapter, RefusedDestination, check_url, guarded_session

LOCAL = (ipaddress.ip_network("127.0.0.1/32"),)
TIMEOUT = 5


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so pooled connections are reused
    timeout = TIMEOUT

    def do_GET(self):  # noqa: N802 - http.server API
        self.server.seen.append((self.path, self.headers["Host"], self.client_address))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list = []
        self.accepted: list = []
        self.sni: list = []
        if context is not None:
            context.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def get_request(self):
        conn, addr = super().get_request()
        self.accepted.append(addr)
        return conn, addr

    @property
    def port(self) -> int:
        return self.server_address[1]


def serve(server: Server):
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


@pytest.fixture
def server():
    yield from serve(Server())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for the name localhost only (no IP address), its own CA file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_server(certificate):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from serve(Server(context))


class Resolver:
    """Answers from a script (the last answer repeats) and counts the questions."""

    def __init__(self, *answers: str | list[str]):
        self.answers = [[a] if isinstance(a, str) else a for a in answers]
        self.calls: list[str] = []

    def __call__(self, host, port, type=None, **kwargs):
        self.calls.append(host)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answer
        ]


def closed_port() -> tuple[socket.socket, int]:
    """A port on 127.0.0.1 that refuses connections (bound, not listening) while the socket is held."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def test_connects_to_the_checked_address_with_the_host_name_in_the_host_header(server):
    # rebind.test exists only in the resolver: reaching the server proves the connection used the
    # address that was checked, without resolving the name again.
    resolve = Resolver("127.0.0.1", "::ffff:127.0.0.1")
    with guarded_session(LOCAL, resolve=resolve) as session:
        r = session.get(f"http://rebind.test:{server.port}/a", timeout=TIMEOUT)
    assert r.status_code == 200
    assert resolve.calls == ["rebind.test"]
    assert server.seen == [("/a", f"rebind.test:{server.port}", server.seen[0][2])]


def test_a_name_rebound_to_a_refused_address_after_the_check_is_never_connected_to(server):
    # The first answer (allowlisted) passes check_url; the second (::ffff:127.0.0.1, not allowlisted,
    # but it reaches the same server) is what the session gets, and it refuses before connecting.
    resolve = Resolver("127.0.0.1", "::ffff:127.0.0.1")
    url = f"http://rebind.test:{server.port}/b"
    assert check_url(url, allow_http=True, allowlist=LOCAL, resolve=resolve) == ["127.0.0.1"]
    with guarded_session(LOCAL, resolve=resolve) as session:
        with pytest.raises(RefusedDestination) as err:
            session.get(url, timeout=TIMEOUT)
    assert str(err.value) == "destination 'rebind.test' is not a public address"
    assert "::ffff:127.0.0.1" in err.value.detail
    assert server.accepted == [] and server.seen == []


def test_every_address_is_checked_before_any_connection(server):
    resolve = Resolver(["127.0.0.1", "::ffff:127.0.0.1"])
    with guarded_session(LOCAL, resolve=resolve) as session:
        with pytest.raises(RefusedDestination, match="is not a public address"):
            session.get(f"http://mixed.test:{server.port}/", timeout=TIMEOUT)
    assert server.accepted == []


def test_refusal_looks_the_same_whatever_the_port(server):
    held, closed = closed_port()
    errors = []
    with held, guarded_session(allowlist=()) as session:
        for port in (server.port, closed):
            with pytest.raises(RefusedDestination) as err:
                session.get(f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
            errors.append(str(err.value))
    assert errors == ["destination '127.0.0.1' is not a public address"] * 2
    assert server.accepted == []


def test_connections_are_pooled_per_host_name_and_address(server):
    resolve = Resolver("127.0.0.1")
    with guarded_session(LOCAL, resolve=resolve) as session:
        for path in ("/1", "/2"):
            assert session.get(f"http://one.test:{server.port}{path}", timeout=TIMEOUT).status_code == 200
        assert session.get(f"http://two.test:{server.port}/3", timeout=TIMEOUT).status_code == 200
    assert resolve.calls == ["one.test", "one.test", "two.test"]  # once per request
    assert [(path, host) for path, host, _ in server.seen] == [
        ("/1", f"one.test:{server.port}"),
        ("/2", f"one.test:{server.port}"),
        ("/3", f"two.test:{server.port}"),
    ]
    assert len(server.accepted) == 2  # one.test reused its connection, two.test got its own
    assert server.seen[0][2] == server.seen[1][2] != server.seen[2][2]


def test_the_next_checked_address_is_tried_when_one_cannot_be_connected_to(server):
    # Nothing listens on [::1] at the server's port (or there is no IPv6, and ::1 is skipped).
    resolve = Resolver(["::1", "127.0.0.1"])
    allowlist = (*LOCAL, ipaddress.ip_network("::1/128"))
    with guarded_session(allowlist, resolve=resolve) as session:
        assert session.get(f"http://both.test:{server.port}/c", timeout=TIMEOUT).status_code == 200
    assert [path for path, _, _ in server.seen] == ["/c"]


def test_https_verifies_the_host_name_on_the_pinned_address(tls_server, certificate):
    ca = str(certificate[0])
    resolve = Resolver("127.0.0.1")
    with guarded_session(LOCAL, resolve=resolve) as session:
        r = session.get(f"https://localhost:{tls_server.port}/tls", verify=ca, timeout=TIMEOUT)
        assert r.status_code == 200
        assert tls_server.sni == ["localhost"]
        assert tls_server.seen[0][:2] == ("/tls", f"localhost:{tls_server.port}")
        # The same address under a name the certificate does not carry: refused by verification.
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://other.test:{tls_server.port}/tls", verify=ca, timeout=TIMEOUT)
    assert tls_server.sni[1:] == ["other.test"]
    assert len(tls_server.seen) == 1


def test_the_peer_is_checked_again_after_connect(server):
    # A pool asked for directly (not through send, which checks first): the connection's own check
    # refuses the peer before a byte is sent.
    adapter = GuardedAdapter(allowlist=())
    pool = adapter.poolmanager.connection_from_host(
        "127.0.0.1", server.port, "http", pool_kwargs={"destination": "direct.test"}
    )
    with pytest.raises(RefusedDestination) as err:
        pool.urlopen("GET", "/", retries=0, timeout=TIMEOUT)
    adapter.close()
    assert str(err.value) == "destination 'direct.test' is not a public address"
    assert "connected to 127.0.0.1" in err.value.detail
    assert server.seen == []


def test_redirects_and_proxies_are_not_followed(server):
    with guarded_session(LOCAL, resolve=Resolver("127.0.0.1")) as session:
        r = session.get(f"http://hooks.test:{server.port}/redirect", timeout=TIMEOUT)
        assert (r.status_code, r.headers["Location"]) == (302, "/elsewhere")
        with pytest.raises(RefusedDestination, match="proxy"):
            session.get(
                f"http://hooks.test:{server.port}/", proxies={"http": f"http://127.0.0.1:{server.port}"}
            )
    assert [path for path, _, _ in server.seen] == ["/redirect"]
