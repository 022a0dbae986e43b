"""An app that answers with the modules its worker had imported before the app's own import:
what a worker imports at start (tests/test_worker_imports.py bounds it). It imports nothing
but sys, which every interpreter has, and interpserve's deferred-import module, which the worker
has imported already; it answers one module name a line, those the worker holds deferred (in
sys.modules, not loaded) marked with a leading "~"."""

import sys

from interpserve.worker.deferred import pending

AT_IMPORT = b"\n".join(
    sorted(
        ("~" if pending(module) else "").encode() + name.encode()
        for name, module in sys.modules.items()
    )
)


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": AT_IMPORT})
