"""End to end: real Python clients through a real `mitmdump -s addon.py` (reverse mode) in front of the strict
fake Mistral, which answers in Mistral's own shapes (tests/fake_mistral.py, "the CONTRACT"): content chunk
arrays with thinking, tool calls without `type`/`index` (parallel ones in one stream delta), finish_reason
`model_length`, and Mistral's error bodies.

Clients: openai-python (`create`, the documented stream loop, the `.stream()` helper, errors), pydantic-ai
(OpenAIChatModel: text, thinking, a whole tool loop, streamed too, truncation), LangChain's ChatOpenAI (invoke,
stream, parallel tool calls) and, as the control, the official mistralai SDK, which must keep getting Mistral's
own shapes (thinking chunks) in the default mode. One proxy and one fake serve the whole module.

Every assertion here reads what the answer translation produces; run against the proxy with
`--set mistral_answers=mistral` (no translation), the translation-dependent tests fail.
"""

from __future__ import annotations

import json
from typing import Literal

import openai
import pytest
from fake_mistral import REASONING_ANSWER, REASONING_THINKING, REFERENCES_ANSWER, TOOL_RESULT_PREFIX

MODEL = "mistral-small-latest"
MAGISTRAL = "magistral-medium-latest"
KEY = "sk-clients-python-0123456789SECRET"
QUESTION = "What is 17 * 23?"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a zone, some hours ahead",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}, "hours": {"type": "integer"}},
            "required": ["zone", "hours"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
# What the fake passes to each (fake_mistral.tool_arguments): first enum value, integer 3, string "Paris".
EXPECTED_ARGUMENTS = {"get_weather": {"city": "Paris"}, "get_time": {"zone": "UTC", "hours": 3}}

# Two ways Mistral answers with reasoning: Magistral (every delta an array) and mistral-small with
# reasoning_effort (thinking arrays, a mixed [thinking, text] delta, then a plain string delta).
REASONING_REQUESTS = {
    "magistral": {"model": MAGISTRAL},
    "reasoning_effort": {"model": MODEL, "reasoning_effort": "high"},
}


def user(text: str) -> list:
    return [{"role": "user", "content": text}]


def extra(obj, name: str):
    """A field the openai SDK does not declare (e.g. reasoning_content), from its pydantic extras."""
    return (getattr(obj, "model_extra", None) or {}).get(name)


@pytest.fixture(scope="module")
def base_url(module_reverse):
    return module_reverse.url + "/v1"


@pytest.fixture
def client(base_url, module_fake):
    module_fake.clear()
    c = openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0, timeout=20)
    yield c
    c.close()


def last_sent(fake) -> dict:
    """The body of the last chat completion the fake Mistral got."""
    chats = [r for r in fake.received if r.path == "/v1/chat/completions"]
    assert chats, "nothing reached the fake Mistral"
    return json.loads(chats[-1].body)


# ---------------------------------------------------------------------------------------------------------
# openai-python


@pytest.mark.parametrize("request_kind", list(REASONING_REQUESTS))
def test_openai_create_reasoning(client, request_kind):
    completion = client.chat.completions.create(messages=user(QUESTION), **REASONING_REQUESTS[request_kind])
    message = completion.choices[0].message
    assert message.content == REASONING_ANSWER == "391"
    assert isinstance(message.content, str)
    assert extra(message, "reasoning_content") == REASONING_THINKING
    assert completion.choices[0].finish_reason == "stop"


def test_openai_create_references_and_plain(client):
    completion = client.chat.completions.create(model=MODEL, messages=user("Answer with references, please"))
    assert completion.choices[0].message.content == REFERENCES_ANSWER
    plain = client.chat.completions.create(model=MODEL, messages=user("Hi"), seed=1, user="u-1")
    assert plain.choices[0].message.content == "ok" and plain.choices[0].finish_reason == "stop"


def test_openai_create_truncation(client):
    completion = client.chat.completions.create(model=MODEL, messages=user("Please run out of context"))
    assert completion.choices[0].finish_reason == "length"
    assert completion.choices[0].message.content == "ok"


def test_openai_create_tool_calls_and_round_trip(client, module_fake):
    messages = user("Please call every tool")
    completion = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.type for c in calls] == ["function", "function"]
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [
        EXPECTED_ARGUMENTS["get_weather"],
        EXPECTED_ARGUMENTS["get_time"],
    ]
    # The documented round trip: the SDK's own message object goes back into the history.
    messages = (
        messages
        + [choice.message.model_dump(exclude_none=True)]
        + [{"role": "tool", "tool_call_id": c.id, "content": f"result of {c.function.name}"} for c in calls]
    )
    answer = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME])
    assert answer.choices[0].message.content == TOOL_RESULT_PREFIX + "result of get_weather; result of get_time"
    sent = last_sent(module_fake)
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "tool"]


def test_openai_create_single_tool_call(client):
    completion = client.chat.completions.create(model=MODEL, messages=user("call the tool"), tools=[WEATHER])
    [call] = completion.choices[0].message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


@pytest.mark.parametrize("request_kind", list(REASONING_REQUESTS))
def test_openai_stream_loop(client, request_kind):
    """The loop from openai-python's README, plus the reasoning an app reads from the delta's extra fields."""
    stream = client.chat.completions.create(messages=user(QUESTION), stream=True, **REASONING_REQUESTS[request_kind])
    text, reasoning, finish = "", "", []
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        assert delta.content is None or isinstance(delta.content, str)
        text += delta.content or ""
        reasoning += extra(delta, "reasoning_content") or ""
        finish.append(chunk.choices[0].finish_reason)
    assert text == REASONING_ANSWER == "391"
    assert reasoning == REASONING_THINKING
    assert [f for f in finish if f] == ["stop"]


def test_openai_stream_loop_plain_and_truncated(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=user("Hi"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("tok0 tok1 ")
    assert chunks[-1].usage is not None
    truncated = client.chat.completions.create(model=MODEL, messages=user("run out of context"), stream=True)
    finish = [c.choices[0].finish_reason for c in truncated if c.choices and c.choices[0].finish_reason]
    assert finish == ["length"]


def test_openai_stream_loop_parallel_tool_calls(client):
    """Tool call deltas accumulated by `index`, the way OpenAI's docs and most apps do it."""
    stream = client.chat.completions.create(
        model=MODEL, messages=user("call every tool"), tools=[WEATHER, TIME], stream=True
    )
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for tc in choice.delta.tool_calls or []:
            assert tc.index is not None
            call = calls.setdefault(tc.index, {"id": "", "type": "", "name": "", "arguments": ""})
            call["id"] += tc.id or ""
            call["type"] = tc.type or call["type"]
            call["name"] += tc.function.name or ""
            call["arguments"] += tc.function.arguments or ""
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert [calls[i]["type"] for i in (0, 1)] == ["function", "function"]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == [
        EXPECTED_ARGUMENTS["get_weather"],
        EXPECTED_ARGUMENTS["get_time"],
    ]
    assert all(calls[i]["id"] for i in (0, 1)) and calls[0]["id"] != calls[1]["id"]


@pytest.mark.parametrize("request_kind", list(REASONING_REQUESTS))
def test_openai_stream_helper(client, request_kind):
    with client.chat.completions.stream(messages=user(QUESTION), **REASONING_REQUESTS[request_kind]) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == REASONING_ANSWER
    assert final.choices[0].message.content == REASONING_ANSWER == "391"
    assert final.choices[0].finish_reason == "stop"


def test_openai_stream_helper_parallel_tool_calls(client):
    with client.chat.completions.stream(model=MODEL, messages=user("call every tool"), tools=[WEATHER, TIME]) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert len(calls) == 2
    assert [c.type for c in calls] == ["function", "function"]
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [
        EXPECTED_ARGUMENTS["get_weather"],
        EXPECTED_ARGUMENTS["get_time"],
    ]
    # strict tools: the helper parses the arguments too
    assert [c.function.parsed_arguments for c in calls] == [
        EXPECTED_ARGUMENTS["get_weather"],
        EXPECTED_ARGUMENTS["get_time"],
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_openai_stream_helper_tool_done_events(client):
    """openai-python's helper fires `tool_calls.function.arguments.done` for a call when the next index starts
    or when a LATER chunk has finish_reason; Mistral sends all calls and finish_reason in ONE chunk, so without
    the proxy moving finish_reason to an event of its own the last call never gets its done event."""
    with client.chat.completions.stream(model=MODEL, messages=user("call every tool"), tools=[WEATHER, TIME]) as stream:
        done = [(e.name, e.parsed_arguments) for e in stream if e.type == "tool_calls.function.arguments.done"]
    assert done == [("get_weather", EXPECTED_ARGUMENTS["get_weather"]), ("get_time", EXPECTED_ARGUMENTS["get_time"])]


# (x-fake-error value, status, the SDK's exception class, the reason the message must name, Mistral's own
# top-level fields that must still be in the body)
ERRORS = [
    ("422-object", 422, openai.UnprocessableEntityError, "Extra inputs are not permitted", {"object", "message"}),
    ("422-detail", 422, openai.UnprocessableEntityError, "Extra inputs are not permitted", {"detail"}),
    ("401-message", 401, openai.AuthenticationError, "Unauthorized", {"message", "request_id"}),
    ("401-detail", 401, openai.AuthenticationError, "Unauthorized", {"detail"}),
    ("429-message", 429, openai.RateLimitError, "rate limit", {"message"}),
    ("429-object", 429, openai.RateLimitError, "rate limit", {"object", "message", "raw_status_code"}),
]


@pytest.mark.parametrize("name,status,exc_type,reason,mistral_fields", ERRORS, ids=[e[0] for e in ERRORS])
def test_openai_errors(client, name, status, exc_type, reason, mistral_fields):
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODEL, messages=user("Hi"), extra_headers={"x-fake-error": name})
    e = info.value
    assert isinstance(e, exc_type) and e.status_code == status
    assert reason.lower() in str(e).lower() and reason.lower() in e.message.lower()
    # The SDK hands over OpenAI's `error` object as e.body (and e.type/e.code/e.param from it)...
    assert isinstance(e.body, dict) and {"message", "type", "param", "code"} <= set(e.body)
    assert isinstance(e.body["message"], str) and reason.lower() in e.body["message"].lower()
    assert isinstance(e.type, str) and e.type
    if name == "422-object":
        assert "messages" in e.body["message"]  # where: loc body.messages.1.content
    # ... while the whole body keeps Mistral's own fields for anyone reading them.
    body = e.response.json()
    assert mistral_fields <= set(body), body
    assert body["error"] == e.body


@pytest.mark.parametrize("name", ["422-object", "429-object"])
def test_openai_errors_streamed(client, name):
    """An error answer to a `stream=True` request raises the same way."""
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model=MODEL, messages=user("Hi"), stream=True, extra_headers={"x-fake-error": name}
        )
    assert isinstance(info.value.body, dict) and isinstance(info.value.body.get("message"), str)
    assert "error" in info.value.response.json()


# ---------------------------------------------------------------------------------------------------------
# pydantic-ai


def pydantic_ai_model(base_url: str, model: str = MODEL):
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    return OpenAIChatModel(model, provider=OpenAIProvider(base_url=base_url, api_key=KEY))


def weather_agent(base_url: str):
    from pydantic_ai import Agent

    agent = Agent(pydantic_ai_model(base_url), instructions="Use the tools.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    return agent


def thinking_of(messages) -> str:
    from pydantic_ai.messages import ModelResponse, ThinkingPart

    return "".join(
        p.content for m in messages if isinstance(m, ModelResponse) for p in m.parts if isinstance(p, ThinkingPart)
    )


def tool_calls_of(messages) -> list:
    from pydantic_ai.messages import ModelResponse, ToolCallPart

    return [
        (p.tool_name, p.args_as_dict())
        for m in messages
        if isinstance(m, ModelResponse)
        for p in m.parts
        if isinstance(p, ToolCallPart)
    ]


def tool_returns_of(messages) -> list:
    from pydantic_ai.messages import ModelRequest, ToolReturnPart

    return [
        p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)
    ]


def test_pydantic_ai_thinking(base_url, module_fake):
    from pydantic_ai import Agent

    module_fake.clear()
    result = Agent(pydantic_ai_model(base_url, MAGISTRAL)).run_sync(QUESTION)
    assert result.output == REASONING_ANSWER == "391"
    assert thinking_of(result.all_messages()) == REASONING_THINKING
    assert result.all_messages()[-1].finish_reason == "stop"


async def test_pydantic_ai_thinking_streamed(base_url):
    from pydantic_ai import Agent

    agent = Agent(pydantic_ai_model(base_url, MAGISTRAL))
    async with agent.run_stream(QUESTION) as result:
        pieces = [piece async for piece in result.stream_text(delta=True)]
    assert "".join(pieces) == REASONING_ANSWER
    assert thinking_of(result.all_messages()) == REASONING_THINKING


def test_pydantic_ai_tool_loop(base_url, module_fake):
    module_fake.clear()
    result = weather_agent(base_url).run_sync("Please call the tool")
    assert TOOL_RESULT_PREFIX + "sunny in Paris" in result.output
    messages = result.all_messages()
    assert tool_calls_of(messages) == [("get_weather", {"city": "Paris"})]
    assert tool_returns_of(messages) == ["sunny in Paris"]
    assert messages[-1].finish_reason == "stop"
    sent = last_sent(module_fake)  # the second request: the history with the call and its result
    assert [m["role"] for m in sent["messages"]][-2:] == ["assistant", "tool"]


async def test_pydantic_ai_tool_loop_async(base_url):
    result = await weather_agent(base_url).run("Please call the tool")
    assert TOOL_RESULT_PREFIX + "sunny in Paris" in result.output
    assert tool_calls_of(result.all_messages()) == [("get_weather", {"city": "Paris"})]


async def test_pydantic_ai_tool_loop_streamed(base_url):
    async with weather_agent(base_url).run_stream("Please call the tool") as result:
        output = await result.get_output()
    assert TOOL_RESULT_PREFIX + "sunny in Paris" in output
    messages = result.all_messages()
    assert tool_calls_of(messages) == [("get_weather", {"city": "Paris"})]
    assert tool_returns_of(messages) == ["sunny in Paris"]


async def test_pydantic_ai_parallel_tool_loop_streamed(base_url):
    """Two calls in ONE stream delta must stay two calls (by `index`), each run, both results sent back."""
    agent = weather_agent(base_url)

    @agent.tool_plain
    def get_time(zone: Literal["UTC", "CET"], hours: int) -> str:
        """The time in a zone, some hours ahead."""
        return f"{hours} pm in {zone}"

    async with agent.run_stream("Please call every tool") as result:
        output = await result.get_output()
    messages = result.all_messages()
    assert tool_calls_of(messages) == [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "UTC", "hours": 3})]
    assert sorted(tool_returns_of(messages)) == ["3 pm in UTC", "sunny in Paris"]
    assert output.startswith(TOOL_RESULT_PREFIX)
    assert sorted(output[len(TOOL_RESULT_PREFIX) :].split("; ")) == ["3 pm in UTC", "sunny in Paris"]


def test_pydantic_ai_truncation(base_url):
    from pydantic_ai import Agent

    result = Agent(pydantic_ai_model(base_url)).run_sync("Please run out of context")
    assert result.output == "ok"
    assert result.all_messages()[-1].finish_reason == "length"


# ---------------------------------------------------------------------------------------------------------
# LangChain


def chat_openai(base_url: str, model: str = MODEL, **kwargs):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(base_url=base_url, api_key=KEY, model=model, max_retries=0, timeout=20, **kwargs)


@pytest.mark.parametrize("request_kind", list(REASONING_REQUESTS))
def test_langchain_invoke(base_url, request_kind):
    options = dict(REASONING_REQUESTS[request_kind])
    llm = chat_openai(base_url, **options)
    answer = llm.invoke(QUESTION)
    assert answer.content == REASONING_ANSWER == "391"
    assert isinstance(answer.content, str)
    assert answer.response_metadata.get("finish_reason") == "stop"


@pytest.mark.parametrize("request_kind", list(REASONING_REQUESTS))
def test_langchain_stream(base_url, request_kind):
    llm = chat_openai(base_url, **REASONING_REQUESTS[request_kind])
    chunks = list(llm.stream(QUESTION))
    assert all(isinstance(c.content, str) for c in chunks)
    assert "".join(c.content for c in chunks) == REASONING_ANSWER
    whole = chunks[0]
    for c in chunks[1:]:
        whole = whole + c
    assert whole.content == "391"
    assert whole.response_metadata.get("finish_reason") == "stop"


def test_langchain_truncation(base_url):
    answer = chat_openai(base_url).invoke("Please run out of context")
    assert answer.response_metadata.get("finish_reason") == "length"


def _langchain_tools():
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    def get_time(zone: str, hours: int) -> str:
        """The time in a zone, some hours ahead."""
        return f"noon in {zone}"

    return [get_weather, get_time]


def test_langchain_parallel_tool_calls(base_url):
    llm = chat_openai(base_url).bind_tools(_langchain_tools())
    answer = llm.invoke("Please call every tool")
    assert [c["name"] for c in answer.tool_calls] == ["get_weather", "get_time"]
    assert answer.tool_calls[0]["args"] == {"city": "Paris"}
    assert answer.tool_calls[1]["args"] == {"zone": "Paris", "hours": 3}  # no enum here: a string is "Paris"
    assert answer.invalid_tool_calls == []


def test_langchain_parallel_tool_calls_streamed(base_url):
    llm = chat_openai(base_url).bind_tools(_langchain_tools())
    whole = None
    for chunk in llm.stream("Please call every tool"):
        whole = chunk if whole is None else whole + chunk
    assert [c["name"] for c in whole.tool_calls] == ["get_weather", "get_time"]
    assert [c["args"] for c in whole.tool_calls] == [{"city": "Paris"}, {"zone": "Paris", "hours": 3}]
    assert whole.invalid_tool_calls == []


# ---------------------------------------------------------------------------------------------------------
# The official mistralai SDK: a Mistral-native client, left with Mistral's own shapes in the default mode


def mistral_client(module_reverse):
    from mistralai.client import Mistral  # mistralai 2.x and 3.x; `from mistralai import Mistral` is 1.x

    return Mistral(api_key=KEY, server_url=module_reverse.url, timeout_ms=20000)


def _chunk_type(chunk) -> str:
    return chunk.get("type") if isinstance(chunk, dict) else getattr(chunk, "type", None)


def _thinking_text(chunk) -> str:
    parts = chunk.get("thinking") if isinstance(chunk, dict) else chunk.thinking
    return "".join((p.get("text") if isinstance(p, dict) else getattr(p, "text", "")) or "" for p in parts)


def _text(chunk) -> str:
    return (chunk.get("text") if isinstance(chunk, dict) else chunk.text) or ""


def test_mistralai_sdk_keeps_thinking_chunks(module_reverse):
    with mistral_client(module_reverse) as client:
        answer = client.chat.complete(model=MAGISTRAL, messages=[{"role": "user", "content": QUESTION}])
    content = answer.choices[0].message.content
    assert isinstance(content, list), content
    assert [_chunk_type(c) for c in content] == ["thinking", "text"]
    assert _thinking_text(content[0]) == REASONING_THINKING
    assert _text(content[1]) == REASONING_ANSWER
    assert answer.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("request_kind", list(REASONING_REQUESTS))
def test_mistralai_sdk_stream_keeps_thinking_chunks(module_reverse, request_kind):
    kwargs = dict(REASONING_REQUESTS[request_kind])
    with mistral_client(module_reverse) as client:
        events = list(client.chat.stream(messages=[{"role": "user", "content": QUESTION}], **kwargs))
    contents = [e.data.choices[0].delta.content for e in events if e.data.choices]
    chunk_lists = [c for c in contents if isinstance(c, list)]
    assert chunk_lists, contents
    thinking = "".join(_thinking_text(ch) for cl in chunk_lists for ch in cl if _chunk_type(ch) == "thinking")
    assert thinking == REASONING_THINKING
    text = "".join(
        c if isinstance(c, str) else "".join(_text(ch) for ch in c if _chunk_type(ch) == "text") for c in contents if c
    )
    assert text == REASONING_ANSWER
    assert not any(extra(e.data.choices[0].delta, "reasoning_content") for e in events if e.data.choices)


def test_mistralai_sdk_keeps_model_length(module_reverse):
    with mistral_client(module_reverse) as client:
        answer = client.chat.complete(model=MODEL, messages=[{"role": "user", "content": "run out of context"}])
    assert answer.choices[0].finish_reason == "model_length"
