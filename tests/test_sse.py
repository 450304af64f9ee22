"""Unit tests of the SSE reader (mistral_compat/sse.py)."""

from __future__ import annotations

import random

import pytest

from mistral_compat.sse import Event, Reader, parse_event, replace_data

STREAM = (
    b": keep-alive\n\n"
    b'data: {"a": 1}\n\n'
    b"event: x\r\nid: 3\r\ndata: one\r\ndata:two\r\n\r\n"
    b"data\n\n"
    b"data: [DONE]\n\n"
    b"data: tail without blank line"
)


def read(stream: bytes, cuts: list[int]) -> list[Event]:
    r, out = Reader(), []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        out += r.feed(stream[a:b])
    return out + r.close()


def test_events_and_their_data():
    got = read(STREAM, [])
    assert [e.data for e in got] == [None, '{"a": 1}', "one\ntwo", "", "[DONE]", "tail without blank line"]
    assert b"".join(e.raw for e in got) == STREAM


@pytest.mark.parametrize("seed", range(30))
def test_split_anywhere_gives_the_same_events(seed):
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 20)))
    assert read(STREAM, cuts) == read(STREAM, [])


def test_byte_at_a_time():
    assert read(STREAM, list(range(1, len(STREAM)))) == read(STREAM, [])


def test_not_data_lines():
    assert parse_event(b"database: 1\ndata2: x\n\n").data is None


def test_replace_data_keeps_other_lines_and_line_ends():
    event = parse_event(b"id: 1\r\ndata: a\r\ndata: b\r\n: c\r\n\r\n")
    assert replace_data(event, b"{}") == b"id: 1\r\ndata: {}\r\n: c\r\n\r\n"
    assert replace_data(parse_event(b"data: x"), b"y") == b"data: y\n\n"


def test_a_long_line_in_many_pieces_is_read_in_linear_time_and_let_go_past_the_bound(monkeypatch):
    from mistral_compat import sse

    MAX_HELD = 1 << 20
    monkeypatch.setattr(sse, "MAX_HELD", MAX_HELD)
    r = Reader()
    piece = b"x" * 1000
    out = []
    for _ in range(5000):  # 5 MB, one line: quadratic joins would take minutes; holding it all, 5 MB
        out += r.feed(piece)
    out += r.feed(b"\n\n") + r.close()
    assert b"".join(e.raw for e in out) == piece * 5000 + b"\n\n"  # every byte, in order
    assert all(len(e.raw) <= MAX_HELD + len(piece) for e in out)
    assert out[0].data is None  # let go untranslated
