"""Content-Encoding decoded piece by piece: answers translated while they stream, and request bodies
decoded under a size limit (a few compressed bytes can stand for gigabytes: a decompression bomb).

gzip and deflate come with Python; brotli and zstd (zstandard on mitmproxy 11, backports.zstd on 12) are
mitmproxy's own dependencies, imported when a body uses them. Pure: no I/O, no mitmproxy.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast

from .jsonio import format_size

if TYPE_CHECKING:
    import zstandard

CODINGS = frozenset({"gzip", "x-gzip", "deflate", "br", "zstd"})

# With a max_output, decoded bytes are made at most STEP at a time (zlib's max_length, brotli's
# output_buffer_limit, zstd's max_length), so that a decoder never holds much more than the limit.
STEP = 1 << 20
# Where a library can only be given less input instead (brotli before 1.2 and zstandard, as mitmproxy 11
# has), the input is fed in slices this small: a zstd slice of 64 bytes stands for 2 MiB at most (16 blocks of
# 128 KiB: an RLE block takes 4 bytes); a brotli slice of 16 bytes for a meta-block or two (16 MiB each at
# most: 8 MiB in the densest bomb we made).
BROTLI_SLICE = 16
ZSTD_SLICE = 64
# Input is also given a slice at a time where a library copies what it has not used yet (zlib's
# unconsumed_tail at each max_length stop, zstd's unused_data at each frame's end): so the copying is
# bounded by the slice, not the body (a body of a thousand tiny zstd frames, or a limit far above STEP).
ZLIB_INPUT = 64 << 10
ZSTD_INPUT = 256
# Each zstd frame costs a new decompression context (~10 us): with a max_output, a body may hold this many
# frames (a client sends one; a few bytes per empty frame would otherwise cost a second per MB).
MAX_ZSTD_FRAMES = 1000
MAX_GZIP_MEMBERS = 1000  # members of one gzip body, likewise (each a header and a trailer at least)


class TooLarge(Exception):
    """The data decodes to more than the decoder's max_output (decoding stopped there)."""


class _BrotliDecompressor(Protocol):
    """brotli.Decompressor, as used here (output_buffer_limit: brotli >= 1.2 only)."""

    def process(self, data: bytes | memoryview, output_buffer_limit: int = ...) -> bytes: ...

    def is_finished(self) -> bool: ...


class _ZstdFrame(Protocol):
    """A decompressor of one zstd frame: zstandard's decompressobj(), or a ZstdDecompressor of compression.zstd
    or backports.zstd (which is a _ZstdLimitedFrame too)."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes | memoryview, /) -> bytes: ...


class _ZstdLimitedFrame(_ZstdFrame, Protocol):
    """compression.zstd's (backports.zstd's) ZstdDecompressor: decompress() takes a max_length."""

    @property
    def needs_input(self) -> bool: ...

    def decompress(self, data: bytes | memoryview, max_length: int = -1, /) -> bytes: ...


# [the zstd module, or None for zstandard], looked up once (a failed import is not cached)
_ZSTD: list[ModuleType | None] = []


def _zstd_module() -> ModuleType | None:
    """The zstd module mitmproxy itself uses: the standard library's (3.14) or its backport (mitmproxy 12),
    or None for zstandard (mitmproxy 11)."""
    if not _ZSTD:
        try:
            from compression import zstd
        except ImportError:
            try:
                from backports import zstd
            except ImportError:
                zstd = None
        _ZSTD.append(zstd)
    return _ZSTD[0]


def _zstd_decompressor(zstandard_context: zstandard.ZstdDecompressor | None = None) -> _ZstdFrame:
    zstd = _zstd_module()
    if zstd is None:
        if zstandard_context is None:
            import zstandard

            zstandard_context = zstandard.ZstdDecompressor()
        return zstandard_context.decompressobj()
    return zstd.ZstdDecompressor()


class Decoder:
    """feed(compressed bytes) -> the decoded bytes so far; close() -> the rest. ValueError when the data is
    not in that encoding.

    max_output: decode no more than this many bytes in all; TooLarge as soon as the data stands for more
    (the decoded bytes past the limit are never returned, and at most about one STEP or one slice's worth
    of them is ever made). pieces() is feed() without joining the pieces (no copy of the whole).
    finished tells whether the compressed data ended properly (a truncated body has not); trailing counts
    the bytes that came after the end, which are not decoded (zstd's further frames are: a zstd body may hold
    several).
    """

    def __init__(self, coding: str, max_output: int | None = None) -> None:
        coding = coding.strip().lower()
        if coding not in CODINGS:
            raise ValueError(f"no streaming decoder for Content-Encoding {coding!r}")
        self.coding = coding
        self.max_output = max_output
        self.total = 0  # decoded bytes made so far
        self.trailing = 0  # bytes after the end of the compressed data (deflate, br)
        self._head: bytes | None = None
        self._zstd: ModuleType | None = None
        self._members = 1
        # The decompressor, one of three kinds (as coding says): only the attribute for that kind is set.
        self._zlib_obj: zlib._Decompress
        self._brotli_obj: _BrotliDecompressor
        self._zstd_obj: _ZstdFrame
        if coding in ("gzip", "x-gzip"):
            self._zlib_obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._zlib_obj = zlib.decompressobj()
            self._head = b""  # a zlib header, or raw deflate as some servers send: told from the first bytes
        elif coding == "br":
            import brotli

            self._brotli_obj = brotli.Decompressor()
            # brotli >= 1.2: output_buffer_limit
            self._br_limit = hasattr(self._brotli_obj, "can_accept_more_data")
        else:
            self._zstd = _zstd_module()
            self._context: zstandard.ZstdDecompressor | None = None
            if self._zstd is None:  # zstandard: one context, a decompressobj per frame
                import zstandard

                self._context = zstandard.ZstdDecompressor()
            self._zstd_obj = _zstd_decompressor(self._context)
            self._zstd_ended = False  # a frame ended and no other has started
            self._frames = 1

    # -- public ------------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        pieces = list(self.pieces(data))
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of data, in pieces (of at most about STEP bytes when there is a max_output)."""
        if not data:
            return
        try:
            for piece in self._decode(data):
                if piece:
                    self._count(piece)
                    yield piece
        except (TooLarge, GeneratorExit):
            raise
        except Exception as e:  # zlib.error, brotli.error, the zstd modules' errors
            raise ValueError(f"the data is not valid {self.coding}: {e}") from None

    def close(self) -> bytes:
        if self.coding in ("gzip", "x-gzip", "deflate"):
            if self._head:  # fewer than 2 bytes came: not finished
                return b""
            try:
                rest = self._zlib_obj.flush()
            except zlib.error as e:
                raise ValueError(f"the data is not valid {self.coding}: {e}") from None
            if rest:
                self._count(rest)
            return rest
        return b""

    @property
    def finished(self) -> bool:
        """Whether the compressed data seen so far ends where its format says it ends."""
        if self.coding == "br":
            return self._brotli_obj.is_finished()
        if self.coding == "zstd":
            return self._zstd_ended
        return self._head is None and self._zlib_obj.eof

    # -- inside --------------------------------------------------------------------------------------

    def _count(self, piece: bytes) -> None:
        self.total += len(piece)
        if self.max_output is not None and self.total > self.max_output:
            raise TooLarge(f"the data decodes to more than {self.max_output} bytes")

    def _step(self) -> int:
        """How many decoded bytes the next call may make: 0 for any number (no max_output)."""
        if self.max_output is None:
            return 0
        return max(1, min(STEP, self.max_output - self.total + 1))

    def _decode(self, data: bytes) -> Iterator[bytes]:
        if self.coding == "br":
            yield from self._brotli(data)
        elif self.coding == "zstd":
            yield from self._zstd_frames(data)
        else:
            if self._head is not None:
                data = self._deflate_start(self._head + data)
                if not data:
                    return
            yield from self._zlib(data)

    def _deflate_start(self, head: bytes) -> bytes:
        """head: the deflate body's first bytes (those held back so far, and data)."""
        if len(head) < 2:
            self._head = head
            return b""
        self._head = None
        if (head[0] & 0x0F) != 8 or (head[0] << 8 | head[1]) % 31:
            self._zlib_obj = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
        return head

    def _zlib(self, data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        size = len(view) if self.max_output is None else ZLIB_INPUT
        for pos in range(0, len(view), size):
            pending: bytes | memoryview = view[pos : pos + size]
            while pending:  # a gzip member may end inside this slice: the next one starts after it
                obj = self._zlib_obj
                if obj.eof:
                    if not self._next_member():  # after the end: only counted (zlib keeps it in unused_data)
                        self.trailing += len(pending) + max(0, len(view) - pos - size)
                        return
                    obj = self._zlib_obj
                rest = pending
                while True:
                    step = self._step()
                    out = obj.decompress(rest, step)
                    yield out
                    rest = obj.unconsumed_tail
                    if obj.eof:
                        pending = obj.unused_data
                        break
                    if not rest and (step == 0 or len(out) < step):
                        pending = b""
                        break  # all this input taken, and nothing held back for want of room

    def _next_member(self) -> bool:
        """After a gzip member, another may follow (RFC 1952; mitmproxy's own decoder reads them all): start
        it. False for deflate, which has one stream."""
        if self.coding not in ("gzip", "x-gzip"):
            return False
        self._members += 1
        if self.max_output is not None and self._members > MAX_GZIP_MEMBERS:
            raise ValueError(f"more than {MAX_GZIP_MEMBERS} gzip members")
        self._zlib_obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return True

    def _brotli(self, data: bytes) -> Iterator[bytes]:
        obj = self._brotli_obj
        if obj.is_finished():
            self.trailing += len(data)
            return
        if self.max_output is None:
            yield obj.process(data)
        elif self._br_limit:
            # brotli >= 1.2 holds back what does not fit; process() takes only b"" until it can take more
            yield from self._brotli_drain()
            yield obj.process(data, output_buffer_limit=self._step())
            yield from self._brotli_drain()
        else:
            view = memoryview(data)
            for i in range(0, len(view), BROTLI_SLICE):
                if obj.is_finished():
                    self.trailing += len(view) - i
                    return
                yield obj.process(view[i : i + BROTLI_SLICE])

    def _brotli_drain(self) -> Iterator[bytes]:
        obj = self._brotli_obj
        while not obj.is_finished():
            out = obj.process(b"", output_buffer_limit=self._step())
            if not out:
                return
            yield out

    def _zstd_frames(self, data: bytes) -> Iterator[bytes]:
        """One frame after another (a zstd body may hold several: they decode to their concatenation)."""
        view = memoryview(data)
        limited = self.max_output is not None
        # zstandard has no max_length: with a max_output it is given slices small enough to bound its output
        size = ZSTD_SLICE if limited and self._zstd is None else ZSTD_INPUT
        pos = 0
        while pos < len(view):
            if self._zstd_ended:
                self._frames += 1
                if limited and self._frames > MAX_ZSTD_FRAMES:
                    raise ValueError(f"more than {MAX_ZSTD_FRAMES} zstd frames")
                self._zstd_obj = _zstd_decompressor(self._context)
                self._zstd_ended = False
            obj = self._zstd_obj
            piece = view[pos : pos + size]
            if limited and self._zstd is not None:  # compression.zstd / backports.zstd: max_length
                # (which decompressor _zstd_decompressor made is told by self._zstd, not by its type)
                limited_obj = cast(_ZstdLimitedFrame, obj)
                yield limited_obj.decompress(piece, self._step())
                while not limited_obj.eof and not limited_obj.needs_input:  # what max_length held back
                    yield limited_obj.decompress(b"", self._step())
            else:
                yield obj.decompress(piece)
            used = len(piece)
            if obj.eof:  # the frame ended in this piece: the next one starts after it
                self._zstd_ended = True
                used -= len(obj.unused_data)
                if used <= 0:  # pragma: no cover - a frame is never empty
                    raise ValueError("a zstd frame of no bytes")
            pos += used


def decode_body(data: bytes, coding: str, max_output: int) -> bytes:
    """A whole body in a Content-Encoding this module decodes, decoded to at most max_output bytes.

    TooLarge as soon as it would decode to more (nothing more is decoded); ValueError when it is not valid
    in that encoding, ends before its compressed data does, or has anything after the end."""
    if not data:
        return b""
    decoder = Decoder(coding, max_output)
    pieces = list(decoder.pieces(data))
    rest = decoder.close()
    if rest:
        pieces.append(rest)
    if not decoder.finished:
        raise ValueError(f"the data is not valid {decoder.coding}: it ends before the compressed data does")
    if decoder.trailing:
        raise ValueError(
            f"the data is not valid {decoder.coding}: {decoder.trailing} bytes follow the end of the compressed data"
        )
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


# Content-Encodings that mean "not encoded".
PLAIN = frozenset({"", "identity", "none"})


class Body(NamedTuple):
    """A request body as read for the rewrite: data, or why it cannot be used (status, error)."""

    data: bytes | None
    status: int = 0  # 413 (too large) or 400 (does not decode) when data is None
    error: str = ""


def read_body(raw: bytes, content_encoding: str, max_body: int) -> Body:
    """A request body, decoded from its Content-Encoding (as given, several joined by ", "), no larger than
    max_body: a compressed body is decoded piece by piece and no further than that, so a bomb costs max_body at
    most. mitmproxy's own get_content() would decode it whole, with no limit, and also any Python codec named
    there (bz2, zlib, base64, ...), none of them an HTTP coding."""
    if len(raw) <= max_body and (not content_encoding or content_encoding.strip().lower() in PLAIN):
        return tuple.__new__(Body, (raw, 0, ""))  # the common case (not encoded, within the limit): Body(raw)
    coding = content_encoding.strip().lower()
    if len(raw) > max_body:  # compressed too: the decoder's own work grows with what it is given
        return Body(
            None,
            413,
            f"the request body ({format_size(len(raw))}) is larger than the proxy's limit of "
            f"{format_size(max_body)} (the mistral_max_body option)",
        )
    cannot = Body(
        None,
        400,
        f"the body cannot be decoded as Content-Encoding {content_encoding!r} "
        f"(the proxy decodes gzip, deflate, br and zstd)",
    )
    if coding not in CODINGS:
        return cannot
    try:
        return Body(decode_body(raw, coding, max_body))
    except TooLarge:
        return Body(
            None,
            413,
            f"the request body decodes (Content-Encoding {coding}) to more than the proxy's "
            f"limit of {format_size(max_body)} (the mistral_max_body option); it was not "
            f"decoded further",
        )
    except ValueError:
        return cannot
