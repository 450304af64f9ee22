"""Unit tests of the one JSON reader/writer (mistral_compat/jsonio.py): parse, dumps, copy, kind_of, sizes."""

from __future__ import annotations

import json
import math

import pytest

from mistral_compat import errors, jsonio
from mistral_compat.jsonio import BodyError, Document, RawNumber

DEEP = 100_000  # deeper than Python's recursion limit


def deep_list(depth: int) -> list:
    root: list = []
    node = root
    for _ in range(depth):
        node.append([])
        node = node[0]
    return root


# --- parse ---------------------------------------------------------------------------------------------


def test_parse_keeps_every_number_exact():
    doc = jsonio.parse(b'{"big": 123456789012345678901234567890, "f": 1.0000000000000001, "g": 0.5, "h": 1e400}')
    assert doc.data["big"] == 123456789012345678901234567890
    assert isinstance(doc.data["f"], RawNumber) and doc.data["f"].literal == "1.0000000000000001"
    assert type(doc.data["g"]) is float  # exact as a double: no RawNumber
    assert math.isinf(doc.data["h"]) and repr(doc.data["h"]) == "1e400"
    assert doc.raw
    assert doc.dumps() == b'{"big":123456789012345678901234567890,"f":1.0000000000000001,"g":0.5,"h":1e400}'


def test_a_body_without_inexact_numbers_is_not_raw():
    assert not jsonio.parse(b'{"a": 1.5, "b": [1, 2]}').raw


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"", "the request body is empty"),
        (b"  \n", "the request body is empty"),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        ('{"a": 1}'.encode("utf-16-le"), "looks UTF-16"),
        (b'{"a": "\xff"}', "not valid UTF-8 (byte 7)"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": -Infinity}', "-Infinity is not valid JSON"),
        (b'{"a": }', "not valid JSON: Expecting value at line 1 column 7"),
        (b"[1]", "the body is a JSON array, but Mistral expects a JSON object"),
        (b'"x"', "a JSON string"),
        (b"true", "a JSON boolean"),
        (b"null", "a JSON null"),
        (b"3", "a JSON number"),  # an integer is still called a number here
        (b"3.5", "a JSON number"),
        (b"[" * DEEP + b"]" * DEEP, "nested too deeply to parse"),
    ],
)
def test_parse_refuses_with_a_readable_reason(body, needle):
    with pytest.raises(BodyError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        jsonio.parse(body)


# --- dumps: the one writer ------------------------------------------------------------------------------


def test_dumps_is_compact_utf8_with_text_as_text():
    assert jsonio.dumps({"a": "é🙂", "b": [1, None, True]}) == '{"a":"é🙂","b":[1,null,true]}'.encode()
    assert jsonio.dumps("x") == b'"x"' and jsonio.dumps(None) == b"null"


def test_dumps_escapes_everything_when_text_holds_a_lone_surrogate():
    assert jsonio.dumps({"a": "\ud800é"}) == b'{"a":"\\ud800\\u00e9"}'


def test_dumps_writes_raw_numbers_as_written_only_when_asked_and_leaves_the_value_as_it_was():
    value = {"n": [RawNumber("1.0000000000000001"), {"m": RawNumber("1e400")}], "s": "\x00x"}
    assert jsonio.dumps(value, raw=True) == b'{"n":[1.0000000000000001,{"m":1e400}],"s":"\\u0000x"}'
    assert isinstance(value["n"][0], RawNumber) and value["n"][1]["m"].literal == "1e400"  # put back
    assert jsonio.dumps(value) == b'{"n":[1.0,{"m":Infinity}],"s":"\\u0000x"}'  # as json.dumps writes them
    assert jsonio.dumps(RawNumber("0.10000000000000000001"), raw=True) == b"0.10000000000000000001"


def test_dumps_strict_refuses_nan_and_infinities():
    assert jsonio.dumps({"x": math.inf}) == b'{"x":Infinity}'
    with pytest.raises(ValueError):
        jsonio.dumps({"x": math.nan}, strict=True)


def test_dumps_raises_recursion_error_and_a_document_says_why():
    with pytest.raises(RecursionError):
        jsonio.dumps(deep_list(DEEP))
    with pytest.raises(BodyError, match="nested too deeply"):
        Document({"a": deep_list(DEEP)}).dumps()


def test_dumps_matches_json_dumps_for_plain_values():
    value = {"a": [1, 2.5, -0.0, 1e-7, 10**30], "b": {"c": None, "é": '\n\t"\\'}, "d": False}
    assert jsonio.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def test_errors_json_bytes_is_the_jsonio_writer():
    assert errors.json_bytes is jsonio.dumps


# --- copy -----------------------------------------------------------------------------------------------


def test_copy_is_deep_and_independent():
    original = {"a": [{"b": 1}, [2, RawNumber("1e400")]], "c": "x"}
    copied = jsonio.copy(original)
    assert copied == original and copied is not original
    copied["a"][0]["b"] = 9
    copied["a"][1].append(3)
    assert original == {"a": [{"b": 1}, [2, RawNumber("1e400")]], "c": "x"}
    assert copied["a"][1][1] is original["a"][1][1]  # scalars are shared (immutable)
    assert jsonio.copy(5) == 5 and jsonio.copy([]) == [] and jsonio.copy({}) == {}


def test_copy_keeps_key_and_item_order():
    original = {"z": 1, "a": 2, "m": [3, 1, 2]}
    copied = jsonio.copy(original)
    assert list(copied) == ["z", "a", "m"] and copied["m"] == [3, 1, 2]


def test_copy_goes_deeper_than_the_recursion_limit():
    copied = jsonio.copy({"x": deep_list(DEEP)})
    depth, node = 0, copied["x"]
    while node:
        node, depth = node[0], depth + 1
    assert depth == DEEP


# --- kind_of: the one table of JSON type names ----------------------------------------------------------


@pytest.mark.parametrize(
    "value, kind",
    [
        ({}, "object"),
        ([], "array"),
        ("", "string"),
        (True, "boolean"),
        (False, "boolean"),
        (0, "integer"),
        (0.5, "number"),
        (RawNumber("1e400"), "number"),
        (None, "null"),
        ((1,), "unknown"),
        (b"x", "unknown"),
    ],
)
def test_kind_of(value, kind):
    assert jsonio.kind_of(value) == kind


def test_kinds_table_names_what_json_schema_names():
    assert set(jsonio.KINDS.values()) == {"object", "array", "string", "boolean", "integer", "number", "null"}


# --- sizes ----------------------------------------------------------------------------------------------


def test_sizes_round_trip_and_refuse_nonsense():
    assert jsonio.parse_size("64m") == jsonio.DEFAULT_MAX_BODY == 64 << 20
    assert jsonio.parse_size("512 KiB") == 512 << 10 and jsonio.parse_size("7") == 7
    assert jsonio.format_size(64 << 20) == "64 MiB" and jsonio.format_size((64 << 20) + 1) == "67,108,865 bytes"
    for bad in ("", "0", "-1m", "1t", "m"):
        with pytest.raises(ValueError):
            jsonio.parse_size(bad)


# --- splice: large bodies written back from their own text ---------------------------------------------------

BIG = "A" * (jsonio.SPLICE_MIN + 10)  # a string that makes any body holding it large


def _repaired(raw: bytes, repair) -> bytes:
    doc = jsonio.parse(raw)
    repair(doc.data)
    return doc.dumps()


def test_a_large_body_keeps_what_did_not_change_as_the_client_wrote_it():
    messages = '[ {"role": "user",\n  "content": "\\u00e9t\\u00e9 %s", "n": 1.0000000000000001 } ]' % BIG
    raw = ('{"model": "m", "user": "u-1", "messages": %s, "seed": 7}' % messages).encode()

    def repair(data):
        del data["user"]
        data["random_seed"] = data.pop("seed")

    out = _repaired(raw, repair)
    assert out == ('{"model":"m","messages":%s,"random_seed":7}' % messages).encode()  # copied byte for byte
    assert json.loads(out)["messages"][0]["content"] == "\u00e9t\u00e9 " + BIG


def test_a_large_member_that_changed_inside_is_spliced_in_turn():
    raw = json.dumps(
        {"messages": [{"role": "user", "name": "bob", "content": [{"type": "text", "text": BIG}]}], "x": 1},
        indent=2,
    ).encode()

    def repair(data):
        del data["messages"][0]["name"]

    out = _repaired(raw, repair)
    content = json.dumps([{"type": "text", "text": BIG}], indent=2).replace("\n", "\n      ")
    assert content.encode() in out  # the unchanged content, with its indentation
    assert json.loads(out) == {"messages": [{"role": "user", "content": [{"type": "text", "text": BIG}]}], "x": 1}


@pytest.mark.parametrize(
    "repair",
    [
        lambda d: d["messages"].pop(0),  # an item removed: the others shift
        lambda d: d["messages"].insert(0, {"role": "system", "content": "hi"}),
        lambda d: d["messages"][1].update(content="replaced"),
        lambda d: d.update(messages={"now": "an object"}),
        lambda d: d["messages"][1].__setitem__("content", d["messages"][1]["content"].upper()),
        lambda d: d.update(model=1),  # "1" would be equal in no way; 1 == 1.0 is, and must not be copied
        lambda d: d.update(flag=1),  # the client's true is equal to 1 in Python, but not the same JSON
        lambda d: d["messages"][1].update(flag=1),  # the same, inside a member
        lambda d: d["messages"][1].update(n=2),  # 2 == 2.0
        lambda d: d["messages"][1].update(z=0.0),  # 0.0 == -0.0
        lambda d: d["messages"][1].update(r=1.0),  # 1.0 == 1.0000000000000001 as a double
    ],
)
def test_a_spliced_body_says_what_the_repaired_data_says(repair):
    big = {"role": "user", "content": BIG, "flag": True, "n": 2.0, "z": -0.0, "r": 0.5}
    raw = json.dumps({"model": "m", "flag": True, "messages": [{"role": "user", "content": "a"}, big]}).encode()
    raw = raw.replace(b'"r": 0.5', b'"r": 1.0000000000000001')
    doc = jsonio.parse(raw)
    repair(doc.data)
    out = doc.dumps()
    assert _typed(jsonio.parse(out).data) == _typed(doc.data)


def _typed(value):
    """value with each scalar paired with its type, a number as written: true and 1, 2 and 2.0, 0.0 and -0.0
    (each pair equal in Python) told apart."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value), repr(value) if isinstance(value, float) else value)


def test_splicing_keeps_the_last_of_a_key_given_twice_once():
    raw = ('{"a": 1, "big": "%s", "a": 2, "user": "u"}' % BIG).encode()
    out = _repaired(raw, lambda d: d.pop("user"))
    assert out == ('{"a":2,"big":"%s"}' % BIG).encode()


def test_an_object_giving_a_key_twice_is_never_copied():
    """The repairs saw only the last of a key given twice; the text with both is not passed on."""
    member = '{"role": "system", "role": "user", "content": "%s"}' % BIG
    raw = ('{"messages": [%s], "user": "u"}' % member).encode()
    out = _repaired(raw, lambda d: d.pop("user"))
    assert out == ('{"messages":[{"role":"user","content":"%s"}]}' % BIG).encode()


def test_splicing_a_body_with_text_beyond_ascii():
    raw = ('{"k": "\u00e9\U0001f600 %s", "drop": 1, "n": 1e400}' % BIG).encode("utf-8")
    out = _repaired(raw, lambda d: d.pop("drop"))
    assert out == ('{"k":"\u00e9\U0001f600 %s","n":1e400}' % BIG).encode("utf-8")


def _count_reads(monkeypatch) -> list:
    """The positions jsonio reads a container again at, from now on."""
    calls: list = []
    members = jsonio._members
    monkeypatch.setattr(jsonio, "_members", lambda text, pos, budget: calls.append(pos) or members(text, pos, budget))
    return calls


def _deep_body() -> bytes:
    """A large leaf 20 objects deep, beside a key to drop."""
    deep: dict = {"leaf": BIG, "drop": 1}
    for _ in range(20):
        deep = {"d": deep}
    return json.dumps(deep).encode()


def _drop_deep(data) -> None:
    node = data
    while "d" in node:
        node = node["d"]
    del node["drop"]


def test_splicing_reads_again_within_a_budget_then_writes_anew(monkeypatch):
    calls = _count_reads(monkeypatch)
    raw = _deep_body()
    out = _repaired(raw, _drop_deep)
    assert json.loads(out) == json.loads(raw.replace(b', "drop": 1', b""))
    # read again at the top and at most SPLICE_BUDGET times the text's length (each level is the whole text)
    assert len(calls) == 1 + jsonio.SPLICE_BUDGET


def test_splicing_goes_no_deeper_than_its_depth(monkeypatch):
    monkeypatch.setattr(jsonio, "SPLICE_BUDGET", 1000)
    calls = _count_reads(monkeypatch)
    out = _repaired(_deep_body(), _drop_deep)
    assert b'"drop"' not in out and len(calls) == 1 + jsonio.SPLICE_DEPTH


def test_a_small_body_is_written_anew():
    out = _repaired(b'{"a": "\\u00e9",  "b": 1}', lambda d: d.pop("b"))
    assert out == '{"a":"\u00e9"}'.encode()


def test_a_container_of_many_small_members_is_written_anew(monkeypatch):
    """Each member read again is a step in Python: past SPLICE_MEMBERS, writing anew (in C) is cheaper."""
    calls = _count_reads(monkeypatch)
    many = [{"role": "user", "content": "x" * 20} for _ in range(jsonio.SPLICE_MEMBERS + 1)]
    raw = json.dumps({"messages": many, "big": BIG, "user": "u"}).encode()
    out = _repaired(raw, lambda d: (d.pop("user"), d["messages"][0].pop("role")))
    assert json.loads(out)["messages"][0] == {"content": "x" * 20}
    assert len(calls) == 1  # the top level only: the long list is written anew
    top = json.dumps({str(i): i for i in range(jsonio.SPLICE_MEMBERS + 1)} | {"big": BIG, "user": "u"})
    calls.clear()
    assert json.loads(_repaired(top.encode(), lambda d: d.pop("user")))["big"] == BIG
    assert calls == []  # too many members at the top: written anew


@pytest.mark.parametrize(
    "raw",
    [b'{"a": 1} x', b'{"a": 1}}', b'{"a": }', b'{"a": NaN}', b'{"a": [1, 2}', b' {"a": 1} ', b'{"a": "\\ud800"}'],
)
def test_the_fast_read_and_the_decoder_agree(raw):
    """parse reads a body that is one object from first to last character with the C scanner directly: what
    it makes of any body, and any error it reports, is the decoder's."""
    try:
        expected: object = json.loads(raw, parse_constant=lambda c: 1 / 0)
    except ZeroDivisionError:
        expected = BodyError
    except ValueError as e:
        expected = f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
    try:
        got: object = jsonio.parse(raw).data
    except BodyError as e:
        got = BodyError if "NaN" in str(e) else str(e)
    assert got == expected


def test_the_writer_is_json_dumps_compact():
    if json.encoder.c_make_encoder is not None:  # CPython: the C encoder made once is in use
        assert jsonio._ENCODE[True][0] is not jsonio._ENCODERS[True][0].encode
    value = {"a": [1, 2.5, "\u00e9\n\u2028", None, True, {}], "b": 1e300, "c": -0.0}
    assert jsonio.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    with pytest.raises(ValueError):
        jsonio.dumps({"x": math.inf}, strict=True)
    assert jsonio.dumps({"x": math.inf}) == b'{"x":Infinity}'
    assert jsonio.dumps({"k": "\ud83d"}) == b'{"k":"\\ud83d"}'  # a lone surrogate: all escaped


def test_members_dropped_count_against_the_members_read_again(monkeypatch):
    """The text is read again as it was sent: keys the repair dropped count too (a body of many unknown keys
    is written anew, not read again key by key)."""
    calls = _count_reads(monkeypatch)
    raw = json.dumps({**{f"x{i}": 0 for i in range(jsonio.SPLICE_MEMBERS + 1)}, "big": BIG}).encode()
    out = _repaired(raw, lambda d: [d.pop(k) for k in list(d) if k != "big"])
    assert out == json.dumps({"big": BIG}, separators=(",", ":")).encode()
    assert calls == [0]  # began reading, stopped at SPLICE_MEMBERS, wrote anew
