"""HTTP/2 frames on the wire (RFC 9113 §4.1 and §6): the numbers, the splitting of received bytes
into frames, and the frames the server writes. Pure functions, no state: what the frames mean
is http2_connection.py's.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from interpserve.compiled import speedups

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_SIZE = 9
# The largest frame payload either side may announce it takes (RFC 9113 §4.2), and the one
# every endpoint takes until told otherwise.
MAX_FRAME_SIZE_LIMIT = (1 << 24) - 1
DEFAULT_MAX_FRAME_SIZE = 1 << 14
MAX_WINDOW = (1 << 31) - 1
DEFAULT_WINDOW = 65535
STREAM_ID_MASK = 0x7FFFFFFF

# Frame types (§6), as plain ints: they are compared once per frame.
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9
KNOWN_TYPES = 10  # types 0 to 9; any other is an extension, ignored (§5.5)

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20


class ErrorCode(IntEnum):
    """RFC 9113 §7."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class Setting(IntEnum):
    """RFC 9113 §6.5.2, and RFC 8441's ENABLE_CONNECT_PROTOCOL."""

    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
    ENABLE_CONNECT_PROTOCOL = 0x8


# A frame's header: a 24-bit length (as 16 + 8 bits), type, flags, reserved bit and stream id.
_HEADER = struct.Struct(">HBBBL")
_SETTING = struct.Struct(">HL")
_U32 = struct.Struct(">L")
_U32_PAIR = struct.Struct(">LL")

# One received frame: (type, flags, stream id, payload).
Frame = tuple[int, int, int, bytes]


def split_frames(data: bytes, max_size: int) -> tuple[list[Frame], int, bool]:
    """The whole frames at the start of `data`, how many bytes they took, and whether the frame
    after them announces a payload larger than `max_size` (a FRAME_SIZE_ERROR, known from its
    header alone, so its payload is never waited for). The reserved bit of the stream id is
    ignored (§4.1). Pure: the compiled version (_speedups.c), which every read goes through
    where it is built, returns the same for any bytes."""
    frames: list[Frame] = []
    unpack = _HEADER.unpack_from
    pos = 0
    end = len(data)
    while end - pos >= HEADER_SIZE:
        high, low, kind, flags, stream_id = unpack(data, pos)
        length = high << 8 | low
        if length > max_size:
            return frames, pos, True
        stop = pos + HEADER_SIZE + length
        if stop > end:
            break
        frames.append((kind, flags, stream_id & STREAM_ID_MASK, data[pos + HEADER_SIZE : stop]))
        pos = stop
    return frames, pos, False


def frame_header(kind: int, flags: int, stream_id: int, length: int) -> bytes:
    return _HEADER.pack(length >> 8, length & 0xFF, kind, flags, stream_id)


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(len(payload) >> 8, len(payload) & 0xFF, kind, flags, stream_id) + payload


def settings_frame(settings: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in settings.items()))


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """A SETTINGS payload (a multiple of 6 bytes), as (identifier, value) in order."""
    return [_SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream_frame(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway_frame(last_stream_id: int, code: int) -> bytes:
    return frame(GOAWAY, 0, 0, _U32_PAIR.pack(last_stream_id, code))


def u32(payload: bytes, offset: int = 0) -> int:
    value: int = _U32.unpack_from(payload, offset)[0]
    return value


def u32_pair(payload: bytes) -> tuple[int, int]:
    first, second = _U32_PAIR.unpack_from(payload)
    return first, second


# The Python version, the reference: its C twin, split_frames in _speedups.c, must match it
# (tests/test_speedups.py).
python_split_frames = split_frames

if speedups is not None:
    split_frames = speedups.split_frames
