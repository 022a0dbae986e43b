"""HPACK, done with less Python than hpack does it per request.

Responses are encoded without a dynamic table, so that a field's encoding never depends on
what came before it (`encode_fields`: compiled in _speedups.c where it is built; here each
distinct field is encoded once and kept; `StaticEncoder` gives h2 the same). Requests are
decoded by hpack, but a header block that changes nothing in the decoder's table (most, once
a client has indexed its fields: the same few bytes for every request) is decoded once for as
long as the table stays as it is (`CachingDecoder`).

hpack's encoder looks every field up in its dynamic table, Huffman-codes it and maintains the
table: per response, as much Python as the rest of the front end's work on it. Responses
repeat the same few fields (status, content type, server, date), and a field encoded alone
(from the static table, or as a literal that is not indexed) is the same bytes every time, so
its bytes are kept. What is given up is the dynamic table's saving of a few bytes a field
on the wire. The first header block tells the client that this side's table is empty, and
that stays true whatever SETTINGS_HEADER_TABLE_SIZE the client sets later.
"""

from __future__ import annotations

from collections.abc import Iterable

from hpack.hpack import Decoder, encode_integer
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

from interpserve.compiled import speedups

# Distinct fields kept encoded, for all connections together; beyond it the cache starts again
# (a Date a second, a length per body size: it stays small for most apps, and cannot grow for
# the others).
MAX_CACHED_FIELDS = 4096
# Header blocks a connection keeps decoded (they are dropped whenever its table changes).
MAX_CACHED_BLOCKS = 16
_TABLE_SIZE_ZERO = b"\x20"  # a dynamic table size update to 0 (RFC 7541 §6.3)

_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
_STATIC_FIELDS: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAMES: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _STATIC_FIELDS.setdefault((_name, _value), _index)
    _STATIC_NAMES.setdefault(_name, _index)
_encoded: dict[tuple[bytes, bytes], bytes] = {}


def _string(data: bytes) -> bytes:
    """A string literal, Huffman-coded when that is shorter."""
    coded = _HUFFMAN.encode(data)
    if len(coded) < len(data):
        length = encode_integer(len(coded), 7)
        length[0] |= 0x80
        return bytes(length) + coded
    return bytes(encode_integer(len(data), 7)) + data


def encode_field(name: bytes, value: bytes) -> bytes:
    """One field on its own: indexed from the static table, or a literal without indexing."""
    index = _STATIC_FIELDS.get((name, value))
    if index is not None:
        prefix = encode_integer(index, 7)
        prefix[0] |= 0x80
        return bytes(prefix)
    name_index = _STATIC_NAMES.get(name)
    if name_index is not None:
        return bytes(encode_integer(name_index, 4)) + _string(value)
    return b"\x00" + _string(name) + _string(value)


def encode_fields(fields: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A header block of `fields`, each encoded alone (`encode_field`, its bytes kept for the
    next time). Pure: the compiled version (_speedups.c) returns the same bytes."""
    encoded = _encoded
    out = []
    for name, value in fields:
        field = encoded.get((name, value))
        if field is None:
            if len(encoded) >= MAX_CACHED_FIELDS:
                encoded.clear()
            field = encoded[name, value] = encode_field(name, value)
        out.append(field)
    return b"".join(out)


class StaticEncoder:
    """What h2 needs of an encoder (`encode`, and `header_table_size`, which it sets from the
    client's SETTINGS), without a dynamic table."""

    def __init__(self) -> None:
        self._announced = False
        self.header_table_size = 0  # the client's limit: never reached, with no table

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        return self.start(encode_fields(headers))

    def start(self, block: bytes) -> bytes:
        """`block` (from `encode_fields`) as the connection's next header block: the first
        also tells the client that this side's table is empty."""
        if self._announced:
            return block
        self._announced = True
        return _TABLE_SIZE_ZERO + block


class _CountedTable(HeaderTable):
    """hpack's dynamic table, counting the changes made to it (an entry added, a resize)."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingDecoder(Decoder):
    """hpack's decoder, remembering the blocks that left its table as it was."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table = self._table = _CountedTable()
        self._changes = 0
        self._blocks: dict[bytes, list[tuple[bytes, bytes]]] = {}

    def decode(self, data: bytes, raw: bool = False) -> list[tuple[bytes, bytes]]:  # type: ignore[override]
        table, blocks = self._table, self._blocks
        if table.changes != self._changes:
            blocks.clear()  # decoded against another table
            self._changes = table.changes
        elif (known := blocks.get(data)) is not None:
            return list(known)
        headers: list[tuple[bytes, bytes]] = list(super().decode(data, raw))
        if table.changes == self._changes and len(blocks) < MAX_CACHED_BLOCKS:
            blocks[bytes(data)] = headers
            return list(headers)
        return headers


# The Python version, the reference: its C twin, encode_fields in _speedups.c, must match it
# (tests/test_speedups.py).
python_encode_fields = encode_fields

if speedups is not None:
    speedups.setup_hpack(HeaderTable.STATIC_TABLE, REQUEST_CODES, REQUEST_CODES_LENGTH)
    encode_fields = speedups.encode_fields
