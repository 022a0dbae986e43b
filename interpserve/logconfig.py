"""--log-config FILE, as uvicorn reads it: JSON (.json) or YAML (.yaml, .yml) for
logging.config.dictConfig, anything else an ini file for logging.config.fileConfig. It goes on
top of interpserve's own logging (logs.py): what the file sets wins, what it leaves alone stays.

The front end reads the file once, at start-up, and applies it before anything is logged; every
worker applies the same configuration before it imports the app, so the app's loggers get the
file's handlers as they would under uvicorn. A dictConfig crosses to the workers as data, so
they never import PyYAML (whose compiled module refuses subinterpreters); an ini file is read
by each worker. Workers leave out the access logger and the handlers only it uses: access
lines are written by the front end, and a worker opening the access log's file with mode "w"
would empty it at every worker start.

A bad file is a ConfigError: one line, before the server starts.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from interpserve.errors import ConfigError
from interpserve.logs import ACCESS_LOGGER

# A dictConfig's dict, or the path of an ini file.
LogConfig = dict[str, Any] | str

# Loggers that only the peers' servers write to: a file that configures these and none of
# interpserve's was most likely written for uvicorn or gunicorn.
_PEER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")


@functools.cache
def read_log_config(path: str) -> LogConfig:
    """The file's configuration, read once for the front end and every worker it starts."""
    if not os.path.isfile(path):
        raise ConfigError(f"--log-config {path}: no such file")
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".json", ".yaml", ".yml"):
        return path
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--log-config {path}: cannot read it: {exc}") from None
    if extension == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--log-config {path}: not valid JSON: {exc}") from None
    else:
        data = _load_yaml(path, text)
    if not isinstance(data, dict):
        raise ConfigError(f"--log-config {path}: not a dictConfig mapping")
    try:
        json.dumps(data)  # it crosses to the workers as JSON
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--log-config {path}: holds a value that is not JSON: {exc}") from None
    return data


def _load_yaml(path: str, text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            f"--log-config {path} is YAML, which needs PyYAML: pip install 'interpserve[yaml]'"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())  # one line
        raise ConfigError(f"--log-config {path}: not valid YAML: {problem}") from None


def apply_log_config(config: LogConfig, *, in_worker: bool = False) -> None:
    """dictConfig or fileConfig; ConfigError (one line) if logging refuses the configuration."""
    import logging.config

    try:
        if isinstance(config, str):
            logging.config.fileConfig(config, disable_existing_loggers=False)
        else:
            logging.config.dictConfig(_without_access(config) if in_worker else config)
    except Exception as exc:
        # (fileConfig says only KeyError('formatters') of a missing section.)
        problem = f"no {exc} in it" if isinstance(exc, KeyError) else str(exc)
        if exc.__cause__:
            problem += f": {exc.__cause__}"
        name = f"--log-config {config}" if isinstance(config, str) else "--log-config"
        # Chained: a worker tells a module that refuses subinterpreters by the cause.
        raise ConfigError(f"{name}: {problem}".replace("\n", " ")) from exc


def peer_loggers_warning(config: LogConfig) -> str:
    """A warning for a file written for uvicorn or gunicorn, "" for any other."""
    if isinstance(config, str):
        import configparser

        parser = configparser.ConfigParser()
        parser.read(config)
        names = {parser.get(s, "qualname", fallback="") for s in parser if s.startswith("logger_")}
    else:
        names = set(config.get("loggers", {}))
    if any(name.startswith("interpserve") for name in names):
        return ""
    peers = sorted(names & set(_PEER_LOGGERS))
    if not peers:
        return ""
    return (
        f"--log-config configures {', '.join(peers)}, which interpserve never writes to: its "
        "loggers are interpserve.error and interpserve.access (docs/migrating.md)."
    )


def _without_access(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration less the access logger and the handlers that only it uses."""
    loggers = dict(config.get("loggers", {}))
    access = loggers.pop(ACCESS_LOGGER, None)
    if access is None:
        return config
    used = {h for logger in loggers.values() for h in logger.get("handlers", ())}
    used.update(config.get("root", {}).get("handlers", ()))
    handlers = {
        name: handler
        for name, handler in config.get("handlers", {}).items()
        if name in used or name not in access.get("handlers", ())
    }
    return {**config, "loggers": loggers, "handlers": handlers}
