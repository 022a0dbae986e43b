"""--log-config against a real server: a dictConfig file (JSON or YAML) or an ini file routes
the access log and the app's loggers where it says, in the front end and in the workers of
both kinds; a bad file is one line and exit code 1, before the server starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import LOGS_APP, ROOT, TIMEOUT, StartServer, failed_start

from interpserve.accesslog import FIELDS
from interpserve.logconfig import peer_loggers_warning
from interpserve.testing import ServerProcess, wait_until


def dict_config(access_file: Path, app_file: Path, *, access_mode: str = "a") -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "interpserve.logs.JSONFormatter"},
            "app": {"format": "%(levelname)s %(name)s worker=%(worker_id)s %(message)s"},
        },
        "handlers": {
            "access": {
                "class": "logging.FileHandler",
                "filename": str(access_file),
                "mode": access_mode,
                "formatter": "json",
            },
            "app": {"class": "logging.FileHandler", "filename": str(app_file), "formatter": "app"},
        },
        "loggers": {
            "interpserve.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "logs_app": {"handlers": ["app"], "level": "INFO", "propagate": False},
        },
    }


def json_file(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"version": 1, "disable_existing_loggers": False, **config}))
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("kind", ["interpreter", "process"])
def test_a_json_dict_config_routes_the_access_log_and_the_apps_loggers(
    start_server: StartServer, tmp_path: Path, kind: str
) -> None:
    access, app = tmp_path / "access.log", tmp_path / "app.log"
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(dict_config(access, app)))
    server = start_server(
        LOGS_APP, "--workers", "1", "--worker-kind", kind, "--log-config", str(config)
    )
    assert httpx.get(server.url + "/log", timeout=TIMEOUT).status_code == 200
    assert wait_until(lambda: len(lines(access)) == 1 and len(lines(app)) >= 3, TIMEOUT)
    record = json.loads(lines(access)[0])
    assert set(record) == {"time", "level", "logger", "message", *FIELDS}
    assert (record["path"], record["worker_kind"]) == ("/log", kind)
    # The app's loggers, in the worker, took the file's handlers (INFO too), and a record made
    # in a worker carries the worker's id for a format of the user's.
    assert lines(app)[:2] == [
        "INFO logs_app worker=1 an info line",
        "WARNING logs_app worker=1 a warning from the app",
    ]
    assert '"GET /log' not in server.output and "a warning from the app" not in server.output


def test_a_yaml_dict_config(start_server: StartServer, tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    access, app = tmp_path / "access.log", tmp_path / "app.log"
    config = tmp_path / "logging.yaml"
    config.write_text(yaml.safe_dump(dict_config(access, app)))
    server = start_server(LOGS_APP, "--workers", "1", "--log-config", str(config))
    assert httpx.get(server.url + "/yaml", timeout=TIMEOUT).status_code == 200
    assert wait_until(lambda: len(lines(access)) == 1, TIMEOUT)
    assert json.loads(lines(access)[0])["path"] == "/yaml"


def test_an_ini_file_config(start_server: StartServer, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    config = tmp_path / "logging.ini"
    config.write_text(
        "[loggers]\nkeys=root,access\n\n"
        "[handlers]\nkeys=file\n\n"
        "[formatters]\nkeys=plain\n\n"
        "[logger_root]\nhandlers=\n\n"
        "[logger_access]\nqualname=interpserve.access\nhandlers=file\npropagate=0\nlevel=INFO\n\n"
        f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({str(access)!r},)\n\n"
        "[formatter_plain]\nformat=access %(status)s %(path)s %(message)s\n"
    )
    server = start_server(LOGS_APP, "--workers", "1", "--log-config", str(config))
    assert httpx.get(server.url + "/ini", timeout=TIMEOUT).status_code == 200
    assert wait_until(lambda: len(lines(access)) == 1, TIMEOUT)
    assert lines(access)[0].startswith("access 200 /ini 127.0.0.1:")


def test_workers_leave_the_access_logs_handlers_alone(tmp_path: Path) -> None:
    """A worker never writes an access line: the access log's own handlers are not made in
    the workers, so one that opens its file with mode "w" does not empty it when workers
    start again (a reload of the workers in place: without the supervisor, whose reload
    starts a new serving process, which applies the file as uvicorn's worker processes do)."""
    access, app = tmp_path / "access.log", tmp_path / "app.log"
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(dict_config(access, app, access_mode="w")))
    with ServerProcess(
        LOGS_APP, "--workers", "1", "--no-supervisor", "--log-config", str(config), cwd=str(ROOT)
    ) as server:
        assert httpx.get(server.url + "/before", timeout=TIMEOUT).status_code == 200
        assert wait_until(lambda: len(lines(access)) == 1, TIMEOUT)
        server.signal(signal.SIGHUP)
        assert server.wait_for_output("Reloaded: 1 new worker(s) serving.")
        assert httpx.get(server.url + "/after", timeout=TIMEOUT).status_code == 200
        assert wait_until(lambda: len(lines(access)) == 2, TIMEOUT)
    assert [json.loads(line)["path"] for line in lines(access)] == ["/before", "/after"]


def refused(*flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A server that must refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "interpserve", LOGS_APP, "--port", "0", *flags],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "complaint"),
    [
        ("missing.json", None, "no such file"),
        ("broken.json", "{not json", "not valid JSON"),
        ("broken.yaml", "a: [unclosed", "not valid YAML"),
        ("list.json", "[1, 2]", "not a dictConfig mapping"),
        ("no-version.json", '{"handlers": {}}', "dictionary doesn't specify a version"),
        (
            "bad-class.json",
            '{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}',
            "Unable to configure handler 'h'",
        ),
        ("broken.ini", "[loggers]\nkeys=root\n", "broken.ini: no 'formatters' in it"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_code_1(
    tmp_path: Path, name: str, text: str | None, complaint: str
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    result = refused("--log-config", str(path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("interpserve: error: ") and complaint in result.stderr


def test_yaml_without_pyyaml_says_what_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "no_yaml"
    (blocker / "yaml").mkdir(parents=True)
    (blocker / "yaml" / "__init__.py").write_text("raise ImportError('PyYAML is not installed')\n")
    config = tmp_path / "logging.yaml"
    config.write_text("version: 1\n")
    result = refused("--log-config", str(config), env={"PYTHONPATH": str(blocker)})
    assert result.returncode == 1
    assert "needs PyYAML: pip install 'interpserve[yaml]'" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_file_written_for_uvicorn_draws_a_warning(
    start_server: StartServer, tmp_path: Path
) -> None:
    config = json_file(
        tmp_path / "uvicorn.json", {"loggers": {"uvicorn.access": {"level": "INFO"}}}
    )
    server = start_server(LOGS_APP, "--workers", "1", "--log-config", str(config))
    assert "configures uvicorn.access, which interpserve never writes to" in server.output
    assert peer_loggers_warning({"loggers": {"interpserve.access": {}, "uvicorn": {}}}) == ""


def numpy_formatter_config(tmp_path: Path) -> Path:
    """A --log-config whose formatter imports numpy, which refuses subinterpreters."""
    return json_file(
        tmp_path / "numpy.json",
        {
            "formatters": {"numpy": {"()": "tests.apps.numpy_late.formatter"}},
            "handlers": {"app": {"class": "logging.StreamHandler", "formatter": "numpy"}},
            "loggers": {"logs_app": {"handlers": ["app"]}},
        },
    )


def test_auto_picks_process_workers_for_a_handler_that_refuses_subinterpreters(
    start_server: StartServer, tmp_path: Path
) -> None:
    config = numpy_formatter_config(tmp_path)
    server = start_server(LOGS_APP, "--workers", "1", "--log-config", str(config))
    assert "Worker kind: process, because module 'numpy" in server.output
    assert httpx.get(server.url + "/", timeout=TIMEOUT).status_code == 200


def test_interpreter_workers_refuse_it_in_one_line(tmp_path: Path) -> None:
    config = numpy_formatter_config(tmp_path)
    server = failed_start(
        LOGS_APP, "--workers", "1", "--worker-kind", "interpreter", "--log-config", str(config)
    )
    assert server.process is not None and server.process.returncode == 1, server.output
    errors = [line for line in server.output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, server.output
    assert "module 'numpy'" in errors[0] and "--worker-kind process" in errors[0]
    assert "Traceback" not in server.output and "Fatal Python error" not in server.output
