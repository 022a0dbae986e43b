"""--health-path: liveness and readiness probes answered by the front end itself.

The app is not asked: a probe must not queue behind slow requests on busy workers, and it must
say whether the server can take traffic, which the app cannot know: no worker ready (starting,
or all of them being replaced) or the server draining for shutdown."""

from __future__ import annotations


def is_probe(health_path: str | None, target: bytes) -> bool:
    """Whether a request target (path and query) asks for the health path."""
    return health_path is not None and target.partition(b"?")[0] == health_path.encode("latin-1")


def probe_response(*, ready: bool, draining: bool) -> tuple[int, bytes]:
    """Status and body: 200 only when requests sent now would be served."""
    if draining:
        return 503, b"draining"
    if not ready:
        return 503, b"not ready"
    return 200, b"ok"
