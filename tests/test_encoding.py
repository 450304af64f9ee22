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
    out = b"".join(d.feed(blob[i:i + size]) for i in range(0, len(blob), size)) + d.close()
    assert out == DATA


def test_raw_deflate_as_some_servers_send():
    d = Decoder("deflate")
    blob = raw_deflate(DATA)
    assert b"".join(d.feed(blob[i:i + 1]) for i in range(len(blob))) + d.close() == DATA


def test_bad_data_and_unknown_codings():
    with pytest.raises(ValueError, match="not valid gzip"):
        Decoder("gzip").feed(b"not gzip at all")
    with pytest.raises(ValueError, match="no streaming decoder"):
        Decoder("compress")
