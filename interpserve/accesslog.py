"""The access log: one line for every request when it ends (its response complete, or cut off:
by the client gone, or by the server), one when a WebSocket is accepted or denied and one when
it closes, and one for a request the front end refuses before it reaches a worker. Every line
is made here, by AccessLog.log, for the HTTP cycle, the WebSocket session and the connection.

A line is a record of the `interpserve.access` logger whose attributes are FIELDS (and, for a
WebSocket's close, WEBSOCKET_FIELDS), as received: the JSON formatter writes them all, and a
formatter of the user's (--log-config) can name them. Its message is --access-log-format with
the same fields and a few made for text (TEXT_FIELDS, request headers), each string escaped,
each missing value "-".

Nothing here runs when the access log is off: the front end holds no AccessLog then.
"""

from __future__ import annotations

import http
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, Protocol

from interpserve.events import Address
from interpserve.logbase import Clock
from interpserve.logoutput import OutputHandler
from interpserve.logs import (
    ACCESS_LOGGER,
    JSONFormatter,
    TextFormatter,
    escape,
)

logger = logging.getLogger(ACCESS_LOGGER)

# nginx's status for a request whose client left before it was answered.
CLIENT_CLOSED = 499

DEFAULT_FORMAT = (
    '%(client)s - "%(request_line)s" %(status)d %(status_text)s %(duration_ms).1fms '
    "worker=%(worker_id)s"
)

FIELDS = (
    "client_addr",  # the client's address, as a trusted proxy forwarded it, else the peer's
    "client_port",
    "method",
    "path",  # as the client sent it: percent-escapes stay
    "query",  # without its "?"
    "http_version",
    "status",  # the response's; 499 when the client left before it started
    "response_bytes",  # body bytes written to the client
    "duration_ms",  # from the request head to the line
    "worker_id",
    "worker_kind",
    "request_id",  # --request-id
    "user_agent",
    "referer",
    "disconnected",  # the client went away before the response was complete
    "protocol",  # "http" or "websocket"
)
WEBSOCKET_FIELDS = ("close_code", "closed_by")
TEXT_FIELDS = ("client", "request_line", "status_text", "time", "duration_s", "duration_us", "pid")
# A request header in --access-log-format, as gunicorn writes it: %({user-agent}i)s.
_HEADER = re.compile(r"\{([!#$%&'*+.^_`|~0-9A-Za-z-]+)\}i")
_NAME = re.compile(r"%\(([^)]*)\)")
_UNNAMED = re.compile(r"%(?![(%])")


class Head(Protocol):
    """What a line needs of a request's head (the front end's RequestHead)."""

    method: str
    target: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]


class ClosedBy(Enum):
    CLIENT = "client"  # its close frame, or the connection dropped (1006)
    APP = "app"  # websocket.close, or the app returned
    SERVER = "server"  # shutdown, a ping unanswered, a message too big, the worker lost


class AccessLog:
    """Built once from the options; `log` is called once a line."""

    def __init__(self, access_log_format: str | None, worker_kind: str) -> None:
        self.format = AccessFormat(access_log_format or DEFAULT_FORMAT)
        self._worker_kind = worker_kind
        self._direct = _direct_handler()

    def log(
        self,
        head: Head | None,
        client: Address | None,
        status: int,
        started_at: float | None,
        *,
        response_bytes: int | None = 0,
        worker_id: int | None = None,
        request_id: str | None = None,
        disconnected: bool = False,
        websocket: bool = False,
        closed: tuple[int, ClosedBy] | None = None,
    ) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        method = path = query = http_version = user_agent = referer = None
        headers: Sequence[tuple[bytes, bytes]] = ()
        if head is not None:
            method, http_version, headers = head.method, head.http_version, head.headers
            raw_path, _, raw_query = head.target.partition(b"?")
            path, query = raw_path.decode("latin-1"), raw_query.decode("latin-1")
        for name, value in headers:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"referer":
                referer = value.decode("latin-1")
        duration = 0.0 if started_at is None else (time.perf_counter() - started_at) * 1000
        fields: dict[str, Any] = {
            "client_addr": client[0] if client else None,
            "client_port": client[1] if client else None,
            "method": method,
            "path": path,
            "query": query,
            "http_version": http_version,
            "status": status,
            "response_bytes": response_bytes,
            "duration_ms": round(duration, 3),
            "worker_id": worker_id,
            "worker_kind": None if worker_id is None else self._worker_kind,
            "request_id": request_id,
            "user_agent": user_agent,
            "referer": referer,
            "disconnected": disconnected,
            "protocol": "websocket" if websocket else "http",
        }
        if closed is not None:
            fields["close_code"], fields["closed_by"] = closed[0], closed[1].value
        message = self.format.render(fields, headers)
        if self._direct is not None:
            handler, formatter = self._direct
            handler.write_line(formatter.format_access(time.time(), message, fields))
            return
        record = logging.LogRecord(logger.name, logging.INFO, "", 0, message, None, None)
        record.__dict__.update(fields)
        logger.handle(record)


def _direct_handler() -> tuple[OutputHandler, TextFormatter | JSONFormatter] | None:
    """The access log's handler, if it is the one configure_logging made and nothing else
    (a filter, a level, another handler) stands between a line and it: then lines go to it
    without a LogRecord each, which would cost as much as the rest of the line. What logging
    is configured to do is settled before the server starts (the front end runs no code of
    the app's), so it is looked at once."""
    handlers = logger.handlers
    if len(handlers) != 1 or logger.filters or logger.propagate or logger.disabled:
        return None
    handler, formatter = handlers[0], handlers[0].formatter
    if (
        type(handler) is not OutputHandler
        or handler.filters
        or handler.level > logging.INFO
        or type(formatter) not in (TextFormatter, JSONFormatter)
    ):
        return None
    assert isinstance(formatter, TextFormatter | JSONFormatter)
    return handler, formatter


Getter = Callable[[dict[str, Any], Sequence[tuple[bytes, bytes]]], Any]


class AccessFormat:
    """--access-log-format, taken apart once: for each field it names, how to get its value
    from a line's fields (and its request headers)."""

    def __init__(self, text: str) -> None:
        self.text = text
        names = _NAME.findall(text)
        known = (*FIELDS, *WEBSOCKET_FIELDS, *TEXT_FIELDS)
        if _UNNAMED.search(text.replace("%%", "")):
            raise ValueError("access_log_format: name every field, as in %(status)s")
        for name in names:
            if name not in known and not _HEADER.fullmatch(name):
                raise ValueError(
                    f"access_log_format: unknown field {name!r}; the fields are "
                    f"{', '.join(known)}, and request headers as %({{name}}i)s"
                )
        self._getters = tuple((name, _getter(name)) for name in dict.fromkeys(names))
        for sample in _SAMPLES:
            try:
                self.render(sample, ())
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"access_log_format: {text!r} cannot render every line ({exc}): write "
                    "%(...)s for a field that may be missing"
                ) from None

    def render(self, fields: dict[str, Any], headers: Sequence[tuple[bytes, bytes]]) -> str:
        """The line's message: strings escaped, missing values "-"."""
        values = {}
        for name, get in self._getters:
            value = get(fields, headers)
            if value is None:
                value = "-"
            elif type(value) is str:
                value = escape(value)
            values[name] = value
        return self.text % values


def _getter(name: str) -> Getter:
    made = _MADE.get(name)
    if made is not None:
        return made
    if match := _HEADER.fullmatch(name):
        wanted = match.group(1).lower().encode("latin-1")
        return lambda fields, headers: _header(headers, wanted)
    return lambda fields, headers: fields.get(name)  # (a WebSocket's only: None on others)


def _header(headers: Sequence[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    values = [value for field, value in headers if field == wanted]
    return b",".join(values).decode("latin-1") if values else None


def _client(fields: dict[str, Any], headers: object) -> str | None:
    addr = fields["client_addr"]
    return None if addr is None else f"{addr}:{fields['client_port']}"


def _request_line(fields: dict[str, Any], headers: object) -> str | None:
    path = fields["path"]
    if path is None:
        return None
    target = f"{path}?{fields['query']}" if fields["query"] else path
    if fields["protocol"] == "websocket":
        return f"WebSocket {target}"
    return f"{fields['method']} {target} HTTP/{fields['http_version']}"


_PHRASES = {status.value: status.phrase for status in http.HTTPStatus}


def _status_text(fields: dict[str, Any], headers: object) -> str:
    if "close_code" in fields:
        return f"closed {fields['close_code']} by {fields['closed_by']}"
    status = fields["status"]
    if fields["protocol"] == "websocket":
        return "accepted" if status == 101 else "denied"
    if not fields["disconnected"]:
        return _PHRASES.get(status, "")
    if status == CLIENT_CLOSED:
        return "client disconnected"
    return f"{_PHRASES.get(status, '')}, client disconnected"


_MADE: dict[str, Getter] = {
    "client": _client,
    "request_line": _request_line,
    "status_text": _status_text,
    "time": lambda fields, headers: Clock().format(time.time()),
    "duration_s": lambda fields, headers: fields["duration_ms"] / 1000,
    "duration_us": lambda fields, headers: round(fields["duration_ms"] * 1000),
    "pid": lambda fields, headers: os.getpid(),
}

# One line of each kind, every optional field missing where a line of that kind can miss it:
# a format that renders all of them renders every line.
_SAMPLES = (
    {**dict.fromkeys(FIELDS), "status": 400, "duration_ms": 0.0, "disconnected": False,
     "protocol": "http"},
    {**dict.fromkeys(FIELDS), "client_addr": "192.0.2.1", "client_port": 1, "method": "GET",
     "path": "/", "query": "", "http_version": "1.1", "status": 200, "response_bytes": 0,
     "duration_ms": 1.0, "worker_id": 1, "disconnected": True, "protocol": "http"},
    {**dict.fromkeys(FIELDS), "method": "GET", "path": "/", "query": "", "http_version": "1.1",
     "status": 101, "duration_ms": 1.0, "disconnected": False, "protocol": "websocket",
     "close_code": 1000, "closed_by": "client"},
)  # fmt: skip
