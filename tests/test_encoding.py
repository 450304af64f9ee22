"""Unit tests of the streaming Content-Encoding decoder (mistral_compat/encoding.py)."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from mistral_compat.encoding import Decoder

DATA = b"".join(b'data: {"n": %d, "text": "hello"}\n\n' % i for i in range(300))


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def zstd_compress(data: bytes) -> bytes:
    try:
        import zstandard  # mitmproxy 11

        return zstandard.ZstdCompressor().compress(data)
    except ImportError:
        from backports import zstd  # mitmproxy 12

        return zstd.compress(data)


ENCODED = {
    "gzip": gzip.compress(DATA),
    "deflate": zlib.compress(DATA),
    "br": brotli.compress(DATA),
    "zstd": zstd_compress(DATA),
}


@pytest.mark.parametrize("coding", sorted(ENCODED))
@pytest.mark.parametrize("size", [1, 7, 1000, 1 << 20])
def test_decodes_in_pieces(coding, size):
    d = Decoder(coding)
    blob = ENCODED[coding]
    out = b"".join(d.feed(blob[i : i + size]) for i in range(0, len(blob), size)) + d.close()
    assert out == DATA


def test_raw_deflate_as_some_servers_send():
    d = Decoder("deflate")
    blob = raw_deflate(DATA)
    assert b"".join(d.feed(blob[i : i + 1]) for i in range(len(blob))) + d.close() == DATA


def test_bad_data_and_unknown_codings():
    with pytest.raises(ValueError, match="not valid gzip"):
        Decoder("gzip").feed(b"not gzip at all")
    with pytest.raises(ValueError, match="no streaming decoder"):
        Decoder("compress")


# --- max_output and decode_body (request bodies: a size limit, and strict about the end) ----------------

from mistral_compat.encoding import TooLarge, decode_body  # noqa: E402


@pytest.mark.parametrize("coding", sorted(ENCODED))
@pytest.mark.parametrize("size", [1, 7, 1000, 1 << 20])
def test_max_output_exactly_the_data_passes_one_byte_less_does_not(coding, size):
    blob = ENCODED[coding]
    d = Decoder(coding, max_output=len(DATA))
    out = b"".join(d.feed(blob[i : i + size]) for i in range(0, len(blob), size)) + d.close()
    assert out == DATA and d.finished
    d = Decoder(coding, max_output=len(DATA) - 1)
    with pytest.raises(TooLarge):
        for i in range(0, len(blob), size):
            d.feed(blob[i : i + size])
        d.close()


@pytest.mark.parametrize("coding", sorted(ENCODED))
def test_decode_body(coding):
    blob = ENCODED[coding]
    assert decode_body(blob, coding, len(DATA)) == DATA
    assert decode_body(b"", coding, 10) == b""
    with pytest.raises(TooLarge):
        decode_body(blob, coding, len(DATA) - 1)
    with pytest.raises(ValueError, match="ends before"):
        decode_body(blob[:-5], coding, 1 << 20)  # truncated
    with pytest.raises(ValueError, match=f"not valid {coding}"):
        decode_body(blob + b"junk", coding, 1 << 20)  # something after the end
    with pytest.raises(ValueError, match=f"not valid {coding}"):
        decode_body(b"\x00" * 64, coding, 1 << 20)


def test_zstd_frames_one_after_another():
    blob = ENCODED["zstd"] + zstd_compress(b"and more")
    assert decode_body(blob, "zstd", 1 << 20) == DATA + b"and more"
    d = Decoder("zstd")
    assert b"".join(d.feed(blob[i : i + 5]) for i in range(0, len(blob), 5)) == DATA + b"and more"


def test_pieces_are_bounded_with_max_output():
    data = b"x" * (20 << 20)
    for coding, blob in (("gzip", gzip.compress(data)), ("br", brotli.compress(data)), ("zstd", zstd_compress(data))):
        d = Decoder(coding, max_output=len(data))
        pieces = list(d.pieces(blob))
        assert b"".join(pieces) == data
        assert max(map(len, pieces)) <= 16 << 20, coding  # never the whole at once (brotli 1.1: meta-blocks)


def test_a_body_of_many_zstd_frames_is_refused_quickly():
    """A few bytes per empty frame, and a new decompression context for each: 100k frames (0.9 MB) took
    1-12 s. With a max_output (request bodies) more than MAX_ZSTD_FRAMES is not valid; answers stay lenient."""
    import time

    from mistral_compat.encoding import MAX_ZSTD_FRAMES

    frames = zstd_compress(b"") * 100_000 + zstd_compress(b"{}")
    started = time.process_time()
    with pytest.raises(ValueError, match=f"more than {MAX_ZSTD_FRAMES} zstd frames"):
        decode_body(frames, "zstd", 1 << 20)
    assert time.process_time() - started < 0.5
    assert decode_body(zstd_compress(b"{}") * MAX_ZSTD_FRAMES, "zstd", 1 << 20) == b"{}" * MAX_ZSTD_FRAMES
    assert Decoder("zstd").feed(frames) == b"{}"


@pytest.mark.parametrize("max_output", [None, 1 << 20])
def test_gzip_of_several_members_decodes_to_their_concatenation(max_output):
    """RFC 1952 allows several members, and mitmproxy's own decoder reads them all."""
    blob = gzip.compress(b"data: a\n\n") + gzip.compress(b"data: b\n\n") + gzip.compress(DATA)
    for size in (1, 5, len(blob)):
        d = Decoder("gzip", max_output)
        out = b"".join(d.feed(blob[i : i + size]) for i in range(0, len(blob), size)) + d.close()
        assert out == b"data: a\n\ndata: b\n\n" + DATA and d.finished and not d.trailing
    from mistral_compat.encoding import decode_body

    assert decode_body(blob, "gzip", 1 << 20) == b"data: a\n\ndata: b\n\n" + DATA


def test_gzip_members_are_capped_in_bodies():
    from mistral_compat.encoding import MAX_GZIP_MEMBERS, decode_body

    with pytest.raises(ValueError, match="gzip members"):
        decode_body(gzip.compress(b"") * (MAX_GZIP_MEMBERS + 1), "gzip", 1 << 20)
