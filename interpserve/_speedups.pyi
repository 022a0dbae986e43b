from typing import Any

from interpserve import events as ev
from interpserve.frontend.http_events import RequestHead
from interpserve.frontend.http_rules import Limits
from interpserve.frontend.response import DefaultHeaders, ResponseFraming, ResponsePlan

def setup_wire(
    request: type[ev.Request],
    response_start: type[ev.ResponseStart],
    wire_error: type[Exception],
    struct_error: type[Exception],
    encoders: dict[type, Any],
    decoders: dict[int, Any],
    max_payload: int,
    frame_types: tuple[int, int, int, int],
    /,
) -> None: ...
def setup_response(
    plan: type[ResponsePlan],
    none: ResponseFraming,
    length: ResponseFraming,
    chunked: ResponseFraming,
    close: ResponseFraming,
    status_lines: dict[int, bytes],
    default_headers: DefaultHeaders,
    /,
) -> None: ...
def encode_parts(event: ev.Event, /) -> tuple[bytes, bytes]: ...
def decode_whole_frames(data: bytes, offset: int, out: list[ev.Event], /) -> int: ...
def plan_response(
    status: int,
    headers: ev.Headers,
    method: str,
    http_version: str,
    keep_alive: bool,
    date: bytes,
    defaults: DefaultHeaders = ...,
) -> ResponsePlan: ...
def setup_parser(
    head: type[RequestHead], methods: frozenset[bytes], forwarding_fields: frozenset[bytes], /
) -> None: ...
def parse_plain_request(
    data: bytes, pos: int, limits: Limits, max_section: int, /
) -> tuple[RequestHead, int, int] | None: ...
def skip_chunks(
    data: bytes,
    pos: int,
    remaining: int,
    crlf_next: bool,
    extensions: int,
    max_extensions: int,
    out: bytearray | None = None,
    /,
) -> tuple[int, int, bool, int]: ...
def checked_headers(raw: Any, /) -> ev.Headers: ...
def split_frames(
    data: bytes, max_size: int, /
) -> tuple[list[tuple[int, int, int, bytes]], int, bool]: ...
def setup_hpack(
    static_table: Any, huffman_codes: list[int], huffman_lengths: list[int], /
) -> None: ...
def setup_http2(
    head: type[RequestHead],
    forwarding_fields: frozenset[bytes],
    none: Any,
    length: Any,
    stream: Any,
    /,
) -> None: ...
def encode_fields(fields: Any, /) -> bytes: ...
def response_block(
    status: int, headers: ev.Headers, method: str, date: bytes, defaults: DefaultHeaders, /
) -> tuple[bytes, Any, int]: ...
def accepted_head(
    fields: list[tuple[bytes, bytes]], end_stream: bool, limits: Limits, /
) -> RequestHead | None: ...
def whole_response(data: bytes, /) -> int: ...
def malloc_trim() -> bool | None: ...
def set_malloc_thresholds(mmap_least: int, trim_least: int, /) -> bool | None: ...
