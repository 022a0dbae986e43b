"""What a request must look like before it reaches an app: the RFC 9110/9112 checks and the size
limits that both parser backends apply, so that h11 and httptools accept exactly the same
requests. Anything ambiguous about where a request ends (the stuff of request smuggling) is
rejected, never guessed at. The raw bytes are held to the strict grammar in `http_grammar.py`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from interpserve.errors import BadRequest
from interpserve.frontend.http_events import RequestHead
from interpserve.frontend.proxy import FORWARDING_FIELDS

# An http(s) URL as the target (absolute-form): its authority, with no userinfo (RFC 9110
# §4.2.4), then its path and query, if any.
_ABSOLUTE_FORM = re.compile(
    rb"(?i:https?)://([A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]+)([/?].*)?", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes a client may send (gunicorn's names and defaults)."""

    request_line: int = 8190
    fields: int = 100
    field_size: int = 8190
    body: int | None = None

    @property
    def head(self) -> int:
        """The most a whole request head (or a trailer section) may hold: 64 KiB, or one line of
        each kind at its limit if that is more. One size for both backends: h11 alone would
        refuse a larger head only when it arrives in pieces."""
        return max(64 * 1024, self.request_line + self.field_size + 4)

    def check_target(self, size: int) -> None:
        if size > self.request_line:
            raise BadRequest("request line too long", status=414)

    def check_field(self, count: int, size: int) -> None:
        if count > self.fields:
            raise BadRequest("too many header fields", status=431)
        if size > self.field_size:
            raise BadRequest("header field too large", status=431)

    def check_body(self, size: int) -> None:
        if self.body is not None and size > self.body:
            raise BadRequest("request body too large", status=413)


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    return {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }


def is_websocket_upgrade(head: RequestHead) -> bool:
    """A request to switch to WebSocket (RFC 6455 §4.1); wsproto checks the rest of it."""
    return (
        head.method == "GET"
        and head.http_version == "1.1"
        and not head.has_body
        and head.upgrade
        and any(
            token.strip().lower() == b"websocket"
            for name, value in head.headers
            if name == b"upgrade"
            for token in value.split(b",")
        )
    )


def _values(headers: list[tuple[bytes, bytes]], names: list[bytes], name: bytes) -> list[bytes]:
    """The values of the `name` fields; `names` (the headers' names) spares a scan for the many
    requests that have none."""
    return [value for n, value in headers if n == name] if name in names else []


def _from_absolute_form(
    target: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A server must accept a URL as the target (RFC 9112 §3.2.2), and take its authority in
    place of the Host header's value: the app then sees one host, not two to choose from. The
    app gets the path and query, as from any request."""
    match = _ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        raise BadRequest("request target must be a path or an http(s) URL")
    authority, rest = match.groups()
    path = rest if rest and rest.startswith(b"/") else b"/" + (rest or b"")
    return path, [(name, authority if name == b"host" else value) for name, value in headers]


def without_fragment(target: bytes) -> bytes:
    """A fragment is the client's alone and never belongs in a request (RFC 9110 §4.2.5): as
    llhttp and uvicorn do, it is dropped, not taken into the path or query. (The backends call
    this; the fast path's grammar has no "#".)"""
    end = target.find(b"#")
    return target if end < 0 else target[:end]


def make_head(
    method: bytes,
    target: bytes,
    http_version: str,
    headers: list[tuple[bytes, bytes]],
    limits: Limits,
) -> RequestHead:
    """The checks and decisions both backends share, on a parsed request line and headers.

    The reference for the compiled fast path too: parse_plain_request in _speedups.c decides
    the Host count, Content-Length, Connection tokens and Expect of a plain request itself (see
    "make_head's decisions" there), and hands anything else to the backends. A rule added here
    must be added there, or the fast path must refuse what the rule is about;
    tests/test_parser_fast_path.py runs both paths on generated requests to catch a miss."""
    if http_version not in ("1.0", "1.1"):
        raise BadRequest(f"HTTP/{http_version} is not supported", status=505)
    if method == b"CONNECT":
        raise BadRequest("CONNECT is for proxies, not supported here", status=501)
    if not (target.startswith(b"/") or (target == b"*" and method == b"OPTIONS")):
        target, headers = _from_absolute_form(target, headers)
    limits.check_field(len(headers), 0)
    names = [name for name, _ in headers]  # searched at C speed below, for every request
    hosts = names.count(b"host")
    if hosts > 1 or (hosts == 0 and http_version == "1.1"):
        raise BadRequest("an HTTP/1.1 request needs exactly one Host header")
    lengths = _values(headers, names, b"content-length")
    encodings = _values(headers, names, b"transfer-encoding")
    if encodings and lengths:
        raise BadRequest("both Transfer-Encoding and Content-Length")
    if len(lengths) > 1:
        raise BadRequest("more than one Content-Length")
    if encodings:
        if len(encodings) > 1 or encodings[0].lower() != b"chunked":
            raise BadRequest("unsupported Transfer-Encoding", status=501)
        if http_version == "1.0":
            raise BadRequest("chunked request body on HTTP/1.0")
    if lengths and not (lengths[0].isdigit() and len(lengths[0]) <= 18):
        raise BadRequest("invalid Content-Length")
    content_length = int(lengths[0]) if lengths else 0
    limits.check_body(content_length)
    tokens = _connection_tokens(headers) if b"connection" in names else set()
    if http_version == "1.1":
        keep_alive = b"close" not in tokens
    else:
        keep_alive = b"keep-alive" in tokens and b"close" not in tokens
    has_body = bool(encodings) or content_length > 0
    expect_continue = (
        http_version == "1.1"
        and has_body
        and any(n == b"expect" and v.lower() == b"100-continue" for n, v in headers)
    )
    # (Positional: keyword arguments would double the cost of building it.)
    return RequestHead(
        method.decode("ascii"),
        target,
        http_version,
        headers,
        keep_alive,
        expect_continue,
        has_body,
        b"upgrade" in names and b"upgrade" in tokens,
        not FORWARDING_FIELDS.isdisjoint(names),
    )
