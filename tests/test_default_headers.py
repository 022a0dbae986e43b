"""--server-header, --date-header and --header: what the server adds to every response."""

from __future__ import annotations

import socket

import httpx
import pytest
from support import read_to_eof

from interpserve import cli
from interpserve.config import Config
from interpserve.errors import ConfigError
from interpserve.frontend.response import DefaultHeaders, error_response, plan_response
from interpserve.option_values import encode_header

# On the compiled functions and on their Python references (conftest.py's pure_impl).
pytestmark = pytest.mark.usefixtures("pure_impl")

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


def header_values(head: bytes, name: bytes) -> list[bytes]:
    lines = head.split(b"\r\n")[1:]
    return [line.partition(b": ")[2] for line in lines if line.lower().startswith(name + b":")]


def plan(
    defaults: DefaultHeaders, headers: tuple[tuple[bytes, bytes], ...] = (), date: bytes = DATE
) -> bytes:
    return plan_response(
        200,
        ((b"content-length", b"0"), *headers),
        method="GET",
        http_version="1.1",
        keep_alive=True,
        date=date,
        defaults=defaults,
    ).head


# Sans I/O


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("X-Frame-Options: DENY", b"x-frame-options: DENY\r\n"),
        ("X-A:b", b"x-a: b\r\n"),
        ("X-A:  spaced value \t", b"x-a: spaced value\r\n"),
        ("X-Empty:", b"x-empty: \r\n"),
        ("X-Latin: caf\u00e9", b"x-latin: caf\xe9\r\n"),
    ],
)
def test_encode_header(text: str, line: bytes) -> None:
    assert encode_header(text) == line


@pytest.mark.parametrize(
    "text",
    [
        "no colon",
        "X A: b",
        ": b",
        "X-A: b\r\nSet-Cookie: evil",
        "X-A: b\nc",
        "X-A: \x00",
        "X-A: \u20ac",
    ],
)
def test_encode_header_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="NAME:VALUE"):
        encode_header(text)


def test_defaults_added_in_order() -> None:
    defaults = DefaultHeaders.build(server_header=True, headers=("X-A: 1", "X-B: 2"))
    head = plan(defaults)
    assert header_values(head, b"server") == [b"interpserve"]
    assert head.index(b"x-a: 1\r\nx-b: 2\r\n") < head.index(b"date: ")
    assert header_values(head, b"date") == [DATE]


def test_no_server_and_no_date() -> None:
    head = plan(DefaultHeaders.build(server_header=False, headers=()), date=b"")
    assert header_values(head, b"server") == []
    assert header_values(head, b"date") == []


def test_operators_server_header_replaces_ours_and_the_apps_replaces_both() -> None:
    defaults = DefaultHeaders.build(server_header=True, headers=("Server: edge",))
    assert header_values(plan(defaults), b"server") == [b"edge"]
    assert header_values(plan(defaults, ((b"server", b"app/1"),)), b"server") == [b"app/1"]
    no_server = DefaultHeaders.build(server_header=False, headers=())
    assert header_values(plan(no_server, ((b"server", b"app/1"),)), b"server") == [b"app/1"]


def test_defaults_as_pairs_for_the_websocket_handshake() -> None:
    defaults = DefaultHeaders.build(server_header=True, headers=("X-A: 1", "X-B:2 3"))
    assert defaults.fields(server=True) == [
        (b"server", b"interpserve"),
        (b"x-a", b"1"),
        (b"x-b", b"2 3"),
    ]
    assert defaults.fields(server=False) == [(b"x-a", b"1"), (b"x-b", b"2 3")]
    assert DefaultHeaders.build(server_header=False, headers=()).fields(server=True) == []


def test_error_response_follows_the_defaults() -> None:
    defaults = DefaultHeaders.build(server_header=False, headers=("X-A: 1",))
    data = error_response(400, "Invalid HTTP request received.", defaults)
    head = data.partition(b"\r\n\r\n")[0]
    assert header_values(head, b"server") == []
    assert header_values(head, b"x-a") == [b"1"]


def test_config_refuses_a_bad_header() -> None:
    with pytest.raises(ConfigError, match="NAME:VALUE"):
        Config(headers=("X-A: b\r\nX-Injected: c",))


def test_header_flag_is_repeatable() -> None:
    argv = ["m:app", "--header", "X-A: 1", "--header", "X-B:2", "--no-server-header"]
    config = cli.config_from_args(argv)
    assert config.headers == ("X-A: 1", "X-B:2")
    assert (config.server_header, config.date_header) == (False, True)


# Through a real server


def raw_get(port: int, target: bytes = b"/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = read_to_eof(sock)
    return data.partition(b"\r\n\r\n")[0]


def test_server_defaults(start_server) -> None:
    server = start_server("examples.hello:app", "--workers", "1")
    response = httpx.get(server.url + "/", timeout=10)
    assert response.headers["server"] == "interpserve"
    assert "date" in response.headers


def test_server_with_header_options(start_server, http_impl: str) -> None:
    server = start_server(
        "examples.hello:app",
        "--workers=1",
        f"--http={http_impl}",
        "--no-server-header",
        "--no-date-header",
        "--header",
        "X-Frame-Options: DENY",
        "--header",
        "Strict-Transport-Security:max-age=31536000",
    )
    for target in (b"/", b"/stream?n=2", b"/missing", b"/error"):
        head = raw_get(server.port, target)
        assert header_values(head, b"server") == [], target
        assert header_values(head, b"date") == [], target
        assert header_values(head, b"x-frame-options") == [b"DENY"], target
        assert header_values(head, b"strict-transport-security") == [b"max-age=31536000"]
    bad = raw_get(server.port, b"/a b")  # the front end's own 400
    assert bad.startswith(b"HTTP/1.1 400 ")
    assert header_values(bad, b"server") == []
    assert header_values(bad, b"x-frame-options") == [b"DENY"]
