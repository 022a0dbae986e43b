"""scripts/compat_table.py keeps working, and docs/compatibility.md keeps up with its list."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from support import ROOT

SCRIPT = ROOT / "scripts" / "compat_table.py"
DOC = ROOT / "docs" / "compatibility.md"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compat_table", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_script(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The table's rows by their first cell (the label), header and rule left out."""
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("package", "---"):
            rows[cells[0]] = cells
    return rows


def test_script_probes_each_module_in_a_subinterpreter(tmp_path: Path) -> None:
    import numpy

    doc = tmp_path / "doc.md"
    script = load_script()
    start, end = script.START_MARKER, script.END_MARKER
    doc.write_text(f"# Title\n\nbefore\n{start}\nold table\n{end}\nafter\n")

    output = run_script("json", "numpy", "no_such_module_xyz", "--write", "--doc", str(doc))

    rows = table_rows(output)
    assert rows["json"] == ["json", "`json`", "stdlib", "loads", ""]
    assert rows["numpy"] == [
        "numpy",
        "`numpy`",
        numpy.__version__,
        "refuses",
        "`numpy._core._multiarray_umath`",
    ]
    assert rows["no_such_module_xyz"][3] == "not installed"
    assert f"Python {sys.version.split()[0]}" in output
    # --write replaced what was between the markers, and only that.
    assert doc.read_text() == f"# Title\n\nbefore\n{start}\n{output}{end}\nafter\n"


def test_compatibility_doc_lists_every_module_the_script_probes() -> None:
    script = load_script()
    text = DOC.read_text()
    table = text.split(script.START_MARKER)[1].split(script.END_MARKER)[0]
    rows = table_rows(table)
    missing = [label for label, _ in script.MODULES if label not in rows]
    assert not missing, f"run: python scripts/compat_table.py --write (missing: {missing})"
