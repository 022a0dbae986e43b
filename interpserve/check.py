"""Can this app run in a subinterpreter? Found out safely, in a throwaway child process.

The child imports the app inside one subinterpreter and reports, as JSON, whether that worked
and, if an extension module refused, which one and through which chain of imports. It exits
without finalizing: CPython 3.13.0 can abort when it destroys an interpreter after a failed
extension import, and a probe must never put the server at risk.

Used by `--worker-kind auto` and by `interpserve check MODULE:APP`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from dataclasses import asdict, dataclass, field

from interpserve.errors import AppLoadError, ConfigError
from interpserve.logconfig import LogConfig, apply_log_config
from interpserve.worker.app import incompatible_module, load_app


@dataclass(frozen=True)
class CheckResult:
    compatible: bool
    # The extension module that refused, and the modules whose import led to it.
    module: str = ""
    chain: list[str] = field(default_factory=list)
    # Any other failure to load the app (it would fail in a process worker too).
    error: str = ""

    def describe(self, app: str) -> str:
        if self.compatible:
            return f"{app} can run in subinterpreters (--worker-kind interpreter)."
        if self.module:
            top = self.module.split(".")[0]
            return (
                f"{app} cannot run in subinterpreters: module {top!r} ({self.module}) does not "
                f"support loading in subinterpreters; imported through "
                f"{' -> '.join(self.chain)}. Use --worker-kind process."
            )
        return f"{app} could not be loaded: {self.error}"


def import_report(app_path: str, factory: bool, log_config: LogConfig | None = None) -> str:
    """Runs inside the subinterpreter: apply --log-config as a worker does (its handlers may
    import what the app does not), load the app (calling its factory, which may import what
    the module does not), report what happened as JSON."""
    try:
        if log_config is not None:
            apply_log_config(log_config, in_worker=True)
        load_app(app_path, factory=factory)
    except BaseException as exc:
        refused = incompatible_module(exc)
        if not refused:
            if isinstance(exc, AppLoadError | ConfigError):
                error = str(exc)
            else:
                error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            return json.dumps(asdict(CheckResult(compatible=False, error=error)))
        chain = _import_chain(exc)
        if app_path.partition(":")[0] not in chain:
            chain.insert(0, app_path)  # the factory imported it, after the module had loaded
        if refused not in chain:
            chain.append(refused)
        return json.dumps(asdict(CheckResult(compatible=False, module=refused, chain=chain)))
    return json.dumps(asdict(CheckResult(compatible=True)))


def _import_chain(exc: BaseException) -> list[str]:
    """The modules being executed when the import failed, outermost first, gathered from the
    tracebacks of the exception and those it chains to (libraries re-raise import errors)."""
    chain: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        for frame, _ in traceback.walk_tb(current.__traceback__):
            name = str(frame.f_globals.get("__name__"))
            if frame.f_code.co_name == "<module>" and name not in chain:
                chain.append(name)
        current = current.__cause__ or current.__context__
    return chain


_PROBE = """\
import json, os, sys
settings = json.loads({settings!r})
sys.path[:] = settings["sys_path"]
from interpserve.check import import_report
report = import_report(settings["app"], settings["factory"], settings["log_config"])
os.write({fd}, report.encode())
"""


def _probe_here(settings: str) -> None:
    """The child process: one subinterpreter, one import, one line of JSON on stdout."""
    from interpserve.errors import InterpreterFailed
    from interpserve.interpreters import Interpreter

    read_fd, write_fd = os.pipe()
    try:
        Interpreter().run(_PROBE.format(settings=settings, fd=write_fd))
    except InterpreterFailed as exc:
        os.write(write_fd, json.dumps(asdict(CheckResult(False, error=str(exc)))).encode())
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as report:
        sys.stdout.buffer.write(report.read() + b"\n")
    sys.stdout.flush()
    os._exit(0)  # no finalization: see the module's docstring


async def check_app(settings: str, timeout: float = 60.0) -> CheckResult:
    """Probe the app described by a worker's settings JSON, in a child process; the child is
    killed if this is cancelled (the server is asked to stop while it probes)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interpserve.check",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(child.communicate(settings.encode()), timeout)
    except TimeoutError:
        return CheckResult(False, error=f"importing the app took more than {timeout:.0f} s")
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    lines = stdout.decode().strip().splitlines()
    try:
        return CheckResult(**json.loads(lines[-1]))
    except (IndexError, ValueError, TypeError):
        last = (stderr.decode().strip().splitlines() or ["no output"])[-1]
        return CheckResult(False, error=f"the probe failed (exit code {child.returncode}): {last}")


if __name__ == "__main__":
    _probe_here(sys.stdin.read())
