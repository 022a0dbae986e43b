"""What the HTTP/1.1 parser hands the connection, whichever backend parsed it (or the fast
path): a request's head, its body's bytes, its end, and a protocol switch. The contract between
http_parser.py (and the rules it applies, http_rules.py) and the connection; the compiled fast
path (_speedups.c) builds RequestHead too, by position."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RequestHead:
    method: str
    target: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]  # names lowercased
    keep_alive: bool
    expect_continue: bool
    has_body: bool
    # A protocol switch, as llhttp decides it: `Connection: upgrade` and an `Upgrade` header.
    upgrade: bool = False
    # A field through which a proxy names the client or scheme (see proxy.resolve): most
    # requests have none, and need not be searched for them.
    forwarded: bool = False


@dataclass(slots=True)
class BodyData:
    data: bytes


class EndOfRequest:
    """The request's body is complete."""


END_OF_REQUEST = EndOfRequest()


@dataclass(slots=True)
class Upgrade:
    """Follows the EndOfRequest of a request that proposes a protocol switch: the parser stops
    there (llhttp would not go on), and `data` is what came after it, which is not HTTP."""

    head: RequestHead
    data: bytes


ParsedEvent = RequestHead | BodyData | EndOfRequest | Upgrade
