"""The command line: flags and INTERPSERVE_* environment variables, both generated from Config's
fields, then one clear line and a non-zero exit for anything that stops the server starting."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from interpserve.config import Config, ConfigError, choices_of, load_env_file, option_fields
from interpserve.logs import configure_logging
from interpserve.pool.pool import StartupError
from interpserve.supervisor import run_config

ENV_PREFIX = "INTERPSERVE_"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _converter(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    base = str(f.type).split(" | ")[0]
    converters: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bool": _parse_bool}
    return converters.get(base, str)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="interpserve",
        description="Serve an ASGI app from a pool of subinterpreters, each with its own GIL.",
    )
    parser.add_argument("app", metavar="MODULE:APP", help="the ASGI app, e.g. examples.hello:app")
    for f in option_fields():
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default}; env {_env_name(f.name)})"
        if str(f.type) == "bool":
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
            continue
        choices = choices_of(f)
        parser.add_argument(
            flag,
            type=_converter(f),
            choices=choices or None,
            metavar=f.metadata["metavar"] or ("{" + ",".join(choices) + "}" if choices else None),
            default=argparse.SUPPRESS,
            help=help_text,
        )
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> Config:
    """Flags first, then INTERPSERVE_* variables, then Config's defaults."""
    args = vars(build_parser().parse_args(argv))
    options: dict[str, Any] = {}
    for f in option_fields():
        if f.name in args:
            options[f.name] = args[f.name]
        elif (text := os.environ.get(_env_name(f.name))) is not None:
            try:
                options[f.name] = _converter(f)(text)
            except ValueError as exc:
                raise ConfigError(f"{_env_name(f.name)}: {exc}") from None
    return Config.from_options(app=args["app"], **options)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        config = config_from_args(argv)
        if config.env_file:
            load_env_file(config.env_file)
    except ConfigError as exc:
        sys.exit(f"interpserve: error: {exc}")
    configure_logging(config.log_level)
    try:
        run_config(config)
    except StartupError as exc:
        sys.stderr.write(f"ERROR:    {exc}\n")
        sys.stderr.flush()
        if exc.incompatible_module:
            # Interpreters in which an extension import failed are left as they are: CPython
            # 3.13.0 can abort when it finalizes them, so the process ends without finalizing.
            os._exit(1)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
