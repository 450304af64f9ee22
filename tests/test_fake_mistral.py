"""Tests of the fake Mistral API: its strictness is what the end-to-end tests rely on."""

from __future__ import annotations

import copy
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

from fake_mistral import FakeMistral, encode_content, validate

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
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this image, and the weather?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            {"type": "image_url", "image_url": "https://example.com/cat.png"},
        ]},
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
    assert any(e["type"] == "extra_forbidden" and e["loc"][-len(loc_end):] == loc_end for e in entries), entries
    entry = next(e for e in entries if e["type"] == "extra_forbidden")
    assert entry["msg"] == "Extra inputs are not permitted"
    assert entry["loc"][0] == "body"


# --- validate(): schema strictness (422) ------------------------------------


@pytest.mark.parametrize("field, value", [
    ("stream_options", {"include_usage": True}),
    ("user", "u-1"),
    ("seed", 1),
    ("max_completion_tokens", 10),
    ("store", True),
    ("logprobs", True),
])
def test_rejects_openai_only_top_level_fields(field, value):
    entries = detail(check(chat(**{field: value})))
    assert entries == [{"type": "extra_forbidden", "loc": ["body", field],
                        "msg": "Extra inputs are not permitted", "input": value}]


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
    assert detail(check(chat(messages=messages))) == [{
        "type": "extra_forbidden", "loc": ["body", "messages", 1, "assistant", "refusal"],
        "msg": "Extra inputs are not permitted", "input": None,
    }]


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


@pytest.mark.parametrize("chunk", [
    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    {"type": "file", "file": {"file_id": "file-abc"}},
])
def test_rejects_openai_file_and_audio_chunk_shapes(chunk):
    assert check(chat(messages=[{"role": "user", "content": [chunk]}]))[0] == 422


def test_rejects_temperature_above_1_5():
    entries = detail(check(chat(temperature=2)))
    assert entries == [{"type": "less_than_equal", "loc": ["body", "temperature"],
                        "msg": "Input should be less than or equal to 1.5", "input": 2, "ctx": {"le": 1.5}}]


def test_rejects_top_p_zero():
    entries = detail(check(chat(top_p=0)))
    assert entries == [{"type": "greater_than", "loc": ["body", "top_p"],
                        "msg": "Input should be greater than 0", "input": 0, "ctx": {"gt": 0}}]


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


@pytest.mark.parametrize("body, error_type", [
    (b"", "missing"),
    (b"{not json", "json_invalid"),
    (b'{"model": "m", "messages": [], "temperature": NaN}', "json_invalid"),
    (b'{"model": "m", "temperature": Infinity}', "json_invalid"),
    (b'{"model": "\xff\xfe"}', "json_invalid"),
    (b"[1, 2]", "model_attributes_type"),
])
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
    error = mistral_400(check(chat(messages=tool_round("call_abc123"))),
                        "Tool call id was call_abc123 but must be a-z, A-Z, 0-9, with a length of 9.")
    assert (error["type"], error["code"]) == ("invalid_function_call", "3280")


def test_rejects_tool_message_without_tool_call_id():
    messages = tool_round("D681PevKs")
    del messages[2]["tool_call_id"]
    mistral_400(check(chat(messages=messages)))


def test_rejects_tool_result_for_unknown_call():
    error = mistral_400(check(chat(messages=tool_round("D681PevKs", "Zz9Zz9Zz9"))),
                        "Unexpected tool call id Zz9Zz9Zz9 in tool results")
    assert error["code"] == "3230"


def test_rejects_assistant_last_without_prefix():
    messages = [USER, {"role": "assistant", "content": "Sure"}]
    assert mistral_400(check(chat(messages=messages)))["message"].startswith("Expected last role User or Tool")
    assert check(chat(messages=[USER, {"role": "assistant", "content": "Sure", "prefix": True}])) is None


def test_rejects_empty_assistant_message():
    messages = [USER, {"role": "assistant", "content": ""}, USER]
    mistral_400(check(chat(messages=messages)),
                "Assistant message must have either content or tool_calls, but not none.")


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


@pytest.mark.parametrize("path, body", [
    ("/v1/fim/completions", {"model": "codestral-latest", "prompt": "def f(", "suffix": "return 1",
                             "temperature": 0.2, "max_tokens": 64, "min_tokens": 1, "stop": "\n\n"}),
    ("/v1/embeddings", {"model": "codestral-embed", "input": ["a", "b"], "output_dimension": 16,
                        "output_dtype": "float", "encoding_format": "float"}),
    ("/v1/moderations", {"model": "mistral-moderation-latest", "input": ["text one", "text two"]}),
    ("/v1/chat/moderations", {"model": "mistral-moderation-latest",
                              "input": [USER, {"role": "assistant", "content": "It is sunny."}]}),
    ("/v1/classifications", {"model": "ft:classifier", "input": "classify me"}),
    ("/v1/chat/classifications", {"model": "ft:classifier", "input": {"messages": [USER]}}),
    ("/v1/ocr", {"model": "mistral-ocr-latest", "pages": [0, 1], "include_image_base64": False,
                 "document": {"type": "document_url", "document_url": "https://example.com/a.pdf"}}),
])
def test_accepts_other_endpoints(path, body):
    assert check(body, path) is None


def test_rejects_on_other_endpoints():
    assert_extra_forbidden(check({"model": "e", "input": "a", "dimensions": 8}, "/v1/embeddings"),
                           ["body", "dimensions"])
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
                events.append(line[len("data: "):])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["delta"]["content"] for c in chunks[:4]] == ["tok0 ", "tok1 ", "tok2 ", "tok3 "]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" in chunks[-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert arrivals[3] - arrivals[0] >= 0.25  # three intervals of 0.1 s


SECOND_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def _tool_call_of(message: dict) -> dict:
    (call,) = message["tool_calls"]
    assert re.fullmatch(r"[a-zA-Z0-9]{9}", call["id"])
    assert call["type"] == "function" and call["function"]["arguments"] == "{}" and call["index"] == 0
    return call


@pytest.mark.parametrize("fields, name", [
    ({"tool_choice": "any"}, "get_weather"),
    ({"tool_choice": "required"}, "get_weather"),
    ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "get_time"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Please CALL THE TOOL now"}]}]},
     "get_weather"),
])
def test_tool_call_answers(client, fields, name):
    body = chat(tools=[WEATHER_TOOL, SECOND_TOOL], **fields)
    choice = client.post(CHAT, json=body).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""
    assert _tool_call_of(choice["message"])["function"]["name"] == name


@pytest.mark.parametrize("fields", [
    {},                                                                          # auto, no trigger
    {"tool_choice": "none", "messages": [{"role": "user", "content": "call the tool"}]},
    {"tools": None, "tool_choice": "any"},                                       # no tools to call
])
def test_no_tool_call_without_a_reason(client, fields):
    body = dict(chat(tools=[WEATHER_TOOL]), **fields)
    body = {k: v for k, v in body.items() if v is not None}
    choice = client.post(CHAT, json=body).json()["choices"][0]
    assert choice == {"index": 0, "message": {"role": "assistant", "content": "ok", "tool_calls": None},
                      "finish_reason": "stop"}


def test_tool_call_ids_are_fresh(client):
    ids = {client.post(CHAT, json=chat(tools=[WEATHER_TOOL], tool_choice="any")).json()
           ["choices"][0]["message"]["tool_calls"][0]["id"] for _ in range(5)}
    assert len(ids) == 5


def test_streamed_tool_call_comes_whole_then_finish(client):
    with client.stream("POST", CHAT, json=chat(stream=True, tools=[WEATHER_TOOL], tool_choice="required")) as response:
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "tool_calls"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    call = _tool_call_of(chunks[1]["choices"][0]["delta"])
    assert call["function"]["name"] == "get_weather"
    assert "usage" in chunks[-1] and "tool_calls" not in chunks[-1]["choices"][0]["delta"]


def test_fim_and_embeddings_over_http(client):
    fim = client.post("/v1/fim/completions", json={"model": "codestral-latest", "prompt": "def f("})
    assert fim.status_code == 200 and fim.json()["choices"][0]["message"]["content"] == "ok"
    emb = client.post("/v1/embeddings", json={"model": "e", "input": ["a", "b", "c"], "output_dimension": 5})
    data = emb.json()["data"]
    assert [len(d["embedding"]) for d in data] == [5, 5, 5]
    single = client.post("/v1/embeddings", json={"model": "e", "input": "a"}).json()["data"]
    assert len(single) == 1 and len(single[0]["embedding"]) == 8


@pytest.mark.parametrize("path, body, key", [
    ("/v1/moderations", {"model": "m", "input": ["a", "b"]}, "results"),
    ("/v1/chat/classifications", {"model": "m", "input": [{"messages": [USER]}]}, "results"),
    ("/v1/ocr", {"model": "m", "document": {"type": "image_url", "image_url": "https://e.com/a.png"}}, "pages"),
])
def test_other_endpoint_answers(client, path, body, key):
    response = client.post(path, json=body)
    assert response.status_code == 200 and response.json()[key]


def test_models_not_found_and_forced_status(client):
    assert client.get("/v1/models").json()["object"] == "list"
    assert client.post("/v1/nope", json={}).status_code == 404
    limited = client.post(CHAT, json=chat(), headers={"x-fake-status": "429"})
    assert limited.status_code == 429
    assert limited.json() == {"object": "error", "message": "Rate limit exceeded", "type": "rate_limited",
                              "param": None, "code": "1300"}


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
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\nX-Trailer: t\r\n\r\n")
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
        conn.request("POST", CHAT, body=iter([gzip.compress(body)]), encode_chunked=True,
                     headers={"Content-Encoding": "gzip", "Transfer-Encoding": "chunked"})
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
