"""Compressed request bodies: recognised by their magic bytes, decoded within a size cap, and
encoded again after redaction.

A body is decoded when it *is* compressed, whatever its ``Content-Encoding`` says: a gzip body
sent without the header hides secrets just as well. gzip (``1f 8b``) and zlib/deflate (a valid
zlib header) are decoded with :mod:`zlib`, layer by layer. A body whose header names an encoding
this module cannot read (``br``, ``zstd``, ``compress``), that carries the zstd magic, or whose
declared gzip/deflate stream is corrupt, is *undecodable*: the redactor drops it rather than
keep bytes it could not inspect. A body cut short (``max_body``) decodes to what arrived.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field

__all__ = ["MAX_DECODED", "Decoded", "Undecodable", "decode", "encode"]

#: Largest decoded size accepted (a decompression bomb is dropped, not expanded).
MAX_DECODED = 32 * 1024 * 1024
_LAYERS = 3
_KNOWN = frozenset(("", "identity", "gzip", "x-gzip", "deflate"))
_ZSTD = b"\x28\xb5\x2f\xfd"


class Undecodable(Exception):
    """The body cannot be inspected; ``reason`` is ``"encoding"`` or ``"size"``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Decoded:
    """The plain bytes and the layers removed, outermost first: ``"gzip"``, ``"deflate"``
    (zlib) or ``"raw-deflate"``."""

    plain: bytes
    layers: list[str] = field(default_factory=list)


def _zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


def _inflate(data: bytes, wbits: int) -> bytes:
    """Decode one stream (gzip members back to back included), keeping what a cut stream
    yields; raise ``zlib.error`` for corrupt data and :class:`Undecodable` beyond the cap."""
    out = bytearray()
    rest = data
    while rest:
        decomp = zlib.decompressobj(wbits)
        out += decomp.decompress(rest, MAX_DECODED + 1 - len(out))
        if decomp.unconsumed_tail or len(out) > MAX_DECODED:
            raise Undecodable("size")
        if not decomp.eof:
            out += decomp.flush()
            break  # cut short: what arrived is all there is
        rest = decomp.unused_data if wbits > 16 else b""
        if rest[:2] != b"\x1f\x8b":
            break
    return bytes(out)


def decode(data: bytes, declared: str) -> Decoded:
    """Remove every compression layer of ``data``; ``declared`` is the ``Content-Encoding``."""
    names = [t.strip().lower() for t in declared.split(",") if t.strip()]
    if any(name not in _KNOWN for name in names) or data.startswith(_ZSTD):
        raise Undecodable("encoding")
    result = Decoded(data)
    for _ in range(_LAYERS):
        plain = result.plain
        if plain[:2] == b"\x1f\x8b":
            kind, wbits = "gzip", 16 + zlib.MAX_WBITS
        elif _zlib_header(plain):
            kind, wbits = "deflate", zlib.MAX_WBITS
        elif not result.layers and "deflate" in names:
            kind, wbits = "raw-deflate", -zlib.MAX_WBITS  # as some clients send "deflate"
        else:
            break
        try:
            inner = _inflate(plain, wbits)
        except zlib.error:
            # Declared, it is a corrupt stream; only sniffed, it was never compressed (a text
            # body may start with bytes that look like a zlib header: "x^").
            if names and not result.layers:
                raise Undecodable("encoding") from None
            break
        result = Decoded(inner, [*result.layers, kind])
    return result


def encode(plain: bytes, layers: list[str]) -> bytes:
    """Compress ``plain`` again with ``layers`` (outermost first), reproducibly (no mtime)."""
    data = plain
    for kind in reversed(layers):
        if kind == "gzip":
            data = gzip.compress(data, mtime=0)
        elif kind == "deflate":
            data = zlib.compress(data)
        else:
            raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            data = raw.compress(data) + raw.flush()
    return data
