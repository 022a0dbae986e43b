"""Worker pipes are enlarged where the OS allows it, and still plain pipes."""

from __future__ import annotations

import fcntl
import os
import sys

import pytest

from interpserve.pipes import open_pipe


def test_open_pipe_carries_bytes() -> None:
    read_fd, write_fd = open_pipe()
    try:
        os.write(write_fd, b"frame")
        assert os.read(read_fd, 16) == b"frame"
    finally:
        os.close(read_fd)
        os.close(write_fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_SETPIPE_SZ is Linux's")
def test_open_pipe_holds_more_than_one_body_chunk() -> None:
    read_fd, write_fd = open_pipe()
    try:
        # 64 KiB body chunks plus their frame headers: several fit without waking the reader.
        assert fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ) >= 256 * 1024
    finally:
        os.close(read_fd)
        os.close(write_fd)
