"""The Python every benchmarked server runs on: this checkout's packages as an installed wheel
sees them, without the development venv's start-up code.

The development venv (./dev setup) installs interpserve editable, and the .pth files of its
site-packages run in every Python process and every interpreter at start: the editable
install's import finder (which imports pathlib and glob), coverage's start-up hook and
setuptools' distutils shim, about 0.5 MiB in each worker interpreter and each process, which
an installed wheel does not run. So the servers run on a venv of their own (made once, next to
the development one) whose only .pth file puts the development venv's site-packages on the
path as plain directories, whose .pth files are then not run; interpserve itself comes from
the checkout (the servers start in it), compiled as bench.suite.precompile leaves it. Every
server, interpserve and its peers alike, runs on it.
"""

from __future__ import annotations

import functools
import site
import subprocess
import sys
from pathlib import Path

DEPLOYED = Path(sys.prefix) / "deployed"
PATH_FILE = "development-site-packages.pth"


@functools.cache
def python() -> str:
    """The deployed venv's python, made (or brought up to date) on first use."""
    executable = DEPLOYED / "bin" / "python"
    if not executable.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(DEPLOYED)], check=True)
    lines = "".join(f"{directory}\n" for directory in site.getsitepackages())
    purelib = subprocess.run(
        [str(executable), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    path_file = Path(purelib) / PATH_FILE
    if not path_file.exists() or path_file.read_text() != lines:
        path_file.write_text(lines)
    return str(executable)
