"""The /v1/responses bridge core (mistral_compat/responses/): Responses requests -> Mistral chat bodies,
chat completions -> Responses objects, Mistral errors -> the Responses error shape, and Mistral's chunk
stream -> the Responses event stream, checked against the installed openai SDK's own types."""

from __future__ import annotations

import copy
import importlib
import json
import random
import re

import openai
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("openai.lib.streaming.responses", reason="needs an openai SDK with the Responses API (1.66+)")

from fake_mistral import chat_chunks, chat_completion, validate  # noqa: E402
from openai.lib.streaming.responses._responses import ResponseStreamState  # noqa: E402 (behind responses.stream())
from openai.types.responses import (  # noqa: E402
    Response,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseStreamEvent,
)

from mistral_compat import jsonio  # noqa: E402
from mistral_compat import responses as bridge  # noqa: E402
from mistral_compat.changes import DROPPED, REMOVED, RENAMED, TOOL_ID, VALUE, Change  # noqa: E402
from mistral_compat.responses import (  # noqa: E402
    BridgeError,
    StreamTranslator,
    chat_to_response,
    error_body,
    request_to_chat,
)
from mistral_compat.rewrite import rewrite  # noqa: E402
from mistral_compat.rules import builtin  # noqa: E402

MODEL = "mistral-small-latest"
CHAT = "/v1/chat/completions"
FILE_UUID = "1f6d5cf2-6c55-4b0a-9d55-3e8a2e6f0c11"
PDF = "data:application/pdf;base64,JVBERi0="
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
TOOL_ID_RE = re.compile(r"[a-zA-Z0-9]{9}")

CITY_ARGS = '{"city":"Paris"}'  # the fake fills required string parameters with "Paris"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}, "strict": False}


def to_mistral(body: dict) -> tuple[dict, list[Change]]:
    """The bridge, then the normal chat rewrite, then the strict fake's validation: what Mistral gets."""
    chat, changes = request_to_chat(body)
    raw = json.dumps(chat).encode()
    result = rewrite(builtin(), "chat/completions", raw)
    assert result.error is None
    final = result.body or raw
    outcome = validate(CHAT, final)
    assert outcome is None, outcome
    return json.loads(final), changes + result.changes


def responses(**fields) -> dict:
    return {"model": MODEL, "input": "Hello", **fields}


def paths(changes, kind=None) -> list[str]:
    return [c.path for c in changes if kind is None or c.kind == kind]


# --- requests: the translation table ------------------------------------------------------------------


def test_string_input():
    chat, changes = to_mistral({"model": MODEL, "input": "Hello"})
    assert chat == {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}]}
    assert changes == [Change(RENAMED, "input", "messages")]


def test_instructions_become_the_first_system_message():
    chat, changes = to_mistral(responses(instructions="Answer in French."))
    assert chat["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
    ]
    assert Change(RENAMED, "instructions", "messages[0] (system)") in changes


def test_message_items_with_every_part_type():
    body = responses(
        input=[
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Use metric units."}]},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Look at these."},
                    {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "high"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "original"},
                    {"type": "input_image", "file_id": FILE_UUID, "detail": "auto"},
                    {"type": "input_file", "file_data": PDF, "filename": "a.pdf"},
                    {"type": "input_file", "file_data": "JVBERi0=", "filename": "b.pdf"},
                    {"type": "input_file", "file_url": "https://example.com/c.pdf"},
                    {"type": "input_file", "file_id": FILE_UUID},
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Seen.", "annotations": [], "logprobs": []}],
            },
            {"role": "assistant", "content": [{"type": "refusal", "refusal": " Not that one."}]},
            {"role": "user", "content": "And now?"},
        ]
    )
    chat, changes = to_mistral(body)
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": [{"type": "text", "text": "Use metric units."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look at these."},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "file", "file_id": FILE_UUID},
                {"type": "document_url", "document_url": PDF, "document_name": "a.pdf"},
                {"type": "document_url", "document_url": PDF, "document_name": "b.pdf"},
                {"type": "document_url", "document_url": "https://example.com/c.pdf"},
                {"type": "file", "file_id": FILE_UUID},
            ],
        },
        # consecutive assistant items are one assistant turn
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Seen."}, {"type": "text", "text": " Not that one."}],
        },
        {"role": "user", "content": "And now?"},
    ]
    assert Change(VALUE, "input[2].content[2].detail", "'original' -> 'high'") in changes
    assert {
        "input[3].id",
        "input[3].status",
        "input[3].content[0].annotations",
        "input[3].content[0].logprobs",
        "input[2].content[3].detail",
    } <= set(paths(changes, DROPPED))
    assert "input[2].content[5].file_data" in paths(changes, VALUE)


def test_function_call_round_trip_keeps_ids_paired():
    body = responses(
        tools=[WEATHER, TIME],
        input=[
            {"role": "user", "content": "Weather and time in Paris?"},
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_Wx3bq1VJg8zKMq7aS2nT0pLd",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "status": "completed",
            },
            {"type": "function_call", "id": "fc_2", "call_id": "D681PevKs", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_Wx3bq1VJg8zKMq7aS2nT0pLd", "output": "sunny"},
            {
                "type": "function_call_output",
                "call_id": "D681PevKs",
                "output": [{"type": "input_text", "text": "12:00"}],
            },
        ],
    )
    chat, changes = to_mistral(body)
    user, assistant, weather, clock = chat["messages"]
    assert assistant["content"] == [{"type": "text", "text": "Let me check."}]
    first, second = assistant["tool_calls"]  # both calls in ONE assistant message, after its text
    assert first["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert TOOL_ID_RE.fullmatch(first["id"]) and first["id"] == weather["tool_call_id"]
    assert second["id"] == clock["tool_call_id"] == "D681PevKs"  # a valid Mistral id is kept
    assert weather == {"role": "tool", "tool_call_id": first["id"], "content": "sunny", "name": "get_weather"}
    assert clock["content"] == [{"type": "text", "text": "12:00"}] and clock["name"] == "get_time"
    assert Change(RENAMED, "input[2].call_id", "messages[1].tool_calls[0].id") in changes
    assert Change(RENAMED, "input[4].call_id", "messages[2].tool_call_id") in changes
    assert paths(changes, TOOL_ID) == ["messages[1].tool_calls[0].id", "messages[2].tool_call_id"]


def test_function_call_after_a_tool_result_starts_a_new_assistant_turn():
    chat, _ = to_mistral(
        responses(
            tools=[WEATHER],
            input=[
                {"role": "user", "content": "Paris, then Rome"},
                {
                    "type": "function_call",
                    "call_id": "aaaaaaaa1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {"type": "function_call_output", "call_id": "aaaaaaaa1", "output": "sunny"},
                {
                    "type": "function_call",
                    "call_id": "aaaaaaaa2",
                    "name": "get_weather",
                    "arguments": '{"city":"Rome"}',
                },
                {"type": "function_call_output", "call_id": "aaaaaaaa2", "output": "rain"},
            ],
        )
    )
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant", "tool", "assistant", "tool"]
    assert "content" not in chat["messages"][1]


def test_reasoning_items_are_left_out():
    chat, changes = to_mistral(
        responses(
            input=[
                {"role": "user", "content": "Hi"},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "hm"}],
                },
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Bye"},
            ]
        )
    )
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant", "user"]
    assert paths(changes, REMOVED) == ["input[1]"]


def test_function_tools_are_nested():
    chat, changes = to_mistral(
        responses(
            tools=[
                WEATHER,
                dict(TIME, defer_loading=False),
                {"type": "function", "function": {"name": "chat_shaped", "parameters": {"type": "object"}}},
                {"type": "function", "name": "no_params", "parameters": None, "strict": None},
            ]
        )
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": WEATHER["parameters"],
                "strict": True,
            },
        },
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}, "strict": False},
        },
        {"type": "function", "function": {"name": "chat_shaped", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "no_params", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert Change(VALUE, "tools", "flat function tools -> {type: function, function: {...}}") in changes
    assert "tools[1].defer_loading" in paths(changes, DROPPED)


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "name": "get_time"}, {"type": "function", "function": {"name": "get_time"}}),
    ],
)
def test_tool_choice(choice, expected):
    chat, _ = to_mistral(responses(tools=[WEATHER, TIME], tool_choice=choice))
    assert chat["tool_choice"] == expected
    assert len(chat["tools"]) == 2


def test_allowed_tools_choice_narrows_the_tools():
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_time"}]}
    chat, changes = to_mistral(responses(tools=[WEATHER, TIME], tool_choice=choice))
    assert chat["tool_choice"] == "required"
    assert [t["function"]["name"] for t in chat["tools"]] == ["get_time"]
    assert "tool_choice" in paths(changes, VALUE)


@pytest.mark.parametrize(
    "fmt, expected",
    [
        (
            {
                "type": "json_schema",
                "name": "answer",
                "description": "The answer",
                "strict": True,
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
            },
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "description": "The answer",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}},
                        "additionalProperties": False,
                    },
                },
            },
        ),
        ({"type": "json_object"}, {"type": "json_object"}),
        ({"type": "text"}, {"type": "text"}),
    ],
)
def test_text_format_becomes_response_format(fmt, expected):
    chat, changes = to_mistral(responses(text={"format": fmt, "verbosity": "low"}))
    assert chat["response_format"] == expected
    assert Change(RENAMED, "text.format", "response_format") in changes
    assert "text.verbosity" in paths(changes, DROPPED)


def test_max_output_tokens_and_sampling_fields():
    chat, changes = to_mistral(
        responses(
            max_output_tokens=256,
            temperature=2.0,
            top_p=0.9,
            parallel_tool_calls=False,
            metadata={"trace": "abc"},
            prompt_cache_key="k1",
            stream=True,
            reasoning={"effort": "max", "summary": "auto"},
            seed=7,
            stop=["END"],
        )
    )
    assert chat == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 256,
        "temperature": 1.5,
        "top_p": 0.9,
        "parallel_tool_calls": False,
        "metadata": {"trace": "abc"},
        "prompt_cache_key": "k1",
        "stream": True,
        "reasoning_effort": "xhigh",
        "random_seed": 7,
        "stop": ["END"],
    }
    assert Change(RENAMED, "max_output_tokens", "max_tokens") in changes
    assert Change(RENAMED, "reasoning.effort", "reasoning_effort") in changes
    assert "reasoning.summary" in paths(changes, DROPPED)


def test_chat_names_sent_too_win():
    chat, changes = to_mistral(
        responses(
            max_output_tokens=10,
            max_tokens=20,
            text={"format": {"type": "json_object"}},
            response_format={"type": "text"},
        )
    )
    assert chat["max_tokens"] == 20 and chat["response_format"] == {"type": "text"}
    assert Change(DROPPED, "max_output_tokens", "max_tokens also sent") in changes
    assert Change(DROPPED, "text.format", "response_format also sent") in changes


DROPPABLE = {
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "truncation": "auto",
    "user": "u-1",
    "service_tier": "flex",
    "stream_options": {"include_obfuscation": False},
    "safety_identifier": "h",
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"ttl": "30m"},
    "top_logprobs": 3,
    "max_tool_calls": 4,
    "background": False,
    "previous_response_id": None,
    "conversation": None,
    "prompt": None,
    "context_management": [{"type": "compaction", "compact_threshold": 1000}],
    "access_programs": {"cyber": "standard"},
    "image": {"context_compression": "auto"},
}


@pytest.mark.parametrize("field", sorted(DROPPABLE))
def test_droppable_fields_are_dropped_and_logged(field):
    chat, changes = to_mistral(responses(**{field: DROPPABLE[field]}))
    assert field not in chat
    assert [c.path for c in changes if c.kind == DROPPED] == [field]


@pytest.mark.parametrize(
    "fields, param",
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"conversation": "conv_123"}, "conversation"),
        ({"conversation": {"id": "conv_123"}}, "conversation"),
        ({"prompt": {"id": "pmpt_123", "variables": {"a": "b"}}}, "prompt"),
        ({"background": True}, "background"),
        ({"moderation": {"model": "omni-moderation-latest"}}, "moderation"),
        ({"tools": [WEATHER, {"type": "web_search"}]}, "tools[1]"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0]"),
        ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0]"),
        (
            {
                "tools": [
                    {"type": "computer_use_preview", "display_width": 1, "display_height": 1, "environment": "linux"}
                ]
            },
            "tools[0]",
        ),
        ({"tools": [{"type": "mcp", "server_label": "x", "server_url": "https://x"}]}, "tools[0]"),
        ({"tools": [{"type": "custom", "name": "grammar"}]}, "tools[0]"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        (
            {
                "input": [
                    {"role": "user", "content": "hi"},
                    {"type": "web_search_call", "id": "ws_1", "status": "completed"},
                ]
            },
            "input[1]",
        ),
        (
            {
                "input": [
                    {"role": "system", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]},
                    {"role": "user", "content": "hi"},
                ]
            },
            "input[0].content[0]",
        ),
        ({"input": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]}, "input"),
        (
            {
                "input": [
                    {"role": "user", "content": "hi"},
                    {"type": "function_call", "call_id": "abcdefgh1", "name": "f", "arguments": "{}"},
                ]
            },
            "input",
        ),
        ({"input": []}, "input"),
        ({"input": None}, "input"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "messages"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format"),
    ],
)
def test_unsupported_features_raise_naming_the_field(fields, param):
    with pytest.raises(BridgeError) as info:
        request_to_chat(responses(**fields))
    assert info.value.param == param
    assert info.value.message and str(info.value) == info.value.message


def test_the_request_is_not_modified():
    body = responses(
        instructions="x",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        store=False,
    )
    before = copy.deepcopy(body)
    request_to_chat(body)
    assert body == before


def test_values_are_kept_exactly_and_deep_bodies_work():
    from mistral_compat.jsonio import parse

    depth = 900  # deeper than a recursive copy could go; jsonio parses it
    raw = (
        '{"model": "m", "input": "hi", "temperature": 0.30000000000000001, "metadata": '
        + '{"a": ' * depth
        + "1"
        + "}" * depth
        + "}"
    ).encode()
    doc = parse(raw)
    chat, _ = request_to_chat(doc.data)
    assert chat["temperature"] is doc.data["temperature"]  # jsonio's exact-literal placeholder, untouched
    assert chat["metadata"] == doc.data["metadata"] and chat["metadata"] is not doc.data["metadata"]


# --- responses: chat completion -> Response ---------------------------------------------------------------


def mistral_answer(body: dict) -> dict:
    """What the strict fake answers to the bridged request."""
    chat, _ = to_mistral(body)
    return chat_completion(chat)


def test_text_answer_parses_with_the_sdk():
    body = responses(instructions="Be brief.", temperature=0.2, metadata={"k": "v"}, max_output_tokens=50)
    obj = chat_to_response(mistral_answer(body), body)
    response = Response.model_validate(obj)
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.model == MODEL
    assert response.output_text == "ok"
    (message,) = response.output
    assert isinstance(message, ResponseOutputMessage) and message.id.startswith("msg_")
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    usage = response.usage
    assert usage.input_tokens > 0 and usage.output_tokens == 1
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0
    assert (response.instructions, response.temperature, response.metadata, response.max_output_tokens) == (
        "Be brief.",
        0.2,
        {"k": "v"},
        50,
    )


def test_tool_call_answer_and_the_next_turn():
    body = responses(input="Weather in Paris?", tools=[WEATHER, TIME], tool_choice="required")
    response = Response.model_validate(chat_to_response(mistral_answer(body), body))
    (call,) = response.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert call.name == "get_weather" and call.arguments == CITY_ARGS and call.id.startswith("fc_")
    assert TOOL_ID_RE.fullmatch(call.call_id) and call.status == "completed"
    assert [t.name for t in response.tools] == ["get_weather", "get_time"] and response.tool_choice == "required"

    # the client sends the call back with its output: the 9-character id reaches Mistral unchanged
    follow = responses(
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            *[o.model_dump(exclude_none=True) for o in response.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    chat, changes = to_mistral(follow)
    assert chat["messages"][1]["tool_calls"][0]["id"] == chat["messages"][2]["tool_call_id"] == call.call_id
    assert not paths(changes, TOOL_ID)


def test_mistral_shapes_of_the_answer():
    chat = {
        "id": "abc",
        "object": "chat.completion",
        "created": 1760000000,
        "model": "magistral-small-latest",
        "choices": [
            {
                "index": 0,
                "finish_reason": "length",
                "message": {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": [{"type": "text", "text": "Let me think."}]},
                        {"type": "text", "text": "The answer"},
                    ],
                    "tool_calls": [{"id": "Xy12Ab34C", "function": {"name": "f", "arguments": {"a": 1}}, "index": 0}],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "total_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
    request = responses(
        text={"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
        tool_choice={"type": "function", "name": "f"},
        reasoning={"effort": "high"},
    )
    response = Response.model_validate(chat_to_response(chat, request))
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    reasoning, message, call = response.output
    assert isinstance(reasoning, ResponseReasoningItem) and reasoning.content[0].text == "Let me think."
    assert response.output_text == "The answer" and message.status == "incomplete"
    assert call.call_id == "Xy12Ab34C" and json.loads(call.arguments) == {"a": 1}
    assert response.usage.input_tokens_details.cached_tokens == 4
    assert response.created_at == 1760000000 and response.model == "magistral-small-latest"
    assert response.text.format.type == "json_schema" and response.tool_choice.name == "f"
    assert response.reasoning.effort == "high"


def test_empty_answer_is_an_empty_message():
    chat = {
        "id": "x",
        "created": 1,
        "model": MODEL,
        "usage": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}],
    }
    response = Response.model_validate(chat_to_response(chat, responses()))
    assert response.output_text == "" and len(response.output) == 1 and response.usage is None


# --- errors --------------------------------------------------------------------------------------------


def error_of(data: bytes) -> dict:
    body = json.loads(data)
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_error_from_mistral_422_detail():
    status, upstream = validate(
        CHAT,
        json.dumps(
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "file", "file_id": "file-abc"}]}]}
        ).encode(),
    )
    error = error_of(error_body(status, json.dumps(upstream).encode()))
    assert error["type"] == "invalid_request_error" and error["code"] is None
    assert error["param"] == "messages[0].user.content[0].file.file_id"  # pydantic's loc, union tags included
    assert "messages[0].user.content[0].file.file_id: Input should be a valid UUID" in error["message"]


def test_error_from_mistral_400_with_code():
    upstream = {
        "object": "error",
        "message": "Unexpected tool call id x in tool results",
        "type": "invalid_request_message_order",
        "param": None,
        "code": "3230",
    }
    error = error_of(error_body(400, json.dumps(upstream).encode()))
    assert error == {
        "message": "Unexpected tool call id x in tool results",
        "type": "invalid_request_message_order",
        "param": None,
        "code": "3230",
    }


@pytest.mark.parametrize(
    "status, upstream, message, type_",
    [
        (401, b'{"message":"Unauthorized","request_id":"abc"}', "Unauthorized", "authentication_error"),
        (
            429,
            b'{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}',
            "Rate limit exceeded",
            "rate_limited",
        ),
        (404, b'{"detail":"Not Found"}', "Not Found", "not_found_error"),
        (
            502,
            b"<html><body>Bad gateway</body></html>",
            "Mistral answered HTTP 502: <html><body>Bad gateway</body></html>",
            "server_error",
        ),
        (500, b"", "Mistral answered HTTP 500", "server_error"),
    ],
)
def test_error_from_other_upstream_bodies(status, upstream, message, type_):
    error = error_of(error_body(status, upstream))
    assert (error["message"], error["type"]) == (message, type_)


def test_bridge_errors_carry_their_code():
    with pytest.raises(BridgeError) as e:
        request_to_chat({"model": MODEL, "input": "Hi", "tools": [{"type": "web_search"}]})
    assert e.value.code == "unsupported_value"
    with pytest.raises(BridgeError) as e:
        request_to_chat({"model": MODEL, "input": []})
    assert e.value.code is None and e.value.param == "input"


def test_error_of_our_own():
    error = error_of(
        error_body(400, None, "previous_response_id is not supported", "previous_response_id", "unsupported_parameter")
    )
    assert error == {
        "message": "mistral-compat: previous_response_id is not supported",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "unsupported_parameter",
    }
    # a request that is merely malformed names its param but is not "unsupported"
    assert error_of(error_body(400, None, "input is required", "input"))["code"] is None


# --- streaming -----------------------------------------------------------------------------------------


def sse(chunks: list[dict]) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    )


HEAD = {
    "id": "c3a1f8e2b7d94e0f8a6b5c4d3e2f1a0b",
    "object": "chat.completion.chunk",
    "created": 1760000000,
    "model": MODEL,
}
USAGE = {"prompt_tokens": 12, "total_tokens": 19, "completion_tokens": 7}


def chunk(delta: dict, finish: str | None = None, **extra) -> dict:
    return dict(HEAD, choices=[{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra)


TEXT_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Bonjour"}),
    chunk({"content": " à vous, "}),
    chunk({"content": "ça va ? 🙂"}),
    chunk({"content": ""}, "stop", usage=USAGE),
]
TOOL_STREAM_SAME_CHUNK = [  # Mistral's own shape: the whole call and the finish in one chunk
    chunk({"role": "assistant", "content": ""}),
    chunk(
        {
            "tool_calls": [
                {"id": "jzYBrKpt8", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}, "index": 0}
            ]
        },
        "tool_calls",
        usage=USAGE,
    ),
]
TEXT_THEN_TOOLS = [  # text, then two calls whose arguments come in pieces (the OpenAI way)
    chunk({"role": "assistant", "content": "Checking."}),
    chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "AAAAAAAA1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Rome"}'}}]}),
    chunk(
        {
            "tool_calls": [
                {"index": 1, "id": "AAAAAAAA2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ]
        }
    ),
    chunk({}, "tool_calls", usage=USAGE),
]
THINKING_STREAM = [
    chunk({"role": "assistant", "content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hmm, "}]}]}),
    chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "easy."}]}]}),
    chunk({"content": [{"type": "text", "text": "4"}]}),
    chunk({"content": ""}, "stop", usage=USAGE),
]


def feed_split(translator: StreamTranslator, data: bytes, rng: random.Random, close: bool = True) -> bytes:
    """Feed data cut at random byte boundaries (through UTF-8 sequences too)."""
    out, i = [], 0
    while i < len(data):
        n = rng.choice([1, 2, 3, 7, 40, 200])
        out.append(translator.feed(data[i : i + n]))
        i += n
    if close:
        out.append(translator.close())
    return b"".join(out)


def parse_events(data: bytes) -> list[dict]:
    """Responses SSE -> event dicts, each checked with the SDK's event union and fed to the SDK's own
    stream accumulator (the state machine behind client.responses.stream(), which checks the order)."""
    assert data.endswith(b"\n\n")
    events = []
    state = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    for block in data.decode("utf-8").split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        event = json.loads(data_line[len("data: ") :])
        assert event["type"] == name_line[len("event: ") :]
        state.handle_event(EVENT.validate_python(event))  # a type the SDK knows, with every required field
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def translate(chunks: list[dict], seed: int = 0, request: dict | None = None) -> list[dict]:
    translator = StreamTranslator(request or responses(stream=True))
    return parse_events(feed_split(translator, sse(chunks), random.Random(seed)))


def check_lifecycle(events: list[dict], terminal: str = "response.completed") -> Response:
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == terminal
    assert types.count(terminal) == 1
    ids = {e["response"]["id"] for e in events if "response" in e}
    assert len(ids) == 1 and ids.pop().startswith("resp_")
    added = [e["output_index"] for e in events if e["type"] == "response.output_item.added"]
    done = [e["output_index"] for e in events if e["type"] == "response.output_item.done"]
    assert added == done == list(range(len(added)))
    final = Response.model_validate(events[-1]["response"])
    assert [o.id for o in final.output] == [e["item"]["id"] for e in events if e["type"] == "response.output_item.done"]
    return final


@pytest.mark.parametrize("seed", range(8))
def test_text_stream_split_anywhere(seed):
    events = translate(TEXT_STREAM, seed)
    final = check_lifecycle(events)
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "Bonjour à vous, ça va ? 🙂" == final.output_text
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = next(e for e in events if e["type"] == "response.output_text.done")
    assert done["text"] == final.output_text
    assert final.status == "completed" and final.model == MODEL
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (12, 7, 19)
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []


@pytest.mark.parametrize("seed", range(4))
def test_tool_call_streams(seed):
    events = translate(TOOL_STREAM_SAME_CHUNK, seed)
    final = check_lifecycle(events)
    (call,) = final.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.call_id, call.name, call.arguments) == ("jzYBrKpt8", "get_weather", '{"city": "Paris"}')
    assert [e["type"] for e in events[2:]] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = events[2]["item"]
    assert added["type"] == "function_call" and added["arguments"] == "" and added["status"] == "in_progress"
    assert events[4]["arguments"] == '{"city": "Paris"}' and events[4]["name"] == "get_weather"
    assert final.usage.total_tokens == 19


def test_the_fakes_tool_call_stream():
    chat, _ = to_mistral(responses(stream=True, tools=[WEATHER], tool_choice="required"))
    events = translate(list(chat_chunks(chat, 3)), request=responses(stream=True, tools=[WEATHER]))
    final = check_lifecycle(events)
    (call,) = final.output
    assert call.type == "function_call" and call.name == "get_weather" and call.arguments == CITY_ARGS
    assert TOOL_ID_RE.fullmatch(call.call_id)
    assert final.tools[0].name == "get_weather"


def test_text_then_two_tool_calls():
    events = translate(TEXT_THEN_TOOLS, 3)
    final = check_lifecycle(events)
    message, weather, clock = final.output
    assert final.output_text == "Checking."
    assert (weather.call_id, weather.arguments) == ("AAAAAAAA1", '{"city": "Rome"}')
    assert (clock.call_id, clock.name, clock.arguments) == ("AAAAAAAA2", "get_time", "{}")
    deltas = [
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta" and e["output_index"] == 1
    ]
    assert deltas == ['{"city": ', '"Rome"}']
    # each item is done before the next one is added
    order = [(e["type"], e.get("output_index")) for e in events if e["type"].startswith("response.output_item")]
    assert order == [
        ("response.output_item.added", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.output_item.done", 2),
    ]


def test_thinking_stream_becomes_a_reasoning_item():
    events = translate(THINKING_STREAM, 5)
    final = check_lifecycle(events)
    reasoning, message = final.output
    assert reasoning.type == "reasoning" and reasoning.content[0].text == "Hmm, easy."
    assert final.output_text == "4"
    assert [e["delta"] for e in events if e["type"] == "response.reasoning_text.delta"] == ["Hmm, ", "easy."]


def test_length_finish_is_incomplete():
    events = translate([chunk({"role": "assistant", "content": "Once upon"}), chunk({"content": ""}, "length")])
    final = check_lifecycle(events, "response.incomplete")
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert final.output[0].status == "incomplete" and final.usage is None


def test_events_leave_as_soon_as_their_chunk_is_complete():
    translator = StreamTranslator(responses(stream=True))
    first = b"data: " + json.dumps(TEXT_STREAM[1]).encode()
    assert translator.feed(first) == b""  # the line is not complete yet
    assert translator.feed(b"\n") == b""  # nor is the event (no blank line yet)
    out = parse_events(translator.feed(b"\n"))
    assert [e["type"] for e in out] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    more = translator.feed(b"data: " + json.dumps(TEXT_STREAM[2]).encode() + b"\r\n\r\n")
    assert b"response.output_text.delta" in more and b'"sequence_number":5' in more
    assert translator.feed(b": keep-alive comment\n\n") == b""


def test_a_huge_event_in_small_pieces():
    arguments = json.dumps({"blob": "x" * 2_000_000})
    data = sse(
        [
            chunk(
                {"tool_calls": [{"id": "BigCall01", "function": {"name": "f", "arguments": arguments}, "index": 0}]},
                "tool_calls",
            )
        ]
    )
    translator = StreamTranslator(responses(stream=True))
    out = b"".join(translator.feed(data[i : i + 1024]) for i in range(0, len(data), 1024)) + translator.close()
    final = check_lifecycle(parse_events(out))
    assert final.output[0].arguments == arguments


def test_a_cut_stream_fails():
    translator = StreamTranslator(responses(stream=True))
    data = sse(TEXT_STREAM[:3])[: -len(b"data: [DONE]\n\n")]
    events = parse_events(feed_split(translator, data, random.Random(1)))
    final = check_lifecycle(events, "response.failed")
    assert final.status == "failed" and final.error.code == "server_error"
    assert "ended before the answer was complete" in final.error.message
    assert final.output[0].status == "incomplete" and final.output_text == "Bonjour à vous, "
    assert translator.feed(b"data: [DONE]\n\n") == b"" and translator.close() == b""


def test_an_empty_stream_fails():
    events = parse_events(StreamTranslator(responses(stream=True)).close())
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.failed"]


def test_finish_without_done_completes_on_close():
    translator = StreamTranslator(responses(stream=True))
    data = sse(TEXT_STREAM)[: -len(b"data: [DONE]\n\n")]
    events = parse_events(translator.feed(data) + translator.close())
    assert check_lifecycle(events).output_text == "Bonjour à vous, ça va ? 🙂"


def test_last_event_without_blank_line_is_read_on_close():
    translator = StreamTranslator(responses(stream=True))
    data = sse(TEXT_STREAM)[: -len(b"\n\n")]  # ... "data: [DONE]" with no line end
    events = parse_events(translator.feed(data) + translator.close())
    assert events[-1]["type"] == "response.completed"


def test_error_in_the_stream_fails_the_response():
    error = {
        "object": "error",
        "message": "Service unavailable",
        "type": "internal_server_error",
        "param": None,
        "code": "1000",
    }
    translator = StreamTranslator(responses(stream=True))
    data = b"data: " + json.dumps(TEXT_STREAM[1]).encode() + b"\n\ndata: " + json.dumps(error).encode() + b"\n\n"
    events = parse_events(translator.feed(data) + translator.feed(b"data: [DONE]\n\n") + translator.close())
    final = check_lifecycle(events, "response.failed")
    assert final.error.message == "Mistral: Service unavailable"


def test_an_empty_answer_is_an_empty_message():
    events = translate([chunk({"role": "assistant", "content": ""}), chunk({"content": ""}, "stop")])
    final = check_lifecycle(events)
    assert final.output_text == "" and len(final.output) == 1


# --- the real SDKs, over a mock transport that runs the whole bridge in process --------------------------

_http = importlib.import_module(
    "httpx2" if hasattr(importlib.import_module("openai._base_client"), "httpx2") else "httpx"
)


def _bridge(request):
    """What the proxy does for POST /v1/responses, with the strict fake as Mistral."""
    body = json.loads(request.content)
    headers = {"content-type": "application/json"}
    try:
        chat, _ = request_to_chat(body)
    except BridgeError as e:
        return _http.Response(400, content=error_body(400, None, e.message, e.param, e.code), headers=headers)
    raw = json.dumps(chat).encode()
    raw = rewrite(builtin(), "chat/completions", raw).body or raw
    outcome = validate(CHAT, raw)
    if outcome:
        status, upstream = outcome
        return _http.Response(status, content=error_body(status, json.dumps(upstream).encode()), headers=headers)
    data = json.loads(raw)
    if not data.get("stream"):
        return _http.Response(
            200, content=json.dumps(chat_to_response(chat_completion(data), body)).encode(), headers=headers
        )
    translator = StreamTranslator(body)
    stream = sse(list(chat_chunks(data, 4)))
    pieces = [translator.feed(stream[i : i + 9]) for i in range(0, len(stream), 9)] + [translator.close()]
    return _http.Response(200, content=b"".join(pieces), headers={"content-type": "text/event-stream"})


@pytest.fixture
def sdk():
    client = openai.OpenAI(
        api_key="k",
        base_url="http://mistral.invalid/v1",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(transport=_http.MockTransport(_bridge)),
    )
    yield client
    client.close()


SDK_TOOL = {"type": "function", "name": "get_weather", "parameters": WEATHER["parameters"], "strict": True}


def test_sdk_create(sdk):
    response = sdk.responses.create(model=MODEL, instructions="Be brief.", input="Hi", store=False, user="u")
    assert response.output_text == "ok" and response.usage.output_tokens == 1


def test_sdk_create_tool_call_and_answer(sdk):
    first = sdk.responses.create(model=MODEL, input="Weather in Paris?", tools=[SDK_TOOL], tool_choice="required")
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    second = sdk.responses.create(
        model=MODEL,
        tools=[SDK_TOOL],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            *first.output,
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.output_text == "Tool results: sunny"


def test_sdk_stream_events(sdk):
    events = list(sdk.responses.create(model=MODEL, input="Hi", stream=True))
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "tok0 tok1 tok2 tok3 " == events[-1].response.output_text


def test_sdk_stream_helper(sdk):
    with sdk.responses.stream(model=MODEL, input="Hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "tok0 tok1 tok2 tok3 "


def test_sdk_stream_helper_tool_call(sdk):
    with sdk.responses.stream(model=MODEL, input="Please call the tool", tools=[SDK_TOOL]) as stream:
        final = stream.get_final_response()
    (call,) = final.output
    assert call.type == "function_call" and call.arguments == CITY_ARGS and TOOL_ID_RE.fullmatch(call.call_id)


def test_sdk_sees_our_400(sdk):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.responses.create(model=MODEL, input="Hi", previous_response_id="resp_1")
    assert info.value.param == "previous_response_id" and info.value.code == "unsupported_parameter"
    assert "previous_response_id" in info.value.message


def test_sdk_sees_mistrals_422(sdk):
    with pytest.raises(openai.UnprocessableEntityError) as info:
        sdk.responses.create(
            model=MODEL, input=[{"role": "user", "content": [{"type": "input_file", "file_id": "file-not-a-uuid"}]}]
        )
    assert info.value.param == "messages[0].user.content[0].file.file_id"
    assert "valid UUID" in info.value.message


# --- robustness: whatever arrives, only BridgeError escapes, and what we send the SDK parses ---------------


WORDS = [
    "function",
    "message",
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "input_text",
    "output_text",
    "input_image",
    "input_file",
    "refusal",
    "function_call",
    "function_call_output",
    "reasoning",
    "text",
    "thinking",
    "json_schema",
    "json_object",
    "auto",
    "none",
    "required",
    "allowed_tools",
    "stop",
    "length",
    "tool_calls",
    "error",
    "high",
    "original",
    "data:x",
    "call_1",
    "D681PevKs",
    "[DONE]",
]
KEYS = [
    "type",
    "role",
    "content",
    "text",
    "name",
    "arguments",
    "call_id",
    "output",
    "id",
    "image_url",
    "file_id",
    "file_data",
    "file_url",
    "filename",
    "detail",
    "tools",
    "tool_choice",
    "function",
    "parameters",
    "format",
    "schema",
    "strict",
    "effort",
    "mode",
    "choices",
    "delta",
    "message",
    "tool_calls",
    "index",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "thinking",
    "model",
    "object",
    "detail",
    "loc",
    "msg",
]
TOP = [
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "text",
    "reasoning",
    "max_output_tokens",
    "temperature",
    "top_p",
    "metadata",
    "stream",
    "store",
    "include",
    "background",
    "previous_response_id",
    "max_tokens",
    "response_format",
    "parallel_tool_calls",
    "prompt_cache_key",
    "user",
]

ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
    | st.sampled_from(WORDS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=25,
)
BODIES = st.dictionaries(st.sampled_from(TOP), ANY_JSON, max_size=6).map(lambda d: {"model": MODEL, **d})
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(BODIES)
def test_any_body_translates_or_raises_bridge_error(body):
    try:
        chat, changes = request_to_chat(body)
    except BridgeError as e:
        assert isinstance(e.param, str) and isinstance(e.message, str)
        error_of(error_body(400, None, e.message, e.param, e.code))
        return
    assert chat["messages"][-1]["role"] in ("user", "tool")
    rewrite(builtin(), "chat/completions", json.dumps(chat).encode())  # the addon's next step, never a crash
    assert all(isinstance(c, Change) for c in changes)


@FUZZ
@given(ANY_JSON, BODIES)
def test_any_chat_answer_gives_a_response_the_sdk_parses(chat, request):
    Response.model_validate(chat_to_response(chat, request))


MAYBE = lambda s: s | ANY_JSON  # noqa: E731
TEXTS = st.sampled_from(["", "a", " é🙂"]) | st.text(min_size=1, max_size=6)
CONTENT = TEXTS | st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "thinking", "x"])},
        optional={
            "text": MAYBE(TEXTS),
            "thinking": MAYBE(st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXTS}), max_size=2)),
        },
    ),
    max_size=3,
)
CALL = st.fixed_dictionaries(
    {},
    optional={
        "index": MAYBE(st.integers(0, 2)),
        "id": MAYBE(st.sampled_from(["abcdefgh1", "null", ""])),
        "function": MAYBE(st.fixed_dictionaries({}, optional={"name": MAYBE(TEXTS), "arguments": MAYBE(TEXTS)})),
    },
)
DELTA = st.fixed_dictionaries(
    {},
    optional={"role": st.just("assistant"), "content": MAYBE(CONTENT), "tool_calls": MAYBE(st.lists(CALL, max_size=2))},
)
CHOICE = st.fixed_dictionaries(
    {"delta": MAYBE(DELTA)},
    optional={
        "index": MAYBE(st.integers(0, 1)),
        "finish_reason": MAYBE(st.sampled_from(["stop", "length", "tool_calls", "error", "model_length"])),
    },
)
CHUNK = st.fixed_dictionaries(
    {"choices": MAYBE(st.lists(CHOICE, max_size=2))},
    optional={
        "usage": MAYBE(
            st.fixed_dictionaries({"prompt_tokens": st.integers(0, 9), "completion_tokens": st.integers(0, 9)})
        ),
        "model": MAYBE(TEXTS),
        "object": st.sampled_from(["chat.completion.chunk", "error"]),
    },
)
EVENT_LINE = CHUNK.map(lambda c: b"data: " + json.dumps(c).encode() + b"\n\n") | st.sampled_from(
    [b"data: [DONE]\n\n", b": ping\n\n", b"event: x\n", b"data: {\n\n", b"\r\n"]
)


@FUZZ
@given(st.lists(EVENT_LINE, max_size=8), BODIES, st.integers(0, 3))
def test_any_chunk_stream_gives_events_the_sdk_parses(lines, request, seed):
    data = b"".join(lines)
    translator = StreamTranslator(request)
    events = parse_events(feed_split(translator, data, random.Random(seed)))
    assert events[-1]["type"] in ("response.completed", "response.incomplete", "response.failed")
    Response.model_validate(events[-1]["response"])


@FUZZ
@given(st.binary(max_size=200), st.integers(100, 599))
def test_any_upstream_error_body_gives_the_error_shape(upstream, status):
    error_of(error_body(status, upstream))


# --- the glue the addon uses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/v1/responses", ("create", "/v1/chat/completions")),
        ("/v1/responses/?x=1", ("create", "/v1/chat/completions?x=1")),
        ("/openai/v1/responses", ("create", "/openai/v1/chat/completions")),
        ("/v1/responses?next=/v1/responses/x", ("create", "/v1/chat/completions?next=/v1/responses/x")),
        ("/v1/responses/resp_1", ("stored", "")),
        ("/v1/responses/resp_1/input_items?limit=5", ("stored", "")),
        ("/v1/chat/completions?next=/v1/responses", None),  # only the path counts, never the query
        ("/v1/models?next=/v1/responses/x", None),
        ("/v1/responsesx", None),
    ],
)
def test_match_path(path, expected):
    assert bridge.match_path(path) == expected


def test_answer_echo_with_lone_surrogates_serialises():
    request = {"model": MODEL, "input": "Hi", "instructions": "half an emoji: \ud83d"}
    out = jsonio.dumps(chat_to_response({"choices": [{"message": {"content": "ok"}}]}, request))
    assert json.loads(out)["instructions"] == "half an emoji: \ud83d"
    stream = StreamTranslator(request)
    events = stream.feed(b'data: {"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n')
    assert b"response.created" in events and b"\\ud83d" in events


def test_assistant_text_after_a_function_call_stays_in_the_same_turn():
    chat, _ = request_to_chat(
        {
            "model": MODEL,
            "input": [
                {"role": "user", "content": "Weather?"},
                {"type": "function_call", "call_id": "abcDEF123", "name": "f", "arguments": "{}"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {"type": "function_call", "call_id": "ghiJKL456", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "abcDEF123", "output": "a"},
                {"type": "function_call_output", "call_id": "ghiJKL456", "output": "b"},
            ],
        }
    )
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in chat["messages"][1]["tool_calls"]] == ["abcDEF123", "ghiJKL456"]
    assert validate(CHAT, json.dumps(chat).encode()) is None


def test_object_arguments_stay_an_object_with_their_numbers_exact():
    bridged = bridge.bridge_request(
        builtin(),
        b'{"model":"m","input":[{"role":"user","content":"x"},'
        b'{"type":"function_call","call_id":"abcDEF123","name":"f",'
        b'"arguments":{"n":1.0000000000000001}},'
        b'{"type":"function_call_output","call_id":"abcDEF123","output":"y"}]}',
    )
    assert b'"arguments":{"n":1.0000000000000001}' in bridged.body


def test_index_less_calls_in_separate_chunks_stay_separate():
    """The count of answers.ToolIndexes, shared with the chat translation: never restarting per chunk."""
    head = {"id": "x", "object": "chat.completion.chunk", "model": "m"}
    chunks = [
        dict(head, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}]),
        dict(
            head,
            choices=[
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"id": "AAAAAAAA1", "function": {"name": "get_weather", "arguments": '{"x":1}'}}]
                    },
                }
            ],
        ),
        dict(
            head,
            choices=[
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [{"id": "AAAAAAAA2", "function": {"name": "get_time", "arguments": '{"y":2}'}}]
                    },
                    "finish_reason": "tool_calls",
                }
            ],
        ),
    ]
    final = check_lifecycle(translate(chunks))
    assert [(o.call_id, o.name, o.arguments) for o in final.output] == [
        ("AAAAAAAA1", "get_weather", '{"x":1}'),
        ("AAAAAAAA2", "get_time", '{"y":2}'),
    ]
