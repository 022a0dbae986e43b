"""--reload: watch the source tree and say when it changed (the serving process reloads workers)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from fnmatch import fnmatch
from pathlib import Path

from watchfiles import awatch  # imported with --reload only, which Config checks it for

from interpserve.config import Config
from interpserve.errors import StartupError

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")


def reload_patterns(config: Config) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The include and exclude globs: as in uvicorn, --reload-include and --reload-exclude add
    to the defaults, and a default named on the other side is dropped (`--reload-exclude
    '*.py'` stops watching Python files, `--reload-include '.*'` watches hidden ones)."""
    user_includes, user_excludes = config.reload_includes, config.reload_excludes
    defaults = (p for p in DEFAULT_EXCLUDES if p not in user_includes)
    excludes = tuple(dict.fromkeys((*defaults, *user_excludes)))
    includes = (*DEFAULT_INCLUDES, *user_includes)
    return tuple(dict.fromkeys(p for p in includes if p not in excludes)), excludes


def wanted(path: str, includes: tuple[str, ...], excludes: tuple[str, ...]) -> bool:
    """Whether a changed file counts: its name matches an include and no part of its path
    matches an exclude (so `.*` skips hidden directories too)."""
    parts = Path(path).parts
    if any(fnmatch(part, pattern) for part in parts for pattern in excludes):
        return False
    return any(fnmatch(parts[-1], pattern) for pattern in includes)


def _directories(config: Config) -> list[str]:
    return [os.path.abspath(d) for d in config.reload_dirs or (config.app_dir,)]


async def check_watcher(config: Config) -> None:
    """Start the file watcher and stop it at once, so that what would stop it (a directory
    that does not exist, the OS's limit on watches) ends the start-up in one line instead of
    leaving a server that silently never reloads."""
    directories = _directories(config)
    for directory in directories:
        if not os.path.isdir(directory):
            # uvicorn drops such a directory and may watch the working directory instead;
            # a mistyped path is better named at once.
            raise StartupError(f"--reload-dir {directory}: not a directory")
    stop = asyncio.Event()
    stop.set()
    try:
        async for _ in awatch(*directories, stop_event=stop):
            pass
    except Exception as exc:
        raise StartupError(f"--reload cannot watch {', '.join(directories)}: {exc}") from None


async def watch_changes(config: Config) -> AsyncIterator[list[str]]:
    directories = _directories(config)
    includes, excludes = reload_patterns(config)

    def watch_filter(_: object, path: str) -> bool:
        relative = os.path.relpath(path, os.path.commonpath([*directories, path]))
        return wanted(relative, includes, excludes)

    async for changes in awatch(*directories, watch_filter=watch_filter):
        yield sorted({os.path.relpath(path) for _, path in changes})
