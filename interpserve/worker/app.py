"""Import the user's ASGI app inside a worker, and explain why when it cannot be."""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from interpserve.errors import AppLoadError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# CPython's words when an extension module lacks Py_mod_multiple_interpreters support.
_REFUSAL = re.compile(r"module '?([\w.]+)'? does not support loading in subinterpreters")


def incompatible_module(exc: BaseException) -> str:
    """The extension module that refused to load in a subinterpreter, if that is what `exc`
    (or an exception it chains to) says; "" otherwise. Libraries such as numpy re-raise the
    refusal inside a longer message of their own, so the whole chain's text is searched."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        match = _REFUSAL.search(str(current))
        if match:
            return match.group(1)
        current = current.__cause__ or current.__context__
    return ""


def refusal(exc: BaseException, app_path: str) -> AppLoadError | None:
    """The one-line error for an extension module refusing this interpreter, if that is what
    `exc` says; the app may import it at module level, in its factory or in lifespan startup."""
    refused = incompatible_module(exc)
    if not refused:
        return None
    top = refused.split(".")[0]
    return AppLoadError(
        f"module {top!r} ({refused}) does not support loading in subinterpreters, "
        f"so {app_path!r} cannot run in an interpreter worker; "
        "run it with --worker-kind process",
        incompatible_module=refused,
    )


def load_app(app_path: str, *, factory: bool) -> ASGIApp:
    module_name, _, attribute = app_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if error := refusal(exc, app_path):
            raise error from exc
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name:
            raise AppLoadError(f'Could not import module "{module_name}".') from exc
        raise
    app: Any = module
    try:
        for part in attribute.split("."):
            app = getattr(app, part)
    except AttributeError:
        raise AppLoadError(
            f'Attribute "{attribute}" not found in module "{module_name}".'
        ) from None
    if factory:
        try:
            app = app()
        except Exception as exc:
            if error := refusal(exc, app_path):
                raise error from exc
            raise
    if not callable(app):
        raise AppLoadError(f'"{app_path}" is not an ASGI app (it is not callable).')
    return app  # type: ignore[no-any-return]
