"""What an HTTP/2 request must look like before it reaches an app, and how a response's fields
are written for HTTP/2 (RFC 9113 §8.2, §8.3): pure functions, no I/O and no connection state
(the framing of a message, §8.1, is http2_connection.py's).

A malformed request is a stream error, as RFC 9113 §8.1.1 says, so the connection's other
streams go on (the h2 library, with its own validation on, makes each a connection error).
An HTTP/2 request is held to the same limits and the same `RequestHead` as an HTTP/1.1 one, so
the request cycle cannot tell them apart.
"""

from __future__ import annotations

import re
from enum import Enum
from functools import cache

from interpserve.compiled import speedups
from interpserve.errors import BadRequest, MalformedRequest
from interpserve.events import Headers
from interpserve.frontend.http2_hpack import python_encode_fields
from interpserve.frontend.http_events import RequestHead
from interpserve.frontend.http_rules import Limits
from interpserve.frontend.proxy import FORWARDING_FIELDS
from interpserve.frontend.response import DefaultHeaders

_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority"))
# Meaningful only hop by hop in HTTP/1.1: an HTTP/2 request that carries one is malformed
# (RFC 9113 §8.2.2), and an app's response that has one gets it dropped.
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")  # a token, lowercase (RFC 9113 §8.2.1)
_BAD_VALUE = re.compile(rb"[\0\r\n]|^[ \t]|[ \t]$")


class H2Framing(Enum):
    NONE = "none"  # HEAD, 1xx, 204, 304: the HEADERS frame ends the stream
    LENGTH = "length"  # the app's Content-Length: no more than that is sent
    STREAM = "stream"  # DATA frames until the app's last chunk


def request_head(
    fields: list[tuple[bytes, bytes]], end_stream: bool, limits: Limits
) -> RequestHead:
    """The head of a request from its decoded header list. MalformedRequest breaks HTTP/2's
    rules (a stream error); BadRequest is a request too large for the limits (answered with
    its status, like HTTP/1.1's)."""
    pseudo: dict[bytes, bytes] = {}
    headers: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    for name, value in fields:
        if name[:1] == b":":
            if headers or cookies:
                raise MalformedRequest("a pseudo-header after a regular header")
            if name not in _REQUEST_PSEUDO or name in pseudo:
                raise MalformedRequest(f"unknown or repeated pseudo-header {name!r}")
            pseudo[name] = value
            continue
        _check_field(name, value)
        limits.check_field(len(headers) + 1, len(name) + len(value))
        if name == b"cookie":
            cookies.append(value)  # several, which HTTP/1.1 would have joined (§8.2.3)
        else:
            headers.append((name, value))
    method = pseudo.get(b":method", b"")
    path = pseudo.get(b":path", b"")
    if method == b"CONNECT":
        # Whether or not it is well formed (§8.5), it gets a response, which §8.1.1 allows.
        raise BadRequest("CONNECT is for proxies, not supported here", status=501)
    if not method or not pseudo.get(b":scheme") or not path:
        raise MalformedRequest("a request needs :method, :scheme and :path")
    if not (path[:1] == b"/" or (path == b"*" and method == b"OPTIONS")):
        raise MalformedRequest("the :path must be a path")
    limits.check_target(len(path))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    names = [name for name, _ in headers]
    authority = pseudo.get(b":authority")
    hosts = [value for name, value in headers if name == b"host"]
    if len(hosts) > 1:
        raise MalformedRequest("more than one Host header")
    if authority is not None:
        if hosts and hosts != [authority]:
            raise MalformedRequest("a Host header that differs from :authority")
        if not hosts:
            headers.insert(0, (b"host", authority))  # where apps written for HTTP/1.1 look
    lengths = {value for name, value in headers if name == b"content-length"}
    for value in lengths:
        if not value.isdigit() or len(value) > 18:
            raise MalformedRequest("invalid content-length")
        limits.check_body(int(value))
    if len({int(value) for value in lengths}) > 1:
        raise MalformedRequest("content-length fields that differ")
    expect_continue = not end_stream and any(
        name == b"expect" and value.lower() == b"100-continue" for name, value in headers
    )
    return RequestHead(
        method.decode("ascii", errors="replace"),
        path,
        "2",
        headers,
        True,
        expect_continue,
        not end_stream,
        False,
        not FORWARDING_FIELDS.isdisjoint(names),
    )


def accepted_head(
    fields: list[tuple[bytes, bytes]], end_stream: bool, limits: Limits
) -> RequestHead | None:
    """`request_head`'s head, or None where it raises (it names the fault then). Pure: the
    compiled version (_speedups.c), which every request goes through where it is built,
    returns the same for any list of (bytes, bytes) pairs."""
    try:
        return request_head(fields, end_stream, limits)
    except (MalformedRequest, BadRequest):
        return None


def check_trailers(fields: list[tuple[bytes, bytes]]) -> None:
    """A request's trailer section: regular fields only (§8.1), each valid (§8.2.1)."""
    for name, value in fields:
        _check_field(name, value)


def _check_field(name: bytes, value: bytes) -> None:
    """A regular field of a request: valid (§8.2.1), and not HTTP/1.1's hop by hop (§8.2.2)."""
    if not _NAME.fullmatch(name):
        raise MalformedRequest(f"invalid field name {name!r}")
    if _BAD_VALUE.search(value):
        raise MalformedRequest(f"invalid value for field {name!r}")
    if name in CONNECTION_SPECIFIC or (name == b"te" and value.lower() != b"trailers"):
        raise MalformedRequest(f"connection-specific field {name!r}")


def response_fields(
    status: int, headers: Headers, method: str, date: bytes, defaults: DefaultHeaders
) -> tuple[list[tuple[bytes, bytes]], H2Framing, int]:
    """An app's response start as an HTTP/2 header list, with its framing and Content-Length
    (-1 for none). The same decisions as HTTP/1.1's `plan_response`, without what HTTP/2 does
    in frames (chunking, Connection)."""
    no_body_allowed = status < 200 or status == 204
    fields = [(b":status", b"%d" % status)]
    content_length = -1
    for name, value in headers:
        if name in CONNECTION_SPECIFIC:
            continue
        if name == b"content-length":
            # Only the first valid one, where a body is allowed (as for HTTP/1.1).
            if content_length >= 0 or no_body_allowed or not value.strip().isdigit():
                continue
            content_length = int(value)
        fields.append((name, value))
    names = {name for name, _ in fields}
    fields += _default_fields(defaults, b"server" not in names)
    if date and b"date" not in names:
        fields.append((b"date", date))
    if method == "HEAD" or no_body_allowed or status == 304:
        framing = H2Framing.NONE
    elif content_length >= 0:
        framing = H2Framing.LENGTH
    else:
        framing = H2Framing.STREAM
    return fields, framing, content_length


def response_block(
    status: int, headers: Headers, method: str, date: bytes, defaults: DefaultHeaders
) -> tuple[bytes, H2Framing, int]:
    """`response_fields`, with the fields as their HPACK header block (http2_hpack's
    `encode_fields`; this reference uses its Python version). Pure: the compiled version
    (_speedups.c) returns the same, and keeps its last few answers to give again for equal
    arguments (an app starts most of its responses alike)."""
    fields, framing, content_length = response_fields(status, headers, method, date, defaults)
    return python_encode_fields(fields), framing, content_length


@cache
def _default_fields(defaults: DefaultHeaders, server: bool) -> list[tuple[bytes, bytes]]:
    """The server's own header lines as fields, split once per configuration."""
    return defaults.fields(server=server)


# The Python versions, the reference: their C twins in _speedups.c must match them
# (tests/test_speedups.py).
python_accepted_head = accepted_head
python_response_block = response_block

if speedups is not None:
    speedups.setup_http2(
        RequestHead, FORWARDING_FIELDS, H2Framing.NONE, H2Framing.LENGTH, H2Framing.STREAM
    )
    accepted_head = speedups.accepted_head
    response_block = speedups.response_block
