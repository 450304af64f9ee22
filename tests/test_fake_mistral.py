"""Tests of the fake Mistral API: its strictness is what the end-to-end tests rely on."""

from __future__ import annotations

import copy
import email.utils
import gzip
import http.client
import json
import re
import socket
import ssl
import time
import zlib

import httpx
import pytest
from fake_mistral import (
    RATE_LIMITED_BODY,
    REASONING_ANSWER,
    REASONING_THINKING,
    REFERENCES_ANSWER,
    TOOL_RESULT_PREFIX,
    FakeMistral,
    decode_content,
    encode_content,
    request_key,
    retry_after_seconds,
    tool_arguments,
    validate,
)

CHAT = "/v1/chat/completions"
USER = {"role": "user", "content": "What is the weather in Paris?"}
TOOL_CALL = {
    "id": "D681PevKs",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
FULL_CHAT = {
    "model": "mistral-large-latest",
    "temperature": 0.3,
    "top_p": 0.9,
    "max_tokens": 256,
    "stream": False,
    "stop": ["\n\n", "END"],
    "random_seed": 42,
    "metadata": {"trace": "abc", "nested": {"any": [1, 2]}},
    "messages": [
        {"role": "system", "content": "Answer in JSON."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image, and the weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                {"type": "image_url", "image_url": "https://example.com/cat.png"},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "D681PevKs", "name": "get_weather", "content": "sunny"},
    ],
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "strict": True, "schema": {"type": "object", "additionalProperties": False}},
    },
    "tools": [WEATHER_TOOL],
    "tool_choice": "auto",
    "presence_penalty": 0.1,
    "frequency_penalty": -0.1,
    "n": 1,
    "parallel_tool_calls": True,
    "prompt_cache_key": "k1",
    "safe_prompt": False,
}


def chat(**fields) -> dict:
    return dict({"model": "mistral-small-latest", "messages": [USER]}, **fields)


def check(body: dict, path: str = CHAT):
    return validate(path, json.dumps(body).encode())


def detail(outcome) -> list:
    status, error = outcome
    assert status == 422
    assert error["object"] == "error" and error["type"] == "invalid_request_error"
    assert error["param"] is None and error["code"] is None
    return error["message"]["detail"]


def assert_extra_forbidden(outcome, loc_end: list):
    entries = detail(outcome)
    assert any(e["type"] == "extra_forbidden" and e["loc"][-len(loc_end) :] == loc_end for e in entries), entries
    entry = next(e for e in entries if e["type"] == "extra_forbidden")
    assert entry["msg"] == "Extra inputs are not permitted"
    assert entry["loc"][0] == "body"


# --- validate(): schema strictness (422) ------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("stream_options", {"include_usage": True}),
        ("user", "u-1"),
        ("seed", 1),
        ("max_completion_tokens", 10),
        ("store", True),
        ("logprobs", True),
    ],
)
def test_rejects_openai_only_top_level_fields(field, value):
    entries = detail(check(chat(**{field: value})))
    assert entries == [
        {"type": "extra_forbidden", "loc": ["body", field], "msg": "Extra inputs are not permitted", "input": value}
    ]


def test_rejects_developer_role():
    entries = detail(check(chat(messages=[{"role": "developer", "content": "be brief"}, USER])))
    assert entries[0]["type"] == "union_tag_invalid"
    assert entries[0]["loc"] == ["body", "messages", 0]
    assert "'developer'" in entries[0]["msg"]


def test_rejects_name_on_user_message():
    outcome = check(chat(messages=[dict(USER, name="bob")]))
    assert_extra_forbidden(outcome, ["body", "messages", 0, "user", "name"])


def test_rejects_assistant_refusal_with_pydantic_loc():
    messages = [USER, {"role": "assistant", "content": "no", "refusal": None}, USER]
    assert detail(check(chat(messages=messages))) == [
        {
            "type": "extra_forbidden",
            "loc": ["body", "messages", 1, "assistant", "refusal"],
            "msg": "Extra inputs are not permitted",
            "input": None,
        }
    ]


def test_rejects_unknown_key_inside_tool_function():
    tool = copy.deepcopy(WEATHER_TOOL)
    tool["function"]["additional_instructions"] = "x"
    outcome = check(chat(tools=[tool]))
    assert_extra_forbidden(outcome, ["tools", 0, "function", "function", "additional_instructions"])


def test_rejects_unknown_key_inside_content_chunk():
    content = [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]
    outcome = check(chat(messages=[{"role": "user", "content": content}]))
    assert_extra_forbidden(outcome, ["messages", 0, "user", "content", 0, "text", "cache_control"])


def test_rejects_unknown_key_inside_json_schema():
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": {}, "format": "x"}}
    outcome = check(chat(response_format=response_format))
    assert_extra_forbidden(outcome, ["response_format", "json_schema", "format"])


@pytest.mark.parametrize(
    "chunk",
    [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-abc"}},
    ],
)
def test_rejects_openai_file_and_audio_chunk_shapes(chunk):
    assert check(chat(messages=[{"role": "user", "content": [chunk]}]))[0] == 422


def test_rejects_temperature_above_1_5():
    entries = detail(check(chat(temperature=2)))
    assert entries == [
        {
            "type": "less_than_equal",
            "loc": ["body", "temperature"],
            "msg": "Input should be less than or equal to 1.5",
            "input": 2,
            "ctx": {"le": 1.5},
        }
    ]


def test_rejects_top_p_zero():
    entries = detail(check(chat(top_p=0)))
    assert entries == [
        {
            "type": "greater_than",
            "loc": ["body", "top_p"],
            "msg": "Input should be greater than 0",
            "input": 0,
            "ctx": {"gt": 0},
        }
    ]


def test_accepts_bounds_inclusive():
    assert check(chat(temperature=1.5, top_p=1, max_tokens=0, random_seed=0)) is None


def test_rejects_missing_model_and_bad_enum():
    entries = detail(check({"messages": [USER], "tool_choice": "sometimes"}))
    types = {(e["type"], tuple(e["loc"])) for e in entries}
    assert ("missing", ("body", "model")) in types
    assert ("enum", ("body", "tool_choice")) in types


def test_rejects_agents_sampling_fields():
    body = {"agent_id": "ag_1", "messages": [USER], "temperature": 0.2}
    assert_extra_forbidden(check(body, "/v1/agents/completions"), ["body", "temperature"])


def test_rejects_wrong_types():
    entries = detail(check(chat(stream="yes")))
    assert entries[0]["type"] == "bool_type" and entries[0]["loc"] == ["body", "stream"]


@pytest.mark.parametrize(
    "body, error_type",
    [
        (b"", "missing"),
        (b"{not json", "json_invalid"),
        (b'{"model": "m", "messages": [], "temperature": NaN}', "json_invalid"),
        (b'{"model": "m", "temperature": Infinity}', "json_invalid"),
        (b'{"model": "\xff\xfe"}', "json_invalid"),
        (b"[1, 2]", "model_attributes_type"),
    ],
)
def test_rejects_bad_json(body, error_type):
    entries = detail(validate(CHAT, body))
    assert entries[0]["type"] == error_type


# --- validate(): conversation rules (400) -----------------------------------


def mistral_400(outcome, message: str | None = None) -> dict:
    status, error = outcome
    assert status == 400
    assert set(error) == {"object", "message", "type", "param", "code"}
    assert error["object"] == "error" and error["param"] is None
    if message is not None:
        assert error["message"] == message
    return error


def tool_round(call_id: str, result_id: str | None = None) -> list:
    call = dict(copy.deepcopy(TOOL_CALL), id=call_id)
    result = {"role": "tool", "tool_call_id": result_id or call_id, "content": "sunny"}
    return [USER, {"role": "assistant", "tool_calls": [call]}, result]


def test_rejects_openai_style_tool_call_id():
    error = mistral_400(
        check(chat(messages=tool_round("call_abc123"))),
        "Tool call id was call_abc123 but must be a-z, A-Z, 0-9, with a length of 9.",
    )
    assert (error["type"], error["code"]) == ("invalid_function_call", "3280")


def test_rejects_tool_message_without_tool_call_id():
    messages = tool_round("D681PevKs")
    del messages[2]["tool_call_id"]
    mistral_400(check(chat(messages=messages)))


def test_rejects_tool_result_for_unknown_call():
    error = mistral_400(
        check(chat(messages=tool_round("D681PevKs", "Zz9Zz9Zz9"))), "Unexpected tool call id Zz9Zz9Zz9 in tool results"
    )
    assert error["code"] == "3230"


def test_rejects_assistant_last_without_prefix():
    messages = [USER, {"role": "assistant", "content": "Sure"}]
    assert mistral_400(check(chat(messages=messages)))["message"].startswith("Expected last role User or Tool")
    assert check(chat(messages=[USER, {"role": "assistant", "content": "Sure", "prefix": True}])) is None


def test_rejects_empty_assistant_message():
    messages = [USER, {"role": "assistant", "content": ""}, USER]
    mistral_400(
        check(chat(messages=messages)), "Assistant message must have either content or tool_calls, but not none."
    )


def test_rejects_bad_function_names():
    tool = copy.deepcopy(WEATHER_TOOL)
    tool["function"]["name"] = "get weather!"
    assert "Function name was get weather!" in mistral_400(check(chat(tools=[tool])))["message"]
    messages = tool_round("D681PevKs")
    messages[1]["tool_calls"][0]["function"]["name"] = "a.b"
    mistral_400(check(chat(messages=messages)))


def test_rejects_empty_messages():
    mistral_400(check(chat(messages=[])), "Conversation must have at least one message")


def test_allows_user_after_tool():
    assert check(chat(messages=tool_round("D681PevKs") + [USER])) is None


# --- validate(): clean bodies are accepted ----------------------------------


def test_accepts_full_featured_chat():
    assert check(FULL_CHAT) is None


def test_accepts_agents_completion():
    body = {"agent_id": "ag_123", "messages": [USER], "max_tokens": 10, "tool_choice": "any", "tools": [WEATHER_TOOL]}
    assert check(body, "/v1/agents/completions") is None


@pytest.mark.parametrize(
    "path, body",
    [
        (
            "/v1/fim/completions",
            {
                "model": "codestral-latest",
                "prompt": "def f(",
                "suffix": "return 1",
                "temperature": 0.2,
                "max_tokens": 64,
                "min_tokens": 1,
                "stop": "\n\n",
            },
        ),
        (
            "/v1/embeddings",
            {
                "model": "codestral-embed",
                "input": ["a", "b"],
                "output_dimension": 16,
                "output_dtype": "float",
                "encoding_format": "float",
            },
        ),
        ("/v1/moderations", {"model": "mistral-moderation-latest", "input": ["text one", "text two"]}),
        (
            "/v1/chat/moderations",
            {"model": "mistral-moderation-latest", "input": [USER, {"role": "assistant", "content": "It is sunny."}]},
        ),
        ("/v1/classifications", {"model": "ft:classifier", "input": "classify me"}),
        ("/v1/chat/classifications", {"model": "ft:classifier", "input": {"messages": [USER]}}),
        (
            "/v1/ocr",
            {
                "model": "mistral-ocr-latest",
                "pages": [0, 1],
                "include_image_base64": False,
                "document": {"type": "document_url", "document_url": "https://example.com/a.pdf"},
            },
        ),
    ],
)
def test_accepts_other_endpoints(path, body):
    assert check(body, path) is None


def test_rejects_on_other_endpoints():
    assert_extra_forbidden(
        check({"model": "e", "input": "a", "dimensions": 8}, "/v1/embeddings"), ["body", "dimensions"]
    )
    outcome = check({"model": "m", "input": [USER], "metadata": {}}, "/v1/chat/moderations")
    assert_extra_forbidden(outcome, ["body", "metadata"])


# --- the HTTP server ---------------------------------------------------------


@pytest.fixture(scope="module")
def fake():
    with FakeMistral(stream_events=4, stream_interval=0.1) as server:
        yield server


@pytest.fixture
def client(fake):
    fake.clear()
    with httpx.Client(base_url=fake.url, timeout=10) as c:
        yield c


def test_chat_completion_response_and_record(fake, client):
    response = client.post(CHAT, json=chat(n=2), headers={"Authorization": "Bearer k"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and len(body["choices"]) == 2
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "ok", "tool_calls": None}
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert response.headers["x-request-id"] and response.headers["x-ratelimit-remaining-tokens-minute"]
    record = fake.received[-1]
    assert (record.method, record.path, record.status) == ("POST", CHAT, 200)
    assert record.header("authorization") == "Bearer k"
    assert record.json() == chat(n=2) and record.raw_body == record.body


def test_422_over_http_is_recorded(fake, client):
    response = client.post(CHAT + "?x=1", json=chat(user="u"))
    assert response.status_code == 422
    assert response.json()["message"]["detail"][0]["loc"] == ["body", "user"]
    assert (fake.received[-1].path, fake.received[-1].status) == (CHAT + "?x=1", 422)


def test_stream_events_are_spread_in_time(fake, client):
    arrivals, events = [], []
    start = time.monotonic()
    with client.stream("POST", CHAT, json=chat(stream=True)) as response:
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["transfer-encoding"] == "chunked"
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - start)
                events.append(line[len("data: ") :])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["delta"]["content"] for c in chunks[:4]] == ["tok0 ", "tok1 ", "tok2 ", "tok3 "]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" in chunks[-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert arrivals[3] - arrivals[0] >= 0.25  # three intervals of 0.1 s


CHUNK_KEYS = {"id", "object", "created", "model", "choices"}


def sse_data(text: str) -> list:
    """The `data:` payloads of an event stream's text, in order."""
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def check_chunks(events: list, done: bool = True) -> list:
    """Chunk objects of a stream's payloads, checked for the chunk shape; usage only on the last one."""
    if done:
        assert events[-1] == "[DONE]"
        events = events[:-1]
    chunks = [json.loads(e) for e in events]
    for number, chunk in enumerate(chunks, 1):
        last = number == len(chunks)
        assert set(chunk) == CHUNK_KEYS | ({"usage"} if last else set()), chunk
        assert chunk["object"] == "chat.completion.chunk"
        (choice,) = chunk["choices"]
        assert set(choice) == {"index", "delta", "finish_reason"} and choice["index"] == 0
        assert (choice["finish_reason"] is not None) == last, chunk
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1
    return chunks


def stream_chunks(client, body: dict, path: str = CHAT, headers=None) -> list:
    with client.stream("POST", path, json=body, headers=headers or {}) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
        return check_chunks([line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")])


def deltas(chunks: list) -> list:
    return [c["choices"][0]["delta"] for c in chunks]


SECOND_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def _tool_call_of(message: dict) -> dict:
    (call,) = message["tool_calls"]
    assert set(call) == {"id", "function"} and set(call["function"]) == {"name", "arguments"}  # no type/index
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", call["id"])
    expected = '{"city":"Paris"}' if call["function"]["name"] == "get_weather" else "{}"
    assert call["function"]["arguments"] == expected
    return call


@pytest.mark.parametrize(
    "fields, name",
    [
        ({"tool_choice": "any"}, "get_weather"),
        ({"tool_choice": "required"}, "get_weather"),
        ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "get_time"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "Please CALL THE TOOL now"}]}]},
            "get_weather",
        ),
    ],
)
def test_tool_call_answers(client, fields, name):
    body = chat(tools=[WEATHER_TOOL, SECOND_TOOL], **fields)
    choice = client.post(CHAT, json=body).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert set(choice["message"]) == {"role", "tool_calls"}  # no "content" key, as Mistral sends it
    assert _tool_call_of(choice["message"])["function"]["name"] == name


@pytest.mark.parametrize(
    "fields",
    [
        {},  # auto, no trigger
        {"tool_choice": "none", "messages": [{"role": "user", "content": "call the tool"}]},
        {"tools": None, "tool_choice": "any"},  # no tools to call
    ],
)
def test_no_tool_call_without_a_reason(client, fields):
    body = dict(chat(tools=[WEATHER_TOOL]), **fields)
    body = {k: v for k, v in body.items() if v is not None}
    choice = client.post(CHAT, json=body).json()["choices"][0]
    assert choice == {
        "index": 0,
        "message": {"role": "assistant", "content": "ok", "tool_calls": None},
        "finish_reason": "stop",
    }


def test_tool_call_ids_are_fresh(client):
    ids = {
        client.post(CHAT, json=chat(tools=[WEATHER_TOOL], tool_choice="any")).json()["choices"][0]["message"][
            "tool_calls"
        ][0]["id"]
        for _ in range(5)
    }
    assert len(ids) == 5


def test_streamed_tool_call_comes_whole_with_finish_and_usage(client):
    chunks = stream_chunks(client, chat(stream=True, tools=[WEATHER_TOOL], tool_choice="required"))
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "tool_calls"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    delta = chunks[1]["choices"][0]["delta"]
    assert set(delta) == {"content", "tool_calls"} and delta["content"] is None
    assert _tool_call_of(delta)["function"]["name"] == "get_weather"
    assert "usage" in chunks[1] and "usage" not in chunks[0]


def test_fim_and_embeddings_over_http(client):
    fim = client.post("/v1/fim/completions", json={"model": "codestral-latest", "prompt": "def f("})
    assert fim.status_code == 200 and fim.json()["choices"][0]["message"]["content"] == "ok"
    emb = client.post("/v1/embeddings", json={"model": "e", "input": ["a", "b", "c"], "output_dimension": 5})
    data = emb.json()["data"]
    assert [len(d["embedding"]) for d in data] == [5, 5, 5]
    single = client.post("/v1/embeddings", json={"model": "e", "input": "a"}).json()["data"]
    assert len(single) == 1 and len(single[0]["embedding"]) == 8


@pytest.mark.parametrize(
    "path, body, key",
    [
        ("/v1/moderations", {"model": "m", "input": ["a", "b"]}, "results"),
        ("/v1/chat/classifications", {"model": "m", "input": [{"messages": [USER]}]}, "results"),
        ("/v1/ocr", {"model": "m", "document": {"type": "image_url", "image_url": "https://e.com/a.png"}}, "pages"),
    ],
)
def test_other_endpoint_answers(client, path, body, key):
    response = client.post(path, json=body)
    assert response.status_code == 200 and response.json()[key]


def test_models_not_found_and_forced_status(client):
    assert client.get("/v1/models").json()["object"] == "list"
    assert client.post("/v1/nope", json={}).status_code == 404
    limited = client.post(CHAT, json=chat(), headers={"x-fake-status": "429"})
    assert limited.status_code == 429
    assert limited.json() == {
        "object": "error",
        "message": "Rate limit exceeded",
        "type": "rate_limited",
        "param": None,
        "code": "1300",
    }


def raw_request(fake, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(request)
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            response += data
        return response


def test_chunked_request_body_over_socket(fake):
    fake.clear()
    body = json.dumps(chat()).encode()
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\nX-Trailer: t\r\n\r\n"
    )
    response = raw_request(fake, request)
    assert response.startswith(b"HTTP/1.1 200")
    record = fake.received[-1]
    assert record.raw_body == body and record.header("transfer-encoding") == "chunked"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd", "gzip, br"])
def test_content_encoded_request_bodies(fake, coding):
    fake.clear()
    body = json.dumps(chat()).encode()
    encoded = body
    for one in coding.split(", "):
        encoded = encode_content(encoded, one)
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    conn.request("POST", CHAT, body=encoded, headers={"Content-Encoding": coding, "Content-Type": "application/json"})
    assert conn.getresponse().status == 200
    conn.close()
    record = fake.received[-1]
    assert (record.raw_body, record.body) == (encoded, body)


def test_raw_deflate_body_is_accepted(fake, client):
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = compressor.compress(json.dumps(chat()).encode()) + compressor.flush()
    assert client.post(CHAT, content=raw, headers={"Content-Encoding": "deflate"}).status_code == 200


def test_gzip_and_chunked_together_with_keep_alive(fake):
    fake.clear()
    body = json.dumps(chat()).encode()
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    for _ in range(2):  # the same connection serves both requests
        conn.request(
            "POST",
            CHAT,
            body=iter([gzip.compress(body)]),
            encode_chunked=True,
            headers={"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
        )
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["object"] == "chat.completion"
    conn.close()
    assert [r.body for r in fake.received] == [body, body]


def test_undecodable_body_is_400(fake, client):
    response = client.post(CHAT, content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400 and response.json()["object"] == "error"
    assert fake.received[-1].status == 400


def test_tls_server():
    with FakeMistral(tls=True) as server:
        assert server.url.startswith("https://localhost:")
        context = ssl.create_default_context(cafile=server.ca_pem)
        for url in (server.url, f"https://127.0.0.1:{server.port}"):
            response = httpx.post(url + CHAT, json=chat(), verify=context)
            assert response.status_code == 200
        assert len(server.received) == 2


def test_openapi_nullable_is_honoured():
    from fake_mistral import _MistralValidator  # the spec subset has no `nullable`; check the hook directly

    schema = {"type": "object", "properties": {"a": {"type": "string", "enum": ["x"], "nullable": True}}}
    assert list(_MistralValidator(schema).iter_errors({"a": None})) == []
    assert list(_MistralValidator(schema).iter_errors({"a": 1}))


# --- answers in the live service's shapes ---------------------------------------------------------


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def thinking_text(delta: dict) -> str:
    return "".join(
        part["text"] for chunk in delta["content"] if chunk["type"] == "thinking" for part in chunk["thinking"]
    )


REASONING_CONTENT = [
    {"type": "thinking", "thinking": [{"type": "text", "text": REASONING_THINKING}], "closed": True},
    {"type": "text", "text": REASONING_ANSWER},
]


def test_constants():
    assert REASONING_THINKING == "17 * 23: 17 * 20 = 340, 17 * 3 = 51, 340 + 51 = 391."
    assert (REASONING_ANSWER, REFERENCES_ANSWER) == ("391", "Paris is the capital of France.")
    assert TOOL_RESULT_PREFIX == "Tool results: "


@pytest.mark.parametrize(
    "path, body",
    [
        (CHAT, chat(reasoning_effort="high")),
        (CHAT, chat(model="magistral-medium-2507")),
        (CHAT, chat(model="magistral-small-latest", reasoning_effort="none")),
        ("/v1/agents/completions", {"agent_id": "ag_1", "messages": [USER], "reasoning_effort": "low"}),
    ],
)
def test_reasoning_answer(client, path, body):
    choice = client.post(path, json=dict(body, n=2)).json()["choices"]
    assert [c["message"] for c in choice] == [
        {"role": "assistant", "content": REASONING_CONTENT, "tool_calls": None}
    ] * 2
    assert [c["finish_reason"] for c in choice] == ["stop", "stop"]


@pytest.mark.parametrize("effort", [None, "none"])
def test_no_reasoning_without_effort(client, effort):
    body = chat(reasoning_effort=effort) if effort else chat()
    assert client.post(CHAT, json=body).json()["choices"][0]["message"]["content"] == "ok"


@pytest.mark.parametrize(
    "path, body",
    [
        (CHAT, chat(reasoning_effort="medium", stream=True)),
        (
            "/v1/agents/completions",
            {"agent_id": "ag_1", "messages": [USER], "reasoning_effort": "high", "stream": True},
        ),
    ],
)
def test_reasoning_stream_mixes_arrays_and_a_string(client, path, body):
    found = deltas(stream_chunks(client, body, path))
    assert found[0] == {"role": "assistant", "content": ""}
    thoughts, mixed, last = found[1:-2], found[-2], found[-1]
    assert len(thoughts) >= 2
    for delta in thoughts:
        assert set(delta) == {"content"}
        (chunk,) = delta["content"]
        assert set(chunk) == {"type", "thinking"} and chunk["type"] == "thinking"
        (part,) = chunk["thinking"]
        assert set(part) == {"type", "text"} and part["type"] == "text" and part["text"]
    assert set(mixed) == {"content"} and len(mixed["content"]) == 2
    assert mixed["content"][0]["type"] == "thinking" and mixed["content"][0]["closed"] is True
    assert mixed["content"][1] == {"type": "text", "text": "3"}
    assert "".join(thinking_text(d) for d in thoughts + [mixed]) == REASONING_THINKING
    assert last == {"content": "91"}


def test_reasoning_stream_final_chunk(client):
    chunks = stream_chunks(client, chat(reasoning_effort="high", stream=True))
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {"content": "91"}, "finish_reason": "stop"}
    assert set(chunks[-1]["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_magistral_stream_is_all_arrays(client):
    chunks = stream_chunks(client, chat(model="magistral-medium-2507", stream=True))
    found = deltas(chunks)
    assert found[0] == {"role": "assistant", "content": ""}
    assert found[-3:] == [
        {"content": [{"type": "text", "text": "3"}]},
        {"content": [{"type": "text", "text": "91"}]},
        {"content": ""},
    ]
    thoughts = found[1:-3]
    assert len(thoughts) >= 2 and all(
        len(d["content"]) == 1 and d["content"][0]["type"] == "thinking" for d in thoughts
    )
    assert "".join(thinking_text(d) for d in thoughts) == REASONING_THINKING
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" in chunks[-1]


REFERENCE_CONTENT = [
    {"type": "text", "text": "Paris is the capital"},
    {"type": "reference", "reference_ids": [1]},
    {"type": "text", "text": " of France."},
]


def test_references_answer(client):
    body = chat(messages=[user("What is the capital of France? Answer WITH REFERENCES.")])
    choice = client.post(CHAT, json=body).json()["choices"][0]
    assert choice == {
        "index": 0,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": REFERENCE_CONTENT, "tool_calls": None},
    }
    assert "".join(c.get("text", "") for c in REFERENCE_CONTENT) == REFERENCES_ANSWER
    chunks = stream_chunks(client, dict(body, stream=True))
    assert deltas(chunks) == [{"role": "assistant", "content": ""}] + [{"content": [c]} for c in REFERENCE_CONTENT] + [
        {"content": ""}
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_references_only_on_non_reasoning_models(client):
    body = chat(messages=[user("answer with references")], reasoning_effort="high")
    assert client.post(CHAT, json=body).json()["choices"][0]["message"]["content"] == REASONING_CONTENT


def test_trigger_is_the_last_user_message(client):
    messages = [user("answer with references"), {"role": "assistant", "content": "Sure"}, user("thanks")]
    assert client.post(CHAT, json=chat(messages=messages)).json()["choices"][0]["message"]["content"] == "ok"


def test_default_stream_is_unchanged(client):
    found = deltas(stream_chunks(client, chat(stream=True)))
    assert found == [{"role": "assistant", "content": f"tok{i} "} for i in range(4)] + [{"content": ""}]


def test_truncation_is_model_length(client):
    body = chat(messages=[{"role": "user", "content": [{"type": "text", "text": "We will Run Out Of Context"}]}])
    choice = client.post(CHAT, json=body).json()["choices"][0]
    assert choice == {
        "index": 0,
        "finish_reason": "model_length",
        "message": {"role": "assistant", "content": "ok", "tool_calls": None},
    }
    chunks = stream_chunks(client, dict(body, stream=True))
    assert deltas(chunks)[:4] == [{"role": "assistant", "content": f"tok{i} "} for i in range(4)]
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {"content": ""}, "finish_reason": "model_length"}


def test_fim_truncation(client):
    fim = "/v1/fim/completions"
    body = {"model": "codestral-latest", "prompt": "# run out of context\ndef f("}
    choice = client.post(fim, json=body).json()["choices"][0]
    assert choice["finish_reason"] == "model_length" and choice["message"]["content"] == "ok"
    assert stream_chunks(client, dict(body, stream=True), fim)[-1]["choices"][0]["finish_reason"] == "model_length"
    normal = dict(body, prompt="def f(")
    assert client.post(fim, json=normal).json()["choices"][0]["finish_reason"] == "stop"
    assert stream_chunks(client, dict(normal, stream=True), fim)[-1]["choices"][0]["finish_reason"] == "stop"


# --- tool calls: arguments, parallel calls, and never after a tool result ------------------------------

RICH_TOOL = {
    "type": "function",
    "function": {
        "name": "book",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "nights": {"type": "integer"},
                "budget": {"type": "number"},
                "breakfast": {"type": "boolean"},
                "guests": {"type": "array", "items": {"type": "string"}},
                "extras": {"type": "object"},
                "room": {"type": "string", "enum": ["double", "single"]},
                "note": {"type": ["string", "null"]},
                "anything": {},
                "optional": {"type": "string"},
            },
            "required": ["room", "city", "nights", "budget", "breakfast", "guests", "extras", "note", "anything"],
        },
    },
}
RICH_ARGUMENTS = (
    '{"room":"double","city":"Paris","nights":3,"budget":1.5,"breakfast":true,"guests":[],'
    '"extras":{},"note":"Paris","anything":null}'
)


@pytest.mark.parametrize(
    "parameters, expected",
    [
        (RICH_TOOL["function"]["parameters"], RICH_ARGUMENTS),
        ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"enum": [7, 8]}}}, '{"a":3,"b":7}'),
        ({"type": "object", "properties": {"a": {"type": "integer"}}, "required": []}, '{"a":3}'),
        ({"type": "object", "properties": {}}, "{}"),
        ({}, "{}"),
        (None, "{}"),
        ({"type": "object", "properties": {"x": {"type": "string"}}, "required": ["y"]}, '{"y":null}'),
    ],
)
def test_tool_arguments_from_the_schema(parameters, expected):
    assert tool_arguments(parameters) == expected


def test_call_every_tool_makes_parallel_calls(client):
    tools = [WEATHER_TOOL, SECOND_TOOL, RICH_TOOL]
    body = chat(tools=tools, messages=[user("Please Call Every Tool.")])
    choice = client.post(CHAT, json=body).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and set(choice["message"]) == {"role", "tool_calls"}
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time", "book"]
    assert [c["function"]["arguments"] for c in calls] == ['{"city":"Paris"}', "{}", RICH_ARGUMENTS]
    assert all(set(c) == {"id", "function"} and re.fullmatch(r"[a-zA-Z0-9]{9}", c["id"]) for c in calls)
    assert len({c["id"] for c in calls}) == 3
    for tool, call in zip(tools, calls):  # the arguments hold exactly the required parameters
        params = tool["function"]["parameters"]
        assert set(json.loads(call["function"]["arguments"])) == set(params.get("required") or params["properties"])

    chunks = stream_chunks(client, dict(body, stream=True))
    assert len(chunks) == 2 and deltas(chunks)[0] == {"role": "assistant", "content": ""}
    delta = deltas(chunks)[1]
    assert delta["content"] is None and [c["function"]["name"] for c in delta["tool_calls"]] == [
        "get_weather",
        "get_time",
        "book",
    ]
    assert all(set(c) == {"id", "function"} for c in delta["tool_calls"])
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls" and "usage" in chunks[1]


def test_named_tool_choice_beats_call_every_tool(client):
    body = chat(
        tools=[WEATHER_TOOL, SECOND_TOOL],
        messages=[user("call every tool")],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = client.post(CHAT, json=body).json()["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_time"]


def test_tool_choice_none_blocks_call_every_tool(client):
    body = chat(tools=[WEATHER_TOOL], messages=[user("call every tool")], tool_choice="none")
    assert client.post(CHAT, json=body).json()["choices"][0]["message"]["content"] == "ok"


def tool_conversation() -> list:
    """Two rounds: the second assistant turn made two calls, both answered."""

    def call(call_id, name):
        return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}

    return [
        user("call the tool"),
        {"role": "assistant", "content": None, "tool_calls": [call("AAAAAAAA1", "get_weather")]},
        {"role": "tool", "tool_call_id": "AAAAAAAA1", "content": "old result"},
        user("now call every tool"),
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [call("BBBBBBBB2", "get_weather"), call("CCCCCCCC3", "get_time")],
        },
        {"role": "tool", "tool_call_id": "BBBBBBBB2", "name": "get_weather", "content": "sunny"},
        {"role": "tool", "tool_call_id": "CCCCCCCC3", "content": [{"type": "text", "text": "12:00"}]},
    ]


@pytest.mark.parametrize(
    "choice",
    [
        None,
        "auto",
        "any",
        "required",
        {"type": "function", "function": {"name": "get_time"}},
    ],
)
def test_no_tool_call_after_tool_results(client, choice):
    body = chat(tools=[WEATHER_TOOL, SECOND_TOOL], messages=tool_conversation())
    if choice is not None:
        body["tool_choice"] = choice
    assert check(body) is None
    expected = TOOL_RESULT_PREFIX + "sunny; 12:00"
    answer = client.post(CHAT, json=body).json()["choices"][0]
    assert answer == {
        "index": 0,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": expected, "tool_calls": None},
    }
    chunks = stream_chunks(client, dict(body, stream=True))
    found = deltas(chunks)
    assert found[-1] == {"content": ""} and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    pieces = found[:-1]
    assert len(pieces) >= 2 and all(set(d) == {"role", "content"} and isinstance(d["content"], str) for d in pieces)
    assert "".join(d["content"] for d in pieces) == expected


def test_tool_result_with_a_single_call(client):
    body = chat(tools=[WEATHER_TOOL], tool_choice="any", messages=tool_round("D681PevKs"))
    assert client.post(CHAT, json=body).json()["choices"][0]["message"]["content"] == "Tool results: sunny"


# --- x-fake-error ---------------------------------------------------------------------------------

DETAILS = [
    {
        "type": "extra_forbidden",
        "loc": ["body", "messages", 1, "content"],
        "msg": "Extra inputs are not permitted",
        "input": "x",
    },
    {"type": "missing", "loc": ["body", "model"], "msg": "Field required", "input": {}},
]
NAMED_ERRORS = {
    "422-object": (
        422,
        {
            "object": "error",
            "message": {"detail": DETAILS},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    ),
    "422-detail": (422, {"detail": DETAILS}),
    "401-detail": (401, {"detail": "Unauthorized"}),
    "429-message": (429, {"message": "Requests rate limit exceeded"}),
    "429-object": (
        429,
        {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "param": None,
            "code": "1300",
            "raw_status_code": 429,
        },
    ),
}


@pytest.mark.parametrize("name", sorted(NAMED_ERRORS))
@pytest.mark.parametrize(
    "path, body",
    [
        (CHAT, chat()),
        (CHAT, chat(user="u", stream=True)),  # named errors come before validation
        ("/v1/embeddings", {"model": "e", "input": "a"}),
        ("/v1/nope", {}),
    ],
)
def test_named_errors(fake, client, name, path, body):
    status, expected = NAMED_ERRORS[name]
    response = client.post(path, json=body, headers={"x-fake-error": name})
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    assert response.json() == expected
    assert response.content == json.dumps(expected, separators=(",", ":")).encode()
    assert fake.received[-1].status == status


def test_401_message_has_a_fresh_request_id(client):
    bodies = [client.post(CHAT, json=chat(), headers={"x-fake-error": "401-message"}) for _ in range(2)]
    assert [b.status_code for b in bodies] == [401, 401]
    found = [b.json() for b in bodies]
    assert all(set(b) == {"message", "request_id"} and b["message"] == "Unauthorized" for b in found)
    assert all(re.fullmatch(r"[0-9a-f]{32}", b["request_id"]) for b in found)
    assert found[0]["request_id"] != found[1]["request_id"]


def test_unknown_options_are_400(client):
    for header in ({"x-fake-error": "418-teapot"}, {"x-fake-encoding": "lzma"}, {"x-fake-sse": "weird"}):
        response = client.post(CHAT, json=chat(), headers=header)
        assert response.status_code == 400 and response.json()["object"] == "error"
        assert list(header.values())[0] in response.json()["message"]


@pytest.mark.parametrize("body", [chat(stream=True), chat(), b"not json"])
def test_stream_error(fake, client, body):
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    with client.stream("POST", CHAT, headers={"x-fake-error": "stream-error"}, **kwargs) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
        text = response.read().decode()
    events = sse_data(text)
    assert len(events) == 2 and "[DONE]" not in text
    first = json.loads(events[0])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    assert json.loads(events[1]) == {
        "object": "error",
        "message": "Internal server error",
        "type": "internal_server_error",
        "param": None,
        "code": "3000",
    }
    assert fake.received[-1].status == 200


def test_validation_422_keeps_its_shape(client):
    response = client.post(CHAT, json=chat(seed=1))
    assert response.status_code == 422
    assert response.json() == {
        "object": "error",
        "message": {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "seed"],
                    "msg": "Extra inputs are not permitted",
                    "input": 1,
                }
            ]
        },
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_forced_status_still_works(client):
    response = client.post(CHAT, json=chat(user="invalid"), headers={"x-fake-status": "503"})
    assert response.status_code == 503 and response.json()["type"] == "internal_server_error"


# --- x-fake-sse: crlf-split --------------------------------------------------------------------------


def raw_exchange(fake, path: str, body: dict, headers: dict) -> list:
    """Every recv() of a whole HTTP/1.1 exchange (Connection: close), as received."""
    data = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(data)}"
        f"\r\nConnection: close\r\n{head}\r\n"
    ).encode() + data
    reads = []
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(request)
        while True:
            piece = sock.recv(65536)
            if not piece:
                return reads
            reads.append(piece)


def split_response(raw: bytes):
    """(head, [chunk data...], [raw offset of each body byte]) of a chunked HTTP answer."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    position = len(head) + len(sep)
    chunks, offsets = [], []
    while True:
        line, _, rest = rest.partition(b"\r\n")
        position += len(line) + 2
        size = int(line, 16)
        if size == 0:
            assert rest == b"\r\n"
            return head, chunks, offsets
        chunks.append(rest[:size])
        offsets.extend(range(position, position + size))
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
        position += size + 2


def read_index(reads: list, offset: int) -> int:
    end = 0
    for index, piece in enumerate(reads):
        end += len(piece)
        if offset < end:
            return index
    raise AssertionError(offset)


@pytest.mark.parametrize("fields", [{}, {"reasoning_effort": "high"}, {"tools": [WEATHER_TOOL], "tool_choice": "any"}])
def test_crlf_split_framing(fake, fields):
    reads = raw_exchange(fake, CHAT, chat(stream=True, **fields), {"x-fake-sse": "crlf-split"})
    head, chunks, offsets = split_response(b"".join(reads))
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Type: text/event-stream" in head
    body = b"".join(chunks)
    assert chunks[0] == b": keep-alive\r\n\r\n"
    assert body.count(b"\r\n") == body.count(b"\n") == body.count(b"\r")  # every line end is \r\n
    events = body[len(chunks[0]) :].split(b"\r\n\r\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    events = events[:-1]
    # every event is written in two pieces, cut inside its payload
    assert len(chunks) == 1 + 2 * len(events)
    for first, second, event in zip(chunks[1::2], chunks[2::2], events):
        assert first + second == event + b"\r\n\r\n"
        assert first.startswith(b"data: ") and len(first) > len(b"data: ")
        assert len(second) > len(b"\r\n\r\n")
    # and the pieces arrive in separate reads (a timing matter: on a loaded machine the two writes of an event,
    # SPLIT_PAUSE apart, may still be read together, so only some of them are required to arrive apart)
    start, apart = len(chunks[0]), 0
    for event in events:
        end = start + len(event) + 4
        apart += read_index(reads, offsets[end - 1]) > read_index(reads, offsets[start])
        start = end
    assert apart >= 1, reads
    chunk_objects = check_chunks([e[len(b"data: ") :].decode() for e in events])
    assert chunk_objects[-1]["choices"][0]["finish_reason"] in ("stop", "tool_calls")


def test_crlf_split_stream_error(fake):
    reads = raw_exchange(fake, CHAT, chat(stream=True), {"x-fake-sse": "crlf-split", "x-fake-error": "stream-error"})
    _, chunks, _ = split_response(b"".join(reads))
    body = b"".join(chunks)
    assert body.startswith(b": keep-alive\r\n\r\ndata: {") and body.endswith(b'"code":"3000"}\r\n\r\n')
    assert b"[DONE]" not in body and len(chunks) == 5


# --- x-fake-encoding --------------------------------------------------------------------------------

CODINGS = ["gzip", "deflate", "br", "zstd"]


def stream_decoder(coding: str):
    """An incremental decoder for one Content-Encoding (the test's own, not the fake's)."""
    if coding in ("gzip", "deflate"):
        return zlib.decompressobj(31 if coding == "gzip" else zlib.MAX_WBITS).decompress
    if coding == "br":
        import brotli

        return brotli.Decompressor().process
    try:
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress
    except ImportError:
        try:
            from compression import zstd
        except ImportError:
            from backports import zstd
        return zstd.ZstdDecompressor().decompress


@pytest.mark.parametrize("coding", CODINGS)
def test_encoded_json_and_error_answers(client, coding):
    headers = {"x-fake-encoding": coding, "Accept-Encoding": "identity"}
    for body, extra, status in (
        (chat(), {}, 200),
        (chat(seed=1), {}, 422),
        (chat(), {"x-fake-error": "429-object"}, 429),
        ({"model": "e", "input": "a"}, {}, 200),
    ):
        path = CHAT if "messages" in body else "/v1/embeddings"
        with client.stream("POST", path, json=body, headers=dict(headers, **extra)) as response:
            raw = b"".join(response.iter_raw())
        assert response.status_code == status and response.headers["content-encoding"] == coding
        assert int(response.headers["content-length"]) == len(raw)
        decoded = decode_content(raw, [coding])
        assert decoded.startswith(b"{") and b", " not in decoded and b'":' in decoded  # compact JSON
        data = json.loads(decoded)
        if status == 429:
            assert data["raw_status_code"] == 429
        elif status == 422:
            assert data["message"]["detail"][0]["loc"] == ["body", "seed"]
        else:
            assert data["object"] in ("chat.completion", "list")


@pytest.mark.parametrize("coding", CODINGS)
def test_encoded_streams_still_stream(client, coding):
    decode = stream_decoder(coding)
    headers = {"x-fake-encoding": coding, "Accept-Encoding": "identity"}
    decoded, seen_at = b"", []
    with client.stream("POST", CHAT, json=chat(stream=True, reasoning_effort="high"), headers=headers) as response:
        assert response.headers["content-encoding"] == coding
        assert response.headers["content-type"] == "text/event-stream"
        for piece in response.iter_raw():
            decoded += decode(piece)
            seen_at.append(decoded.count(b"\n\n"))
    events = sse_data(decoded.decode())
    found = deltas(check_chunks(events))
    assert found[-1] == {"content": "91"}
    assert seen_at[0] >= 1  # the first event decodes from the first bytes received
    assert len(set(seen_at)) >= 5  # the events spaced in time decode one by one, as they arrive


@pytest.mark.parametrize("coding", CODINGS)
def test_encoded_split_stream(fake, coding):
    reads = raw_exchange(fake, CHAT, chat(stream=True), {"x-fake-sse": "crlf-split", "x-fake-encoding": coding})
    head, chunks, _ = split_response(b"".join(reads))
    assert f"Content-Encoding: {coding}".encode() in head
    decode = stream_decoder(coding)
    plain = [decode(c) for c in chunks]
    assert plain[0] == b": keep-alive\r\n\r\n"  # every write is flushed on its own
    assert plain[1].startswith(b"data: {") and not plain[1].endswith(b"\r\n\r\n")
    body = b"".join(plain)
    assert body.endswith(b"data: [DONE]\r\n\r\n")
    events = [e[len(b"data: ") :].decode() for e in body.split(b"\r\n\r\n")[1:-1]]
    assert deltas(check_chunks(events))[0] == {"role": "assistant", "content": "tok0 "}


@pytest.mark.parametrize("coding", CODINGS)
def test_encoded_stream_error(client, coding):
    headers = {"x-fake-encoding": coding, "x-fake-error": "stream-error"}
    with client.stream("POST", CHAT, json=chat(stream=True), headers=headers) as response:
        raw = b"".join(response.iter_raw())
    events = sse_data(decode_content(raw, [coding]).decode())
    assert len(events) == 2 and json.loads(events[1])["code"] == "3000"


# --- rate-limit mode ---------------------------------------------------------------------------------


@pytest.fixture
def limited():
    """A fake in rate-limit mode: 2 requests per second per key (0.5 s apart)."""
    with FakeMistral(rate_limit=2) as server:
        yield server


@pytest.fixture
def limited_client(limited):
    with httpx.Client(base_url=limited.url, timeout=10) as c:
        yield c


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_rate_limit_refuses_a_request_too_soon_on_the_same_key(limited, limited_client):
    statuses = [limited_client.post(CHAT, json=chat(), headers=bearer("k1")) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 429, 429]
    assert (
        statuses[1].json()
        == RATE_LIMITED_BODY
        == {
            "object": "error",
            "message": "Rate limit exceeded",
            "type": "rate_limited",
            "param": None,
            "code": "1300",
            "raw_status_code": 429,
        }
    )
    assert "retry-after" not in statuses[1].headers
    arrivals = limited.arrivals("k1")
    assert [a.accepted for a in arrivals] == [True, False, False]
    assert all(a.path == CHAT for a in arrivals)
    assert arrivals[0].at <= arrivals[1].at <= arrivals[2].at <= time.monotonic()
    assert len(limited.arrival_times("k1")) == 1 and limited.limited("k1") == 2
    assert [r.status for r in limited.received] == [200, 429, 429]


def test_rate_limit_lets_spaced_requests_through(limited, limited_client):
    limited.rate_limit = 10  # switchable on a running fake
    for _ in range(3):
        assert limited_client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200
        time.sleep(0.12)
    assert limited.limited("k1") == 0
    gaps = limited.gaps("k1")
    assert len(gaps) == 2 and all(gap >= 0.1 for gap in gaps)


def test_rate_limit_counts_only_accepted_requests(limited, limited_client):
    start = time.monotonic()
    assert limited_client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200
    time.sleep(0.3)
    assert limited_client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 429  # 0.3 s after
    time.sleep(max(0.0, start + 0.55 - time.monotonic()))
    # 0.55 s after the accepted one (only 0.25 s after the refused one): accepted
    assert limited_client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200


def test_rate_limit_is_per_key(limited, limited_client):
    for headers in (bearer("k1"), bearer("k2"), {"x-api-key": "k3"}, {}, {"Authorization": "k4"}):
        assert limited_client.post(CHAT, json=chat(), headers=headers).status_code == 200
    assert limited_client.post(CHAT, json=chat(), headers={"x-api-key": "k1"}).status_code == 429  # same key
    assert limited_client.post(CHAT, json=chat()).status_code == 429  # the shared no-key bucket
    assert sorted(limited.keys()) == ["", "k1", "k2", "k3", "k4"]
    assert len(limited.arrivals()) == 7 and limited.limited() == 2


def test_rate_limit_covers_every_endpoint_and_comes_first(limited, limited_client):
    assert limited_client.get("/v1/models", headers=bearer("k1")).status_code == 200
    for method, path, extra in (
        ("POST", "/v1/embeddings", {}),
        ("POST", "/v1/nope", {}),
        ("POST", CHAT, {"x-fake-error": "422-object"}),
        ("POST", CHAT, {"x-fake-status": "503"}),
    ):
        response = limited_client.request(method, path, json=chat(), headers=dict(bearer("k1"), **extra))
        assert response.status_code == 429 and response.json() == RATE_LIMITED_BODY, path


def test_rate_limit_leaves_preflights_alone(limited, limited_client):
    assert limited_client.post(CHAT, json=chat()).status_code == 200
    for _ in range(3):
        assert limited_client.options(CHAT, headers={"Origin": "http://x"}).status_code == 204
    assert limited.arrivals("") == limited.arrivals()[:1] and limited.limited() == 0


def test_forced_429_with_retry_after(client):
    response = client.post(CHAT, json=chat(), headers={"x-fake-status": "429", "x-fake-retry-after": "2"})
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    assert response.json()["type"] == "rate_limited"
    response = client.post(CHAT, json=chat(), headers={"x-fake-error": "429-object", "x-fake-retry-after": "soon"})
    assert response.status_code == 429 and response.headers["retry-after"] == "soon"  # sent as given
    assert response.json() == RATE_LIMITED_BODY
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    response = client.post(CHAT, json=chat(), headers={"x-fake-status": "429", "x-fake-retry-after": date})
    assert response.headers["retry-after"] == date


def test_forced_429_holds_the_key_in_rate_limit_mode(limited, limited_client):
    limited.rate_limit = 100  # spacing out of the way: only the hold counts
    forced = {"x-fake-status": "429", "x-fake-retry-after": "1"}
    start = time.monotonic()
    assert limited_client.post(CHAT, json=chat(), headers=dict(bearer("k1"), **forced)).status_code == 429
    assert limited_client.post(CHAT, json=chat(), headers=bearer("k2")).status_code == 200  # other keys free
    time.sleep(0.3)
    early = limited_client.post(CHAT, json=chat(), headers=bearer("k1"))
    assert early.status_code == 429 and early.json() == RATE_LIMITED_BODY
    time.sleep(max(0.0, start + 1.05 - time.monotonic()))
    assert limited_client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200
    assert [a.accepted for a in limited.arrivals("k1")] == [True, False, True]  # the forced 429 was accepted


def test_junk_retry_after_holds_nothing(limited, limited_client):
    limited.rate_limit = 100
    forced = {"x-fake-status": "429", "x-fake-retry-after": "soon"}
    assert limited_client.post(CHAT, json=chat(), headers=dict(bearer("k1"), **forced)).status_code == 429
    time.sleep(0.02)
    assert limited_client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200


def test_retry_after_holds_nothing_when_the_mode_is_off(client):
    forced = {"x-fake-status": "429", "x-fake-retry-after": "30"}
    assert client.post(CHAT, json=chat(), headers=dict(bearer("k1"), **forced)).status_code == 429
    assert client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200


def test_rate_limit_off_by_default_but_arrivals_recorded(fake, client):
    assert fake.rate_limit is None
    for _ in range(3):
        assert client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200
    assert len(fake.arrival_times("k1")) == 3 and fake.limited() == 0
    assert all(gap >= 0 for gap in fake.gaps("k1"))


def test_mode_switched_on_a_running_fake(fake, client):
    fake.rate_limit = 1
    try:
        assert client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200
        assert client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 429
        fake.clear()  # forgets the arrivals and the limiter's memory, keeps the mode
        assert fake.arrivals() == [] and fake.rate_limit == 1
        assert client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200
    finally:
        fake.rate_limit = None
    assert client.post(CHAT, json=chat(), headers=bearer("k1")).status_code == 200


def test_rate_limit_with_streams(limited, limited_client):
    limited.rate_limit = 1
    sent = time.monotonic()
    with limited_client.stream("POST", CHAT, json=chat(stream=True), headers=bearer("k1")) as response:
        assert response.status_code == 200
        events = sse_data(response.read().decode())
    ended = time.monotonic()
    assert events[-1] == "[DONE]"
    (arrival,) = limited.arrivals("k1")
    assert sent <= arrival.at < ended - 0.15  # stamped when the headers came, not when the answer ended
    with limited_client.stream("POST", CHAT, json=chat(stream=True), headers=bearer("k1")) as response:
        assert response.status_code == 429  # a stream of ~0.25 s; the next one within 1 s is refused


def test_request_key_and_retry_after_seconds():
    assert request_key({"Authorization": "Bearer k1"}) == "k1"
    assert request_key({"Authorization": "k1"}) == "k1"
    assert request_key({"x-api-key": " k2 "}) == "k2"
    assert request_key({}) == ""
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("soon") is None and retry_after_seconds("-1") is None
    assert 4 <= retry_after_seconds(email.utils.formatdate(time.time() + 5, usegmt=True)) <= 5
