"""The front end's windows and budget in memory: a real connection and its request cycles, with
a fake transport for the client's socket (support.FakeTransport) and a fake worker channel that
records what would cross the pipes, so every step (a read, a credit, the socket filling) is
taken one at a time. Time is the test's too: the loop's clock is virtual (support.VirtualClockLoop:
a connection's wait for its turn after a costly read passes at once) and so is the clock the
connection times its reads with (`clock`), so a loaded machine changes nothing."""

from __future__ import annotations

import asyncio
import time

import pytest
from support import FakeChannel, FakeTransport, connection, on_virtual_clock, receive

from interpserve import events as ev
from interpserve.frontend.connection import (
    _CHUNKED_TURN,
    _READ_LEAST,
    _SLICE_CHECK,
    READ_FIRST,
    READ_SIZE,
    HTTPConnection,
)
from interpserve.frontend.cycle import _RESPONSE_WINDOW_LEAST


def post(size: int) -> bytes:
    return b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size


class ReadClock:
    """time.perf_counter for the connection, under the test's control: every reading of it is
    `cost` seconds after the one before."""

    def __init__(self) -> None:
        self.now = 0.0
        self.cost = 0.0

    def __call__(self) -> float:
        self.now += self.cost
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> ReadClock:
    """The clock the connection times its reads with: every read is quick (costs nothing)
    unless the test says otherwise, however loaded the machine."""
    read_clock = ReadClock()
    monkeypatch.setattr(time, "perf_counter", read_clock)
    return read_clock


@on_virtual_clock
async def test_a_body_is_read_as_far_as_its_window_and_no_further() -> None:
    conn, transport, channel = connection()
    await receive(conn, transport, post(10 * ev.BODY_WINDOW_MIN) + b"x" * (3 * ev.BODY_WINDOW_MIN))
    assert channel.body_sent() == ev.BODY_WINDOW_MIN
    assert not transport.reading
    assert conn.state.budget.held == ev.BODY_WINDOW_MIN  # until the app has received them
    assert len(conn.get_buffer(-1)) <= READ_SIZE


@on_virtual_clock
async def test_a_window_widens_while_the_app_keeps_receiving() -> None:
    conn, transport, channel = connection()
    size = 8 * ev.BODY_WINDOW
    await receive(conn, transport, post(size))
    cycle = channel.sinks[1]
    windows = []
    while channel.body_sent() < size:
        sent = channel.body_sent()
        view = conn.get_buffer(-1)
        windows.append(len(view))
        await receive(conn, transport, b"x" * min(size - sent, len(view)))
        cycle.on_credit(channel.body_sent() - sent)  # the app received all of it
    assert windows[0] <= ev.BODY_WINDOW_MIN
    assert max(windows) == READ_SIZE  # (the window itself reached BODY_WINDOW)
    assert conn.state.budget.held == 0


UPLOAD = 16 * ev.BODY_WINDOW  # a body more than long enough for the reads a test makes


async def read_on(
    conn: HTTPConnection,
    transport: FakeTransport,
    channel: FakeChannel,
    reads: int,
    clock: ReadClock | None = None,
    costs: list[float] | None = None,
) -> list[int]:
    """`reads` reads of an UPLOAD's body, the app receiving each at once (each costing what
    `costs` says, if given): the size of each."""
    cycle = channel.sinks[1]
    sizes = []
    for read in range(reads):
        sent = channel.body_sent()
        view = conn.get_buffer(-1)
        sizes.append(len(view))
        if clock is not None and costs is not None:
            clock.cost = costs[read]
        await receive(conn, transport, b"x" * min(UPLOAD - sent, len(view)))
        cycle.on_credit(channel.body_sent() - sent)
    return sizes


@on_virtual_clock
async def test_a_connection_whose_reads_were_slow_reads_the_most_again_once_they_are_quick(
    clock: ReadClock,
) -> None:
    """Slow reads shrink a connection's reads to the least; quick ones, however small, widen
    them again (reads below the size that is timed at the most are timed while it reads less)."""
    conn, transport, channel = connection()
    await receive(conn, transport, post(UPLOAD))
    await read_on(conn, transport, channel, 8)  # the window widens
    clock.cost = 0.01
    assert (await read_on(conn, transport, channel, 12))[-1] == _READ_LEAST
    clock.cost = 0.0
    assert (await read_on(conn, transport, channel, 12))[-1] == READ_SIZE
    assert channel.body_sent() < UPLOAD


@on_virtual_clock
async def test_quick_reads_widen_beyond_the_first_size_and_costly_ones_never_do(
    clock: ReadClock,
) -> None:
    """A body quick to take apart (plain bytes) is read up to READ_SIZE at once, fewer reads
    and loop passes; one as costly a byte as a body of one-byte chunks is read READ_FIRST at
    the most, so no read of it holds the loop longer than before reads could widen."""
    conn, transport, channel = connection()
    await receive(conn, transport, post(UPLOAD))
    assert max(await read_on(conn, transport, channel, 12)) == READ_SIZE
    conn, transport, channel = connection()
    await receive(conn, transport, post(UPLOAD))
    cycle = channel.sinks[1]
    sizes = []
    for _ in range(24):
        sent = channel.body_sent()
        size = len(conn.get_buffer(-1))
        sizes.append(size)
        clock.cost = 10e-9 * size  # (about what one-byte chunks cost)
        await receive(conn, transport, b"x" * size)
        cycle.on_credit(channel.body_sent() - sent)
    assert max(sizes) == READ_FIRST  # (the window reached it: it was not the window's limit)
    assert sizes[-1] < READ_FIRST


@on_virtual_clock
async def test_a_costly_read_after_quick_ones_widened_the_reads_goes_back_to_the_first_size(
    clock: ReadClock,
) -> None:
    """A client sends plain bytes until its reads are READ_SIZE, then a costly body: the first
    costly read, slow by its own time, makes the next one READ_FIRST at once (one slow read
    among quick ones makes it wait for no turn), and that one, as costly, waits for its turn."""
    conn, transport, channel = connection()
    await receive(conn, transport, post(UPLOAD))
    await read_on(conn, transport, channel, 12)
    for size in (READ_SIZE, READ_FIRST):
        assert len(conn.get_buffer(-1)) == size
        clock.cost = 10e-9 * size
        await receive(conn, transport, b"x" * size)
    assert not transport.reading
    assert len(conn.get_buffer(-1)) <= READ_FIRST


@on_virtual_clock
async def test_a_plain_body_whose_reads_are_slow_one_at_a_time_is_read_the_most_at_once(
    clock: ReadClock,
) -> None:
    """A slow read between quick ones (the one that completes a batch of frames for the
    worker's pipe, or one a preemption slowed) neither shrinks the reads nor makes the
    connection wait for a turn; reads slow one after the other do."""
    conn, transport, channel = connection()
    await receive(conn, transport, post(UPLOAD))
    costs = [0.01 if read % 4 == 3 else 0.0 for read in range(64)]
    assert (await read_on(conn, transport, channel, len(costs), clock, costs))[-1] == READ_SIZE
    assert conn.state.costly_until == 0.0
    clock.cost = 0.01
    for _ in range(2):
        await receive(conn, transport, b"x" * len(conn.get_buffer(-1)))
    assert len(conn.get_buffer(-1)) < READ_SIZE
    assert conn.state.costly_until > 0.0


@on_virtual_clock
async def test_after_a_costly_read_a_connection_reads_again_at_its_turn_and_not_before(
    clock: ReadClock,
) -> None:
    """The credit its worker sends for each read gives the connection room at once, but not
    its turn: that comes once the loop has had as long as the read for the rest, after the
    turns of the costly reads before (two connections' reads so take half the loop, not all)."""
    first, transport, channel = connection()
    state = first.state
    turns = []
    for request_id in (1, 2):
        conn = first if request_id == 1 else HTTPConnection(state)
        if conn is not first:
            transport = FakeTransport()
            conn.connection_made(transport)  # type: ignore[arg-type]
        await receive(conn, transport, post(UPLOAD))
        cycle = channel.sinks[request_id]
        clock.cost = 0.01
        for _ in range(2):  # (the second of two costly reads in a row makes it wait)
            sent = channel.body_sent()
            await receive(conn, transport, b"x" * len(conn.get_buffer(-1)))
            cycle.on_credit(channel.body_sent() - sent)  # the app received it: room again
        clock.cost = 0.0
        assert not transport.reading
        turns.append((transport, state.costly_until))
    loop = asyncio.get_running_loop()
    assert turns[1][1] - turns[0][1] == pytest.approx(2 * 0.01)
    await asyncio.sleep(turns[0][1] - loop.time())
    assert turns[0][0].reading and not turns[1][0].reading
    await asyncio.sleep(turns[1][1] - loop.time())
    assert turns[1][0].reading


CHUNKED_POST = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("head", "unit", "turn"),
    [(post(UPLOAD), b"x", 0.0), (CHUNKED_POST, b"1\r\nx\r\n", _CHUNKED_TURN)],
    ids=["plain", "tiny-chunks"],
)
@on_virtual_clock
async def test_a_chunked_body_is_costly_sooner_and_waits_a_longer_turn(
    clock: ReadClock, head: bytes, unit: bytes, turn: float
) -> None:
    """At 4 ns a byte (about what the guard takes to decode one-byte chunks), a plain body's
    reads are not costly, and a chunked body's are: each then waits for _CHUNKED_TURN times its
    time, its framing costing the client, the kernel and the worker too."""
    conn, transport, channel = connection()
    await receive(conn, transport, head)
    cycle = channel.sinks[1]
    body, pos = unit * (UPLOAD // len(unit)), 0
    for _ in range(24):  # (the window widens, until reads are large enough to time)
        size = len(conn.get_buffer(-1))
        clock.cost = 4e-9 * size
        sent = channel.body_sent()
        await receive(conn, transport, body[pos : (pos := pos + size)])
        cycle.on_credit(channel.body_sent() - sent)
        if not transport.reading:
            break
    waits = conn.state.costly_until - asyncio.get_running_loop().time()
    assert transport.reading == (not turn)
    assert waits == pytest.approx(turn * clock.cost) if turn else conn.state.costly_until == 0.0


@on_virtual_clock
async def test_a_read_is_judged_by_its_cost_a_byte_not_by_the_time_of_a_smaller_one_before(
    clock: ReadClock,
) -> None:
    """A read of the most after a smaller one, both as costly a byte: the second waits for its
    turn (judged by the first one's time, it looked cheap, and read on at once)."""
    conn, transport, channel = connection()
    await receive(conn, transport, post(UPLOAD))
    await read_on(conn, transport, channel, 8)  # the window widens
    per_byte = 50e-9  # ten times what makes a read costly
    clock.cost = per_byte * _SLICE_CHECK
    await receive(conn, transport, b"x" * _SLICE_CHECK)
    assert transport.reading  # (judged by the quick read before it)
    size = len(conn.get_buffer(-1))
    assert size == READ_SIZE
    clock.cost = per_byte * size
    await receive(conn, transport, b"x" * size)
    assert not transport.reading


@on_virtual_clock
async def test_a_spent_budget_stops_a_body_whose_app_has_not_received_all() -> None:
    conn, transport, channel = connection(limit_buffers=4 * ev.BODY_WINDOW_MIN)
    budget = conn.state.budget
    await receive(conn, transport, post(10 * ev.BODY_WINDOW_MIN) + b"x" * 100)
    cycle = channel.sinks[1]
    assert transport.reading  # 100 bytes in its window: room for more
    budget.reserve(budget.limit)  # the others spend the budget
    conn.update_reading()
    assert not transport.reading
    cycle.on_credit(100)  # its app has received all it was sent: it may always read on
    assert transport.reading
    await receive(conn, transport, b"x" * 100)
    assert not transport.reading
    budget.release(budget.limit)  # room again: it is resumed
    assert transport.reading


@on_virtual_clock
async def test_a_widened_window_takes_only_what_the_budget_has_room_for() -> None:
    """A window widened while the budget had room is not all read again once others have
    filled the budget: beyond the small window, a read brings what the budget has room for,
    even if the room went between the read's decision and the read itself."""
    conn, transport, channel = connection()
    budget = conn.state.budget
    await receive(conn, transport, post(UPLOAD))
    await read_on(conn, transport, channel, 12)  # (it widens to the most: the budget has room)
    assert len(conn.get_buffer(-1)) == READ_SIZE
    budget.reserve(budget.limit - ev.BODY_WINDOW_MIN // 2)  # others fill the budget meanwhile
    assert len(conn.get_buffer(-1)) == ev.BODY_WINDOW_MIN
    budget.release(budget.limit - ev.BODY_WINDOW_MIN // 2)
    await read_on(conn, transport, channel, 1)
    assert len(conn.get_buffer(-1)) == READ_SIZE
    budget.reserve(budget.limit)  # spent: the small window still moves
    conn.update_reading()
    assert transport.reading
    assert len(conn.get_buffer(-1)) == ev.BODY_WINDOW_MIN


@on_virtual_clock
async def test_pipelined_requests_wait_for_the_client_to_take_the_answers() -> None:
    conn, transport, channel = connection()
    await receive(conn, transport, b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n" * 3)
    assert [e.raw_path for e in channel.sent if isinstance(e, ev.Request)] == [b"/a"]
    conn.pause_writing()  # the client does not read
    channel.sinks[1].on_response_start(200, ((b"content-length", b"2"),))
    channel.sinks[1].on_response_body(b"ok", False)
    assert sum(isinstance(e, ev.Request) for e in channel.sent) == 1
    conn.resume_writing()
    assert sum(isinstance(e, ev.Request) for e in channel.sent) == 2


@pytest.mark.parametrize("paused", [False, True])
@on_virtual_clock
async def test_a_streamed_response_gets_credit_as_the_client_takes_it(paused: bool) -> None:
    conn, transport, channel = connection()
    await receive(conn, transport, b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
    cycle = channel.sinks[1]
    cycle.on_response_start(200, ())
    if paused:
        conn.pause_writing()
    cycle.on_response_body(b"x" * ev.BODY_WINDOW_MIN, True)
    credits = [e.size for e in channel.sent if isinstance(e, ev.Credit)]
    if paused:
        assert credits == []  # withheld while the bytes wait in memory, which count
        assert conn.state.budget.held == ev.BODY_WINDOW_MIN
        conn.resume_writing()
        credits = [e.size for e in channel.sent if isinstance(e, ev.Credit)]
    assert credits == [2 * ev.BODY_WINDOW_MIN]  # a whole window went: it doubles
    assert conn.state.budget.held == ev.BODY_WINDOW_MIN  # what the window widened by
    cycle.on_response_body(b"", False)
    assert conn.state.budget.held == 0


@on_virtual_clock
async def test_while_the_budget_is_spent_a_response_window_narrows_to_the_least() -> None:
    """Others spend the budget: what the client takes of a response is not all given back to
    its app until its window is the least (a slow reader holds its whole window in memory);
    once there is room, the window widens again as the client keeps taking it."""
    conn, transport, channel = connection()
    budget = conn.state.budget
    await receive(conn, transport, b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
    cycle = channel.sinks[1]
    cycle.on_response_start(200, ())
    budget.reserve(budget.limit)  # the others
    cycle.on_response_body(b"x" * ev.BODY_WINDOW_MIN, True)
    cycle.on_response_body(b"x" * _RESPONSE_WINDOW_LEAST, True)
    credits = [e.size for e in channel.sent if isinstance(e, ev.Credit)]
    assert credits == [_RESPONSE_WINDOW_LEAST, _RESPONSE_WINDOW_LEAST]
    assert budget.held == budget.limit
    budget.release(budget.limit)
    cycle.on_response_body(b"x" * _RESPONSE_WINDOW_LEAST, True)  # a whole window went: doubled
    credits = [e.size for e in channel.sent if isinstance(e, ev.Credit)]
    assert credits[2:] == [2 * _RESPONSE_WINDOW_LEAST]
    assert budget.held == 0  # (a window counts only beyond the small one)
    cycle.on_response_body(b"", False)
    assert budget.held == 0
