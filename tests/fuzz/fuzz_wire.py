"""Fuzz target: byte streams into the wire format's FrameDecoder, in arbitrary reads.

A finding is an exception other than WireError, or a decoder whose verdict depends on how the
bytes were cut into reads. tests/test_fuzz.py runs `check`
under hypothesis; this file runs it for hours:

    python tests/fuzz/fuzz_wire.py -runs=1000000 corpus/       (atheris)
    python tests/fuzz/fuzz_wire.py --runs 1000000              (without)
"""

from __future__ import annotations

import sys
from typing import Any


def seeds() -> list[bytes]:
    from interpserve import events as ev
    from interpserve.wire import encode

    request = ev.Request(
        1,
        "POST",
        "http",
        "1.1",
        b"/p",
        b"q=1",
        ((b"host", b"a"),),
        ("127.0.0.1", 5),
        None,
        True,
        True,
    )
    samples: list[ev.Event] = [
        request,
        ev.RequestBody(1, b"body", True),
        ev.RequestBody(1, b"", False),
        ev.ResponseStart(1, 200, ((b"content-type", b"text/plain"),)),
        ev.ResponseBody(1, b"ok", False),
        ev.Credit(1, 65536),
        ev.Disconnect(1),
        ev.Cancel(1),
        ev.RequestFinished(1),
        ev.Ping(3),
        ev.Pong(3),
        ev.Shutdown(),
        ev.WorkerReady(),
        ev.WorkerFailed("boom", "numpy"),
    ]
    return [encode(event) for event in samples] + [b"".join(encode(e) for e in samples)]


def _decode(data: bytes, cuts: list[int]) -> tuple[list[Any], int] | None:
    """The events and the pending byte count, or None if the stream is refused (WireError)."""
    from interpserve import wire
    from interpserve.errors import WireError

    decoder = wire.FrameDecoder()
    bounds = sorted({c for c in cuts if 0 < c < len(data)})
    events: list[Any] = []
    try:
        for start, stop in zip([0, *bounds], [*bounds, len(data)], strict=True):
            events += decoder.feed(data[start:stop])
    except WireError:
        return None
    return events, decoder.pending


def check(data: bytes, cuts: list[int] | None = None) -> None:
    """Raise on a finding: any exception but WireError, or reads that change the outcome."""
    whole = _decode(data, [])
    if cuts:
        assert _decode(data, cuts) == whole, data
    if whole is not None:
        assert 0 <= whole[1] <= len(data)  # pending bytes


def test_one_input(data: bytes) -> None:
    """The fuzzer's entry point: the first byte chooses the reads."""
    if not data:
        return
    step = data[0] % 16 + 1
    check(data[1:], list(range(step, len(data), step)) if data[0] & 0x80 else None)


if __name__ == "__main__":
    import harness

    harness.run(test_one_input, [b"\x00" + s for s in seeds()], sys.argv, seeds)
