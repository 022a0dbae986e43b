"""--uds: claiming a Unix socket path at startup, and giving it back at shutdown."""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from interpserve.errors import StartupError


def claim_socket_path(path: str) -> None:
    """Make way for binding `path`: a socket file left by a server that died is removed, but a
    live server's socket, or a file that is not a socket, is never taken over."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StartupError(f"cannot listen on unix:{path}: the file exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # nobody is listening: stale
            return
        except OSError as exc:
            raise StartupError(f"cannot listen on unix:{path}: {exc.strerror}") from None
    raise StartupError(f"cannot listen on unix:{path}: another server is listening there")


def release_socket_path(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
