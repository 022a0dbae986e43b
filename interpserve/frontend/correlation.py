"""--request-id: one id for every request, the same in its access line, in the app's request
headers and scope (`scope["extensions"]["request_id"]["id"]`), and in the response's headers.

(The code calls it a correlation id: `request_id` is the number of a request on its worker's
channel, the wire's.)

The id a client sends in --request-id-header is taken only as X-Forwarded-For is: from a peer
in --forwarded-allow-ips (with --proxy-headers, the default), since anyone else could choose an
id to collide with another request's or to forge a trail in the logs. It must also be one value
of 1 to 200 letters, digits and `-_.:;=+/@` (what UUIDs, W3C trace ids and the common proxies'
ids are made of), so it is safe in a header, a log line and a JSON object. Anything else is
replaced by a new id, 32 random hex digits: the app and the client see the new one (the
response carries it), never the refused one.

Sans I/O: `choose` and the two header functions are pure, but for the random ids (from
os.urandom).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from interpserve.events import Address, Headers
from interpserve.option_values import TrustedProxies

_VALID = re.compile(rb"[A-Za-z0-9._:;=+/@-]{1,200}")
# Random bytes for this many ids are read at once: one system call for each id would cost as
# much as the rest of the id's work.
_RANDOM_BATCH = 16 * 64


class CorrelationIds:
    def __init__(self, header: str, trusted: TrustedProxies | None) -> None:
        self.header = header.lower().encode("latin-1")
        self._trusted = trusted  # None with --no-proxy-headers: no client's id is taken
        self._random = memoryview(b"")  # what is left of the last os.urandom

    def choose(self, headers: Sequence[tuple[bytes, bytes]], peer: Address | None) -> str:
        """The request's id: the one it carries, if it may be taken, else a new one."""
        name = self.header
        given = None
        for field, value in headers:
            if field == name:
                if given is not None:
                    return self.new()  # two of them: which would the app see?
                given = value
        trusted = self._trusted
        if (
            given is not None
            and trusted is not None
            and (peer[0] if peer else None) in trusted
            and _VALID.fullmatch(given)
        ):
            return given.decode("ascii")
        return self.new()

    def new(self) -> str:
        if not self._random:
            self._random = memoryview(os.urandom(_RANDOM_BATCH))
        taken, self._random = self._random[:16], self._random[16:]
        return taken.hex()

    def request_headers(self, headers: Headers, correlation_id: str) -> Headers:
        """The request's headers for the app: the id in its header, once (last, unless it
        is the client's, where the client put it)."""
        name, value = self.header, correlation_id.encode("ascii")
        given = [field_value for field, field_value in headers if field == name]
        if not given:
            return (*headers, (name, value))  # the usual case: nothing to take out
        if given == [value]:
            return headers  # the client's own, taken
        return (*[(f, v) for f, v in headers if f != name], (name, value))

    def response_headers(self, headers: Headers, correlation_id: str) -> Headers:
        """The response's headers: the id added, unless the app sent that header itself."""
        name = self.header
        for field, _ in headers:
            if field == name:
                return headers
        return (*headers, (name, correlation_id.encode("ascii")))
