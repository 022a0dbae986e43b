"""--reload: watch the source tree and say when it changed (the supervisor reloads workers)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from fnmatch import fnmatch
from pathlib import Path

from interpserve.config import Config


def wanted(path: str, includes: tuple[str, ...], excludes: tuple[str, ...]) -> bool:
    """Whether a changed file counts: its name matches an include and no part of its path
    matches an exclude (so `.*` skips hidden directories too)."""
    parts = Path(path).parts
    if any(fnmatch(part, pattern) for part in parts for pattern in excludes):
        return False
    return any(fnmatch(parts[-1], pattern) for pattern in includes)


async def watch_changes(config: Config) -> AsyncIterator[list[str]]:
    try:
        from watchfiles import awatch
    except ImportError:
        raise ImportError("--reload needs the watchfiles package: pip install watchfiles") from None
    directories = [os.path.abspath(d) for d in config.reload_dirs or (config.app_dir,)]

    def watch_filter(_: object, path: str) -> bool:
        relative = os.path.relpath(path, os.path.commonpath([*directories, path]))
        return wanted(relative, config.reload_includes, config.reload_excludes)

    async for changes in awatch(*directories, watch_filter=watch_filter):
        yield sorted({os.path.relpath(path) for _, path in changes})
