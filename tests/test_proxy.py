"""--proxy-headers and --forwarded-allow-ips: sans I/O first, then through a real server."""

from __future__ import annotations

import httpx
import pytest

from interpserve.config import Config
from interpserve.errors import ConfigError
from interpserve.frontend.proxy import resolve
from interpserve.option_values import TrustedProxies, parse_trusted
from interpserve.testing import ServerProcess

PEER = ("127.0.0.1", 50000)
LOCAL = parse_trusted("127.0.0.1")


def headers(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode("latin-1")) for name, value in pairs]


# The trust list


def test_parse_addresses_and_networks() -> None:
    trusted = parse_trusted(" 127.0.0.1, 10.0.0.0/8 ,::1, 2001:db8::/32 ")
    for host in ("127.0.0.1", "10.1.2.3", "::1", "2001:db8::5", "::ffff:10.9.9.9"):
        assert host in trusted
    for host in ("127.0.0.2", "11.0.0.1", "::2", "2001:db9::1", "unknown", ""):
        assert host not in trusted
    assert None not in trusted  # a Unix socket peer has no address


def test_star_trusts_everyone_even_unix_socket_peers() -> None:
    trusted = parse_trusted("*")
    assert trusted.everyone
    assert "203.0.113.9" in trusted
    assert None in trusted


@pytest.mark.parametrize("text", ["localhost", "10.0.0.0/33", "1.2.3.4.5", "10.0.0.1/8/8"])
def test_parse_rejects_what_is_not_an_address(text: str) -> None:
    with pytest.raises(ValueError, match="forwarded_allow_ips"):
        parse_trusted(text)


def test_config_checks_the_trust_list() -> None:
    with pytest.raises(ConfigError, match="not an IP address"):
        Config(forwarded_allow_ips="proxy.example")
    assert Config(forwarded_allow_ips="10.0.0.0/8,*").forwarded_allow_ips == "10.0.0.0/8,*"


# X-Forwarded-For and X-Forwarded-Proto


def test_no_forwarding_headers_changes_nothing() -> None:
    assert resolve(PEER, "http", headers(("host", "a")), LOCAL) == (PEER, "http")


def test_untrusted_peer_is_not_believed() -> None:
    pairs = headers(("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https"))
    assert resolve(("192.0.2.1", 1), "http", pairs, LOCAL) == (("192.0.2.1", 1), "http")


def test_trusted_peer_forwards_client_and_scheme() -> None:
    pairs = headers(("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https"))
    assert resolve(PEER, "http", pairs, LOCAL) == (("203.0.113.7", 0), "https")


def test_rightmost_untrusted_address_is_the_client() -> None:
    """A client can put anything on the left; the proxies append on the right."""
    trusted = parse_trusted("127.0.0.1, 10.0.0.0/8")
    pairs = headers(("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.3"))
    assert resolve(PEER, "http", pairs, trusted)[0] == ("203.0.113.7", 0)


def test_all_trusted_takes_the_leftmost() -> None:
    trusted = parse_trusted("127.0.0.1, 10.0.0.0/8")
    pairs = headers(("x-forwarded-for", "10.0.0.9, 10.0.0.2"))
    assert resolve(PEER, "http", pairs, trusted)[0] == ("10.0.0.9", 0)


def test_star_takes_the_leftmost() -> None:
    pairs = headers(("x-forwarded-for", "203.0.113.7, 198.51.100.1"))
    assert resolve(PEER, "http", pairs, parse_trusted("*"))[0] == ("203.0.113.7", 0)


def test_several_header_lines_are_one_list() -> None:
    pairs = headers(("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.7"))
    assert resolve(PEER, "http", pairs, LOCAL)[0] == ("203.0.113.7", 0)


@pytest.mark.parametrize(
    ("node", "address"),
    [
        ("203.0.113.7:8080", ("203.0.113.7", 8080)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("unknown", ("unknown", 0)),
    ],
)
def test_node_forms(node: str, address: tuple[str, int]) -> None:
    assert resolve(PEER, "http", headers(("x-forwarded-for", node)), LOCAL)[0] == address


def test_empty_forwarded_for_keeps_the_peer() -> None:
    assert resolve(PEER, "http", headers(("x-forwarded-for", "")), LOCAL)[0] == PEER


@pytest.mark.parametrize(
    ("proto", "scheme"),
    [("https", "https"), ("HTTPS", "https"), ("wss", "https"), ("ws", "http"), ("gopher", "http")],
)
def test_forwarded_proto_values(proto: str, scheme: str) -> None:
    assert resolve(PEER, "http", headers(("x-forwarded-proto", proto)), LOCAL) == (PEER, scheme)


def test_proto_list_follows_the_client_entry() -> None:
    trusted = parse_trusted("127.0.0.1, 10.0.0.0/8")
    pairs = headers(
        ("x-forwarded-for", "203.0.113.7, 10.0.0.2"), ("x-forwarded-proto", "https, http")
    )
    assert resolve(PEER, "http", pairs, trusted) == (("203.0.113.7", 0), "https")


def test_proto_overwritten_by_the_last_proxy() -> None:
    pairs = headers(("x-forwarded-for", "6.6.6.6, 203.0.113.7"), ("x-forwarded-proto", "https"))
    assert resolve(PEER, "http", pairs, LOCAL) == (("203.0.113.7", 0), "https")


# Forwarded (RFC 7239)


def test_forwarded_header() -> None:
    pairs = headers(("forwarded", 'for=203.0.113.7;proto=https;by="[2001:db8::9]"'))
    assert resolve(PEER, "http", pairs, LOCAL) == (("203.0.113.7", 0), "https")


def test_forwarded_rightmost_untrusted_element() -> None:
    trusted = parse_trusted("127.0.0.1, 10.0.0.0/8")
    value = 'for=6.6.6.6;proto=http, For="[2001:db8:cafe::17]:4711";Proto=https, for=10.0.0.2'
    pairs = headers(("forwarded", value))
    assert resolve(PEER, "http", pairs, trusted) == (("2001:db8:cafe::17", 4711), "https")


def test_forwarded_quoted_values_and_junk() -> None:
    pairs = headers(("forwarded", 'junk;for="203.0.113.7:80" ; proto="https" ;;'))
    assert resolve(PEER, "http", pairs, LOCAL) == (("203.0.113.7", 80), "https")


def test_x_forwarded_for_wins_over_forwarded() -> None:
    """A proxy that sets X-Forwarded-For may pass a client's Forwarded header through."""
    pairs = headers(("forwarded", "for=6.6.6.6;proto=https"), ("x-forwarded-for", "203.0.113.7"))
    assert resolve(PEER, "http", pairs, LOCAL) == (("203.0.113.7", 0), "https")


def test_unix_socket_peer_needs_star() -> None:
    pairs = headers(("x-forwarded-for", "203.0.113.7"))
    assert resolve(None, "http", pairs, LOCAL) == (None, "http")
    assert resolve(None, "http", pairs, TrustedProxies(everyone=True))[0] == ("203.0.113.7", 0)


# Through a real server: /scope shows the client and the scheme


def scope(server: ServerProcess, **request_headers: str) -> dict[str, object]:
    response = httpx.get(server.url + "/scope", headers=request_headers, timeout=10)
    return response.json()  # type: ignore[no-any-return]


FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


def test_server_trusts_loopback_by_default(start_server, http_impl: str) -> None:
    server = start_server("examples.hello:app", "--workers", "1", "--http", http_impl)
    seen = scope(server, **FORWARDED)
    assert (seen["client"], seen["scheme"]) == (["203.0.113.7", 0], "https")
    plain = scope(server)
    assert plain["client"][0] == "127.0.0.1"  # type: ignore[index]
    assert plain["scheme"] == "http"
    assert server.wait_for_output('203.0.113.7:0 - "GET /scope HTTP/1.1" 200')  # access log


def test_server_trusts_ipv6_loopback_by_default(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "1", "--host", "::1")
    url = f"http://[::1]:{server.port}/scope"
    seen = httpx.get(url, headers=FORWARDED, timeout=10).json()
    assert (seen["client"], seen["scheme"]) == (["203.0.113.7", 0], "https")


def test_server_without_proxy_headers(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "1", "--no-proxy-headers")
    seen = scope(server, **FORWARDED)
    assert (seen["client"][0], seen["scheme"]) == ("127.0.0.1", "http")  # type: ignore[index]


def test_server_with_other_trusted_proxies_from_the_environment(start_server) -> None:
    env = {"INTERPSERVE_FORWARDED_ALLOW_IPS": "10.0.0.0/8"}
    server = start_server("examples.hello:app", "--workers", "1", env=env)
    seen = scope(server, **FORWARDED, Forwarded="for=198.51.100.1")
    assert (seen["client"][0], seen["scheme"]) == ("127.0.0.1", "http")  # type: ignore[index]


def test_server_with_forwarded_header(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "1", "--forwarded-allow-ips", "*")
    seen = scope(server, Forwarded='for="[2001:db8::7]:1234";proto=https')
    assert (seen["client"], seen["scheme"]) == (["2001:db8::7", 1234], "https")
