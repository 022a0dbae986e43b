"""Every example in examples/ served by a real interpserve and used over HTTP, as a user would.

Apps whose tests only read are served once per module (the `serve` fixtures); apps whose test
also stops the server, or checks its startup, get a server of their own. Every server lets
`--worker-kind auto` pick the worker kind, so these tests also say which frameworks load in
subinterpreters.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support import ROOT, StartServer

from interpserve.testing import ServerProcess

TIMEOUT = 30.0
INTERPRETER_KIND = "Worker kind: interpreter"
PROCESS_KIND = "Worker kind: process, because module"


def serve(app: str, *flags: str, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """A server with two workers for a module-scoped fixture; always stopped afterwards."""
    server = ServerProcess(app, "--workers", "2", *flags, env=env, cwd=str(ROOT))
    server.start(timeout=60)
    try:
        yield server
    finally:
        server.stop(timeout=15)


def client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=TIMEOUT)


def concurrently[T](count: int, call: Callable[[], T]) -> list[T]:
    """`call` on `count` threads released at the same moment, so the requests overlap and
    least-busy dispatch spreads them over the workers."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def kind_line(server: ServerProcess) -> str:
    return next(line for line in server.output.splitlines() if "Worker kind:" in line)


# hello.py (raw ASGI) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hello() -> Iterator[ServerProcess]:
    yield from serve("examples.hello:app")


def test_hello(hello: ServerProcess) -> None:
    assert INTERPRETER_KIND in hello.output
    with client(hello) as http:
        assert http.get("/").text == "Hello, world!"
        info = http.get("/cpu?ms=5").json()
        assert info["pid"] == hello.pid and info["interpreter"] > 0
        body = bytes(range(256)) * 1000
        assert http.post("/echo", content=body).content == body
        assert http.get("/stream?n=4&size=10").content == b"x" * 40


# starlette_app.py ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starlette() -> Iterator[ServerProcess]:
    yield from serve("examples.starlette_app:app")


def test_starlette_fast_route_and_json(starlette: ServerProcess) -> None:
    assert INTERPRETER_KIND in starlette.output
    with client(starlette) as http:
        response = http.get("/")
        assert response.status_code == 200
        assert response.text == "Hello from Starlette!"
        assert http.get("/json").json() == {
            "message": "hello",
            "numbers": [1, 2, 3],
            "nested": {"ok": True},
        }


def test_starlette_cpu_route_runs_in_two_interpreters_at_once(starlette: ServerProcess) -> None:
    with client(starlette) as http:
        first, second = concurrently(2, lambda: http.get("/cpu?iterations=300000").json())
        assert http.get("/cpu?iterations=x").status_code == 400
        other = http.get("/cpu?iterations=1000").json()
    # The same work gives the same digest wherever it ran, and different work another one.
    assert first["digest"] == second["digest"] != other["digest"]
    assert first["iterations"] == 300_000
    # Both ran in this process, each in an interpreter of its own: the second request went to
    # the worker that was free, not behind the first.
    assert first["pid"] == second["pid"] == starlette.pid
    assert first["interpreter"] != second["interpreter"]
    assert first["interpreter"] > 0 and second["interpreter"] > 0


def test_starlette_path_parameter(starlette: ServerProcess) -> None:
    with client(starlette) as http:
        assert http.get("/items/42", params={"q": "shoes"}).json() == {"id": 42, "q": "shoes"}
        assert http.get("/items/7").json() == {"id": 7, "q": None}
        assert http.get("/items/not-a-number").status_code == 404


def test_starlette_streamed_upload(starlette: ServerProcess) -> None:
    chunk = b"u" * 65536

    def chunks() -> Iterator[bytes]:
        # A generator makes httpx send the body chunked, as it goes: no content-length.
        for _ in range(16):
            yield chunk

    with client(starlette) as http:
        response = http.post("/upload", content=chunks())
    assert response.status_code == 200
    assert response.json() == {"bytes": 16 * 65536}


# django_project --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("django") / "notes.sqlite3"
    yield from serve("examples.django_project.asgi:application", env={"DJANGO_DB_PATH": str(db)})


def test_django_home(django: ServerProcess) -> None:
    assert INTERPRETER_KIND in django.output
    with client(django) as http:
        response = http.get("/")
    assert response.status_code == 200
    assert response.text == "Hello from Django!"


def test_django_notes_are_stored_and_listed(django: ServerProcess) -> None:
    with client(django) as http:
        created = http.post("/notes/", data={"text": "from a form"})
        assert created.status_code == 201, created.text
        assert http.post("/notes/", json={"text": "from JSON"}).status_code == 201
        assert http.post("/notes/", json={"text": ""}).status_code == 400
        # Both workers use the one SQLite file: whichever answers sees both notes.
        listed = concurrently(2, lambda: http.get("/notes/").json()["notes"])
    for notes in listed:
        assert [n["text"] for n in notes] == ["from a form", "from JSON"]
    assert notes[0]["id"] == created.json()["id"]


# falcon_app.py ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def falcon() -> Iterator[ServerProcess]:
    yield from serve("examples.falcon_app:app")


def test_falcon(falcon: ServerProcess) -> None:
    assert INTERPRETER_KIND in falcon.output
    with client(falcon) as http:
        assert http.get("/").text == "Hello from Falcon!"
        assert http.get("/cpu?ms=20").json() == {"pid": falcon.pid, "ms": 20}
        echoed = http.post("/echo", content=b'{"a": 1}', headers={"content-type": "text/csv"})
    assert echoed.content == b'{"a": 1}'
    assert echoed.headers["content-type"].startswith("text/csv")


# quart_app.py ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quart() -> Iterator[ServerProcess]:
    yield from serve("examples.quart_app:app")


def test_quart(quart: ServerProcess) -> None:
    assert INTERPRETER_KIND in quart.output
    with client(quart) as http:
        assert http.get("/").text == "Hello from Quart!"
        assert http.get("/json").json() == {
            "message": "hello",
            "framework": "quart",
            "numbers": [1, 2, 3],
        }
        body = b"\x00binary\xff" * 1000
        echoed = http.post("/echo", content=body, headers={"content-type": "image/x-test"})
    assert echoed.content == body
    assert echoed.headers["content-type"] == "image/x-test"


# sse.py ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None
    at: float  # time.monotonic() when the event was complete


def read_events(response: httpx.Response) -> list[Event]:
    """Parse a text/event-stream as it arrives; blocks without data or event are left out."""
    events: list[Event] = []
    fields: dict[str, list[str]] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields or "event" in fields:
                events.append(
                    Event(
                        event=(fields.get("event") or ["message"])[-1],
                        data="\n".join(fields.get("data", [])),
                        id=fields["id"][-1] if "id" in fields else None,
                        at=time.monotonic(),
                    )
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
    return events


@pytest.fixture(scope="module")
def sse() -> Iterator[ServerProcess]:
    yield from serve("examples.sse:app")


def test_sse_streams_events_as_they_happen(sse: ServerProcess) -> None:
    assert INTERPRETER_KIND in sse.output
    with client(sse) as http, http.stream("GET", "/events?n=5&interval=0.2") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        events = read_events(response)
    ticks = [e for e in events if e.event == "tick"]
    assert [e.id for e in ticks] == ["0", "1", "2", "3", "4"]
    assert [json.loads(e.data)["n"] for e in ticks] == [0, 1, 2, 3, 4]
    assert json.loads(ticks[0].data)["interpreter"] > 0
    assert events[-1].event == "done"
    # Streamed, not buffered: the first tick came about four intervals before the last.
    assert ticks[-1].at - ticks[0].at > 0.5


def test_sse_resumes_after_last_event_id(sse: ServerProcess) -> None:
    with client(sse) as http:
        headers = {"Last-Event-ID": "2"}
        with http.stream("GET", "/events?n=5&interval=0", headers=headers) as response:
            events = read_events(response)
    assert [e.id for e in events if e.event == "tick"] == ["3", "4"]


def test_sse_cpu_heavy_stream(sse: ServerProcess) -> None:
    with client(sse) as http, http.stream("GET", "/mandelbrot?rows=12&iterations=400") as r:
        events = read_events(r)
    rows = [e.data for e in events if e.event == "row"]
    assert len(rows) == 12
    assert all(len(row) == 72 for row in rows)
    assert rows == rows[::-1]  # the set is symmetric about the real axis
    assert "@" in rows[6]  # points inside the set
    done = json.loads(events[-1].data)
    assert done["rows"] == 12 and done["interpreter"] > 0 and done["pid"] == sse.pid


# lifespan_state.py -----------------------------------------------------------------------------


def test_lifespan_state_is_per_worker(start_server: StartServer) -> None:
    server = start_server("examples.lifespan_state:app", "--workers", "2")
    assert INTERPRETER_KIND in server.output
    assert server.output.count(": connection opened") == 2
    with client(server) as http:
        states = concurrently(2, lambda: http.get("/", params={"hold": 0.5}).json())
        # Two workers, each with the state its own lifespan startup made.
        assert states[0]["worker"] != states[1]["worker"]
        assert states[0]["interpreter"] != states[1]["interpreter"]
        assert all(s["interpreter"] > 0 and s["pid"] == server.pid for s in states)

        stored = http.put("/cache/greeting", content=b"hello").json()
        found = concurrently(2, lambda: http.get("/cache/greeting", params={"hold": 0.5}))
    by_status = {r.status_code: r.json() for r in found}
    # One worker has the value (the one that stored it); the other's cache never saw it.
    assert sorted(by_status) == [200, 404]
    assert by_status[200] == {"key": "greeting", "value": "hello", "worker": stored["worker"]}
    assert by_status[404]["worker"] != stored["worker"]

    assert server.stop(timeout=20) == 0
    for state in states:
        assert f"{state['worker']} (interpreter {state['interpreter']}): connection closed" in (
            server.output
        )


# fastapi_app.py and numpy_app.py: extension modules that refuse subinterpreters ----------------


def test_fastapi_auto_picks_process_workers(start_server: StartServer) -> None:
    server = start_server("examples.fastapi_app:app", "--workers", "2")
    line = kind_line(server)
    assert PROCESS_KIND in line and "pydantic_core._pydantic_core" in line, server.output
    assert "examples.fastapi_app -> fastapi" in line
    with client(server) as http:
        root = http.get("/").json()
        assert root["message"] == "Hello from FastAPI!"
        assert root["pid"] != server.pid  # a process worker
        assert http.get("/items/5", params={"q": "x"}).json() == {"item_id": 5, "q": "x"}
        assert http.get("/items/five").status_code == 422
        created = http.post("/items", json={"name": "pen", "price": 2.5, "tags": ["office"]})
        assert created.status_code == 201
        assert created.json() == {
            "name": "pen",
            "price": 2.5,
            "tags": ["office"],
            "price_with_tax": 3.0,
        }
        assert http.post("/items", json={"name": "pen", "price": -1}).status_code == 422


def test_numpy_auto_picks_process_workers(start_server: StartServer) -> None:
    import numpy

    server = start_server("examples.numpy_app:app", "--workers", "2")
    line = kind_line(server)
    assert PROCESS_KIND in line and "numpy._core._multiarray_umath" in line, server.output
    with client(server) as http:
        assert http.get("/").text == f"numpy {numpy.__version__}"
