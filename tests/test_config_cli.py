"""Config validation, flags, INTERPSERVE_* variables and .env files; the CLI's exit behaviour."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

import interpserve
from interpserve import cli
from interpserve.config import Config, load_env_file, parse_env_file
from interpserve.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No INTERPSERVE_* variable from the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith(cli.ENV_PREFIX):
            monkeypatch.delenv(name)


# Config validation


def test_defaults_are_valid() -> None:
    config = Config()
    assert config.port == 8000
    assert config.workers is None
    assert config.http == "auto"
    assert config.lifespan == "auto"
    assert config.access_log is True


def test_config_is_frozen() -> None:
    config = Config(app="m:app")
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"worker_kind": "thread"}, ["worker_kind", "'thread'"]),
        ({"http": "h2"}, ["http", "h11", "httptools", "'h2'"]),
        ({"lifespan": "maybe"}, ["lifespan", "on", "off", "'maybe'"]),
        ({"loop": "trio"}, ["loop", "'trio'"]),
        ({"log_level": "loud"}, ["log_level", "'loud'"]),
        ({"workers": 0}, ["workers", "at least 1", "0"]),
        ({"workers": -3}, ["workers", "-3"]),
        ({"port": -1}, ["port", "65535", "-1"]),
        ({"port": 65536}, ["port", "65536"]),
        ({"app": "myapp"}, ["MODULE:ATTRIBUTE", "'myapp'"]),
    ],
)
def test_invalid_options_raise_config_error(options: dict[str, object], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**options)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


async def _an_app(scope: object, receive: object, send: object) -> None:
    pass


def test_run_with_an_app_object_says_an_import_string_is_needed() -> None:
    # uvicorn.run(app) accepts the object; interpserve's workers must import it themselves.
    with pytest.raises(ConfigError) as info:
        interpserve.run(_an_app, port=0)  # type: ignore[arg-type]
    message = str(info.value)
    assert '"MODULE:ATTRIBUTE"' in message and "function" in message
    assert "imports the app itself" in message


@pytest.mark.parametrize(
    "options",
    [
        {"port": 0},
        {"port": 65535},
        {"workers": 1},
        {"app": "pkg.mod:obj.attr"},
        {"worker_kind": "process"},
        {"worker_kind": "interpreter"},
        {"http": "h11"},
        {"http": "httptools"},
        {"lifespan": "off"},
    ],
)
def test_valid_options(options: dict[str, object]) -> None:
    config = Config(**options)  # type: ignore[arg-type]
    for name, value in options.items():
        assert getattr(config, name) == value


def test_from_options_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown option") as info:
        Config.from_options(app="m:app", wrokers=2, timeout_keepalive=1)
    assert "timeout_keepalive, wrokers" in str(info.value)


def test_from_options_builds_a_config() -> None:
    config = Config.from_options(app="m:app", workers=2, http="h11")
    assert config == Config(app="m:app", workers=2, http="h11")


def test_from_options_still_validates() -> None:
    with pytest.raises(ConfigError):
        Config.from_options(app="m:app", workers=0)


def test_worker_count() -> None:
    assert Config(workers=3).worker_count == 3
    assert Config().worker_count >= 1


def test_worker_settings_puts_the_app_dir_first(tmp_path: Path) -> None:
    config = Config(
        app="main:app",
        app_dir=str(tmp_path),
        factory=True,
        lifespan="off",
        root_path="/api",
        log_level="debug",
    )
    settings = json.loads(config.worker_settings(4))
    assert settings["worker_id"] == 4
    assert settings["app"] == "main:app"
    assert settings["factory"] is True
    assert settings["lifespan"] == "off"
    assert settings["root_path"] == "/api"
    assert settings["log_level"] == "debug"
    assert settings["sys_path"][0] == str(tmp_path)
    assert settings["sys_path"].count(str(tmp_path)) == 1


def test_worker_settings_relative_app_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    settings = json.loads(Config(app="m:app", app_dir="sub").worker_settings(0))
    assert settings["sys_path"][0] == str(tmp_path / "sub")


def test_worker_settings_app_dir_already_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", ["/somewhere", str(tmp_path), "/else"])
    settings = json.loads(Config(app="m:app", app_dir=str(tmp_path)).worker_settings(0))
    assert settings["sys_path"] == [str(tmp_path), "/somewhere", "/else"]


# Flags and environment variables


def test_flags_are_parsed() -> None:
    config = cli.config_from_args(
        [
            "examples.hello:app",
            "--workers",
            "3",
            "--http",
            "h11",
            "--no-access-log",
            "--timeout-keep-alive",
            "2.5",
            "--root-path",
            "/api",
        ]
    )
    assert config.app == "examples.hello:app"
    assert config.workers == 3
    assert config.http == "h11"
    assert config.access_log is False
    assert config.timeout_keep_alive == 2.5
    assert config.root_path == "/api"
    # Everything else keeps its default.
    assert config.port == Config().port
    assert config.lifespan == Config().lifespan


def test_more_flags_are_parsed() -> None:
    config = cli.config_from_args(
        [
            "m:app",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--worker-kind",
            "process",
            "--lifespan",
            "on",
            "--factory",
            "--access-log",
            "--log-level",
            "warning",
            "--app-dir",
            "src",
        ]
    )
    assert config.host == "0.0.0.0"
    assert config.port == 0
    assert config.worker_kind == "process"
    assert config.lifespan == "on"
    assert config.factory is True
    assert config.access_log is True
    assert config.log_level == "warning"
    assert config.app_dir == "src"


@pytest.mark.parametrize("flag", ["--limit-max-requests-jitter", "--max-requests-jitter"])
def test_jitter_takes_uvicorns_flag_and_gunicorns(flag: str) -> None:
    # uvicorn 0.54 names it --limit-max-requests-jitter; gunicorn --max-requests-jitter.
    config = cli.config_from_args(["m:app", "--limit-max-requests", "100", flag, "7"])
    assert config.limit_max_requests_jitter == 7


def test_jitter_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERPSERVE_LIMIT_MAX_REQUESTS_JITTER", "5")
    assert cli.config_from_args(["m:app"]).limit_max_requests_jitter == 5


def test_environment_is_used_when_the_flag_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERPSERVE_WORKERS", "5")
    monkeypatch.setenv("INTERPSERVE_HTTP", "httptools")
    monkeypatch.setenv("INTERPSERVE_ACCESS_LOG", "false")
    monkeypatch.setenv("INTERPSERVE_TIMEOUT_KEEP_ALIVE", "7.5")
    monkeypatch.setenv("INTERPSERVE_ROOT_PATH", "/env")
    monkeypatch.setenv("INTERPSERVE_PORT", "9001")
    config = cli.config_from_args(["m:app"])
    assert config.workers == 5
    assert config.http == "httptools"
    assert config.access_log is False
    assert config.timeout_keep_alive == 7.5
    assert config.root_path == "/env"
    assert config.port == 9001


def test_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERPSERVE_WORKERS", "5")
    monkeypatch.setenv("INTERPSERVE_HTTP", "httptools")
    monkeypatch.setenv("INTERPSERVE_ACCESS_LOG", "false")
    monkeypatch.setenv("INTERPSERVE_ROOT_PATH", "/env")
    config = cli.config_from_args(
        ["m:app", "--workers", "2", "--http", "h11", "--access-log", "--root-path", "/flag"]
    )
    assert config.workers == 2
    assert config.http == "h11"
    assert config.access_log is True
    assert config.root_path == "/flag"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_boolean_environment_values(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: bool
) -> None:
    monkeypatch.setenv("INTERPSERVE_FACTORY", text)
    assert cli.config_from_args(["m:app"]).factory is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INTERPSERVE_WORKERS", "many"),
        ("INTERPSERVE_PORT", "80.5"),
        ("INTERPSERVE_TIMEOUT_KEEP_ALIVE", "soon"),
        ("INTERPSERVE_ACCESS_LOG", "maybe"),
    ],
)
def test_unparsable_environment_value_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        cli.config_from_args(["m:app"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INTERPSERVE_HTTP", "h2"),
        ("INTERPSERVE_WORKERS", "0"),
        ("INTERPSERVE_PORT", "70000"),
        ("INTERPSERVE_LIFESPAN", "sometimes"),
    ],
)
def test_invalid_environment_value_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError):
        cli.config_from_args(["m:app"])


def test_empty_environment_values_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # As click does for uvicorn's UVICORN_* variables: VAR= in a compose file or a unit means
    # the default, not the value "".
    for name in ("WORKERS", "PORT", "ROOT_PATH", "HTTP", "ACCESS_LOG", "HEADERS", "APP"):
        monkeypatch.setenv(f"INTERPSERVE_{name}", "")
    config = cli.config_from_args(["m:app"])
    defaults = Config(app="m:app")
    assert config == defaults


def test_environment_ignored_when_flag_given_even_if_invalid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERPSERVE_WORKERS", "not a number")
    assert cli.config_from_args(["m:app", "--workers", "4"]).workers == 4


@pytest.mark.parametrize(
    "argv",
    [
        ["m:app", "--bogus"],
        ["m:app", "--workers", "abc"],
        ["m:app", "--http", "h2"],
        [],
    ],
)
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.config_from_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("interpserve: error: ")


def test_app_without_colon_on_the_command_line() -> None:
    with pytest.raises(ConfigError, match="MODULE:ATTRIBUTE"):
        cli.config_from_args(["hello"])


# .env files


def test_parse_env_file() -> None:
    text = """
# a comment
   # an indented comment

PLAIN=value
SPACED = spaced value
export EXPORTED=1
export   EXTRA_SPACE=2
DOUBLE="double quoted # not a comment"
SINGLE='single quoted'
EMPTY=
EMPTY_QUOTES=""
EQUALS=a=b=c
MISMATCHED="open'
LONE_QUOTE="
exported_name=3
not a variable line
"""
    assert parse_env_file(text) == {
        "PLAIN": "value",
        "SPACED": "spaced value",
        "EXPORTED": "1",
        "EXTRA_SPACE": "2",
        "DOUBLE": "double quoted # not a comment",
        "SINGLE": "single quoted",
        "EMPTY": "",
        "EMPTY_QUOTES": "",
        "EQUALS": "a=b=c",
        "MISMATCHED": "\"open'",
        "LONE_QUOTE": '"',
        "exported_name": "3",
    }


def test_parse_env_file_later_lines_win() -> None:
    assert parse_env_file("A=1\nA=2\n") == {"A": "2"}


def test_parse_env_file_windows_line_endings() -> None:
    assert parse_env_file("A=1\r\nB='2'\r\n") == {"A": "1", "B": "2"}


def test_parse_env_file_empty() -> None:
    assert parse_env_file("") == {}
    assert parse_env_file("# only a comment\n\n") == {}


def test_load_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / ".env"
    path.write_text("IS_TEST_A=one\nexport IS_TEST_B='two words'\n", encoding="utf-8")
    # Set first so that monkeypatch restores (removes) them afterwards.
    monkeypatch.setenv("IS_TEST_A", "placeholder")
    monkeypatch.setenv("IS_TEST_B", "placeholder")
    load_env_file(str(path))
    assert os.environ["IS_TEST_A"] == "one"
    assert os.environ["IS_TEST_B"] == "two words"


def test_load_env_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read --env-file"):
        load_env_file(str(tmp_path / "missing.env"))


# The command line, as a user runs it


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(cli.ENV_PREFIX)} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "interpserve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_cli_bad_flag_exits_with_one_line() -> None:
    result = run_cli("examples.hello:app", "--bogus")
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "--bogus" in lines[0]
    assert result.stdout == ""


def test_cli_zero_workers_exits_with_one_line() -> None:
    result = run_cli("examples.hello:app", "--workers", "0")
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "workers" in lines[0]
    assert result.stdout == ""


def test_cli_help() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "--worker-kind" in result.stdout
    assert "INTERPSERVE_WORKERS" in result.stdout


@pytest.mark.parametrize(
    ("flags", "package"),
    [
        (["--loop", "uvloop"], "uvloop"),
        (["--http", "httptools"], "httptools"),
        (["--reload"], "watchfiles"),
    ],
)
def test_cli_option_needing_a_missing_package_exits_with_one_line(
    tmp_path: Path, flags: list[str], package: str
) -> None:
    hidden = tmp_path / package
    hidden.mkdir()
    (hidden / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    result = run_cli("examples.hello:app", *flags, env={"PYTHONPATH": pythonpath})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"interpserve: error: {' '.join(flags)} needs the {package} package: pip install {package}"
    ]
    assert result.stdout == ""


def test_cli_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    python = f"{platform.python_implementation()} {platform.python_version()}"
    assert result.stdout == f"interpserve {interpserve.__version__} with {python} on Linux\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["m:app", "--work", "2"],
        ["m:app", "--limit-max-requests-jit", "2"],
        ["check", "m:app", "--fact"],
    ],
)
def test_abbreviated_flags_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_check_reads_the_environment_like_serving() -> None:
    env = {
        "INTERPSERVE_APP": "numpy_late:make",
        "INTERPSERVE_APP_DIR": "tests/apps",
        "INTERPSERVE_FACTORY": "true",
    }
    result = run_cli("check", env=env)
    assert result.returncode == 1, result.stderr
    assert "numpy_late:make cannot run in subinterpreters" in result.stdout
    assert "numpy._core._multiarray_umath" in result.stdout  # the factory was called
