"""The listening sockets: bound (or taken from --fd) before anything serves on them, by the
supervisor, which keeps them open while serving processes come and go on them (connections wait
in the backlog meanwhile, none is refused), or by a serving process run with --no-supervisor.

No asyncio here: the front end serves on these sockets with its own event loop."""

from __future__ import annotations

import contextlib
import os
import socket
import stat

from interpserve.config import Config
from interpserve.errors import StartupError


class Listeners:
    """The sockets a server listens on, and the Unix socket path it made (removed at close)."""

    def __init__(self, sockets: list[socket.socket], uds: str | None = None) -> None:
        self.sockets = sockets
        self._uds = uds

    def fds(self) -> list[int]:
        return [sock.fileno() for sock in self.sockets]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        if self._uds is not None:
            release_socket_path(self._uds)
            self._uds = None


def bind(config: Config) -> Listeners:
    """Listen where the config says: --fd, --uds, or --host and --port; StartupError if not."""
    try:
        if config.fd is not None:
            # Bound and listening already (systemd socket activation).
            return Listeners([socket.socket(fileno=config.fd)])
        if config.uds is not None:
            claim_socket_path(config.uds)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            _bind(sock, config.uds, config.backlog)
            return Listeners([sock], config.uds)
        return Listeners(_bind_tcp(config.host, config.port, config.backlog))
    except OSError as exc:
        raise StartupError(
            f"cannot listen on {listen_address(config)}: {exc.strerror or exc}"
        ) from None


def bind_metrics(config: Config, count: int) -> list[socket.socket]:
    """--metrics-port's sockets, one per serving process (each has its own metrics): on that
    port and the ones after it, or each on a free port with --metrics-port 0."""
    assert config.metrics_port is not None
    sockets: list[socket.socket] = []
    for index in range(count):
        port = config.metrics_port and config.metrics_port + index
        try:
            first, *others = _bind_tcp(config.host, port, socket.SOMAXCONN)
        except OSError as exc:
            for sock in sockets:
                sock.close()
            host = f"[{config.host}]" if ":" in config.host else config.host
            raise StartupError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
            ) from None
        for other in others:  # metrics are scraped from one address
            other.close()
        sockets.append(first)
    return sockets


def _bind_tcp(host: str, port: int, backlog: int) -> list[socket.socket]:
    """One socket per address the host resolves to ("localhost": 127.0.0.1 and ::1), as
    asyncio's create_server binds them, but all on one port when port 0 picks it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_UNSPEC
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for af, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(af, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if af == socket.AF_INET6:
                # Each family on its own socket, as asyncio does, not IPv4 through IPv6.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            _bind(sock, address, backlog)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind(sock: socket.socket, address: str | tuple[object, ...], backlog: int) -> None:
    sock.bind(address)
    sock.listen(backlog)


def listening_on(config: Config, sock: socket.socket) -> str:
    """The server's "Listening on" line: what the operator asked for, with the port it got."""
    name = sock.getsockname()
    if isinstance(name, str):  # a Unix socket, from --uds or --fd
        return f"Listening on unix:{name} (Press CTRL+C to quit)"
    host = config.host if config.fd is None else str(name[0])
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if config.ssl_certfile else "http"
    return f"Listening on {scheme}://{host}:{name[1]} (Press CTRL+C to quit)"


def listen_address(config: Config) -> str:
    """Where the server listens, as an operator wrote it."""
    if config.fd is not None:
        return f"file descriptor {config.fd}"
    if config.uds is not None:
        return f"unix:{config.uds}"
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"{host}:{config.port}"


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
