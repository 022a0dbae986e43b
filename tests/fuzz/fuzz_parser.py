"""Fuzz target: the same bytes, in the same reads, into both HTTP parser backends.

A finding is an exception other than BadRequest, or the backends disagreeing on what they
accepted: the request heads they produced, and (when neither refused) the bodies and ends too.
tests/test_fuzz.py runs `check` under hypothesis; this file runs it for hours:

    python tests/fuzz/fuzz_parser.py -runs=1000000 -max_total_time=3600 corpus/   (atheris)
    python tests/fuzz/fuzz_parser.py --runs 1000000 --seconds 3600                 (without)
"""

from __future__ import annotations

import random
import sys
from typing import Any

LIMITS_ARGS = {"request_line": 512, "fields": 16, "field_size": 512, "body": 4096}

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /p?q=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    b"GET / HTTP/1.1\r\nHost: b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
    b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    b"POST / HTTP/1.0\r\nContent-Length: 4\r\n\r\nbody",
    b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"1\r\nx\r\n0\r\n\r\n",
]

_parsers: tuple[Any, ...] = ()


def _load() -> tuple[Any, ...]:
    """(BadRequest, the backend classes, Limits, event classes), imported on first use so the
    fuzzer can instrument them first."""
    global _parsers
    if not _parsers:
        from interpserve import errors
        from interpserve.frontend import http_parser as hp

        _parsers = (
            errors.BadRequest,
            [hp.H11Parser, hp.HttptoolsParser],
            hp.Limits(**LIMITS_ARGS),
            hp,
        )
    return _parsers


def reads(data: bytes, mode: int, seed: int) -> list[bytes]:
    """`data` cut into reads: whole, a byte at a time, fixed sizes, or random cuts."""
    if mode == 0 or not data:
        return [data]
    if mode == 1:
        return [data[i : i + 1] for i in range(len(data))]
    if mode == 2:
        size = seed % 64 + 1
        return [data[i : i + size] for i in range(0, len(data), size)]
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 8))) if len(data) > 1 else []
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _summary(events: list[Any], hp: Any) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for event in events:
        if isinstance(event, hp.RequestHead):
            headers = tuple(
                (n, v.lower() if n == b"transfer-encoding" else v) for n, v in event.headers
            )
            out.append(
                (
                    "head",
                    event.method,
                    event.target,
                    event.http_version,
                    event.keep_alive,
                    event.has_body,
                    event.expect_continue,
                    headers,
                )
            )
        elif isinstance(event, hp.BodyData):
            if out and out[-1][0] == "body":
                out[-1] = ("body", out[-1][1] + event.data)
            elif event.data:
                out.append(("body", event.data))
        elif isinstance(event, hp.EndOfRequest):
            out.append(("end",))
        else:  # Upgrade
            out.append(("upgrade", event.head.target, event.data))
    return out


def _parse(cls: Any, chunks: list[bytes]) -> tuple[list[tuple[Any, ...]], int | None, bool]:
    bad_request, _, limits, hp = _load()
    parser = cls(limits)
    events: list[Any] = []
    try:
        for chunk in chunks:
            events += parser.feed(chunk)
    except bad_request as exc:
        assert 400 <= exc.status <= 505, exc.status
        return _summary(events + exc.events, hp), exc.status, False
    return _summary(events, hp), None, parser.in_head


def check(data: bytes, mode: int = 0, seed: int = 0) -> None:
    """Raise AssertionError (or anything else a backend raises) on a finding."""
    _, backends, _, _ = _load()
    chunks = reads(data, mode, seed)
    (h11, h11_status, h11_in_head), (llhttp, llhttp_status, llhttp_in_head) = (
        _parse(cls, chunks) for cls in backends
    )
    if h11_status is None and llhttp_status is None:
        assert h11 == llhttp, (data, h11, llhttp)
        assert h11_in_head == llhttp_in_head, data
    else:
        heads = [e for e in h11 if e[0] == "head"], [e for e in llhttp if e[0] == "head"]
        assert heads[0] == heads[1], (data, h11_status, llhttp_status, heads)


def test_one_input(data: bytes) -> None:
    """The fuzzer's entry point: the first two bytes choose the reads, the rest is the input."""
    if len(data) < 2:
        return
    check(data[2:], data[0] % 4, data[1])


if __name__ == "__main__":
    import harness

    harness.run(test_one_input, [b"\x00\x00" + s for s in SEEDS], sys.argv, _load)
