"""interpserve: an ASGI server whose workers are subinterpreters, each with its own GIL."""

from __future__ import annotations

# Not typing.TYPE_CHECKING: the supervisor imports this package, and typing would cost it
# memory (mypy takes any TYPE_CHECKING for true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from interpserve.config import Config
    from interpserve.errors import ConfigError, StartupError

__all__ = ["Config", "ConfigError", "StartupError", "run"]
__version__ = "0.1.0"


def run(app: str, **options: Any) -> None:
    """Serve `app` ("module:attribute") until SIGINT or SIGTERM, as the CLI would.

    Options are Config's fields (host, port, workers, ...); misspelled ones raise ConfigError.
    """
    from interpserve.config import Config, load_env_file
    from interpserve.launch import supervise_here
    from interpserve.logs import configure_logging
    from interpserve.serving import run_config

    config = Config.from_options(app=app, **options)
    if config.env_file:
        load_env_file(config.env_file)
    configure_logging(config.log_level, config.log_format, config.log_config)
    if not config.supervisor:
        run_config(config)
    elif code := supervise_here(config):
        # As uvicorn.run does when the server cannot start.
        raise SystemExit(code)


def __getattr__(name: str) -> Any:
    # Imported on demand: every worker imports this package, and needs none of this (each
    # module a worker imports costs memory in every interpreter).
    if name in ("Config", "ConfigError"):
        from interpserve import config

        return getattr(config, name)
    if name == "StartupError":
        from interpserve.errors import StartupError

        return StartupError
    raise AttributeError(f"module 'interpserve' has no attribute {name!r}")
