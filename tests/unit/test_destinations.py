import ipaddress
import socket

import pytest

from sysevents.net.destinations import RefusedDestination, check_address, check_host, check_url


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
    with pytest.raises(RefusedDestination, match="is not a public address"):
        check_url("https://innocent.example.com/", resolve=resolver("93.184.216.34", address))


@pytest.mark.parametrize(
    "address",
    [
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:0:a9fe:a9fe::f7f7:f7f7",  # Teredo, server 169.254.169.254 (client 8.8.8.8)
        "2001:0:808:808::80ff:fffe",  # Teredo, client 127.0.0.1 (bits inverted; server 8.8.8.8)
        "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix, 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 well-known prefix, 127.0.0.1
        "64:ff9b:1::a00:1",  # NAT64 local-use prefix
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "::7f00:1",  # IPv4-compatible 127.0.0.1
    ],
)
def test_ipv6_forms_of_non_public_ipv4_addresses_are_refused(address):
    with pytest.raises(RefusedDestination, match="is not a public address"):
        check_url("https://innocent.example.com/", resolve=resolver(address))
    with pytest.raises(RefusedDestination):
        check_address(address)


@pytest.mark.parametrize("address", ["2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111"])
def test_ipv6_forms_of_public_addresses_are_allowed(address):
    assert check_url("https://hooks.example.com/", resolve=resolver(address)) == [address]
    check_address(address)


def test_messages_name_the_host_never_its_addresses():
    with pytest.raises(RefusedDestination) as err:
        check_url("https://innocent.example.com/", resolve=resolver("93.184.216.34", "10.1.2.3"))
    assert str(err.value) == "destination 'innocent.example.com' is not a public address"
    assert "10.1.2.3" in err.value.detail and "93.184.216.34" in err.value.detail

    with pytest.raises(RefusedDestination) as err:
        check_url("https://10.0.0.1/hook")
    assert str(err.value) == "destination '10.0.0.1' is not a public address"

    def unresolvable(host, port, type=None):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(RefusedDestination) as err:
        check_url("https://nx.example.com/", resolve=unresolvable)
    assert str(err.value) == "destination 'nx.example.com' does not resolve"
    assert "Name or service not known" in err.value.detail

    with pytest.raises(RefusedDestination) as err:
        check_address("10.1.2.3", host="innocent.example.com")
    assert str(err.value) == "destination 'innocent.example.com' is not a public address"
    assert "10.1.2.3" in err.value.detail


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


@pytest.mark.parametrize("address", ["fec0::1", "fec0:1234::5", "feff::1"])
def test_site_local_ipv6_is_refused(address):
    with pytest.raises(RefusedDestination, match="is not a public address"):
        check_url("https://innocent.example.com/", resolve=resolver(address))
    with pytest.raises(RefusedDestination, match="is not a public address"):
        check_url(f"https://[{address}]/", resolve=resolver("93.184.216.34"))


@pytest.mark.parametrize(
    "host",
    ["0x7f000001", "2130706433", "0177.0.0.1", "127.1", "0x7f.1", "0", "017700000001", "127.0.0.01",
     "0xA9FEA9FE", "3232235777", "93.184.216.034", "1.2.3.4.", "0x5db8d822"],
)  # fmt: skip
def test_numeric_hosts_in_non_standard_forms_are_refused_at_save_and_send_time(host):
    public = resolver("93.184.216.34")  # even where a resolver would say public
    for resolve in (public, None):  # None: the URL alone (the guarded session resolves when it sends)
        with pytest.raises(RefusedDestination, match="non-standard form"):
            check_url(f"https://{host}/hook", resolve=resolve)
    with pytest.raises(RefusedDestination, match="non-standard form"):
        check_host(host, 443, resolve=public)  # what the guarded session runs before it connects


def test_standard_numeric_hosts_are_checked_as_addresses_without_resolving():
    never = resolver()  # resolves to nothing: a literal must not need it
    with pytest.raises(RefusedDestination, match="is not a public address"):
        check_url("https://127.0.0.1/hook", resolve=None)
    assert check_url("https://93.184.216.34/hook", resolve=resolver("93.184.216.34")) == ["93.184.216.34"]
    with pytest.raises(RefusedDestination, match="does not resolve"):
        check_url("https://93.184.216.34/hook", resolve=never)
    for name in ("hooks.example.com", "123.example.com", "0x7f.example.com", "1e100.net"):
        assert check_url(f"https://{name}/", resolve=resolver("93.184.216.34")) == ["93.184.216.34"]
