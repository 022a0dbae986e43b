"""The log formats and the writers of the server's output, in memory: formatters on records,
LineWriter, Output and OutputHandler on a pipe. (What a user sees of them against a real server:
test_access_log.py, test_worker_output.py, test_log_config.py.)"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import skip_under_coverage

from interpserve.logoutput import MAX_BATCH, MAX_PENDING, LineWriter, Output, OutputHandler
from interpserve.logs import ACCESS_LOGGER, JSONFormatter, TextFormatter

RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def record(
    name: str = "app", message: str = "hello %s", *args: object, **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args or None, None)
    made.__dict__.update(extra)
    return made


def test_json_lines_start_with_the_four_fields_then_the_extras() -> None:
    line = JSONFormatter().format(record("app", "hello %s", "there", user=7, tags=["a"]))
    assert "\n" not in line
    parsed = json.loads(line)
    assert list(parsed)[:4] == ["time", "level", "logger", "message"]
    assert RFC3339_MS.fullmatch(parsed["time"])
    assert parsed == {**parsed, "level": "WARNING", "logger": "app", "message": "hello there"}
    assert (parsed["user"], parsed["tags"]) == (7, ["a"])


def test_json_escapes_everything_but_ascii() -> None:
    """No value can end the line or the object early, nor reach a terminal as a control."""
    nasty = 'a"b\\c\nd\x1b[2J\x9b\u2028caf\u00e9\ud800'
    line = JSONFormatter().format(record("app", nasty, path=nasty))
    assert line.isascii() and line.isprintable()
    parsed = json.loads(line)
    assert parsed["message"] == parsed["path"] == nasty


def test_json_writes_what_json_cannot_hold_as_text_and_keeps_exceptions() -> None:
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        made = record("app", "failed", raw=b"\x00bytes", when=object)
        made.exc_info = sys.exc_info()
    parsed = json.loads(JSONFormatter().format(made))
    assert parsed["raw"] == "b'\\x00bytes'"
    assert (
        parsed["exception"].startswith("Traceback") and "ZeroDivisionError" in parsed["exception"]
    )


def test_text_names_the_worker_of_a_workers_record() -> None:
    formatter = TextFormatter()
    assert formatter.format(record("app", "hi")) == "WARNING:  hi"
    assert formatter.format(record("app", "hi", worker_id=3)) == "WARNING:  [worker 3] hi"
    # An access line's worker_id is the worker that answered: its message says so already.
    access = record(ACCESS_LOGGER, "GET / worker=3", worker_id=3)
    assert formatter.format(access) == "WARNING:  GET / worker=3"


def test_both_formatters_write_an_access_line_without_its_record() -> None:
    fields = {"status": 200, "worker_id": 1}
    for formatter in (TextFormatter(), JSONFormatter()):
        made = logging.LogRecord(ACCESS_LOGGER, logging.INFO, "", 0, "the line", None, None)
        made.__dict__.update(fields)
        direct = formatter.format_access(made.created, "the line", fields)
        assert direct == formatter.format(made)


# Writers


@pytest.fixture
def pipe() -> Iterator[tuple[Output, int]]:
    """An Output on a pipe's write end, and its read end."""
    read, write = os.pipe()
    os.set_blocking(read, False)
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 1 << 20)  # room for a line over MAX_PENDING
    yield Output(write), read
    os.close(read)
    os.close(write)


def written(read: int) -> bytes:
    try:
        return os.read(read, 1 << 20)
    except BlockingIOError:
        return b""


def tagged(text: str, stream: str) -> str:
    return "\n".join(f"[{stream}] {line}" for line in text.split("\n"))


def test_line_writer_writes_a_record_when_a_write_ends_a_line(pipe: tuple[Output, int]) -> None:
    output, read = pipe
    writer = LineWriter(output, "out", tagged)
    print("one", "two", file=writer)  # four writes: "one", " ", "two", "\n"
    assert written(read) == b"[out] one two\n"
    writer.write("partial")
    assert written(read) == b""
    writer.write(" line\nand a second\n")  # one record: it stays together
    assert written(read) == b"[out] partial line\n[out] and a second\n"
    writer.write("unfinished")
    writer.flush()
    assert written(read) == b"[out] unfinished\n"
    writer.buffer.write(b"bytes\xff\n")
    assert written(read) == b"[out] bytes\\xff\n"
    assert writer.fileno() == output.fd and writer.encoding == "utf-8"


def test_line_writer_holds_no_more_than_max_pending(pipe: tuple[Output, int]) -> None:
    output, read = pipe
    writer = LineWriter(output, "out", tagged)
    for _ in range(MAX_PENDING // 1000 + 1):
        writer.write("x" * 1000)
    assert written(read) == b"[out] " + b"x" * (MAX_PENDING // 1000 + 1) * 1000 + b"\n"


def test_line_writer_keeps_each_threads_unfinished_line_apart(pipe: tuple[Output, int]) -> None:
    output, read = pipe
    writer = LineWriter(output, "out", tagged)
    started, other_wrote = threading.Event(), threading.Event()

    def other() -> None:
        started.wait()
        writer.write("theirs")
        other_wrote.set()
        writer.write("\n")

    thread = threading.Thread(target=other)
    thread.start()
    writer.write("mine")
    started.set()
    assert other_wrote.wait(5)
    writer.write("\n")
    thread.join(5)
    assert sorted(written(read).splitlines()) == [b"[out] mine", b"[out] theirs"]


def test_an_output_writes_a_loop_pass_at_once(pipe: tuple[Output, int]) -> None:
    output, read = pipe
    handler = OutputHandler(output)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.write_line("no loop: at once")
    assert written(read) == b"no loop: at once\n"

    async def one_pass() -> list[bytes]:
        seen = []
        handler.write_line("a")
        seen.append(written(read))
        # Another thread's line joins those waiting, in order.
        thread = threading.Thread(target=output.write, args=(b"from a thread\n",))
        thread.start()
        thread.join(5)
        handler.write_line("b")
        seen.append(written(read))
        await asyncio.sleep(0)  # the pass ends
        seen.append(written(read))
        handler.handle(record("app", "a warning"))  # at once, with what waits
        seen.append(written(read))
        return seen

    assert asyncio.run(one_pass()) == [b"", b"", b"a\nfrom a thread\nb\n", b"a warning\n"]

    async def a_long_pass() -> list[bytes]:
        writes = []
        for _ in range(3 * MAX_BATCH // 1000):
            handler.write_line("y" * 999)
            writes.append(written(read))
        return [w for w in writes if w]

    # Before the pass ends: every MAX_BATCH, one write of the lines so far.
    assert [len(w) for w in asyncio.run(a_long_pass())] == [MAX_BATCH // 1000 * 1000 + 1000] * 2


def test_logs_imports_neither_json_nor_yaml_nor_asyncio() -> None:
    """For a parent process that must stay small (issue #19): the level and either format
    cost only logging."""
    skip_under_coverage()
    heavy = ("json", "yaml", "asyncio", "logging.config")
    code = (
        "import sys; import interpserve.logs as logs; logs.configure_logging('info', 'text'); "
        f"print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_logbase_imports_only_posix_fcntl_and_time() -> None:
    """What a parent process writes its lines with, in a program started without site."""
    root = str(Path(__file__).resolve().parent.parent)
    code = (
        f"import sys; sys.path.insert(0, {root!r}); import interpserve; before = set(sys.modules); "
        "import interpserve.logbase; print(*sorted(set(sys.modules) - before))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip
    assert set(result.stdout.split()) <= {"interpserve.logbase", "fcntl"}


def test_the_supervisors_lines_are_in_the_servers_format(capfd: pytest.CaptureFixture[str]) -> None:
    """The supervisor makes its few lines without logging (it imports as little as it can):
    they read as the serving processes' do."""
    from interpserve.supervisor import INFO, WARNING, Plan, Supervisor

    for log_format in ("text", "json"):
        plan = Plan(
            payload_fd=-1, listen_fds=(), workers=(1,), log_format=log_format,
            log_threshold=WARNING,
        )  # fmt: skip
        Supervisor(plan)._log(WARNING, 'a "quoted" \x1b[2J line')
        Supervisor(plan)._log(INFO, "below the level")
    text, line = capfd.readouterr().err.splitlines()
    assert text == 'WARNING:  a "quoted" \x1b[2J line'
    assert line.isascii() and "\x1b" not in line
    record = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record.pop("time"))
    assert record == {
        "level": "WARNING", "logger": "interpserve.error", "message": 'a "quoted" \x1b[2J line'
    }  # fmt: skip
