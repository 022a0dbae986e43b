"""The one `Config`: every option is a dataclass field whose metadata also makes its CLI flag
and its `INTERPSERVE_*` environment variable, so an option is written down exactly once."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Literal

from interpserve.cpus import default_processes, default_workers
from interpserve.errors import ConfigError
from interpserve.logs import LogFormat
from interpserve.option_values import encode_header, parse_trusted
from interpserve.wire import MAX_PAYLOAD

HTTPImpl = Literal["auto", "h11", "httptools"]
LoopImpl = Literal["auto", "asyncio", "uvloop"]
LifespanMode = Literal["auto", "on", "off"]
WorkerKind = Literal["auto", "interpreter", "process"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
WSImpl = Literal["auto", "none", "wsproto"]


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A Config field that is also a command-line option (and an environment variable)."""
    metadata = {"help": help, "flag": flag, "metavar": metavar, "aliases": aliases}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Config:
    app: str = field(default="", metadata={"help": "the ASGI app, as MODULE:ATTRIBUTE"})
    host: str = option("127.0.0.1", "bind the socket to this host")
    port: int = option(8000, "bind the socket to this port (0 picks a free one)")
    fd: int | None = option(
        None,
        "serve on this already-open listening socket file descriptor instead of binding one, "
        "e.g. 3 from systemd socket activation",
    )
    uds: str | None = option(
        None,
        "listen on this Unix domain socket instead of host and port (a stale socket file is "
        "replaced; its mode follows the umask)",
        metavar="PATH",
    )
    ssl_certfile: str | None = option(
        None, "serve HTTPS with this certificate (chain) file, PEM", metavar="PATH"
    )
    ssl_keyfile: str | None = option(
        None, "the certificate's private key, PEM, unless it is in --ssl-certfile", metavar="PATH"
    )
    ssl_keyfile_password: str | None = option(
        None,
        "password of an encrypted --ssl-keyfile (better in the environment: a flag shows in ps)",
        metavar="PASSWORD",
    )
    ssl_ca_certs: str | None = option(
        None, "CA certificates, PEM, to verify client certificates with", metavar="PATH"
    )
    ssl_cert_reqs: int = option(
        0, "client certificates: 0 not asked for, 1 optional, 2 required (ssl.CERT_*)", metavar="N"
    )
    ssl_ciphers: str | None = option(
        None,
        "OpenSSL cipher list for TLS 1.2 (default: Python's, forward-secret AEAD ciphers only; "
        "uvicorn's default is TLSv1)",
        metavar="CIPHERS",
    )
    workers: int | None = option(
        None,
        "number of workers in all, shared among the serving processes (default: the CPUs "
        "available to this process)",
    )
    worker_kind: WorkerKind = option(
        "auto",
        "where requests run: subinterpreters of this process, or child processes for apps "
        "whose extension modules refuse subinterpreters; auto probes the app and picks",
    )
    http: HTTPImpl = option("auto", "HTTP/1.1 parser: auto picks httptools when installed")
    ws: WSImpl = option(
        "auto", "WebSocket support (auto: wsproto); none serves upgrade requests as plain HTTP"
    )
    ws_max_size: int = option(
        16 * 1024 * 1024,
        "close a WebSocket whose message exceeds BYTES (code 1009)",
        metavar="BYTES",
    )
    ws_ping_interval: float = option(
        20.0, "ping WebSocket clients every SECONDS (0: never)", metavar="SECONDS"
    )
    ws_ping_timeout: float = option(
        20.0,
        "close a WebSocket whose client leaves a ping unanswered for SECONDS (0: never)",
        metavar="SECONDS",
    )
    ws_per_message_deflate: bool = option(
        True, "compress WebSocket messages (permessage-deflate) for clients that offer it"
    )
    # HTTP/2 (frontend/http2*.py): what it is offered to, and the limits that protect the
    # front end from one connection's frames.
    http2: bool = option(
        True,
        "speak HTTP/2 to clients that open with its preface (prior knowledge, as proxies and "
        "gRPC clients do) and, over TLS, to those that choose h2 by ALPN",
    )
    http2_max_concurrent_streams: int = option(
        100, "most streams an HTTP/2 client may have open on one connection"
    )
    http2_max_header_list_size: int = option(
        65536,
        "largest HTTP/2 request header list in bytes (as RFC 9113 counts it); a bigger one "
        "closes the connection (ENHANCE_YOUR_CALM)",
        metavar="BYTES",
    )
    http2_header_table_size: int = option(
        4096,
        "HPACK dynamic table size each HTTP/2 connection keeps for its client",
        metavar="BYTES",
    )
    http2_timeout_window: float = option(
        30.0,
        "reset an HTTP/2 stream whose response has waited SECONDS for the client's "
        "flow-control window (the connection, if the client reads nothing at all)",
    )
    loop: LoopImpl = option("auto", "front end event loop: auto picks uvloop when installed")
    lifespan: LifespanMode = option("auto", "run the app's lifespan events in each worker")
    timeout_keep_alive: float = option(5.0, "close idle keep-alive connections after SECONDS")
    timeout_graceful_shutdown: float | None = option(
        30.0, "on shutdown, wait at most SECONDS for in-flight requests"
    )
    log_level: LogLevel = option("info", "log level")
    access_log: bool = option(True, "log one line per request")
    # Logs a collector can ingest: their format, a logging configuration of the user's, the
    # access line's text, and request ids.
    log_format: LogFormat = option(
        "text",
        "text (uvicorn's look) or json (one object a line): the server's lines and the "
        "workers', the app's own and what it prints included",
    )
    log_config: str | None = option(
        None,
        "apply this logging configuration on top of the server's: .json, .yaml or .yml for "
        "logging.config.dictConfig, any other file an ini file for fileConfig",
        metavar="PATH",
    )
    access_log_format: str | None = option(
        None,
        "the access line's message, with named fields: %(client)s, %(request_line)s, "
        "%(status)s, %(duration_ms)s, %(request_id)s, %({user-agent}i)s ... (docs/logging.md)",
        metavar="FORMAT",
    )
    request_id: bool = option(
        False,
        "give every request an id: the client's --request-id-header when it sends one valid id "
        "through a proxy in --forwarded-allow-ips, else a new one; it is in the access log, the "
        "app's scope and request headers, and the response",
    )
    request_id_header: str = option(
        "X-Request-ID", "the header that carries --request-id's id", metavar="NAME"
    )
    health_path: str | None = option(
        None,
        "answer requests for PATH in the front end, not the app: 200 when workers are ready, "
        "503 while starting or draining (for load balancer and Kubernetes probes)",
        metavar="PATH",
    )
    metrics_port: int | None = option(
        None, "serve Prometheus metrics on this port, on --host (needs interpserve[metrics])"
    )
    root_path: str = option("", "ASGI root_path, for apps mounted below a path prefix")
    factory: bool = option(False, "treat MODULE:ATTRIBUTE as a factory that returns the app")
    app_dir: str = option(".", "look for the app's module in this directory")
    env_file: str | None = option(None, "load environment variables from this file", metavar="PATH")
    timeout_header_read: float = option(
        10.0, "close a connection whose request head takes longer than SECONDS to arrive (408)"
    )
    timeout_body_read: float = option(
        30.0, "close a connection that sends nothing for SECONDS in the middle of a request body"
    )
    limit_request_line: int = option(8190, "longest request line in bytes (414 beyond it)")
    limit_request_fields: int = option(100, "most header fields in a request (431 beyond it)")
    limit_request_field_size: int = option(8190, "longest header field in bytes (431 beyond it)")
    limit_request_body: int | None = option(
        None, "largest request body in bytes (413 beyond it), checked as it streams"
    )
    limit_concurrency: int | None = option(
        None, "most requests in flight at once; more are answered 503"
    )
    backlog: int = option(2048, "most connections waiting to be accepted")
    # The front end's memory for its clients' traffic, all connections together (what it
    # protects against: docs/hardening.md; how: frontend/budget.py).
    limit_buffers: int = option(
        8 * 1024 * 1024,
        "the most memory the front end holds for clients' traffic beyond each request's own "
        "small window, across all connections: widened windows of fast transfers, bodies read "
        "ahead, WebSocket messages being reassembled; when it is reached, sockets wait to be "
        "read (TCP backpressure). With --processes, shared among the serving processes",
        metavar="BYTES",
    )
    timeout_request: float | None = option(
        None,
        "answer 504 to a request still running after SECONDS, and replace its worker if the "
        "worker is stuck",
    )
    timeout_worker_start: float | None = option(
        60.0,
        "give up on workers not ready SECONDS after they start (the app's import and lifespan "
        "startup): the server does not start, a reload keeps the old workers",
    )
    limit_max_requests: int | None = option(
        None, "recycle each worker after it has taken this many requests"
    )
    limit_max_requests_jitter: int = option(
        0,
        "add a random 0..N to --limit-max-requests per worker, so they do not recycle at once",
        aliases=("--max-requests-jitter",),
    )
    # The process model and recycling: the supervisor above the serving processes, how many
    # of those, and the limits that recycle workers and replace serving processes.
    supervisor: bool = option(
        True,
        "run a supervisor that holds the sockets and restarts, reloads and replaces the "
        "serving processes on them; --no-supervisor serves in the process started, for a "
        "process manager that restarts it itself",
    )
    processes: int | None = option(
        None,
        "serving processes, each a front end with its share of --workers, all accepting on "
        "the same sockets (default: one per 8 CPUs available to this process)",
    )
    limit_max_lifetime: float | None = option(
        None, "recycle each worker after SECONDS in rotation", metavar="SECONDS"
    )
    limit_max_lifetime_jitter: float = option(
        0.0,
        "add a random 0..SECONDS to --limit-max-lifetime per worker, so they do not recycle "
        "at once",
        metavar="SECONDS",
    )
    limit_max_memory: int | None = option(
        None,
        "recycle a worker holding more than MIB: a process worker by its RSS, an interpreter "
        "worker by what its own allocator holds",
        metavar="MIB",
    )
    limit_max_leftover: int | None = option(
        None,
        "replace a serving process (without downtime) once it keeps MIB it no longer uses, "
        "above what it and its process workers held when it became ready: what destroyed "
        "interpreter workers left (CPython keeps a few MB of each), or what a burst of clients "
        "left once over (default: a tenth of what they held when it became ready); 0: never",
        metavar="MIB",
    )
    reload: bool = option(
        False, "reload (a new serving process) when source files change (development)"
    )
    reload_dirs: tuple[str, ...] = option(
        (), "watch this directory (repeatable; default: the app directory)", flag="--reload-dir"
    )
    reload_includes: tuple[str, ...] = option(
        (),
        "also watch files matching this glob (repeatable; *.py always, unless excluded)",
        flag="--reload-include",
    )
    reload_excludes: tuple[str, ...] = option(
        (),
        "also ignore files and directories matching this glob (repeatable; .*, .py[cod], "
        ".sw.* and ~* always, unless included)",
        flag="--reload-exclude",
    )
    proxy_headers: bool = option(
        True,
        "take the client address and scheme from X-Forwarded-For, X-Forwarded-Proto and "
        "Forwarded, when the peer is in --forwarded-allow-ips",
    )
    forwarded_allow_ips: str = option(
        "127.0.0.1,::1",
        "comma-separated IP addresses and networks (CIDR) of proxies whose forwarding headers "
        'are trusted; "*" trusts every peer, Unix socket peers included',
        metavar="IPS",
    )
    server_header: bool = option(True, "send a Server header when the app does not")
    date_header: bool = option(True, "send a Date header")
    headers: tuple[str, ...] = option(
        (),
        "add this header to every response (repeatable; in the environment variable, "
        "comma-separated, so no commas in values)",
        flag="--header",
        metavar="NAME:VALUE",
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            kind = _literal_choices(f.type)
            value = getattr(self, f.name)
            if kind and value not in kind:
                raise ConfigError(f"{f.name} must be one of {', '.join(kind)}, not {value!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1, not {self.workers}")
        self._check_process_options()
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, not {self.port}")
        if self.fd is not None and self.fd < 0:
            raise ConfigError(f"fd must be 0 or more, not {self.fd}")
        if self.metrics_port is not None:
            _check_metrics(self.metrics_port)
        if self.loop == "uvloop":
            _require("uvloop", "--loop uvloop needs the uvloop package: pip install uvloop")
        if self.http == "httptools":
            _require(
                "httptools", "--http httptools needs the httptools package: pip install httptools"
            )
        if self.reload:
            _require("watchfiles", "--reload needs the watchfiles package: pip install watchfiles")
        if self.health_path is not None and not self.health_path.startswith("/"):
            raise ConfigError(f'health_path must start with "/", not {self.health_path!r}')
        for name in (
            "timeout_request",
            "timeout_worker_start",
            "limit_max_requests",
            "limit_concurrency",
            "limit_request_body",
            "timeout_header_read",
            "timeout_body_read",
            "limit_request_line",
            "limit_request_fields",
            "limit_request_field_size",
            "backlog",
            "limit_buffers",
            "http2_max_concurrent_streams",
            "http2_max_header_list_size",
            "http2_timeout_window",
        ):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, not {value}")
        if self.limit_max_requests_jitter < 0:
            raise ConfigError(
                f"limit_max_requests_jitter must be 0 or more, not {self.limit_max_requests_jitter}"
            )
        if not 0 < self.ws_max_size <= MAX_PAYLOAD:
            # A message crosses to its worker as one frame of the wire format.
            raise ConfigError(f"ws_max_size must be between 1 and {MAX_PAYLOAD}")
        if self.http2_header_table_size < 0:
            raise ConfigError("http2_header_table_size must be 0 or more")
        if self.ws_ping_interval < 0 or self.ws_ping_timeout < 0:
            raise ConfigError("ws_ping_interval and ws_ping_timeout must be 0 or more")
        self._check_log_options()
        if not isinstance(self.app, str):
            # uvicorn.run(app) takes the object; here every worker imports the app itself.
            raise ConfigError(
                'app must be an import string "MODULE:ATTRIBUTE", not a '
                f"{type(self.app).__name__}: each worker imports the app itself"
            )
        if self.app and ":" not in self.app:
            raise ConfigError(f'app must be given as "MODULE:ATTRIBUTE", not {self.app!r}')
        self._check_transport_options()

    def _check_process_options(self) -> None:
        """--processes, --no-supervisor and the recycling limits."""
        if self.processes is not None:
            if self.processes < 1:
                raise ConfigError(f"processes must be at least 1, not {self.processes}")
            if self.workers is not None and self.workers < self.processes:
                raise ConfigError(
                    f"workers ({self.workers}) must be at least processes ({self.processes}): "
                    "each serving process runs its share of the workers"
                )
            if self.processes > 1 and not self.supervisor:
                raise ConfigError("processes above 1 need the supervisor (not --no-supervisor)")
        for name in ("limit_max_lifetime", "limit_max_memory"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, not {value}")
        for name in ("limit_max_lifetime_jitter", "limit_max_leftover"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be 0 or more, not {value}")

    def _check_log_options(self) -> None:
        """--access-log-format renders every kind of line; --log-config can be read (it is
        read once, then applied as the server starts)."""
        from interpserve.accesslog import AccessFormat
        from interpserve.logconfig import read_log_config

        if self.access_log_format is not None:
            try:
                AccessFormat(self.access_log_format)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if self.log_config is not None:
            read_log_config(self.log_config)

    def _check_transport_options(self) -> None:
        """--uds, --ssl-*, --forwarded-allow-ips and --header (files are read at startup)."""
        if self.uds is not None and self.fd is not None:
            raise ConfigError("uds and fd cannot be used together")
        if self.ssl_cert_reqs not in (0, 1, 2):
            raise ConfigError(f"ssl_cert_reqs must be 0, 1 or 2, not {self.ssl_cert_reqs}")
        if self.ssl_certfile is None and (self.ssl_keyfile or self.ssl_ca_certs):
            raise ConfigError("ssl_keyfile and ssl_ca_certs need ssl_certfile")
        try:
            parse_trusted(self.forwarded_allow_ips)
            for header in self.headers:
                encode_header(header)
            encode_header(f"{self.request_id_header}: x")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def from_options(cls, **options: Any) -> Config:
        """Build from keyword options, rejecting misspelled ones instead of ignoring them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        return cls(**options)

    @property
    def process_count(self) -> int:
        """Serving processes: --processes, or one per 8 CPUs (see cpus.default_processes)."""
        if self.processes is not None:
            return self.processes
        return default_processes() if self.supervisor else 1

    @property
    def worker_count(self) -> int:
        """Workers in all: --workers, or one per CPU (and one per serving process at least)."""
        return self.workers or max(default_workers().workers, self.process_count)

    def worker_shares(self) -> tuple[int, ...]:
        """How many workers each serving process runs: --workers split as evenly as it goes."""
        count, total = self.process_count, self.worker_count
        return tuple(total // count + (i < total % count) for i in range(count))

    def buffer_share(self) -> int:
        """What each serving process's front end may hold: --limit-buffers split as --workers
        is, so that it stays the server's bound whatever --processes."""
        return max(1, self.limit_buffers // self.process_count)

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON can carry them (to a serving process): see from_dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], **changes: Any) -> Config:
        options = {**values, **changes}
        for f in dataclasses.fields(cls):
            if str(f.type).startswith("tuple[") and f.name in options:
                options[f.name] = tuple(options[f.name])
        return cls.from_options(**options)

    def worker_settings(self, worker_id: int) -> str:
        """What a worker needs, as JSON: it crosses into a subinterpreter or a child process."""
        from interpserve.logconfig import read_log_config

        app_dir = os.path.abspath(self.app_dir)
        sys_path = [app_dir, *(p for p in sys.path if p != app_dir)]
        return json.dumps(
            {
                "worker_id": worker_id,
                "app": self.app,
                "factory": self.factory,
                "lifespan": self.lifespan,
                "root_path": self.root_path,
                "log_level": self.log_level,
                "log_format": self.log_format,
                # Read once (at the options' check): every worker applies what the server did.
                "log_config": read_log_config(self.log_config) if self.log_config else None,
                "request_id_header": self.request_id_header.lower() if self.request_id else None,
                "sys_path": sys_path,
            }
        )


def _literal_choices(annotation: Any) -> tuple[str, ...]:
    """The allowed values of a Literal alias named in a field's (string) annotation."""
    alias = globals().get(str(annotation).split(" | ")[0])
    return tuple(getattr(alias, "__args__", ()))


def _check_metrics(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"metrics_port must be between 0 and 65535, not {port}")
    _require(
        "prometheus_client",
        "metrics_port needs the prometheus-client package: pip install 'interpserve[metrics]'",
    )


def _require(module: str, message: str) -> None:
    """An option that needs a package that is not installed is refused with the options, in
    one line, rather than as a traceback once the server is starting."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(message) from None


def option_fields() -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Config) if f.name != "app"]


def choices_of(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    return _literal_choices(f.type)


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as in a .env file: comments, blank lines, `export`, and quotes."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def load_env_file(path: str) -> None:
    """Put a .env file's variables in the environment, where the workers will find them."""
    try:
        with open(path, encoding="utf-8") as file:
            os.environ.update(parse_env_file(file.read()))
    except OSError as exc:
        raise ConfigError(f"cannot read --env-file {path}: {exc.strerror}") from None
