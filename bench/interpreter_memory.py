"""What one more worker interpreter costs, and what that memory is.

    python -m bench.interpreter_memory [--out FILE]

Run it from the repository root. In a throwaway child process on the deployed Python
(bench.deployed: what an installed wheel runs), for each stage of a worker's start (each stage
also does what the ones before it did): the RSS one more isolated interpreter adds, the mean
over 4 after a first (which fills what the process shares between interpreters), and how many
modules it holds. Then, in an interpreter that has done what a worker does before its app is
imported, what that memory is: its own allocator's state (CPython's obmalloc report: arenas,
the bytes of live objects in them, free space) and the live objects by type, the code objects
(bytecode, line and exception tables) found through every function and class of every module.
docs/processes.md, "What a worker interpreter imports", has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bench import deployed
from bench.apps import CPU_LOOPS
from bench.settings import RESULTS_DIR

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300.0
DEFERRING = "from interpserve.worker.deferred import defer_imports; defer_imports(); import logging"
# (name, code): what a new interpreter runs, each stage's code whole.
STAGES = [
    ("a bare isolated interpreter (with site)", "pass"),
    ("asyncio and logging, as they import themselves", "import asyncio, logging"),
    ("asyncio and logging, ssl and inspect deferred, as a worker imports them", DEFERRING),
    ("and interpserve's worker code", f"{DEFERRING}; import interpserve.worker.main"),
    ("and the bench's app (bench.apps, json)",
     f"{DEFERRING}; import interpserve.worker.main, bench.apps"),
]  # fmt: skip
COMPOSITION_OF = 3  # the stage whose memory is taken apart

# Runs in the child process: argv[1] is STAGES and COMPOSITION_OF as JSON; prints JSON.
_PROBE = r"""
import json, os, sys, tempfile
from interpserve.interpreters import Interpreter

stages, composition_of = json.loads(sys.argv[1])
PAGE = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE

COUNT = "import sys; open({path!r}, 'w').write(str(len(sys.modules)))"
results, keep = [], []
for name, code in stages:
    keep.append(first := Interpreter())
    first.run(code)
    before = rss()
    for _ in range(4):
        keep.append(interpreter := Interpreter())
        interpreter.run(code)
    with tempfile.NamedTemporaryFile("r") as out:
        interpreter.run(COUNT.format(path=out.name))
        modules = int(out.read())
    results.append({"stage": name, "mib": (rss() - before) / 4 / 2**20, "modules": modules})

# Inside the interpreter: its allocator's report (on the C stderr) and its objects by type.
COMPOSITION = r'''
import gc, json, os, sys, types
gc.collect()
# The allocator's report first, before this code makes anything.
report = tempfile_path + ".malloc"
saved = os.dup(2)
with open(report, "w") as out:
    os.dup2(out.fileno(), 2)
    sys._debugmallocstats()
    os.dup2(saved, 2)
os.close(saved)
seen, sizes, code_bytes = set(), {}, 0

def count(obj):
    if id(obj) not in seen:
        seen.add(id(obj))
        kind = type(obj).__name__
        sizes[kind] = sizes.get(kind, 0) + sys.getsizeof(obj)

def code_tree(code):
    global code_bytes
    if id(code) in seen:
        return
    seen.add(id(code))
    code_bytes += sys.getsizeof(code) + sys.getsizeof(code.co_linetable)
    code_bytes += sys.getsizeof(code.co_exceptiontable)
    seen.update((id(code.co_linetable), id(code.co_exceptiontable)))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            code_tree(const)

tracked = gc.get_objects()
seen.update((id(seen), id(sizes), id(tracked), id(sys._getframe())))
for obj in tracked:
    if isinstance(obj, types.FunctionType):
        code_tree(obj.__code__)
for obj in tracked:
    count(obj)
    for referent in gc.get_referents(obj):
        if not gc.is_tracked(referent) and not isinstance(referent, types.CodeType):
            count(referent)
with open(tempfile_path, "w") as out:
    json.dump({"code": code_bytes, "types": sizes, "malloc": open(report).read()}, out)
os.unlink(report)
'''
with tempfile.NamedTemporaryFile("r") as out:
    keep.append(interpreter := Interpreter())
    interpreter.run(stages[composition_of][1])
    interpreter.run(f"tempfile_path = {out.name!r}\n" + COMPOSITION)
    composition = json.load(open(out.name))
print(json.dumps({"stages": results, "composition": composition}))
# No interpreter is destroyed: CPython 3.13.0 keeps most of a destroyed one anyway.
os._exit(0)
"""

_MALLOC_FIGURES = {
    "arenas allocated current": "arenas",
    "bytes in allocated blocks": "live_bytes",
    "bytes in available blocks": "free_block_bytes",
    "unused pools * 16384 bytes": "unused_pool_bytes",
}


def _malloc_figures(report: str) -> dict[str, int]:
    """The summary lines of sys._debugmallocstats()'s report, by _MALLOC_FIGURES' names."""
    figures: dict[str, int] = {}
    for line in report.splitlines():
        label, _, value = line.partition("=")
        for text, key in _MALLOC_FIGURES.items():
            if text in label and key not in figures:
                figures[key] = int(value.strip().replace(",", ""))
                if key == "unused_pool_bytes":  # "N unused pools * 16384 bytes = total"
                    figures["unused_pools"] = int(label.split()[0])
    return figures


def measure() -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_CPU_LOOPS=str(CPU_LOOPS))
    finished = subprocess.run(
        [deployed.python(), "-c", _PROBE, json.dumps([STAGES, COMPOSITION_OF])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(finished.stdout)
    composition = result["composition"]
    composition["allocator"] = _malloc_figures(composition.pop("malloc"))
    types = sorted(composition.pop("types").items(), key=lambda item: -item[1])
    composition["objects_bytes"] = dict(types)
    return result


def describe(result: dict[str, Any]) -> str:
    lines = ["one more interpreter, MiB (modules held):"]
    for stage in result["stages"]:
        lines.append(f"  {stage['mib']:5.2f}  {stage['stage']} ({stage['modules']})")
    composition = result["composition"]
    allocator = composition["allocator"]
    mib = 2**20
    lines.append(f"what it is, after: {STAGES[COMPOSITION_OF][0]}")
    lines.append(
        f"  its allocator: {allocator['arenas']} arenas of 1 MiB; live objects "
        f"{allocator['live_bytes'] / mib:.2f} MiB, free blocks "
        f"{allocator['free_block_bytes'] / mib:.2f}, unused pools {allocator['unused_pools']}"
    )
    lines.append(f"  code objects: {composition['code'] / mib:.2f} MiB")
    top = list(composition["objects_bytes"].items())[:8]
    lines.append("  other objects: " + ", ".join(f"{k} {v / mib:.2f}" for k, v in top))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "interpreter_memory.json")
    args = parser.parse_args(argv)
    result = measure()
    print(describe(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
