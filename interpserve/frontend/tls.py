"""--ssl-*: the TLS context the listening socket serves HTTPS with.

Python's server defaults are kept (TLS 1.2 or later, forward-secret AEAD ciphers, no
compression or renegotiation) rather than uvicorn's "TLSv1" cipher string; --ssl-ciphers
replaces the TLS 1.2 cipher list (TLS 1.3 suites are OpenSSL's and are always on).
"""

from __future__ import annotations

import ssl

from interpserve.config import Config
from interpserve.errors import StartupError


def create_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The context for --ssl-certfile, or None for plain HTTP. Raises StartupError with one line
    for the operator when a file cannot be read or does not fit."""
    if config.ssl_certfile is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    option = "--ssl-certfile/--ssl-keyfile"
    try:
        context.load_cert_chain(
            config.ssl_certfile, config.ssl_keyfile, config.ssl_keyfile_password
        )
        option = "--ssl-ca-certs"
        if config.ssl_ca_certs:
            context.load_verify_locations(config.ssl_ca_certs)
        option = "--ssl-ciphers"
        if config.ssl_ciphers:
            context.set_ciphers(config.ssl_ciphers)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise StartupError(f"cannot set up TLS from {option}: {reason}") from None
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    # A client that offers both gets HTTP/2 (unless --no-http2); one that offers neither is
    # served HTTP/1.1.
    context.set_alpn_protocols(["h2", "http/1.1"] if config.http2 else ["http/1.1"])
    return context
