"""Unit tests of the error shapes (mistral_compat/errors.py)."""

from __future__ import annotations

import json

from mistral_compat import errors


def test_proxy_error_has_both_shapes_with_the_same_message():
    body = json.loads(errors.proxy_error(400, "the body is not valid JSON", "messages"))
    assert body == {
        "object": "error",
        "message": "mistral-compat: the body is not valid JSON",
        "type": "invalid_request_error",
        "param": "messages",
        "code": None,
        "error": {
            "message": "mistral-compat: the body is not valid JSON",
            "type": "invalid_request_error",
            "param": "messages",
            "code": None,
        },
    }


def test_status_gives_the_type():
    assert errors.default_type(401) == "authentication_error"
    assert errors.default_type(429) == "rate_limit_error"
    assert errors.default_type(503) == "server_error"
    assert errors.default_type(400) == "invalid_request_error"


def test_describe_non_json_and_odd_bodies():
    assert (
        errors.describe(502, b"<html>Bad Gateway</html>").message
        == "Mistral answered HTTP 502: <html>Bad Gateway</html>"
    )
    assert errors.describe(500, b"").message == "Mistral answered HTTP 500"
    assert errors.describe(400, b'{"error": "plain"}').message == "plain"
    assert errors.describe(400, b'{"message": {"x": 1}}').message == '{"x": 1}'
    assert errors.describe(400, b"[1, 2]").message == "Mistral answered HTTP 400: [1, 2]"


def test_long_detail_lists_are_cut():
    detail = [{"loc": ["body", "messages", i], "msg": "bad"} for i in range(100)]
    info = errors.describe(422, json.dumps({"detail": detail}).encode())
    assert info.param == "messages[0]" and info.message.endswith("; and 80 more")
    assert info.message.count("bad") == errors.MAX_DETAILS


def test_with_openai_error_leaves_what_it_cannot_extend():
    assert errors.with_openai_error(500, b"<html/>") is None
    assert errors.with_openai_error(500, b'{"error": {"message": "x"}}') is None
    assert errors.with_openai_error(500, b"{" * 100000) is None  # not JSON (too deep): passed on
    assert errors.with_openai_error(500, b"{" + b" " * errors.MAX_ERROR_BODY + b"}") is None
    body = json.loads(errors.with_openai_error(404, b'{"detail":"Not Found"}'))
    assert body == {
        "detail": "Not Found",
        "error": {"message": "Not Found", "type": "not_found_error", "param": None, "code": None},
    }


def test_error_bodies_are_written_by_the_one_jsonio_writer():
    from mistral_compat import jsonio

    assert errors.json_bytes is jsonio.dumps
    assert b'"message":"mistral-compat: caf\xc3\xa9"' in errors.proxy_error(400, "café")  # text as text
    body = errors.proxy_error(400, "half an emoji: \ud83d")  # a lone surrogate from the client's text: escaped
    assert b"\\ud83d" in body and json.loads(body)["error"]["message"] == "mistral-compat: half an emoji: \ud83d"
