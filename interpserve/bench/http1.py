"""The load generator's HTTP/1.1, sans-IO: the target URL, the request bytes (built once per
run), and an incremental response parser that only finds where each response ends.

The parser skips bodies without copying them out and ignores every header but the framing
ones: the generator must stay far cheaper per request than the server it measures. Before it,
`whole_response` takes the common case in one scan: a read that holds exactly one complete
keep-alive response with a Content-Length (compiled in _speedups.c, this version the reference).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from interpserve.compiled import speedups
from interpserve.errors import BadResponse

MAX_HEAD = 64 * 1024

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILERS, _UNTIL_EOF = range(6)

# The only headers read: those that say where the response ends and whether the connection
# stays open.
_FRAMING = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE
)
# A header line without a colon: not HTTP.
_NO_COLON = re.compile(rb"\r\n[^:\r\n]*(?=\r\n|$)")


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    # Path and query, as sent on the request line.
    path: str
    # The Host header: the authority as the user wrote it.
    authority: str


def parse_url(url: str) -> Target:
    """Raises ValueError, with a message for the user, for anything but an http:// URL."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"{url!r}: only http:// URLs are supported")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no host")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"{url!r}: invalid port") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.hostname, port, path, parts.netloc.rpartition("@")[2])


def build_request(
    method: str,
    target: Target,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    path: str | None = None,
) -> bytes:
    """The complete request, sent as is for every request of a run to `path` (by default the
    target's own)."""
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {path or target.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {target.authority}")
    lines += [f"{name}: {value}" for name, value in headers]
    # Methods that usually carry a body say how long it is, even when it is empty.
    has_body = bool(body) or method not in ("GET", "HEAD", "DELETE", "OPTIONS")
    if has_body and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_header(text: str) -> tuple[str, str]:
    """A --header value, "Name: value"."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or name != name.strip():
        raise ValueError(f"{text!r}: a header is written 'Name: value'")
    return name, value.strip()


# A response head the fast path reads: an HTTP/1.1 status line, then lines that are each a
# name (no whitespace at either end), a colon and a value, no CR or LF but in the CRLFs.
_PLAIN_HEAD = re.compile(
    rb"HTTP/1\.1 ([0-9]{3})[^\r\n]*(?:\r\n[^ \t\r\n:][^\r\n:]*(?<![ \t]):[^\r\n]*)*\r\n\r\n"
)
_PLAIN_FRAMING = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection):([^\r\n]*)", re.IGNORECASE
)
# Longer Content-Length values are left to the parser (the fast path's C twin keeps them in 64
# bits).
_MAX_LENGTH_DIGITS = 18


def whole_response(data: bytes) -> int:
    """The status of the response `data` is, if it is exactly one whole final response on an
    HTTP/1.1 connection that stays open, framed by one Content-Length in plain form; else 0.

    0 says nothing about the bytes: ResponseParser then reads them, and anything unusual (an
    interim response, chunks, a close, a header line the fast path does not read as plain) is
    left to it. Where this returns a status, ResponseParser().feed(data) returns [status] and
    stays idle and keep-alive. Its C twin, whole_response in _speedups.c, gives the same."""
    head = _PLAIN_HEAD.match(data)
    if head is None:
        return 0
    status = int(head[1])
    if status < 200 or status in (204, 304):
        return 0
    lengths = []
    for name, value in _PLAIN_FRAMING.findall(data, 0, head.end() - 2):
        name = name.lower()
        if name == b"content-length":
            lengths.append(value.strip(b" \t"))
        elif name == b"transfer-encoding" or b"close" in value.lower():
            return 0
    if len(lengths) != 1:
        return 0
    (digits,) = lengths
    if not digits.isdigit() or len(digits) > _MAX_LENGTH_DIGITS:
        return 0
    return status if int(digits) == len(data) - head.end() else 0


# The Python version, the reference: its C twin, whole_response in _speedups.c, must match it
# (tests/test_bench.py runs the fast path's tests on both).
python_whole_response = whole_response
if speedups is not None:
    whole_response = speedups.whole_response


class ResponseParser:
    """Feed it the bytes of one connection; it tells the status of each response it completes.

    One parser per connection; requests are not pipelined, so at most one response completes
    per request sent.
    """

    def __init__(self, no_body: bool = False) -> None:
        # Responses to HEAD have framing headers but no body.
        self._no_body = no_body
        self._buffer = bytearray()
        self._state = _HEAD
        self._remaining = 0
        self._status = 0
        # Whether the connection may carry another request after the last response.
        self.keep_alive = True

    @property
    def idle(self) -> bool:
        """No part of a response has arrived since the last complete one."""
        return self._state == _HEAD and not self._buffer

    def feed(self, data: bytes) -> list[int]:
        if self._state == _HEAD and not self._buffer:
            # The common case, a whole response with a length in one read: nothing buffered.
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                self._parse_head(data[:end])
                if self._state == _LENGTH and self._remaining == len(data) - end - 4:
                    self._state, self._remaining = _HEAD, 0
                    return [self._status]
                data = data[end + 4 :]
        self._buffer += data
        completed: list[int] = []
        while self._advance(completed):
            pass
        return completed

    def feed_eof(self) -> int | None:
        """The connection closed: the status of a response that ends with the connection,
        None if a response was cut short (or none had begun)."""
        if self._state != _UNTIL_EOF:
            return None
        self._state = _HEAD
        return self._status

    def _advance(self, completed: list[int]) -> bool:
        """One step of parsing; False when it needs more bytes."""
        buffer = self._buffer
        state = self._state
        if state == _HEAD:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise BadResponse("response head too large")
                return False
            self._parse_head(bytes(buffer[:end]))
            del buffer[: end + 4]
            return True
        if state in (_LENGTH, _CHUNK_DATA):
            taken = min(self._remaining, len(buffer))
            del buffer[:taken]
            self._remaining -= taken
            if self._remaining:
                return False
            if state == _CHUNK_DATA:
                self._state = _CHUNK_SIZE
            else:
                self._finish(completed)
            return True
        if state in (_CHUNK_SIZE, _TRAILERS):
            end = buffer.find(b"\r\n")
            if end < 0:
                return False
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            if state == _TRAILERS:
                if not line:
                    self._finish(completed)
            else:
                self._start_chunk(line)
            return True
        buffer.clear()  # _UNTIL_EOF: the body is whatever arrives before the close
        return False

    def _parse_head(self, head: bytes) -> None:
        # Two scans in C rather than a loop over the lines: this runs once per response.
        version, status_text = head[:8], head[9:12]
        if (
            not version.startswith(b"HTTP/1.")
            or head[8:9] != b" "
            or len(status_text) != 3
            or not status_text.isdigit()
        ):
            raise BadResponse("invalid status line")
        if _NO_COLON.search(head):
            raise BadResponse("invalid header line")
        status = int(status_text)
        length: int | None = None
        chunked = False
        connection = b""
        for name, value in _FRAMING.findall(head):
            name = name.lower()
            if name == b"content-length":
                if not value.strip().isdigit():
                    raise BadResponse("invalid content-length")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            else:
                connection = value.lower()
        if version == b"HTTP/1.1":
            self.keep_alive = b"close" not in connection
        else:
            self.keep_alive = b"keep-alive" in connection
        if 100 <= status < 200 and status != 101:
            return  # an interim response: the real one follows
        self._status = status
        if self._no_body or status in (204, 304):
            self._state, self._remaining = _LENGTH, 0
        elif chunked:
            self._state = _CHUNK_SIZE
        elif length is not None:
            self._state, self._remaining = _LENGTH, length
        else:
            self._state = _UNTIL_EOF
            self.keep_alive = False

    def _start_chunk(self, line: bytes) -> None:
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadResponse("invalid chunk size") from None
        if size == 0:
            self._state = _TRAILERS
        else:
            # The chunk's data and the CRLF after it.
            self._state, self._remaining = _CHUNK_DATA, size + 2

    def _finish(self, completed: list[int]) -> None:
        self._state = _HEAD
        completed.append(self._status)
