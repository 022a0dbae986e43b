"""The package's layout as the README draws it: the request map names every module, and no module
imports from a layer above its own (read from the source, not by importing it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from support import ROOT

PACKAGE = ROOT / "interpserve"

# The layers, lowest first: a module imports (at run time) only from its own layer and those
# below. The base is what every layer shares: the events and their frames, the errors, logging,
# the interpreter API. A worker knows nothing of the pool or the front end; the pool nothing of
# the front end; and the front end hands requests to the pool. The top puts them together.
BASE = {
    "_speedups",
    "accesslog",
    "backoff",
    "cli_parser",
    "compiled",
    "control",
    "cpus",
    "errors",
    "events",
    "interpreters",
    "logbase",
    "logconfig",
    "logoutput",
    "logs",
    "memory",
    "option_values",
    "pipes",
    "rss",
    "tasks",
    "testing",
    "wire",
}
LAYERS = ("base", "config", "worker", "pool", "frontend", "top")

# The front end's protocol modules (h11's way: no I/O, no event loop) import none of the modules
# that do I/O, even for a type.
FRONTEND_IO = {
    "connection",
    "cycle",
    "dispatch",
    "http2",
    "http2_stream",
    "server",
    "tls",
    "websocket",
}


def layer(module: str) -> str:
    """The layer of `module`, a dotted name below interpserve ("frontend.cycle", "errors")."""
    head = module.split(".")[0]
    if head in BASE:
        return "base"
    if head in ("config", "worker", "pool", "frontend"):
        return head
    return "top"  # serving, launch, supervisor, cli, check, reload, metrics, bench/, ...


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """The interpserve modules `path` imports, each with whether only for type checking."""
    module = module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If)
        and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["interpserve", *package[: len(package) - node.level + 1]]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from interpserve import events` names a module; `from interpserve.x import y`
            # names one of x's.
            if source in (
                "interpserve",
                "interpserve.frontend",
                "interpserve.pool",
                "interpserve.worker",
            ):
                names = [f"{source}.{alias.name}" for alias in node.names]
            else:
                names = [source]
        for name in names:
            if name.startswith("interpserve.") and name != "interpserve.__version__":
                found.append((name.removeprefix("interpserve."), id(node) in typing_only))
    return found


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_nothing_imports_upward() -> None:
    upward = []
    for path in package_files():
        module = module_name(path)
        if not module:
            continue  # interpserve/__init__.py: the package's public names, from the top
        rank = LAYERS.index(layer(module))
        for imported, typing_only in imports(path):
            if LAYERS.index(layer(imported)) > rank and not typing_only:
                upward.append(f"{module} ({layer(module)}) imports {imported} ({layer(imported)})")
            elif (
                module.startswith("frontend.")
                and module.split(".")[1] not in FRONTEND_IO
                and imported.startswith("frontend.")
                and imported.split(".")[1] in FRONTEND_IO
            ):
                upward.append(f"{module} (protocol) imports {imported} (I/O)")
    assert upward == []


def test_the_import_reader_sees_runtime_and_typing_imports() -> None:
    # Without this, a reader that found nothing would pass the test above.
    found = dict(imports(PACKAGE / "frontend" / "dispatch.py"))
    assert found["pool.channel"] is False and found["errors"] is False
    assert found["frontend.connection"] is True  # (under TYPE_CHECKING)
    assert layer("frontend.tls") == "frontend" and layer("reload") == "top"


# The README's request map ----------------------------------------------------------------------


def map_text() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## How a request travels\n", 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```\n(.*?)```", section, re.S))


def mentioned_files() -> set[Path]:
    """The files the map names, each resolved in the folder its line is about: a line that ends
    in `interpserve/frontend/` (or starts with `frontend/` in the list of the rest) opens that
    folder, a module named at the list's left edge the package's top again; a name the folder
    does not have is looked for at the top (events.py, wire.py)."""
    found: set[Path] = set()
    folder = PACKAGE
    for line in map_text().splitlines():
        opened = re.search(r"interpserve/(\w+)/\s*$", line) or re.match(r"  (\w+)/ ", line)
        if opened:
            folder = PACKAGE / opened.group(1)
        elif re.match(r"  \w+\.py", line):
            folder = PACKAGE
        for name in re.findall(r"(?<![\w/.])((?:\w+/)?\w+\.(?:py|c))\b", line):
            candidates = [folder / name, PACKAGE / name]
            path = next((c for c in candidates if c.exists()), None)
            assert path is not None, f"the README's map names {name}, which is not in {folder}"
            found.add(path)
    return found


def test_the_request_map_names_every_module_and_only_modules_that_exist() -> None:
    named = mentioned_files()
    modules = {p for p in package_files() if p.name != "__init__.py"} | {PACKAGE / "_speedups.c"}
    unnamed = sorted(str(p.relative_to(ROOT)) for p in modules - named)
    assert unnamed == [], "modules the README's map does not name"
