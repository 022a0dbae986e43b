"""Standard modules that asyncio imports at its own import but uses only when asked: a worker
imports them on first use instead of at start.

Every worker interpreter loads its modules afresh and holds them for its life
(docs/processes.md, "What a worker interpreter imports"). asyncio imports ssl (and with it
_ssl and asyncio.sslproto) and inspect (with ast, dis and tokenize) at its own import, about
1.8 MiB of each worker, and an app that makes no TLS connection and asks for no signature
never uses them. `defer_imports`, before asyncio is imported, puts each in sys.modules as its
own module object with nothing but the import system's attributes (__spec__, __file__, ...)
and a module __getattr__ (PEP 562): `import ssl` binds that object, as before, and the first
attribute anyone reads from it (`ssl.SSLContext`, `from ssl import ...`) runs the module's code
in that same object, so every name bound to it sees the whole module from then on.
importlib.util.LazyLoader does the same, but loads on any attribute, and the import system
reads `__spec__` of a module in sys.modules on every `import`, so asyncio's own `import ssl`
would load it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

# Each with a module that must be found for it to be deferred (its C part): where Python was
# built without it, the module is imported as usual and fails as usual (asyncio then runs
# without ssl).
DEFERRED = {"ssl": "_ssl", "asyncio.sslproto": "_ssl", "inspect": "_ast"}

# What the import system asks of a module in sys.modules on `from module import name`: whether
# it is a package. None of DEFERRED is, and the answer must not load it.
_PACKAGE_PATH = "__path__"


def defer_imports() -> None:
    """Put each of DEFERRED that is not imported yet into sys.modules, to be loaded on first
    use, and import asyncio; call before anything else imports asyncio."""
    deferred = []
    for name, needs in DEFERRED.items():
        found = name not in sys.modules and importlib.util.find_spec(needs) is not None
        if found and (spec := _find_spec(name)):
            sys.modules[name] = _deferred_module(spec)
            deferred.append(name)
    import asyncio  # noqa: F401  (what defers them: asyncio's import is where they are asked for)

    # A submodule is an attribute of its package once loaded: the import system binds it
    # when it loads one, and it found these in sys.modules instead.
    for name in deferred:
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[name])


def pending(module: ModuleType) -> bool:
    """Whether `module` is a deferred one not loaded yet."""
    return isinstance(vars(module).get("__getattr__"), _Loader)


def _find_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """The module's spec without importing its package (which for asyncio.sslproto is asyncio
    itself, which would import the module)."""
    parent, _, _ = name.rpartition(".")
    if not parent:
        return importlib.util.find_spec(name)
    package = importlib.util.find_spec(parent)
    if package is None or package.submodule_search_locations is None:
        return None
    return importlib.machinery.PathFinder.find_spec(name, package.submodule_search_locations)


def _deferred_module(spec: importlib.machinery.ModuleSpec) -> ModuleType:
    module = importlib.util.module_from_spec(spec)
    vars(module)["__getattr__"] = _Loader(module, spec)
    return module


class _Loader:
    """The deferred module's __getattr__: loads the module into itself, once, then answers."""

    def __init__(self, module: ModuleType, spec: importlib.machinery.ModuleSpec) -> None:
        self._module = module
        self._spec = spec
        # A worker's threads (an app's executor) may read the module's first attribute at once:
        # the others wait for the whole module, since until its code has run a name it defines
        # late is simply missing. Reentrant, for the loading thread's own reads meanwhile.
        self._lock = threading.RLock()
        self._loading = False

    def __call__(self, attribute: str) -> Any:
        module = self._module
        if attribute != _PACKAGE_PATH:
            with self._lock:
                if not self._loading:
                    self._load()
        # Reached while loading (by the loading thread) or for a name the module lacks.
        try:
            return vars(module)[attribute]
        except KeyError:
            message = f"module {module.__name__!r} has no attribute {attribute!r}"
            raise AttributeError(message) from None

    def _load(self) -> None:
        """Run the module's code into it; only then stop answering for it, so that no thread
        reads a module half-run."""
        self._loading = True
        assert self._spec.loader is not None  # found by a path finder
        try:
            self._spec.loader.exec_module(self._module)
        except BaseException:
            self._loading = False
            raise
        if vars(self._module).get("__getattr__") is self:
            del vars(self._module)["__getattr__"]
