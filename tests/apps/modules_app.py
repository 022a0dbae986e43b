"""An app that answers with the modules its worker had imported before the app's own import:
what a worker imports at start (tests/test_worker_imports.py bounds it). It imports nothing
but sys, which every interpreter has, and answers one module name a line."""

import sys

AT_IMPORT = b"\n".join(sorted(name.encode() for name in sys.modules))


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": AT_IMPORT})
