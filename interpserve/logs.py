"""Logging, set up here and only here: in the front end (and any parent process) by
`configure_logging`, in every worker (each interpreter has its own `logging` module) by
`configure_worker_logging`; `--log-config` goes on top of both (interpserve/logconfig.py).

Two formats. Text is uvicorn's look ("INFO:     message"); JSON is one object a line, for a
log collector. Lines a worker writes (its records, the app's, and what the app prints) name
the worker; lines from several interpreters and processes sharing stdout and stderr never mix
mid-line (logoutput.py).

Light to import, for a parent process that must stay small: json is imported by the JSON
formatter when one is made, logging.config and yaml only by --log-config.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

from interpserve.logbase import Clock
from interpserve.logoutput import LineWriter, Output, OutputHandler

TRACE = 5

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

LogFormat = Literal["text", "json"]

# Control characters, the backslash that starts an escape and the double quote that ends a
# quoted field, written as escapes: a client cannot forge log lines or terminal sequences
# through a path or header. C1 controls too: U+009B is a CSI to many terminals, and latin-1
# text (a header value) carries it.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x5C: "\\\\",
    0x22: '\\"',
}

# A LogRecord's own attributes: every other one is an extra field (see JSONFormatter).
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}

ACCESS_LOGGER = "interpserve.access"


def escape(text: str) -> str:
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text  # (most text: checking is cheaper than translating)
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """uvicorn's look: the level, padded, then the message; a worker's records say which
    worker, so the app's lines and the server's read apart."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"{record.levelname}:".ljust(10)
        worker = getattr(record, "worker_id", None)
        # (An access line's worker_id is the worker that answered: its message says so.)
        if worker is not None and record.name != ACCESS_LOGGER:
            prefix += f"[worker {worker}] "
        text = prefix + record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text

    def format_access(self, created: float, message: str, fields: dict[str, Any]) -> str:
        """An access line without its LogRecord: what format() would make of it."""
        return "INFO:     " + message


class JSONFormatter(logging.Formatter):
    """One JSON object a line: "time" (RFC 3339, UTC, milliseconds), "level", "logger" and
    "message", then every extra attribute of the record (an access line's fields, a worker's
    id and kind, what the app passed as `extra=`), then "exception" and "stack" when there is
    one. Everything but ASCII is escaped, so no value can end the line or the object early.

    To use it in a --log-config: {"()": "interpserve.logs.JSONFormatter"}, or
    `class = interpserve.logs.JSONFormatter` in an ini file."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Here, not at the module's import: see the module's docstring.
        from json import encoder as json_encoder

        make_encoder = getattr(json_encoder, "c_make_encoder", None)  # (None without _json)
        if make_encoder is not None:
            # The C encoder itself, made once: JSONEncoder.encode makes one for every call,
            # which costs as much again as encoding a line's fields.
            encoder = make_encoder(
                None, str, json_encoder.encode_basestring_ascii, None, ":", ",", False, False, True
            )
            self._encode: Callable[[object], str] = lambda value: "".join(encoder(value, 0))
        else:
            self._encode = json_encoder.JSONEncoder(separators=(",", ":"), default=str).encode
        self._clock = Clock()

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "time": self._clock.format(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in fields:
                fields[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return self._encode(fields)

    def format_access(self, created: float, message: str, fields: dict[str, Any]) -> str:
        """An access line without its LogRecord: what format() would make of it."""
        head = {"time": self._clock.format(created), "level": "INFO", "logger": ACCESS_LOGGER}
        return self._encode({**head, "message": message, **fields})

    def format_output(self, text: str, **fields: Any) -> str:
        """A line a worker's app printed: no level or logger, only where it came from."""
        head = {"time": self._clock.format(time.time()), "level": None, "logger": None}
        return self._encode({**head, "message": text, **fields})


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JSONFormatter() if log_format == "json" else TextFormatter()


def configure_logging(
    level: str, log_format: LogFormat = "text", log_config: str | None = None
) -> None:
    """The front end's logging (and a parent process's): as uvicorn's, the access log on
    stdout, everything else on stderr; then --log-config's file, if any (ConfigError if
    logging refuses it)."""
    logging.addLevelName(TRACE, "TRACE")
    chosen = formatter(log_format)
    stdout, stderr = Output(1), Output(2)
    _own("interpserve.error", stderr, chosen, level)
    _own(ACCESS_LOGGER, stdout, chosen, level)
    if log_format == "json":
        # What has no handler of its own (asyncio's records, warnings) would be a line of
        # plain text among the JSON ones.
        _last_resort(stderr, chosen)
        logging.captureWarnings(True)
    if log_config is not None:
        from interpserve.logconfig import apply_log_config, peer_loggers_warning, read_log_config

        config = read_log_config(log_config)
        apply_log_config(config)
        if warning := peer_loggers_warning(config):
            logging.getLogger("interpserve.error").warning(warning)


def configure_worker_logging(
    level: str, log_format: LogFormat, worker_id: int, worker_kind: str
) -> tuple[Output, Output]:
    """A worker's logging, before the app is imported. Every record made here carries the
    worker's id and kind; the server's own records, and the app's that no handler takes
    (logging's last resort: WARNING and above, as Python shows them), are written in the
    server's format; and what the app writes to stdout and stderr (print, its own handlers)
    goes out line by line, each line naming the worker. The app's logging is otherwise left
    as Python leaves it: a logging.basicConfig of its own still works. Returns this
    interpreter's stdout and stderr, for capture_worker_output."""
    logging.addLevelName(TRACE, "TRACE")
    make_record = logging.getLogRecordFactory()

    def worker_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.worker_id = worker_id
        record.worker_kind = worker_kind
        return record

    logging.setLogRecordFactory(worker_record)
    chosen = formatter(log_format)
    stdout, stderr = Output(1), Output(2)
    _own("interpserve.error", stderr, chosen, level)
    _last_resort(stderr, chosen)
    return stdout, stderr


def _own(name: str, output: Output, chosen: logging.Formatter, level: str) -> None:
    """One of the server's loggers, to `output` alone."""
    handler = OutputHandler(output)
    handler.setFormatter(chosen)
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(LEVELS[level])
    logger.propagate = False


def _last_resort(output: Output, chosen: logging.Formatter) -> None:
    """What takes a record no handler takes: WARNING and above, as Python's own does."""
    handler = OutputHandler(output)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(chosen)
    logging.lastResort = handler


def capture_worker_output(
    log_format: LogFormat, worker_id: int, worker_kind: str, stdout: Output, stderr: Output
) -> None:
    """sys.stdout and sys.stderr of a worker, line by line and naming the worker. After
    --log-config: the handlers it made keep the streams they were given."""
    render: Callable[[str, str], str]
    if log_format == "json":
        json_formatter = JSONFormatter()

        def render(text: str, stream: str) -> str:
            return json_formatter.format_output(
                text, worker_id=worker_id, worker_kind=worker_kind, stream=stream
            )

    else:
        tag = f"[worker {worker_id}] "

        def render(text: str, stream: str) -> str:
            return "\n".join(tag + line for line in text.split("\n"))

    sys.stdout = LineWriter(stdout, "stdout", render)
    sys.stderr = LineWriter(stderr, "stderr", render)
