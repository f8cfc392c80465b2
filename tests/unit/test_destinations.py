import ipaddress
import socket

import pytest

from sysevents.destinations import RefusedDestination, check_url


def resolver(*addresses):
    def resolve(host, port, type=None):
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in addresses
        ]

    return resolve


def test_public_https_is_allowed():
    assert check_url("https://hooks.example.com/x", resolve=resolver("93.184.216.34")) == ["93.184.216.34"]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address):
    with pytest.raises(RefusedDestination, match="non-public address"):
        check_url("https://innocent.example.com/", resolve=resolver("93.184.216.34", address))


def test_metadata_names_scheme_and_credentials():
    with pytest.raises(RefusedDestination, match="metadata server"):
        check_url("https://metadata.google.internal/computeMetadata/v1/")
    with pytest.raises(RefusedDestination, match="must use https"):
        check_url("http://hooks.example.com/", resolve=resolver("93.184.216.34"))
    with pytest.raises(RefusedDestination, match="credentials"):
        check_url("https://u:p@hooks.example.com/", resolve=resolver("93.184.216.34"))


def test_allowlist_and_http_are_explicit_opt_ins():
    local = (ipaddress.ip_network("127.0.0.1/32"),)
    assert check_url("http://localhost:9/", allow_http=True, allowlist=local, resolve=resolver("127.0.0.1"))
    with pytest.raises(RefusedDestination):
        check_url("http://localhost:9/", allow_http=True, allowlist=local, resolve=resolver("127.0.0.2"))
