"""What a serving process tells its supervisor: one line per message, on a pipe of its own.

The other way there is nothing to say (the supervisor signals its serving processes, as a
process manager would), only a second pipe that the supervisor holds open: when it reads as
closed, the supervisor is gone.

Imports nothing: the supervisor uses it, and keeps its memory small.
"""

from __future__ import annotations

# READY KIND WORKERS: accepting connections now, with WORKERS workers of KIND (the kind that
# --worker-kind auto found: the next serving process need not probe the app again).
READY = "ready"
# WORKERS N: SIGTTIN or SIGTTOU changed how many workers it runs (its successor runs as many).
WORKERS = "workers"
# REPLACE WHY: start another serving process in this one's place, then stop this one (the
# memory that its destroyed interpreters left behind passed --limit-max-leftover).
REPLACE = "replace"
# AFTER-BURST WHY: the same for what a burst left behind once over; done as often as the
# supervisor's backoff lets it (backoff.BurstReplacements): the app may be what keeps it.
AFTER_BURST = "after-burst"
# RELOAD WHY: --reload saw the source change: replace every serving process.
RELOAD = "reload"


def encode(word: str, *args: object) -> bytes:
    return " ".join([word, *map(str, args)]).encode() + b"\n"


def decode(line: bytes) -> tuple[str, str]:
    """A message's word, and the rest of its line."""
    word, _, rest = line.decode(errors="replace").strip().partition(" ")
    return word, rest
