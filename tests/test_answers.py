"""Unit tests of the answer translation (mistral_compat/answers.py) on Mistral's recorded shapes
(../notes: vercel/ai fixtures issue-13703-mistral-thinking, mistral-reasoning, mistral-tool-call)."""

from __future__ import annotations

import json
import random

import pytest

from mistral_compat import answers
from mistral_compat.answers import StreamTranslator, split_content, translate_json

THINK = [{"type": "thinking", "thinking": [{"type": "text", "text": "17*23 = 391."}], "closed": True}]


def completion(message: dict, finish: str = "stop") -> dict:
    return {
        "id": "a1b2",
        "object": "chat.completion",
        "created": 1,
        "model": "mistral-small-latest",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 3,
            "total_tokens": 8,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }


def chunk(delta: dict, finish=None, **extra) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def sse(*objs, eol: str = "\n") -> bytes:
    return (
        "".join(f"data: {json.dumps(o, separators=(',', ':'))}{eol}{eol}" for o in objs).encode()
        + f"data: [DONE]{eol}{eol}".encode()
    )


def events(stream: bytes) -> list:
    out = []
    for block in stream.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


def run(stream: bytes, pieces: int = 1, seed: int = 0) -> tuple[bytes, StreamTranslator]:
    """Feed the stream split at random places into `pieces` parts."""
    t = StreamTranslator()
    cuts = sorted(random.Random(seed).sample(range(1, len(stream)), pieces - 1)) if pieces > 1 else []
    out = b""
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        out += t.feed(stream[a:b])
    return out + t.close(), t


# -- content -------------------------------------------------------------------------------------------


def test_split_content_separates_text_thinking_and_other_chunks():
    content = [
        *THINK,
        {"type": "text", "text": "39"},
        {"type": "reference", "reference_ids": [1]},
        {"type": "text", "text": "1"},
    ]
    assert split_content(content) == ("391", "17*23 = 391.", ["reference"])
    assert split_content("plain") == ("plain", "", [])
    assert split_content(THINK) == (None, "17*23 = 391.", [])
    assert split_content([{"type": "thinking", "thinking": "as a string"}]) == (None, "as a string", [])
    assert split_content([1, None, {"no": "type"}]) == (None, "", ["untyped"])


def test_reasoning_answer_becomes_text_and_reasoning_content():
    body = json.dumps(
        completion({"role": "assistant", "tool_calls": None, "content": [*THINK, {"type": "text", "text": "391"}]})
    ).encode()
    new, notes = translate_json(200, body)
    message = json.loads(new)["choices"][0]["message"]
    assert message == {"role": "assistant", "tool_calls": None, "content": "391", "reasoning_content": "17*23 = 391."}
    assert notes == [answers.CONTENT_REASONING]
    # everything else as Mistral sent it
    assert {k: v for k, v in json.loads(new).items() if k != "choices"} == {
        k: v for k, v in json.loads(body).items() if k != "choices"
    }


def test_reference_chunks_leave_the_text_and_say_so():
    body = json.dumps(
        completion(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Paris is the capital"},
                    {"type": "reference", "reference_ids": [1]},
                    {"type": "text", "text": " of France."},
                ],
            }
        )
    ).encode()
    new, notes = translate_json(200, body)
    message = json.loads(new)["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Paris is the capital of France."}
    assert notes == [answers.CONTENT_TEXT, answers.left_out("reference")]


def test_tool_calls_get_type_and_object_arguments_become_text():
    body = json.dumps(
        completion(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "gSIMJiOkT", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                    {"id": "h7TRjw9Qa", "function": {"name": "time", "arguments": {"tz": "CET"}}},
                ],
            },
            "tool_calls",
        )
    ).encode()
    new, notes = translate_json(200, body)
    calls = json.loads(new)["choices"][0]["message"]["tool_calls"]
    assert calls == [
        {"id": "gSIMJiOkT", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}, "type": "function"},
        {"id": "h7TRjw9Qa", "function": {"name": "time", "arguments": '{"tz":"CET"}'}, "type": "function"},
    ]
    assert "index" not in calls[0]  # not in a whole answer: OpenAI has none there
    assert "content" not in json.loads(new)["choices"][0]["message"]  # nothing added that Mistral did not send
    assert notes == [answers.TOOL_TYPE, answers.TOOL_ARGUMENTS]


def test_model_length_reads_as_length_and_error_stays():
    new, notes = translate_json(
        200, json.dumps(completion({"role": "assistant", "content": "ab"}, "model_length")).encode()
    )
    assert json.loads(new)["choices"][0]["finish_reason"] == "length" and notes == [answers.FINISH]
    assert translate_json(200, json.dumps(completion({"role": "assistant", "content": "ab"}, "error")).encode()) == (
        None,
        [],
    )


def test_an_answer_needing_nothing_is_left_alone():
    body = json.dumps(
        completion(
            {
                "role": "assistant",
                "content": "ok",
                "tool_calls": [{"id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            }
        ),
        indent=1,
    ).encode()
    assert translate_json(200, body) == (None, [])
    assert translate_json(200, b"not json [") == (None, [])
    assert translate_json(200, b'{"content": [1, 2]}') == (None, [])  # no choices: nothing to do


def test_numbers_and_unicode_in_a_translated_answer_are_kept_exactly():
    body = (
        '{"id":"x","choices":[{"index":0,"message":{"content":[{"type":"text","text":"é😀"}]},'
        '"logprobs":1.0000000000000001,"finish_reason":"stop"}],"usage":{"big":123456789012345678901234}}'
    ).encode()
    new, _ = translate_json(200, body)
    assert b'"logprobs":1.0000000000000001' in new and b"123456789012345678901234" in new
    assert json.loads(new)["choices"][0]["message"]["content"] == "é😀"


# -- errors --------------------------------------------------------------------------------------------

ERRORS = [
    (
        422,
        {
            "object": "error",
            "message": {
                "detail": [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", "messages", 1, "content"],
                        "msg": "Extra inputs are not permitted",
                        "input": "x",
                    },
                    {"type": "missing", "loc": ["body", "model"], "msg": "Field required", "input": {}},
                ]
            },
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
        "messages[1].content: Extra inputs are not permitted; model: Field required",
        "messages[1].content",
        "invalid_request_error",
        None,
    ),
    (
        422,
        {"detail": [{"type": "missing", "loc": ["body", "model"], "msg": "Field required", "input": {}}]},
        "model: Field required",
        "model",
        "invalid_request_error",
        None,
    ),
    (401, {"message": "Unauthorized", "request_id": "abc"}, "Unauthorized", None, "authentication_error", None),
    (401, {"detail": "Unauthorized"}, "Unauthorized", None, "authentication_error", None),
    (429, {"message": "Requests rate limit exceeded"}, "Requests rate limit exceeded", None, "rate_limit_error", None),
    (
        429,
        {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "param": None,
            "code": "1300",
            "raw_status_code": 429,
        },
        "Rate limit exceeded",
        None,
        "rate_limited",
        "1300",
    ),
]


@pytest.mark.parametrize("status,body,message,param,type_,code", ERRORS)
def test_errors_get_openai_error_object_beside_mistral_fields(status, body, message, param, type_, code):
    new, notes = translate_json(status, json.dumps(body).encode())
    out = json.loads(new)
    assert out.pop("error") == {"message": message, "type": type_, "param": param, "code": code}
    assert out == body  # Mistral's own fields, as they were
    assert notes == [answers.ERROR]


@pytest.mark.parametrize(
    "body",
    [b"", b"<html>502 Bad Gateway</html>", b"[1]", b'"text"', b'{"error": {"message": "already OpenAI", "type": "x"}}'],
)
def test_error_bodies_that_are_not_mistral_objects_pass_as_they_are(body):
    assert translate_json(500, body) == (None, [])


# -- streams -------------------------------------------------------------------------------------------

REASONING_STREAM = sse(
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "17*23"}]}]}),
    chunk(
        {
            "content": [
                {"type": "thinking", "thinking": [{"type": "text", "text": " = 391."}], "closed": True},
                {"type": "text", "text": "3"},
            ]
        }
    ),
    chunk({"content": "91"}, "stop", usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}, p="abc"),
)


@pytest.mark.parametrize("pieces", [1, 2, 7, 40])
def test_reasoning_stream_split_anywhere(pieces):
    for seed in range(5):
        out, t = run(REASONING_STREAM, pieces, seed)
        deltas = [e["choices"][0]["delta"] for e in events(out)]
        assert deltas == [
            {"role": "assistant", "content": ""},
            {"content": None, "reasoning_content": "17*23"},
            {"content": "3", "reasoning_content": " = 391."},
            {"content": "91"},
        ]
        assert events(out)[-1]["p"] == "abc" and events(out)[-1]["usage"]["total_tokens"] == 3
        assert out.endswith(b"data: [DONE]\n\n")
        assert t.notes.list() == [answers.CONTENT_REASONING]


def test_events_needing_no_change_pass_byte_for_byte():
    out, _ = run(REASONING_STREAM, 9)
    raw_events = REASONING_STREAM.split(b"\n\n")
    new_events = out.split(b"\n\n")
    assert new_events[0] == raw_events[0] and new_events[3:] == raw_events[3:]
    assert new_events[1] != raw_events[1]


def test_a_stream_needing_no_change_is_byte_identical_with_crlf_comments_and_odd_framing():
    stream = (
        b": keep-alive\r\n\r\n"
        + sse(chunk({"role": "assistant", "content": "a"}), chunk({"content": "b"}, "stop"), eol="\r\n")
        + b'event: ping\r\nid: 7\r\n\r\ndata: {"unterminated": true}'
    )
    for pieces in (1, 3, 50):
        out, t = run(stream, pieces)
        assert out == stream and not t.notes


def test_crlf_stream_is_translated_with_its_line_ends():
    stream = sse(chunk({"content": [{"type": "text", "text": "x"}]}), eol="\r\n")
    out, _ = run(stream, 4)
    assert (
        out
        == (
            'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
            '[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\r\n\r\ndata: [DONE]\r\n\r\n'
        ).encode()
    )


def test_multi_line_data_and_other_fields_are_kept():
    raw = b'id: 5\nevent: message\ndata: {"choices":[{"index":0,"delta":\ndata: {"content":[{"type":"text","text":"x"}]}}]}\n\n'
    out, _ = run(raw)
    assert out.startswith(b"id: 5\nevent: message\ndata: {") and out.endswith(b"\n\n")
    assert events(out)[0]["choices"][0]["delta"] == {"content": "x"}


MISTRAL_TOOL_STREAM = sse(
    chunk({"role": "assistant", "content": ""}),
    chunk(
        {
            "content": None,
            "tool_calls": [
                {"id": "gSIMJiOkT", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                {"id": "Qw3rTy7Ui", "function": {"name": "time", "arguments": "{}"}},
            ],
        },
        "tool_calls",
        usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    ),
)


def test_parallel_tool_calls_in_one_delta_get_type_and_separate_indexes():
    out, t = run(MISTRAL_TOOL_STREAM, 5)
    calls = events(out)[1]["choices"][0]["delta"]["tool_calls"]
    assert [(c["index"], c["type"], c["id"], c["function"]["name"]) for c in calls] == [
        (0, "function", "gSIMJiOkT", "weather"),
        (1, "function", "Qw3rTy7Ui", "time"),
    ]
    assert t.notes.list() == [answers.TOOL_TYPE, answers.TOOL_INDEX, answers.TOOL_FINISH]
    # the finish_reason and usage come in an event of their own after the calls, as OpenAI sends them
    calls_event, finish_event = events(out)[1:]
    assert calls_event["choices"][0]["finish_reason"] is None and "usage" not in calls_event
    assert finish_event["choices"] == [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]
    assert finish_event["usage"]["total_tokens"] == 3 and finish_event["id"] == calls_event["id"]
    assert out.endswith(b"data: [DONE]\n\n")


def test_tool_call_index_counts_across_the_whole_stream_per_choice():
    def call(i):
        return {"id": f"abcdefgh{i}", "function": {"name": "f", "arguments": "{}"}}

    stream = sse(
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [call(1)]}},
                {"index": 1, "delta": {"tool_calls": [call(2)]}},
            ]
        },
        {"choices": [{"index": 0, "delta": {"tool_calls": [call(3), call(4)]}}]},
        {"choices": [{"index": 1, "delta": {"tool_calls": [call(5)]}}]},
    )
    out, _ = run(stream)
    got = [(c["index"], ch["index"]) for e in events(out) for ch in e["choices"] for c in ch["delta"]["tool_calls"]]
    assert got == [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1)]


def test_incremental_tool_calls_with_index_are_kept():
    # models Mistral relays from other vendors stream calls piece by piece, with index and type
    stream = sse(
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": ""}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
    )
    out, t = run(stream, 3)
    assert out == stream and not t.notes
    # a finish_reason in the chunk of a call's last piece gets an event of its own
    out, t = run(
        stream.replace(b'"finish_reason":null}]}\n\ndata: [DONE]', b'"finish_reason":"tool_calls"}]}\n\ndata: [DONE]')
    )
    assert t.notes.list() == [answers.TOOL_FINISH]
    assert [e["choices"][0]["finish_reason"] for e in events(out)] == [None, None, None, "tool_calls"]
    # and a later call without an index continues the count
    more = sse(
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]
            }
        ),
        chunk({"tool_calls": [{"id": "bcdefghij", "function": {"name": "g", "arguments": "{}"}}]}),
    )
    out, _ = run(more)
    assert events(out)[1]["choices"][0]["delta"]["tool_calls"][0]["index"] == 1


def test_stream_finish_reason_and_error_event():
    stream = sse(
        chunk({"content": "x"}, "model_length"),
        {
            "object": "error",
            "message": "Internal server error",
            "type": "internal_server_error",
            "param": None,
            "code": "3000",
        },
    )
    out, t = run(stream)
    first, error = events(out)
    assert first["choices"][0]["finish_reason"] == "length"
    assert error["error"] == {
        "message": "Internal server error",
        "type": "internal_server_error",
        "param": None,
        "code": "3000",
    }
    assert error["object"] == "error"
    assert t.notes.list() == [answers.FINISH, answers.ERROR]


def test_garbage_events_pass_as_they_are():
    stream = b'data: {"content":[ not json\n\ndata: [1,2]\n\ndata: "tool_calls"\n\n'
    out, t = run(stream, 4)
    assert out == stream and not t.notes


@pytest.mark.parametrize(
    "ua,native",
    [
        ("speakeasy-sdk/python 3.7.0 2.935.1 1.0.0 mistralai", True),
        ("speakeasy-sdk/typescript 2.7.0 2.884.13 1.0.0 @mistralai/mistralai", True),
        ("speakeasy-sdk/python 2.2.0 2.935.1 1.0.0 mistralai-azure", True),
        ("mistral-client-python/0.4.2", True),
        ("speakeasy-sdk/python 1.0.0 2.0 1.0.0 someothersdk", False),
        ("OpenAI/Python 1.66.0", False),
        ("AsyncOpenAI/Python 2.8.0", False),
        ("", False),
    ],
)
def test_mistral_native_clients(ua, native):
    assert answers.is_mistral_native(ua) is native


def test_user_named_native_clients():
    assert answers.is_mistral_native("MyApp/2.0 (mistral-native)", ("myapp/",))
    assert not answers.is_mistral_native("OtherApp/2.0", ("myapp/",))


def test_what_is_done_to_a_flows_answers():
    from mistral_compat import state

    openai_ua, sdk_ua = "OpenAI/Python 1.0", "speakeasy-sdk/python 1.0.0 2.0 1.0.0 mistralai"
    assert answers.answers_for(state.REWRITE, "chat/completions", openai_ua, "auto") == state.CHAT_ANSWERS
    assert answers.answers_for(state.REWRITE, "embeddings", openai_ua, "auto") == state.ERROR_ANSWERS
    assert answers.answers_for(state.PASSED, None, openai_ua, "openai") == state.ERROR_ANSWERS
    assert answers.answers_for(state.REWRITE, "chat/completions", sdk_ua, "auto") is None
    assert answers.answers_for(state.REWRITE, "chat/completions", sdk_ua, "openai") == state.CHAT_ANSWERS
    assert answers.answers_for(state.REWRITE, "chat/completions", "MyApp/2", "auto", ("myapp",)) is None
    assert answers.answers_for(state.REWRITE, "chat/completions", openai_ua, "mistral") is None
    for kind in (state.BRIDGE, state.STORED, state.PREFLIGHT):
        assert answers.answers_for(kind, "responses", openai_ua, "openai") is None
