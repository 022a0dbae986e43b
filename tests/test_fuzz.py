"""Property-based fuzzing, bounded for CI: the targets of tests/fuzz/ (which run for hours outside
pytest) under hypothesis.

- HTTP: random bytes, and mutations of valid requests, into both parser backends in arbitrary
  reads: only BadRequest may be raised, and the backends must accept the same requests.
- Wire: random frame streams into FrameDecoder: only WireError, whatever the reads.
"""

from __future__ import annotations

import struct

from fuzz import fuzz_parser, fuzz_wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interpserve import wire

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces that make the parsers take their interesting branches.
HTTP_TOKENS = [
    b"\r\n", b"\r", b"\n", b" ", b"\t", b":", b";", b",", b"=", b'"', b"\x00", b"\x0b", b"\x7f",
    b"\x80", b"\xff", b"GET", b"POST", b"get", b"/", b"*", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0",
    b"Host: a", b"Content-Length", b"Transfer-Encoding", b"chunked", b"identity", b"0", b"5",
    b"ffffffffffffffffffff", b"Connection", b"close", b"keep-alive", b"Upgrade", b"Expect",
    b"100-continue",
]  # fmt: skip

reads = st.tuples(st.integers(0, 3), st.integers(0, 255))


@FUZZ
@given(data=st.binary(max_size=300), how=reads)
def test_random_bytes_into_both_parsers(data: bytes, how: tuple[int, int]) -> None:
    fuzz_parser.check(data, *how)


@FUZZ
@given(
    pieces=st.lists(st.one_of(st.sampled_from(HTTP_TOKENS), st.binary(max_size=4)), max_size=60),
    how=reads,
)
def test_token_soup_into_both_parsers(pieces: list[bytes], how: tuple[int, int]) -> None:
    fuzz_parser.check(b"".join(pieces), *how)


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    """A valid request (or pipelined requests) with a few edits at random places."""
    data = bytearray(draw(st.sampled_from(fuzz_parser.SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        if edit == "insert":
            data[pos:pos] = draw(st.one_of(st.sampled_from(HTTP_TOKENS), st.binary(max_size=3)))
        elif edit == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif edit == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


@settings(FUZZ, max_examples=1500)
@given(data=mutated_requests(), how=reads)
def test_mutated_requests_into_both_parsers(data: bytes, how: tuple[int, int]) -> None:
    fuzz_parser.check(data, *how)


def test_the_seeds_are_accepted_alike() -> None:
    for seed in fuzz_parser.SEEDS:
        for mode in range(4):
            fuzz_parser.check(seed, mode, 3)


# Wire frames


@st.composite
def frame_streams(draw: st.DrawFn) -> bytes:
    """Frames with random types, ids and payloads (lengths sometimes lying), valid frames, and
    plain noise, concatenated."""
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            payload = draw(st.binary(max_size=64))
            length = draw(st.one_of(st.just(len(payload)), st.integers(0, 2**32 - 1)))
            frame_type = draw(st.integers(0, 20))
            parts.append(struct.pack("!BII", frame_type, draw(st.integers(0, 2**32 - 1)), length))
            parts.append(payload)
        elif kind == 1:
            parts.append(draw(st.sampled_from(fuzz_wire.seeds())))
        elif kind == 2:
            seed = bytearray(draw(st.sampled_from(fuzz_wire.seeds())))
            pos = draw(st.integers(0, len(seed) - 1))
            seed[pos] = draw(st.integers(0, 255))
            parts.append(bytes(seed))
        else:
            parts.append(draw(st.binary(max_size=32)))
    return b"".join(parts)


@FUZZ
@given(data=frame_streams(), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_frame_streams_into_the_decoder(data: bytes, cuts: list[int]) -> None:
    fuzz_wire.check(data, cuts)


@FUZZ
@given(data=st.binary(max_size=200), cuts=st.lists(st.integers(0, 200), max_size=4))
def test_random_bytes_into_the_decoder(data: bytes, cuts: list[int]) -> None:
    fuzz_wire.check(data, cuts)


def test_a_huge_declared_payload_is_refused_at_once() -> None:
    header = struct.pack("!BII", wire.REQUEST_BODY, 1, wire.MAX_PAYLOAD + 1)
    assert fuzz_wire._decode(header, []) is None
