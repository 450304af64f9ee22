"""The Responses bridge's entry points (mistral_compat/responses/bridge.py) and its package layout: one parse
and one write per request, the request kept as it came for the answer's echo, the public API addon.py uses."""

from __future__ import annotations

import json

import pytest

from mistral_compat import jsonio, responses
from mistral_compat.changes import DROPPED, RENAMED, TOOL_ID
from mistral_compat.rules import builtin

BODY = {
    "model": "m",
    "instructions": "be brief",
    "input": [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "call_abc123def456ghi789jkl012", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_abc123def456ghi789jkl012", "output": "sunny"},
    ],
    "tools": [{"type": "function", "name": "get_weather"}],
    "seed": 7,
    "store": False,
}
RAW = json.dumps(BODY)[:-1].encode() + b', "temperature": 1.0000000000000001}'  # more digits than a double holds


def test_the_api_addon_uses_is_there():
    for name in (
        "match_path",
        "STORED_MESSAGE",
        "bridge_request",
        "Bridged",
        "error_body",
        "StreamTranslator",
        "translate_answer",
        "BridgeError",
        "request_to_chat",
        "chat_to_response",
    ):
        assert hasattr(responses, name), name
    assert set(responses.Bridged._fields) >= {"body", "changes", "error", "param", "code", "request"}


def test_a_request_is_parsed_once_and_written_once(monkeypatch):
    rules = builtin()
    decodes, writes = [], []
    scan, decoder, strict_pieces, real_dumps = jsonio._SCAN, jsonio._DECODER, jsonio._STRICT_PIECES, jsonio.dumps

    class CountingDecoder:
        def decode(self, text):
            decodes.append(text)
            return decoder.decode(text)

    def counting_scan(text, pos):
        decodes.append(text)
        return scan(text, pos)

    def counting_pieces(value, indent):
        writes.append(value)
        return strict_pieces(value, indent)

    def counting_dumps(value, **kw):
        writes.append(value)
        return real_dumps(value, **kw)

    monkeypatch.setattr(jsonio, "_SCAN", counting_scan)
    monkeypatch.setattr(jsonio, "_DECODER", CountingDecoder())
    monkeypatch.setattr(jsonio, "_STRICT_PIECES", counting_pieces)
    monkeypatch.setattr(jsonio, "dumps", counting_dumps)
    monkeypatch.setattr(json, "loads", lambda *a, **k: pytest.fail("a second parse"))
    bridged = responses.bridge_request(rules, RAW)
    assert bridged.error is None and len(decodes) == 1 and len(writes) == 1


def test_the_chat_body_has_the_bridges_translations_then_the_chat_rewrites_repairs():
    bridged = responses.bridge_request(builtin(), RAW)
    chat = json.loads(bridged.body)
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    new_id = chat["messages"][2]["tool_calls"][0]["id"]
    assert chat["messages"][3]["tool_call_id"] == new_id and len(new_id) == 9
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
    ]  # nested by the bridge, parameters added by the chat rewrite
    assert chat["random_seed"] == 7 and "store" not in chat
    assert b'"temperature":1.0000000000000001' in bridged.body  # numbers as the client wrote them
    kinds = [(c.kind, c.path) for c in bridged.changes]
    assert kinds.index((DROPPED, "store")) < kinds.index((RENAMED, "seed"))  # the bridge's first
    assert (TOOL_ID, "messages[2].tool_calls[0].id") in kinds


def test_the_request_is_kept_as_the_client_sent_it_for_the_echo():
    bridged = responses.bridge_request(builtin(), RAW)
    assert bridged.request == json.loads(RAW)
    assert bridged.request["tools"] == [{"type": "function", "name": "get_weather"}]  # not the repaired copy
    assert bridged.request["input"][1]["call_id"] == "call_abc123def456ghi789jkl012"
    echo = json.loads(
        jsonio.dumps(responses.chat_to_response({"choices": [{"message": {"content": "ok"}}]}, bridged.request))
    )
    assert echo["temperature"] == 1.0 and echo["tools"][0]["name"] == "get_weather"


@pytest.mark.parametrize(
    "body, error, param, code, has_request",
    [
        (
            b"{",
            "the body is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
            None,
            None,
            False,
        ),
        (b"[]", "the body is a JSON array, but Mistral expects a JSON object", None, None, False),
        (
            b'{"input": "x", "previous_response_id": "resp_1"}',
            responses.UNSUPPORTED["previous_response_id"],
            "previous_response_id",
            "unsupported_parameter",
            True,
        ),
        (
            b'{"input": [{"type": "item_reference", "id": "x"}]}',
            "item_reference needs items stored by the server; Mistral stores none. Send the item itself",
            "input[0]",
            "unsupported_value",
            True,
        ),
    ],
)
def test_what_cannot_be_sent_says_why(body, error, param, code, has_request):
    bridged = responses.bridge_request(builtin(), body)
    assert bridged.body is None and bridged.changes == []
    assert (bridged.error, bridged.param, bridged.code) == (error, param, code)
    assert (bridged.request is not None) is has_request


def test_a_chat_body_too_deep_to_write_is_refused(monkeypatch):
    deep: list = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    doc = jsonio.Document({"model": "m", "input": "x", "metadata": deep})
    monkeypatch.setattr(jsonio, "parse", lambda body: doc)
    bridged = responses.bridge_request(builtin(), b"{}")
    assert bridged.body is None and bridged.error == "the JSON body is nested too deeply"


@pytest.mark.parametrize(
    "content_type, content, status, expected_type",
    [
        (
            "application/json",
            b'{"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}',
            200,
            "application/json",
        ),
        (
            "text/event-stream",
            b'data: {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}'
            b"\n\ndata: [DONE]\n\n",
            200,
            "text/event-stream",
        ),
        ("application/json", b"<html>", 502, "application/json"),
    ],
)
def test_translate_answer(content_type, content, status, expected_type):
    got_status, got_type, body = responses.translate_answer(200, content_type, content, {"model": "m"})
    assert (got_status, got_type) == (status, expected_type)
    if expected_type == "text/event-stream":
        assert body.rstrip().endswith(b"}") and b"event: response.completed" in body
    elif status == 200:
        assert json.loads(body)["output"][0]["content"][0]["text"] == "ok"
    else:
        assert json.loads(body)["error"]["message"] == (
            "mistral-compat: Mistral's answer to the chat completion is not a JSON object"
        )
