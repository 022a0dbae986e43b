"""Resident memory of a process, from Linux's /proc: a process worker's, for
--limit-max-memory, and a serving process's own, for --limit-max-leftover."""

from __future__ import annotations

import os

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    """Its resident set size in bytes; 0 if it cannot be read (gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0
