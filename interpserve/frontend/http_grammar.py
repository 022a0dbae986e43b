"""A second, independent opinion on where each request begins and ends in the byte stream.

Request smuggling lives in the gap between two parsers that frame the same bytes differently:
a proxy in front and this server. The parser backends are lenient in different places (h11
merges duplicate Content-Length headers and accepts a bare CR in a chunk extension or a
20-digit chunk size; llhttp skips stray line breaks and double spaces in the request line; and
neither limits chunk extensions), so every byte they parse goes through this guard after their
own parse. It holds the raw bytes to one strict grammar, RFC 9112 with none of its leniencies,
so h11 and httptools accept exactly the same requests; and it checks that the backend found the
same requests, with the same framing, as it did. Anything that disagrees is a 400.

Most requests need no second parser: the grammar can parse them itself. A request that arrives
whole in one read, in the plainest form of the grammar (a known method, a path of URI
characters, field values of visible ASCII, a Content-Length body or none), is parsed by the
guard's own regular expressions, and its head made by the same `make_head` as the backends'
heads: that is the fast path (`plain_request`), and the backend never sees that request. (Where
`_speedups.c` is built, a compiled `parse_plain_request` does exactly the same: it decides
which requests to take, never an error; whatever it does not take goes to the full path.)
Everything else (chunked bodies, protocol switches, heads or bodies split across reads, anything
unusual or faulty) takes the full path (`check`) from a request boundary: the backend's parse,
vetted.

Sans I/O and cheap: it keeps only the line being received; body bytes are counted, not copied
(but for the chunked bodies it takes apart, below).
The run of whole chunks of a chunked body, the one part whose cost grows with what the client
chooses (a chunk per byte), goes at the speed of a loop in C where `_speedups.c` is built:
`skip_chunks`, whose Python version here is the reference.

A chunked body is the guard's alone to take apart once the backend has been left between two of
its chunks (`owns_body`): the backends hand a body over a chunk at a time, at a cost per chunk
many times the guard's (a body of one-byte chunks is the client's choice). The guard then
decodes the chunks itself, by its grammar, stricter than either backend's, to the body's end
(`take_body`), and gives the backend, in their place, the last chunk of an empty body: the
backend ends the request where the guard did, and both go on from the same boundary. Until that
point (the head, which the backend is given apart from the body's first bytes, and at most the
rest of a line or of a chunk, to reach a boundary), and for the bytes of any other framing, the
backend parses and the guard vets, as above.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NoReturn

from interpserve.compiled import speedups
from interpserve.errors import BadRequest
from interpserve.frontend.http_events import RequestHead
from interpserve.frontend.http_rules import Limits, make_head
from interpserve.frontend.proxy import FORWARDING_FIELDS

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# The methods llhttp parses (any other is an error to it, before the server sees the request):
# h11 would take any token, so both backends are held to this list. CONNECT is refused later.
_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE PATCH QUERY PURGE LINK UNLINK SOURCE ACL "
    b"COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND REPORT MKACTIVITY "
    b"CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE MKCALENDAR".split()
)
# A method is a case-sensitive token; llhttp knows only upper-case ones, so that is the rule.
_METHOD = rb"[!#$%&'*+\-.^_`|~0-9A-Z]+"
_REQUEST_LINE_RE = _METHOD + rb" [\x21-\x7e]+ HTTP/[0-9]\.[0-9]\r\n"
# What a request line may start with, still incomplete (or the CR of an empty line before it):
# its method so far, then its target, then as much of its version as has come.
_VERSION_START = rb"(?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?"
_REQUEST_LINE_START = re.compile(
    rb"(?:\r?|(?:%s)?|%s [\x21-\x7e]*|%s [\x21-\x7e]+ %s)\Z"
    % (_METHOD, _METHOD, _METHOD, _VERSION_START)
)
# A token, a colon right after it, then visible characters, spaces and tabs (obs-text too).
_FIELD_VALUE = rb"[\t\x20-\x7e\x80-\xff]*"
_FIELD_LINE_RE = _TOKEN + rb":" + _FIELD_VALUE + rb"\r\n"
_REQUEST_LINE = re.compile(_REQUEST_LINE_RE)
_FIELD_LINE = re.compile(_FIELD_LINE_RE)
# What a field line may start with, still incomplete (or the CR of the empty line that ends its
# section).
_FIELD_LINE_START = re.compile(
    rb"(?:" + _TOKEN + rb")?\Z|" + _TOKEN + rb":" + _FIELD_VALUE + rb"\r?\Z|\r\Z"
)
# A whole head at once, for the usual case of a head that arrives in one read.
_HEAD = re.compile(_REQUEST_LINE_RE + rb"(?:" + _FIELD_LINE_RE + rb")*\r\n")
_FRAMING_FIELD = re.compile(
    rb"\r\n(content-length|transfer-encoding|upgrade):[ \t]*([^\r]*)", re.IGNORECASE
)
_QUOTED = rb'"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"'
# Hex size (16 digits fit 64 bits; llhttp refuses more), extensions, CRLF: no whitespace at all.
_CHUNK_SIZE_RE = rb"[0-9A-Fa-f]{1,16}"
_CHUNK_LINE_RE = rb"(%s)((?:;%s(?:=(?:%s|%s))?)*)\r\n" % (_CHUNK_SIZE_RE, _TOKEN, _TOKEN, _QUOTED)
_CHUNK_LINE = re.compile(_CHUNK_LINE_RE)
# What a size line may start with, still incomplete: its size so far, or its size and then the
# start of its extensions or its CR.
_CHUNK_LINE_START = re.compile(rb"(?:%s)?\Z|%s(?:\r\Z|;)" % (_CHUNK_SIZE_RE, _CHUNK_SIZE_RE))
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked", re.IGNORECASE)
_NEXT_CHUNK_LINE = re.compile(rb"\r\n" + _CHUNK_LINE_RE)  # the CRLF after data, then the next
# Framing header values: a list of tokens with no whitespace after the last one (llhttp takes
# "chunked\t" for an unknown coding, h11 for chunked: such a value means nothing certain).
_CODINGS = re.compile(_TOKEN + rb"(?:[ \t]*,[ \t]*" + _TOKEN + rb")*")
_LENGTH = re.compile(rb"[0-9]{1,18}")
# The plainest form of the grammar above (a head in this form is one _HEAD accepts), which the
# fast path parses: a request line whose target has only the characters of RFC 3986 that mean
# the same to both backends (its method is checked against _METHODS, its version is 1.1 or 1.0);
# field lines whose values hold visible ASCII, spaces and tabs, with no whitespace after them
# (the guard keeps it in a Content-Length value, and refuses it); and no Transfer-Encoding or
# Upgrade field (chunked bodies and protocol switches are the backend's to parse).
_PLAIN_REQUEST_LINE = re.compile(
    rb"([A-Z][A-Z\-]*) ([A-Za-z0-9\-._~!$&'()*+,;=:@/?%]+) HTTP/1\.([01])\r\n"
)
_PLAIN_FIELD_LINE = re.compile(
    rb"^(?!(?i:transfer-encoding|upgrade):)(" + _TOKEN + rb"):[ \t]*([\t\x20-\x7e]*)(?<![ \t])\r\n",
    re.MULTILINE,
)
_VERSIONS = {b"1": "1.1", b"0": "1.0"}

# States
_REQUEST_LINE_STATE = 0  # before a request, skipping empty lines (RFC 9112 2.2)
_FIELDS = 1
_BODY = 2
_CHUNK_SIZE = 3
_CHUNK_DATA = 4
_CHUNK_END = 5
_TRAILERS = 6
_PASSIVE = 7  # after the last request: the backend parses no more either
_IN_CHUNKS = (_CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END)
# What ends a chunked body for a backend left at a chunk boundary (the guard's state there):
# the last chunk, with no trailers, after the CRLF that ends the chunk's data if it is due.
_BACKEND_ENDS = {_CHUNK_SIZE: b"0\r\n\r\n", _CHUNK_END: b"\r\n0\r\n\r\n"}


class FramingGuard:
    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._state = _REQUEST_LINE_STATE
        self._line = bytearray()  # the incomplete line, across reads
        self._remaining = 0  # bytes of body or chunk data still to come
        self._fields = 0  # header or trailer lines so far
        self._section = 0  # bytes of the head, or of the trailers, so far
        self._max_section = limits.head  # (a property: read once, not for every request)
        self._lengths: list[bytes] = []
        self._codings: list[bytes] = []
        self._upgrade = False  # the head has an Upgrade field
        self._extensions = 0  # chunk-extension bytes in this body so far
        self._last = False  # no request may follow this one
        # While the guard takes a chunked body apart alone (owns_body): what ends it for the
        # backend; and, for the time of take_body, where the chunks' data goes.
        self._backend_end = b""
        self._decoded: bytearray | None = None
        # Per check(): the backend's events, where its heads are, how many were matched.
        self._events: list[object] = []
        self._heads: list[int] = []
        self._matched = 0
        self._error: BadRequest | None = None

    @property
    def in_head(self) -> bool:
        """A request head has begun to arrive and is not complete yet."""
        state = self._state
        if state == _FIELDS:
            return True
        # (Asked twice for every request: most often with no line begun, so no strip.)
        return state == _REQUEST_LINE_STATE and bool(self._line and self._line.strip(b"\r"))

    def check[E](self, data: bytes, parse: Callable[[bytes], list[E]]) -> list[E]:
        """`parse(data)` (a backend's own feed), vetted: its events, or BadRequest carrying the
        events of the requests before the first fault either parser found."""
        if self._state == _PASSIVE:
            # Nothing after the last request is parsed, by the backend either: it may not have
            # seen that request (the fast path), and the connection ends with it anyway.
            return []
        try:
            events = parse(data)
            error = None
        except BadRequest as exc:
            events, error = exc.events, exc  # type: ignore[assignment]
        self._events = events  # type: ignore[assignment]
        self._heads = [i for i, e in enumerate(events) if type(e) is RequestHead]
        self._matched = 0
        self._error = error
        try:
            self._scan(data, 0)
            if error is None and self._matched < len(self._heads):
                self._fail("the parsers disagree on where a request starts", head_state=True)
        finally:
            self._events = []
        if error is not None:
            raise error
        if self._state in _BACKEND_ENDS and not self._line:
            self._backend_end = _BACKEND_ENDS[self._state]
        return events

    def backend_part(self, data: bytes, pos: int) -> int:
        """Where the bytes from `pos` that the backend is to parse (with `check`) end: at the
        next chunk boundary of a chunked body, or at the end of its head (the guard takes the
        body over there); else at the end of `data`."""
        end, state = len(data), self._state
        if state == _REQUEST_LINE_STATE and not self._line:
            # A chunked request's head with the body's first bytes after it: the guard takes
            # the body from its first chunk. (The head is checked by `check`, as any other: a
            # cut anywhere changes nothing, both parsers seeing the same bytes in order.)
            head_end = data.find(b"\r\n\r\n", pos)
            if 0 <= head_end < end - 4 and _CHUNKED.search(data, pos, head_end):
                return head_end + 4
            return end
        if state == _CHUNK_DATA:
            return min(pos + self._remaining, end)
        if state in _IN_CHUNKS and self._line:  # the rest of a size line, or of a chunk's CRLF
            newline = data.find(b"\n", pos)
            return end if newline < 0 else newline + 1
        return end

    @property
    def owns_body(self) -> bool:
        """The guard takes the chunked body under way apart alone (`take_body`)."""
        return bool(self._backend_end)

    def take_body(self, data: bytes, pos: int) -> tuple[bytearray, int, bytes]:
        """The chunked body's data from `pos` in `data`, while the guard owns the body: the data,
        where it stopped (the end of `data`, or of the request), and, if the request ended,
        what the backend is to parse in place of the body (BadRequest for a fault)."""
        self._decoded = decoded = bytearray()
        try:
            stop = self._scan(data, pos)
        finally:
            self._decoded = None
        backend_end = b""
        if self._state in (_REQUEST_LINE_STATE, _PASSIVE):
            backend_end, self._backend_end = self._backend_end, b""
            if self._state == _PASSIVE:
                # What follows the last request is the backend's to judge, as when it parsed
                # the body (llhttp calls it an error, h11 ignores it): the guard ignores it.
                backend_end += data[stop:]
                stop = len(data)
        return decoded, stop, backend_end

    def plain_request(self, data: bytes, pos: int) -> tuple[RequestHead, int, int] | None:
        """The fast path: a whole request at `pos` in `data`, at a request boundary, in the
        plainest form of the grammar (see `parse_plain_request`). Returns the head, where its
        body starts and where the request ends; or None for anything else, faults included (the
        full path names them): `check` then takes `data` from `pos`, a request boundary for the
        backend too, as it never sees the requests taken here."""
        if self._state != _REQUEST_LINE_STATE or self._line:
            return None
        found = parse_plain_request(data, pos, self._limits, self._max_section)
        if found is not None:
            self._last = not found[0].keep_alive
            self._end_message()
        return found

    # The scan

    def _scan(self, data: bytes, pos: int) -> int:
        """Through `data` from `pos`: where it stopped (the end, but for what returns sooner:
        a fault the backend raised, or, taking a body apart, the request's end)."""
        end = len(data)
        while pos < end:
            state = self._state
            if state == _PASSIVE or (self._decoded is not None and state == _REQUEST_LINE_STATE):
                return pos
            if state in _IN_CHUNKS and not self._line:
                pos = self._skip_chunks(data, pos)
                if pos == end:
                    return pos
                state = self._state  # (what stopped the run is taken below, as before)
            if state in (_BODY, _CHUNK_DATA):
                take = min(self._remaining, end - pos)
                if self._decoded is not None:
                    self._decoded += data[pos : pos + take]
                pos += take
                self._remaining -= take
                if not self._remaining:
                    if state == _BODY:
                        self._end_message()
                    else:
                        self._state = _CHUNK_END
                continue
            if not self._line:
                # Fast paths for what usually arrives whole: a head, a chunk's size line. When
                # they find fault, the line-by-line path below tells which.
                if state == _REQUEST_LINE_STATE:
                    stop = self._whole_head(data, pos)
                    if stop:
                        if stop < 0:
                            return pos
                        pos = stop
                        continue
                elif state in (_CHUNK_END, _CHUNK_SIZE):
                    pattern = _NEXT_CHUNK_LINE if state == _CHUNK_END else _CHUNK_LINE
                    match = pattern.match(data, pos)
                    if match:
                        pos = match.end()
                        self._chunk_size(match)
                        continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._line += data[pos:]
                self._check_partial_line()
                return end
            if self._line:
                self._line += data[pos : newline + 1]
                line = bytes(self._line)
                self._line.clear()
            else:
                line = data[pos : newline + 1]
            pos = newline + 1
            if not self._on_line(line):
                return pos
        return pos

    def _skip_chunks(self, data: bytes, pos: int) -> int:
        """Past the whole chunks at `pos`, in one call: where they end."""
        state = self._state
        pos, remaining, crlf_next, extensions = skip_chunks(
            data,
            pos,
            self._remaining if state == _CHUNK_DATA else 0,
            state == _CHUNK_END,
            self._extensions,
            self._limits.field_size,
            self._decoded,
        )
        self._state = _CHUNK_DATA if remaining else _CHUNK_END if crlf_next else _CHUNK_SIZE
        self._remaining = remaining
        self._extensions = extensions
        return pos

    def _whole_head(self, data: bytes, pos: int) -> int:
        """Check a complete head in `data` at `pos` in one go: the position after it, -1 to stop
        the scan, or 0 if it is incomplete or has a fault (to be found line by line)."""
        found = _complete_head(data, pos, self._limits, self._max_section)
        if found is None or not _HEAD.fullmatch(found[0]):
            return 0
        head, stop = found
        self._start_head()
        for match in _FRAMING_FIELD.finditer(head):
            self._framing_field(match[1].lower(), match[2])
        return stop if self._end_head() else -1

    def _check_partial_line(self) -> None:
        size, limits, state = len(self._line), self._limits, self._state
        if state == _REQUEST_LINE_STATE and size > limits.request_line + 1:
            self._fail("request line too long", 414, head_state=True)
        elif state == _REQUEST_LINE_STATE and not _REQUEST_LINE_START.match(self._line):
            self._fail("malformed request line", head_state=True)
        elif state in (_FIELDS, _TRAILERS) and size > limits.field_size + 1:
            self._fail("header field too large", 431, head_state=state == _FIELDS)
        # Judged by the first wrong byte, as llhttp judges it: a client that stops there gets
        # its 400 now, not at its read timeout.
        elif state in (_FIELDS, _TRAILERS) and not _FIELD_LINE_START.match(self._line):
            self._bad_field_line(self._line, in_head=state == _FIELDS)
        elif state == _CHUNK_SIZE and size > 18 + limits.field_size - self._extensions:
            self._fail("chunk extensions too long")
        # The same for a chunk's size line and the CRLF after its data (h11 too judges the CRLF
        # byte by byte).
        elif state == _CHUNK_SIZE and not _CHUNK_LINE_START.match(self._line):
            self._fail("malformed chunk size line")
        elif state == _CHUNK_END and not b"\r\n".startswith(self._line):
            self._fail("chunk data not followed by CRLF")

    def _on_line(self, line: bytes) -> bool:
        """Take one complete line (ending in LF); False to stop the scan."""
        state = self._state
        if state == _REQUEST_LINE_STATE:
            if line == b"\r\n":
                return True  # an empty line before a request is ignored (RFC 9112 2.2)
            if len(line) - 2 > self._limits.request_line:
                self._fail("request line too long", 414, head_state=True)
            if not _REQUEST_LINE.fullmatch(line):
                self._fail("malformed request line", head_state=True)
            version = line[-5:-2]
            if version not in (b"1.1", b"1.0"):
                # Said at once, as the request line arrives (the backends would wait for the
                # headers, and llhttp calls some versions malformed, others unsupported).
                self._fail(f"HTTP/{version.decode()} is not supported", 505, head_state=True)
            if line[: line.find(b" ")] not in _METHODS:
                self._fail("method not implemented", 501, head_state=True)
            self._start_head()
            self._section = len(line)
        elif state == _FIELDS:
            if line == b"\r\n":
                return self._end_head()
            self._field_line(line, in_head=True)
        elif state == _CHUNK_SIZE:
            match = _CHUNK_LINE.fullmatch(line)
            if not match:
                self._fail("malformed chunk size line")
            self._chunk_size(match)
        elif state == _CHUNK_END:
            if line != b"\r\n":
                self._fail("chunk data not followed by CRLF")
            self._state = _CHUNK_SIZE
        elif state == _TRAILERS:
            if line == b"\r\n":
                self._end_message()
            else:
                self._field_line(line, in_head=False)
        return True

    def _start_head(self) -> None:
        self._state = _FIELDS
        self._fields = 0
        self._lengths = []
        self._codings = []
        self._upgrade = False

    def _field_line(self, line: bytes, *, in_head: bool) -> None:
        self._fields += 1
        self._section += len(line)
        try:
            self._limits.check_field(self._fields, len(line) - 2)
        except BadRequest as exc:  # (with the events of the requests before this one)
            self._fail(str(exc), exc.status, head_state=in_head)
        if self._section > self._max_section:
            self._fail(
                "request head too large" if in_head else "trailers too large",
                431,
                head_state=in_head,
            )
        if not _FIELD_LINE.fullmatch(line):
            self._bad_field_line(line, in_head=in_head)
        name, _, value = line[:-2].partition(b":")
        name = name.lower()
        if in_head:
            self._framing_field(name, value.lstrip(b" \t"))
        elif name in (b"content-length", b"transfer-encoding"):
            # Framing is decided by the head; llhttp refuses these here, and so both parsers do.
            self._fail(f"{name.decode()} in the trailers")

    def _framing_field(self, name: bytes, value: bytes) -> None:
        if name == b"content-length":
            self._lengths.append(value)
        elif name == b"transfer-encoding":
            self._codings.append(value)
        elif name == b"upgrade":
            self._upgrade = True

    def _end_head(self) -> bool:
        """The head is complete: decide its framing, and match it with the backend's."""
        lengths, codings = self._lengths, self._codings
        if lengths and codings:
            self._fail("both Transfer-Encoding and Content-Length", head_state=True)
        if len(lengths) > 1:
            self._fail("more than one Content-Length", head_state=True)
        if lengths and not _LENGTH.fullmatch(lengths[0]):
            self._fail("invalid Content-Length", head_state=True)
        if codings:
            if not all(_CODINGS.fullmatch(value) for value in codings):
                self._fail("malformed Transfer-Encoding", head_state=True)
            names = [c.strip(b" \t").lower() for value in codings for c in value.split(b",")]
            if names != [b"chunked"]:
                self._fail("unsupported Transfer-Encoding", 501, head_state=True)
        length = int(lengths[0]) if lengths else 0
        head = self._backend_head()
        if head is None:
            return False  # the backend failed on this request: its error stands
        if head.has_body != bool(codings or length):
            self._fail("the parsers disagree on a request body", head_state=True)
        upgrade = self._upgrade and head.upgrade
        if upgrade and head.has_body:
            # llhttp hands the body to the new protocol, h11 reads it as the request's: which
            # bytes are HTTP would be the backend's guess.
            self._fail("a protocol switch (Upgrade) with a request body", head_state=True)
        self._matched += 1
        self._last = not head.keep_alive or upgrade
        self._extensions = 0
        if codings:
            self._state = _CHUNK_SIZE
        elif length:
            self._state = _BODY
            self._remaining = length
        else:
            self._end_message()
        return True

    def _backend_head(self) -> RequestHead | None:
        """The backend's head for the request whose head just ended, if it parsed one."""
        if self._matched < len(self._heads):
            head = self._events[self._heads[self._matched]]
            assert isinstance(head, RequestHead)
            return head
        if self._error is None:
            self._fail("the parsers disagree on where a request ends", head_state=True)
        return None

    def _chunk_size(self, match: re.Match[bytes]) -> None:
        self._extensions += len(match[2])
        if self._extensions > self._limits.field_size:
            self._fail("chunk extensions too long")
        size = int(match[1], 16)
        if size:
            self._state = _CHUNK_DATA
            self._remaining = size
        else:
            self._state = _TRAILERS
            self._fields = self._section = 0

    def _end_message(self) -> None:
        self._state = _PASSIVE if self._last else _REQUEST_LINE_STATE

    def _bad_field_line(self, line: bytes | bytearray, *, in_head: bool) -> NoReturn:
        """A field line (whole, or as much as has come) out of the grammar: its fault named."""
        if line.startswith((b" ", b"\t")):
            self._fail("obsolete line folding in a header", head_state=in_head)
        self._fail("malformed header line", head_state=in_head)

    def _fail(self, reason: str, status: int = 400, *, head_state: bool = False) -> NoReturn:
        """Raise, keeping the backend's events for the requests before this fault: all of them
        before the head at fault (`head_state`), or up to the head whose body is at fault."""
        heads, matched = self._heads, self._matched
        if head_state:
            keep = heads[matched] if matched < len(heads) else len(self._events)
        else:
            keep = heads[matched - 1] + 1 if matched else 0
        error = BadRequest(reason, status)
        error.events = self._events[:keep]  # type: ignore[assignment]
        raise error


def _complete_head(
    data: bytes, pos: int, limits: Limits, max_section: int
) -> tuple[bytes, int] | None:
    """A complete head in `data` at `pos` (past empty lines) with a known method and
    version, within the limits: the head and the position after it. None if it is
    incomplete or not so (the line-by-line path says why)."""
    while data.startswith(b"\r\n", pos):
        pos += 2  # empty lines before a request are ignored (RFC 9112 2.2)
    stop = data.find(b"\r\n\r\n", pos)
    if stop < 0:
        return None
    stop += 4
    head = data[pos:stop]
    line_end = head.find(b"\r\n")
    if (
        head[: head.find(b" ")] not in _METHODS
        or line_end > limits.request_line
        or head[line_end - 3 : line_end] not in (b"1.1", b"1.0")
        or head.count(b"\n") - 2 > limits.fields
        or len(head) - 2 > max_section  # (its lines, not the empty line ending it)
        or (
            len(head) > limits.field_size and max(map(len, head.split(b"\r\n"))) > limits.field_size
        )
    ):
        return None
    return head, stop


def parse_plain_request(
    data: bytes, pos: int, limits: Limits, max_section: int
) -> tuple[RequestHead, int, int] | None:
    """A whole request at `pos` in `data` in the plainest form of the grammar, parsed by the
    grammar alone, its head made by `make_head` as the backends make theirs: the head, where
    its body starts and where the request ends. None for anything else, faults included, and
    for targets in absolute or asterisk form (rare: the full path takes them). Pure: the
    compiled version (`_speedups.c`) must return exactly the same."""
    found = _complete_head(data, pos, limits, max_section)
    if found is None:
        return None
    head, body = found
    line = _PLAIN_REQUEST_LINE.match(head)
    if line is None or line[2][0] != 0x2F:  # "/"
        return None
    # (Matches start at line starts only: one per line if every line is plain.)
    fields = _PLAIN_FIELD_LINE.findall(head, line.end())
    if len(fields) != head.count(b"\n") - 2:
        return None
    headers = [(name.lower(), value) for name, value in fields]
    method, target, minor = line.groups()
    try:
        request = make_head(method, target, _VERSIONS[minor], headers, limits)
    except BadRequest:
        return None
    end = body
    if request.has_body:  # with no Transfer-Encoding: one valid Content-Length (make_head)
        end += int(next(value for name, value in headers if name == b"content-length"))
    if end > len(data) or (not request.keep_alive and end != len(data)):
        # A body still to come; or bytes after the last request, which llhttp would call
        # an error (h11 would ignore them): the backend's to judge.
        return None
    return request, body, end


def skip_chunks(
    data: bytes,
    pos: int,
    remaining: int,
    crlf_next: bool,
    extensions: int,
    max_extensions: int,
    out: bytearray | None = None,
) -> tuple[int, int, bool, int]:
    """Past the whole chunks of a chunked body from `pos` in `data`, as the scan's line-by-line
    path would take them: `remaining` bytes of a chunk's data come first, or (when none do) its
    CRLF if `crlf_next`, else a chunk size line. Returns where it stopped, with the same three
    then, and the chunk-extension bytes counted so far; the chunks' data is added to `out` if
    one is given. It stops at the end of `data`; before a line that is not whole or not in the
    grammar (the line-by-line path names the fault, or keeps the partial line); before the last
    chunk's size line; and before extensions would pass `max_extensions`. Pure but for `out`:
    the compiled version (`_speedups.c`) returns the same, and adds the same."""
    end = len(data)
    while pos < end:
        if remaining:
            take = min(remaining, end - pos)
            if out is not None:
                out += data[pos : pos + take]
            pos += take
            remaining -= take
            crlf_next = True
            continue
        match = (_NEXT_CHUNK_LINE if crlf_next else _CHUNK_LINE).match(data, pos)
        if match is None:
            break
        size = int(match[1], 16)
        more_extensions = extensions + len(match[2])
        if not size or more_extensions > max_extensions:
            break
        pos, remaining, crlf_next, extensions = match.end(), size, False, more_extensions
    return pos, remaining, crlf_next, extensions


# The Python versions, the reference: their C twins, parse_plain_request and skip_chunks in
# _speedups.c, must match them (tests/test_speedups.py, tests/test_parser_fast_path.py).
python_parse_plain_request = parse_plain_request
python_skip_chunks = skip_chunks

if speedups is not None:
    speedups.setup_parser(RequestHead, _METHODS, FORWARDING_FIELDS)
    parse_plain_request = speedups.parse_plain_request
    skip_chunks = speedups.skip_chunks
