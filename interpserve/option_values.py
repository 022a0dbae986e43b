"""The values of the options that both Config (to validate them) and the front end (to use
them) parse: --forwarded-allow-ips and --header. A leaf module: it imports nothing of ours, so
option validation does not import the front end."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_HEADER_OPTION = re.compile(
    r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*"
)


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    everyone: bool = False
    addresses: frozenset[str] = frozenset()  # single addresses, as written: the usual case
    networks: tuple[_Network, ...] = ()

    def __contains__(self, host: object) -> bool:
        if self.everyone:
            return True
        if not isinstance(host, str):
            return False  # no address (a Unix socket peer): trusted only by "*"
        if host in self.addresses:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def parse_trusted(text: str) -> TrustedProxies:
    """--forwarded-allow-ips: comma-separated addresses and CIDR networks, or "*"."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if "*" in items:
        return TrustedProxies(everyone=True)
    networks = []
    for item in items:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"forwarded_allow_ips: {item!r} is not an IP address or network"
            ) from None
    addresses = frozenset(str(n.network_address) for n in networks if n.num_addresses == 1)
    return TrustedProxies(addresses=addresses, networks=tuple(networks))


def encode_header(text: str) -> bytes:
    """A --header option, "NAME:VALUE", as a header line; ValueError if it is not one (nothing
    that could split the response)."""
    match = _HEADER_OPTION.fullmatch(text)
    if not match:
        raise ValueError(f"header {text!r} is not NAME:VALUE with a valid name and value")
    name, value = match.groups()
    return b"%s: %s\r\n" % (name.lower().encode("latin-1"), value.encode("latin-1"))
