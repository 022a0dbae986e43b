"""--request-id against a real server: one id per request, the same in the access line, the
app's scope and request headers, and the response; a client's taken only when valid and sent
through a trusted proxy, and replaced otherwise."""

from __future__ import annotations

import itertools
import json
import re

import httpx
import pytest
from support import LOGS_APP, TIMEOUT, StartServer, exchange, wait_for_access, ws_client

from interpserve.frontend.correlation import CorrelationIds
from interpserve.option_values import parse_trusted
from interpserve.testing import ServerProcess

NEW_ID = re.compile(r"[0-9a-f]{32}")


_requests = itertools.count()


def ids_seen(
    server: ServerProcess, headers: dict[str, bytes] | None = None, *, http2: bool = False
) -> dict[str, object]:
    """What the app saw of the id (its scope extension, its request header), what the
    response carried, and what the access line says."""
    tag = f"n={next(_requests)}"
    with httpx.Client(http1=not http2, http2=http2, timeout=TIMEOUT) as client:
        response = client.get(f"{server.url}/scope?{tag}", headers=headers)
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    seen = response.json()
    line = wait_for_access(server, lambda r: r["query"] == tag)
    return {
        "extension": seen["extension"],
        "header": seen["header"],
        "response": response.headers.get_list("x-request-id"),
        "logged": line["request_id"],
    }


def same_everywhere(seen: dict[str, object], value: str) -> None:
    assert seen == {
        "extension": {"id": value},
        "header": value,
        "response": [value],
        "logged": value,
    }


@pytest.mark.parametrize("kind", ["interpreter", "process"])
def test_a_valid_id_from_a_trusted_proxy_is_passed_through(
    start_server: StartServer, kind: str
) -> None:
    # The test client is 127.0.0.1, which --forwarded-allow-ips trusts by default.
    server = start_server(
        LOGS_APP, "--workers", "1", "--worker-kind", kind, "--log-format", "json", "--request-id"
    )
    for value in ("abc-123", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                  "Root=1-6789;Parent=53995c3f;Sampled=1", "a" * 200):  # fmt: skip
        same_everywhere(ids_seen(server, {"X-Request-ID": value.encode()}), value)


def test_a_request_without_one_gets_a_new_one(start_server: StartServer) -> None:
    server = start_server(LOGS_APP, "--workers", "1", "--log-format", "json", "--request-id")
    first, second = ids_seen(server), ids_seen(server)
    for seen in (first, second):
        assert isinstance(seen["header"], str) and NEW_ID.fullmatch(seen["header"])
        same_everywhere(seen, seen["header"])
    assert first["header"] != second["header"]


def test_an_http2_stream_gets_its_id_too(start_server: StartServer) -> None:
    server = start_server(LOGS_APP, "--workers", "1", "--log-format", "json", "--request-id")
    seen = ids_seen(server, http2=True)
    assert isinstance(seen["header"], str) and NEW_ID.fullmatch(seen["header"])
    same_everywhere(seen, seen["header"])


def test_a_malformed_id_is_replaced(start_server: StartServer) -> None:
    """The client sees the id the server gave instead, in the response."""
    server = start_server(LOGS_APP, "--workers", "1", "--log-format", "json", "--request-id")
    for value in ("has space", "a" * 201, 'quote"d', "new\\line", "caf\u00e9", ""):
        seen = ids_seen(server, {"X-Request-ID": value.encode("latin-1")})
        assert isinstance(seen["header"], str) and NEW_ID.fullmatch(seen["header"]), value
        same_everywhere(seen, seen["header"])


def test_two_ids_in_one_request_are_replaced(start_server: StartServer) -> None:
    server = start_server(LOGS_APP, "--workers", "1", "--request-id")
    received = exchange(
        server,
        b"GET /scope HTTP/1.1\r\nHost: a\r\nX-Request-ID: one\r\nX-Request-ID: two\r\n"
        b"Connection: close\r\n\r\n",
    )
    head, _, body = received.partition(b"\r\n\r\n")
    given = json.loads(body)["header"]
    assert NEW_ID.fullmatch(given)
    assert head.count(b"x-request-id: ") == 1 and b"x-request-id: " + given.encode() in head


@pytest.mark.parametrize("flags", [("--forwarded-allow-ips", "192.0.2.1"), ("--no-proxy-headers",)])
def test_an_untrusted_peers_id_is_replaced(start_server: StartServer, flags: tuple[str]) -> None:
    server = start_server(
        LOGS_APP, "--workers", "1", "--log-format", "json", "--request-id", *flags
    )
    seen = ids_seen(server, {"X-Request-ID": b"chosen-by-the-client"})
    assert isinstance(seen["header"], str) and NEW_ID.fullmatch(seen["header"])
    same_everywhere(seen, seen["header"])


def test_the_header_name_is_configurable(start_server: StartServer) -> None:
    server = start_server(
        LOGS_APP, "--workers", "1", "--request-id", "--request-id-header", "X-Correlation-ID"
    )
    response = httpx.get(
        server.url + "/scope", headers={"X-Correlation-ID": "corr-1"}, timeout=TIMEOUT
    )
    assert response.json()["extension"] == {"id": "corr-1"}
    assert response.headers["x-correlation-id"] == "corr-1"
    assert "x-request-id" not in response.headers


def test_the_apps_own_response_header_is_kept(start_server: StartServer) -> None:
    server = start_server(LOGS_APP, "--workers", "1", "--request-id")
    response = httpx.get(server.url + "/own-id", timeout=TIMEOUT)
    assert response.headers.get_list("x-request-id") == ["the-app's"]


def test_off_by_default(start_server: StartServer) -> None:
    server = start_server(LOGS_APP, "--workers", "1")
    response = httpx.get(server.url + "/scope", headers={"X-Request-ID": "abc"}, timeout=TIMEOUT)
    assert response.json() == {"extension": None, "header": "abc"}
    assert "x-request-id" not in response.headers


async def test_a_websocket_handshake_carries_it(start_server: StartServer) -> None:
    server = start_server(
        "tests.apps.ws_raw:app", "--workers", "1", "--log-format", "json", "--request-id"
    )
    headers = {"X-Request-ID": "ws-1"}
    async with ws_client(server, "/scope", additional_headers=headers) as ws:
        assert ws.response.headers["x-request-id"] == "ws-1"
        scope = json.loads(await ws.recv())
    assert scope["extensions"]["request_id"] == {"id": "ws-1"}
    for line in (
        wait_for_access(server, lambda r: "close_code" not in r),
        wait_for_access(server, lambda r: "close_code" in r),
    ):
        assert line["request_id"] == "ws-1"


def test_choose() -> None:
    """The rules, sans I/O."""
    ids = CorrelationIds("X-Request-ID", parse_trusted("10.0.0.0/8"))
    proxy, stranger = ("10.1.2.3", 5000), ("192.0.2.9", 5000)
    given = [(b"x-request-id", b"abc")]
    assert ids.choose(given, proxy) == "abc"
    assert NEW_ID.fullmatch(ids.choose(given, stranger))
    assert NEW_ID.fullmatch(ids.choose(given, None))  # a Unix socket peer: only "*" trusts it
    assert NEW_ID.fullmatch(ids.choose(given * 2, proxy))
    assert NEW_ID.fullmatch(ids.choose([], proxy))
    assert CorrelationIds("X-Request-ID", None).choose(given, proxy) != "abc"
    headers = ((b"host", b"a"), (b"x-request-id", b"old"), (b"accept", b"*/*"))
    assert ids.request_headers(headers, "new") == (
        (b"host", b"a"),
        (b"accept", b"*/*"),
        (b"x-request-id", b"new"),
    )
    assert ids.request_headers(headers, "old") is headers
    assert ids.request_headers(headers[:1], "new") == ((b"host", b"a"), (b"x-request-id", b"new"))
    assert ids.response_headers(((b"x-request-id", b"app"),), "new") == ((b"x-request-id", b"app"),)
    assert ids.response_headers((), "new") == ((b"x-request-id", b"new"),)
