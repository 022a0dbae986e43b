"""HPACK for the server's responses without a dynamic table, so that a field's encoding never
depends on what came before it, and each distinct field is encoded once.

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

from hpack.hpack import encode_integer
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

# Distinct fields kept encoded, for all connections together; beyond it the cache starts again
# (a Date a second, a length per body size: it stays small for most apps, and cannot grow for
# the others).
MAX_CACHED_FIELDS = 4096
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


class StaticEncoder:
    """What h2 needs of an encoder (`encode`, and `header_table_size`, which it sets from the
    client's SETTINGS), without a dynamic table."""

    def __init__(self) -> None:
        self._announced = False
        self.header_table_size = 0  # the client's limit: never reached, with no table

    def encode(self, headers: Iterable[tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        fields = _encoded
        out = []
        if not self._announced:
            self._announced = True
            out.append(_TABLE_SIZE_ZERO)
        for name, value in headers:
            encoded = fields.get((name, value))
            if encoded is None:
                if len(fields) >= MAX_CACHED_FIELDS:
                    fields.clear()
                encoded = fields[name, value] = encode_field(name, value)
            out.append(encoded)
        return b"".join(out)
