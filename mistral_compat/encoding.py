"""Content-Encoding decoded piece by piece, for answers translated while they stream.

gzip and deflate come with Python; brotli and zstd (zstandard on mitmproxy 11, backports.zstd on 12) are
mitmproxy's own dependencies, imported when an answer uses them. Pure: no I/O, no mitmproxy.
"""

from __future__ import annotations

import zlib

CODINGS = frozenset({"gzip", "x-gzip", "deflate", "br", "zstd"})


def _zstd_decompressor():
    """The zstd module mitmproxy itself uses: the standard library's (3.14), its backport (mitmproxy 12),
    or zstandard (mitmproxy 11)."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        try:
            from backports import zstd  # type: ignore[import-not-found,no-redef]
        except ImportError:
            import zstandard
            return zstandard.ZstdDecompressor().decompressobj()
    return zstd.ZstdDecompressor()


class Decoder:
    """feed(compressed bytes) -> the decoded bytes so far; close() -> the rest. ValueError when the data is
    not in that encoding."""

    def __init__(self, coding: str) -> None:
        coding = coding.strip().lower()
        if coding not in CODINGS:
            raise ValueError(f"no streaming decoder for Content-Encoding {coding!r}")
        self.coding = coding
        self._raw_deflate = False
        if coding in ("gzip", "x-gzip"):
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._obj = zlib.decompressobj()
            self._head = b""  # a zlib header, or raw deflate as some servers send: told from the first bytes
        elif coding == "br":
            import brotli
            self._obj = brotli.Decompressor()
        else:
            self._obj = _zstd_decompressor()

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        try:
            if self.coding == "br":
                return self._obj.process(data)
            if self.coding == "deflate" and self._head is not None:
                return self._deflate_start(data)
            return self._obj.decompress(data)
        except Exception as e:  # zlib.error, brotli.error, the zstd modules' errors
            raise ValueError(f"the answer is not valid {self.coding}: {e}") from None

    def _deflate_start(self, data: bytes) -> bytes:
        head = self._head + data
        if len(head) < 2:
            self._head = head
            return b""
        self._head = None
        if (head[0] & 0x0F) != 8 or (head[0] << 8 | head[1]) % 31:
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
        return self._obj.decompress(head)

    def close(self) -> bytes:
        if self.coding in ("gzip", "x-gzip", "deflate"):
            try:
                return self._obj.flush()
            except zlib.error as e:
                raise ValueError(f"the answer is not valid {self.coding}: {e}") from None
        return b""
