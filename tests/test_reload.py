"""--reload: its file patterns (--reload-include and --reload-exclude add to the defaults, as in
uvicorn's uvicorn/supervisors/watchfilesreload.py), and a watcher that cannot start stopping
the start-up in one line. Reloading itself is tested in test_supervision.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import StartServer, failed_start

from interpserve.config import Config
from interpserve.reload import reload_patterns, wanted


def counts(path: str, **options: tuple[str, ...]) -> bool:
    return wanted(path, *reload_patterns(Config(reload=True, **options)))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("app.py", True),
        ("pkg/views.py", True),
        ("templates/page.html", False),
        (".hidden.py", False),
        (".git/hooks/x.py", False),
        ("__pycache__/app.cpython-313.pyc", False),
        ("~backup.py", False),
    ],
)
def test_defaults(path: str, expected: bool) -> None:
    assert counts(path) is expected


def test_an_include_adds_to_the_python_files() -> None:
    options = {"reload_includes": ("*.html",)}
    assert counts("templates/page.html", **options)
    assert counts("app.py", **options)
    assert not counts(".hidden.html", **options)


def test_an_exclude_adds_to_the_default_excludes() -> None:
    options = {"reload_excludes": ("sub*",)}
    assert not counts("subdir/app.py", **options)
    assert not counts(".hidden.py", **options)
    assert not counts("~backup.py", **options)
    assert counts("app.py", **options)


def test_a_default_named_on_the_other_side_is_dropped() -> None:
    assert not counts("app.py", reload_excludes=("*.py",))
    assert counts("app.py", reload_excludes=("*.py",), reload_includes=("*.txt",)) is False
    assert counts(".env", reload_includes=(".*",))
    assert counts(".config/settings.py", reload_includes=(".*",))


# A watcher that cannot start


def assert_one_error_line(output: str, text: str) -> None:
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and text in errors[0], output
    assert "Traceback" not in output


def test_a_missing_reload_dir_stops_the_start_up(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    server = failed_start("examples.hello:app", "--reload", "--reload-dir", str(missing))
    assert server.process is not None and server.process.returncode == 1
    assert_one_error_line(server.output, f"--reload-dir {missing}: not a directory")


def test_reload_options_without_reload_are_warned_about(start_server: StartServer) -> None:
    server = start_server("examples.hello:app", "--workers", "1", "--reload-include", "*.html")
    warning = "WARNING:  --reload-dir, --reload-include and --reload-exclude do nothing"
    assert warning in server.output
