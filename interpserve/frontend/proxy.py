"""--proxy-headers: the client address and scheme that a trusted reverse proxy forwarded.

Behind a proxy, the peer of every connection is the proxy, and the client is named only in
headers that anyone can send. They are believed only from a peer in --forwarded-allow-ips, and
only as far as the chain of trusted proxies goes: each proxy appends the address it got the
request from, so the list is read from the right, and the first address that is not a trusted
proxy is the client (uvicorn's semantics). What a client wrote further left is never taken.

X-Forwarded-For and X-Forwarded-Proto win over Forwarded (RFC 7239) when both are present: the
common proxies set the former and pass a client's Forwarded header through untouched.

Sans I/O: the trust list is parsed once at startup, `resolve` is a pure function per request.
"""

from __future__ import annotations

from collections.abc import Iterable

from interpserve.events import Address
from interpserve.option_values import TrustedProxies

# The fields through which a proxy names the client or the scheme.
_FOR, _PROTO, _FORWARDED = b"x-forwarded-for", b"x-forwarded-proto", b"forwarded"
FORWARDING_FIELDS = frozenset((_FOR, _PROTO, _FORWARDED))
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def resolve(
    client: Address | None,
    scheme: str,
    headers: Iterable[tuple[bytes, bytes]],
    trusted: TrustedProxies,
) -> tuple[Address | None, str]:
    """The request's client and scheme: the peer's own, or what trusted proxies forwarded in
    X-Forwarded-For, X-Forwarded-Proto or Forwarded (a request without them need not come
    here: RequestHead.forwarded)."""
    forwarded_for: list[bytes] = []
    forwarded_proto: list[bytes] = []
    forwarded: list[bytes] = []
    for name, value in headers:
        if name == _FOR:
            forwarded_for.append(value)
        elif name == _PROTO:
            forwarded_proto.append(value)
        elif name == _FORWARDED:
            forwarded.append(value)
    if not (forwarded_for or forwarded_proto or forwarded):
        return client, scheme
    if (client[0] if client else None) not in trusted:
        return client, scheme
    elements = _forwarded_elements(b",".join(forwarded)) if forwarded else []
    nodes = _split_list(forwarded_for) if forwarded_for else [e.get("for", "") for e in elements]
    index = _client_index(nodes, trusted)
    if index is not None and nodes[index]:
        client = _node_address(nodes[index])
    if forwarded_proto:
        protos = _split_list(forwarded_proto)
        # One entry per proxy, like X-Forwarded-For; a proxy that overwrites it leaves one.
        proto = protos[index] if index is not None and len(protos) == len(nodes) else protos[-1]
    elif elements:
        chosen = elements[index] if index is not None and not forwarded_for else elements[-1]
        proto = chosen.get("proto", "")
    else:
        proto = ""
    return client, _SCHEMES.get(proto.lower(), scheme)


def _client_index(nodes: list[str], trusted: TrustedProxies) -> int | None:
    """The rightmost node that is not a trusted proxy; the leftmost if all are."""
    if not nodes:
        return None
    if trusted.everyone:
        return 0
    for index in range(len(nodes) - 1, -1, -1):
        if _node_address(nodes[index])[0] not in trusted:
            return index
    return 0


def _split_list(values: list[bytes]) -> list[str]:
    return [item.strip() for value in values for item in value.decode("latin-1").split(",")]


def _node_address(node: str) -> Address:
    """A node as proxies write it: "192.0.2.1", "192.0.2.1:80", "[2001:db8::1]:80", "::1",
    "unknown", "_hidden". The port is 0 when none is given."""
    host, port = node, ""
    if node.startswith("["):
        host, _, rest = node[1:].partition("]")
        port = rest.removeprefix(":")
    elif node.count(":") == 1:
        host, _, port = node.partition(":")
    return host, int(port) if port.isdigit() and len(port) <= 5 else 0


def _forwarded_elements(value: bytes) -> list[dict[str, str]]:
    """RFC 7239 Forwarded: comma-separated elements of semicolon-separated name=value pairs,
    values being tokens or quoted strings. Malformed pairs are skipped, not guessed at."""
    elements: list[dict[str, str]] = []
    pairs: dict[str, str] = {}
    text = value.decode("latin-1")
    pos, end = 0, len(text)
    while pos < end:
        char = text[pos]
        if char == ",":
            elements.append(pairs)
            pairs = {}
            pos += 1
        elif char in " \t;":
            pos += 1
        else:
            name_end = _find_any(text, pos, "=;,")
            name = text[pos:name_end].strip().lower()
            pos = name_end
            if pos < end and text[pos] == "=":
                item, pos = _pair_value(text, pos + 1)
                pairs.setdefault(name, item)
    elements.append(pairs)
    return elements


def _pair_value(text: str, pos: int) -> tuple[str, int]:
    if text.startswith('"', pos):
        chars = []
        pos += 1
        while pos < len(text) and text[pos] != '"':
            if text[pos] == "\\":
                pos += 1
            chars.append(text[pos : pos + 1])
            pos += 1
        return "".join(chars), pos + 1
    stop = _find_any(text, pos, ";,")
    return text[pos:stop].strip(), stop


def _find_any(text: str, pos: int, chars: str) -> int:
    found = [i for i in (text.find(c, pos) for c in chars) if i >= 0]
    return min(found, default=len(text))
