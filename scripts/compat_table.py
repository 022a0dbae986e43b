"""Which packages load in a subinterpreter of this Python? Prints a markdown table.

    .venv/bin/python scripts/compat_table.py              # every module in MODULES
    .venv/bin/python scripts/compat_table.py json numpy   # only these (labels or import names)
    .venv/bin/python scripts/compat_table.py --write      # rewrite docs/compatibility.md's table

Every module is probed in a child process of its own: the child creates one isolated
subinterpreter (the kind interpserve's workers run in), imports the module there, reports as
JSON and exits without finalizing. CPython 3.13.0 can abort when it destroys an interpreter in
which extension imports failed, so two modules never share a probe and nothing is retried here.

A row says "loads", "loads, without" (the import worked, but an extension module refused and the
package quietly fell back to something else, usually pure Python), "refuses" (naming the
extension module that refused) or "error" (any other failure: it would fail in a process
worker too, or it needs something this machine lacks). Modules that are not installed are listed
as such, not probed.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "compatibility.md"
START_MARKER = "<!-- compat-table:start (scripts/compat_table.py --write) -->"
END_MARKER = "<!-- compat-table:end -->"
PROBE_TIMEOUT = 120.0

# (label, import name): the label is what people call it, usually the distribution's name.
MODULES: list[tuple[str, str]] = [
    # ASGI frameworks and their building blocks
    ("starlette", "starlette"),
    ("django", "django"),
    ("falcon", "falcon"),
    ("quart", "quart"),
    ("fastapi", "fastapi"),
    ("litestar", "litestar"),
    ("sanic", "sanic"),
    ("anyio", "anyio"),
    ("asgiref", "asgiref"),
    ("h11", "h11"),
    ("wsproto", "wsproto"),
    ("websockets", "websockets"),
    ("httptools", "httptools"),
    ("uvloop", "uvloop"),
    # Templates, validation, serialization
    ("jinja2", "jinja2"),
    ("markupsafe", "markupsafe"),
    ("markdown", "markdown"),
    ("pydantic", "pydantic"),
    ("pydantic_core", "pydantic_core"),
    ("orjson", "orjson"),
    ("ujson", "ujson"),
    ("msgspec", "msgspec"),
    ("pyyaml", "yaml"),
    ("lxml", "lxml.etree"),
    # Databases and clients
    ("sqlalchemy", "sqlalchemy"),
    ("aiosqlite", "aiosqlite"),
    ("asyncpg", "asyncpg"),
    ("psycopg", "psycopg"),
    ("redis", "redis"),
    ("httpx", "httpx"),
    # Crypto, images, numbers
    ("cryptography", "cryptography.hazmat.primitives.hashes"),
    ("bcrypt", "bcrypt"),
    ("pillow", "PIL.Image"),
    ("numpy", "numpy"),
    ("pandas", "pandas"),
    # The standard library's extension modules that web apps lean on
    ("asyncio", "asyncio"),
    ("ssl", "ssl"),
    ("sqlite3", "sqlite3"),
    ("json", "json"),
    ("hashlib", "hashlib"),
    ("zlib", "zlib"),
    ("decimal", "decimal"),
    ("ctypes", "ctypes"),
    ("zoneinfo", "zoneinfo"),
    ("xml.etree", "xml.etree.ElementTree"),
]

# Runs inside the subinterpreter. ARGS becomes a JSON string literal: the module, sys.path and
# the pipe to write the report to. Extension modules that refuse but whose ImportError the
# package swallows (a fallback to pure Python) are caught on their way out of the loader.
_IN_SUBINTERPRETER = """\
import importlib, importlib.machinery, json, os, sys
args = json.loads(ARGS)
sys.path[:] = args["sys_path"]
from interpserve.worker.app import incompatible_module

refused_quietly = []
_create_module = importlib.machinery.ExtensionFileLoader.create_module

def create_module(self, spec):
    try:
        return _create_module(self, spec)
    except ImportError as exc:
        if incompatible_module(exc):
            refused_quietly.append(spec.name)
        raise

importlib.machinery.ExtensionFileLoader.create_module = create_module
try:
    importlib.import_module(args["module"])
except BaseException as exc:
    refused = incompatible_module(exc)
    if refused:
        report = dict(status="refuses", detail=refused)
    else:
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        report = dict(status="error", detail=detail)
else:
    if refused_quietly:
        report = dict(status="loads, without", detail=", ".join(refused_quietly))
    else:
        report = dict(status="loads", detail="")
os.write(args["fd"], json.dumps(report).encode())
"""


@dataclass(frozen=True)
class Row:
    label: str
    module: str
    version: str
    status: str  # loads | loads, without | refuses | error | not installed
    detail: str = ""


def probe_in_this_process(module: str) -> None:
    """The child: one subinterpreter, one import, one line of JSON on stdout, no finalizing."""
    from interpserve.errors import InterpreterFailed
    from interpserve.interpreters import Interpreter

    read_fd, write_fd = os.pipe()
    args = {"module": module, "sys_path": sys.path, "fd": write_fd}
    code = _IN_SUBINTERPRETER.replace("ARGS", repr(json.dumps(args)))
    try:
        Interpreter().run(code)
    except InterpreterFailed as exc:
        last = (str(exc).strip().splitlines() or ["?"])[-1][:300]
        os.write(write_fd, json.dumps({"status": "error", "detail": last}).encode())
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as report:
        sys.stdout.buffer.write(report.read() + b"\n")
    sys.stdout.flush()
    os._exit(0)  # the interpreter is never destroyed: see the module's docstring


def probe(label: str, module: str) -> Row:
    if not is_installed(module):
        return Row(label, module, "", "not installed")
    version = installed_version(label, module)
    try:
        child = subprocess.run(
            [sys.executable, __file__, "--probe-child", module],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return Row(label, module, version, "error", f"import took over {PROBE_TIMEOUT:.0f} s")
    try:
        report = json.loads(child.stdout.strip().splitlines()[-1])
        return Row(label, module, version, report["status"], report["detail"])
    except (IndexError, ValueError, KeyError):
        # The probe died: a crash in the subinterpreter is an answer too.
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        return Row(label, module, version, "error", f"probe exit code {child.returncode}: {last}")


def is_installed(module: str) -> bool:
    """Its top-level package is there; found without importing anything."""
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def installed_version(label: str, module: str) -> str:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names:
        return "stdlib"
    names = [*_distributions().get(top, []), label]
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


@functools.cache
def _distributions() -> dict[str, list[str]]:
    """Top-level import names to the distributions that provide them (PIL -> pillow)."""
    return dict(importlib.metadata.packages_distributions())


def probe_all(entries: list[tuple[str, str]]) -> list[Row]:
    # Each probe is a child process that mostly waits on imports: a few at a time is faster
    # and does not change any answer.
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda entry: probe(*entry), entries))


def markdown(rows: list[Row]) -> str:
    lines = [
        f"Probed with Python {platform.python_version()} on {platform.system()} "
        f"{platform.machine()} by `scripts/compat_table.py`.",
        "",
        "| package | imported as | version | in a subinterpreter | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        detail = f"`{row.detail}`" if row.status in ("refuses", "loads, without") else row.detail
        cells = [row.label, f"`{row.module}`", row.version, row.status, detail.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_into(doc: Path, table: str) -> None:
    text = doc.read_text()
    head, start, rest = text.partition(START_MARKER)
    _, end, tail = rest.partition(END_MARKER)
    if not start or not end:
        raise SystemExit(f"{doc}: the markers {START_MARKER!r} and {END_MARKER!r} are missing")
    doc.write_text(f"{head}{START_MARKER}\n{table}{END_MARKER}{tail}")


def entries_for(names: list[str]) -> list[tuple[str, str]]:
    """Labels from MODULES map to their import names; anything else is an import name."""
    known = dict(MODULES)
    return [(name, known.get(name, name)) for name in names] if names else MODULES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="labels or import names (default: all)")
    parser.add_argument("--write", action="store_true", help="rewrite the table in --doc")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document --write rewrites")
    parser.add_argument("--probe-child", metavar="MODULE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_child:
        probe_in_this_process(args.probe_child)
    table = markdown(probe_all(entries_for(args.modules)))
    if args.write:
        write_into(args.doc, table)
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
