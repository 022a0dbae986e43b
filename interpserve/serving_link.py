"""A serving process's end of its supervisor's pipes: it says when it is ready and what it
needs (control.py), and learns that the supervisor is gone when the other pipe closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from interpserve import control


class SupervisorLink:
    def __init__(self, messages: int, lifeline: int) -> None:
        self._messages = messages  # written to
        self._lifeline = lifeline  # read from: it closes when the supervisor is gone

    def ready(self, kind: str, workers: int) -> None:
        self._say(control.READY, kind, workers)

    def workers(self, count: int) -> None:
        self._say(control.WORKERS, count)

    def replace(self, why: str) -> None:
        self._say(control.REPLACE, why)

    def replace_after_burst(self, why: str) -> None:
        self._say(control.AFTER_BURST, why)

    def reload(self, why: str) -> None:
        self._say(control.RELOAD, why)

    def when_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, when the supervisor is gone (nothing else comes that way)."""
        loop = asyncio.get_running_loop()

        def readable() -> None:
            loop.remove_reader(self._lifeline)
            callback()

        loop.add_reader(self._lifeline, readable)

    def _say(self, word: str, *args: object) -> None:
        # The supervisor may log in answer ("Listening on" to READY): what this process has
        # logged and still holds for the end of its loop's pass (logoutput.Output) goes first.
        for handler in logging.getLogger("interpserve.error").handlers:
            handler.flush()
        with contextlib.suppress(BrokenPipeError):  # the supervisor is gone: see when_lost
            os.write(self._messages, control.encode(word, *args))
