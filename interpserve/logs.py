"""Logging as uvicorn users know it ("INFO:     message"), set up the same way in the main
interpreter and in every worker (each interpreter has its own `logging` module)."""

from __future__ import annotations

import logging
import sys

TRACE = 5

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

# Control characters (and the backslash that starts an escape) written as escapes, so a client
# cannot forge log lines or terminal sequences through a path or header. C1 controls too: U+009B
# is a CSI to many terminals, and latin-1 text (a header value) carries it.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {0x5C: "\\\\"}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.levelprefix = f"{record.levelname}:".ljust(10)
        return super().format(record)


def configure_logging(level: str) -> None:
    logging.addLevelName(TRACE, "TRACE")
    formatter = _Formatter("%(levelprefix)s%(message)s")
    # As uvicorn's: the access log on stdout, everything else on stderr.
    for name, stream in (("interpserve.error", sys.stderr), ("interpserve.access", sys.stdout)):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(LEVELS[level])
        logger.propagate = False


def escape(text: str) -> str:
    return text.translate(_ESCAPES)
