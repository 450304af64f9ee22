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
