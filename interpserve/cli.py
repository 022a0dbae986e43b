"""The command line: flags and INTERPSERVE_* environment variables, both generated from Config's
fields, then one clear line and a non-zero exit for anything that stops the server starting.

`interpserve MODULE:APP [options]` serves; `interpserve check MODULE:APP` tells whether an app
can run in subinterpreters.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import sys
from collections.abc import Callable, Sequence
from typing import Any

from interpserve import __version__
from interpserve.cli_parser import Parser
from interpserve.config import Config, choices_of, load_env_file, option_fields
from interpserve.errors import ConfigError
from interpserve.logs import configure_logging

ENV_PREFIX = "INTERPSERVE_"


def _env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _is_repeatable(f: dataclasses.Field[Any]) -> bool:
    return str(f.type).startswith("tuple[")


def _converter(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    """Turns one flag value (or environment variable) into the field's type."""
    if _is_repeatable(f):
        return lambda text: tuple(item.strip() for item in text.split(",") if item.strip())
    base = str(f.type).split(" | ")[0]
    converters: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "bool": _parse_bool}
    return converters.get(base, str)


def _add_option(parser: argparse.ArgumentParser, f: dataclasses.Field[Any]) -> None:
    flags = (f.metadata["flag"] or "--" + f.name.replace("_", "-"), *f.metadata["aliases"])
    help_text = f"{f.metadata['help']} (default: {f.default}; env {_env_name(f.name)})"
    help_text = help_text.replace("%", "%%")  # argparse formats it with %
    common: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
    if str(f.type) == "bool":
        parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
    elif _is_repeatable(f):
        parser.add_argument(*flags, action="append", metavar=f.metadata["metavar"], **common)
    else:
        choices = choices_of(f)
        metavar = f.metadata["metavar"] or ("{" + ",".join(choices) + "}" if choices else None)
        parser.add_argument(
            *flags, type=_converter(f), choices=choices or None, metavar=metavar, **common
        )


def _add_app(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "app",
        metavar="MODULE:APP",
        nargs="?",
        help=f"the ASGI app, e.g. examples.hello:app (env {_env_name('app')})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="interpserve",
        description="Serve an ASGI app from a pool of subinterpreters, each with its own GIL. "
        "Also: 'interpserve check MODULE:APP' and 'interpserve bench URL|MODULE:APP' "
        "(each has --help).",
    )
    _add_app(parser)
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}",
    )
    for f in option_fields():
        _add_option(parser, f)
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> Config:
    return _config_from(build_parser(), option_fields(), argv)


def _config_from(
    parser: argparse.ArgumentParser,
    fields: list[dataclasses.Field[Any]],
    argv: Sequence[str] | None,
) -> Config:
    """Flags first, then INTERPSERVE_* variables, then Config's defaults."""
    args = vars(parser.parse_args(argv))
    options: dict[str, Any] = {}
    for f in fields:
        if f.name in args:
            value = args[f.name]
            options[f.name] = tuple(value) if _is_repeatable(f) else value
        elif text := os.environ.get(_env_name(f.name)):  # empty counts as unset, as in click
            try:
                options[f.name] = _converter(f)(text)
            except ValueError as exc:
                raise ConfigError(f"{_env_name(f.name)}: {exc}") from None
    # A container image names its app like every option: in the environment.
    app = args["app"] or os.environ.get(_env_name("app"))
    if not app:
        parser.error(f"the following arguments are required: MODULE:APP (or {_env_name('app')})")
    return Config.from_options(app=app, **options)


def serve_main(argv: Sequence[str] | None) -> None:
    from interpserve.errors import StartupError
    from interpserve.launch import become_supervisor
    from interpserve.serving import exit_for, run_config

    try:
        config = config_from_args(argv)
        if config.env_file:
            load_env_file(config.env_file)
        configure_logging(config.log_level, config.log_format, config.log_config)
    except ConfigError as exc:
        sys.exit(f"interpserve: error: {exc}")
    try:
        if config.supervisor:
            become_supervisor(config)
        run_config(config)
    except StartupError as exc:
        exit_for(exc)
    except KeyboardInterrupt:
        pass


def check_main(argv: Sequence[str]) -> None:
    from interpserve.check import check_app

    parser = Parser(
        prog="interpserve check",
        description="Tell whether an app can run in subinterpreters, and if not, which module "
        "refuses and which imports pulled it in. Exit code 0 if it can, 1 if not.",
    )
    _add_app(parser)
    # Read from INTERPSERVE_* variables too, so that it checks what serving would serve.
    fields = [
        f for f in option_fields() if f.name in ("app_dir", "factory", "env_file", "log_config")
    ]
    for f in fields:
        _add_option(parser, f)
    try:
        config = _config_from(parser, fields, argv)
        if config.env_file:
            load_env_file(config.env_file)
    except ConfigError as exc:
        sys.exit(f"interpserve check: error: {exc}")
    result = asyncio.run(check_app(config.worker_settings(0)))
    print(result.describe(config.app))
    sys.exit(0 if result.compatible else 1)


def bench_main(argv: Sequence[str]) -> None:
    from interpserve.bench.cli import main as bench

    bench(argv)


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], None]] = {"check": check_main, "bench": bench_main}


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        SUBCOMMANDS[args[0]](args[1:])
    else:
        serve_main(args)
