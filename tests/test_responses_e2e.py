"""End to end: the official openai SDK's Responses API through a real `mitmdump -s addon.py` (reverse mode)
in front of the strict fake Mistral, which has no /v1/responses and accepts only valid chat completions."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from fake_mistral import validate

MODEL = "mistral-small-latest"
KEY = "sk-responses-test-0123456789SECRET"
CITY_ARGS = '{"city":"Paris"}'  # the fake fills required string parameters with "Paris"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


@pytest.fixture(scope="module")
def proxy(module_reverse):
    return module_reverse


@pytest.fixture
def client(proxy, module_fake):
    module_fake.clear()
    c = openai.OpenAI(api_key=KEY, base_url=proxy.url + "/v1", max_retries=0, timeout=20)
    yield c
    c.close()


def sent_to_mistral(fake) -> dict:
    """The last request the upstream got: a valid chat completion (validated again here)."""
    last = fake.received[-1]
    assert last.method == "POST" and last.path == "/v1/chat/completions"
    assert validate(last.path, last.body) is None
    return json.loads(last.body)


def test_create(client, module_fake, proxy):
    response = client.responses.create(
        model=MODEL,
        instructions="Be brief.",
        input="Hi",
        store=False,
        user="u-1",
        max_output_tokens=50,
        temperature=0.2,
        include=["reasoning.encrypted_content"],
        truncation="auto",
    )
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "ok"  # the fake's answer
    assert response.model == MODEL and response.usage.output_tokens == 1
    assert response.usage.total_tokens == response.usage.input_tokens + 1
    assert sent_to_mistral(module_fake) == {
        "model": MODEL,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "max_tokens": 50,
        "temperature": 0.2,
    }
    line = proxy.wait_for(r"mistral-compat responses \[OpenAI/Python")
    assert line and "store" in line.string and "max_output_tokens -> max_tokens" in line.string


def test_key_never_logged_with_every_detail_on(mitmdump, fake):
    p = mitmdump(
        "--mode",
        f"reverse:{fake.url}",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "flow_detail=4",
        "--set",
        "termlog_verbosity=debug",
    )
    with openai.OpenAI(api_key=KEY, base_url=p.url + "/v1", max_retries=0, timeout=20) as c:
        assert c.responses.create(model=MODEL, input="Hi", store=False).output_text == "ok"
        assert c.responses.create(model=MODEL, input="Hi", stream=True, user="u").response  # (the stream object)
    assert p.wait_for(r"\+\+\+ forwarded to Mistral")  # the debug before/after of the translation
    assert p.wait_for(r"(?i)authorization: \[REDACTED\]")  # flow_detail=4 prints the request headers
    assert KEY not in p.output and KEY[3:] not in p.output


def test_input_items_and_text_format(client, module_fake):
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=MODEL,
        input=[
            {"role": "developer", "content": "Answer in JSON."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is in this picture?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                ],
            },
        ],
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
    )
    assert response.output_text == "ok"
    sent = sent_to_mistral(module_fake)
    assert sent["messages"][0] == {"role": "system", "content": "Answer in JSON."}
    assert sent["messages"][1]["content"] == [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
    ]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }


def test_stream(client, module_fake):
    events = list(client.responses.create(model=MODEL, input="Hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) == module_fake.stream_events  # one per upstream chunk, not merged
    assert "".join(deltas) == "tok0 tok1 tok2 tok3 tok4 " == events[-1].response.output_text
    assert sent_to_mistral(module_fake)["stream"] is True


def test_stream_arrives_as_the_upstream_sends_it(proxy, module_fake):
    """Translated events reach the client spread out like the upstream's (never buffered to the end)."""
    body = {"model": MODEL, "input": "Hi", "stream": True}
    arrivals = []
    with httpx.Client(timeout=20) as c:
        with c.stream("POST", proxy.url + "/v1/responses", json=body, headers={"authorization": f"Bearer {KEY}"}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["access-control-allow-origin"] == "*"
            for line in r.iter_lines():
                if line.startswith("event: response.output_text.delta"):
                    arrivals.append(time.monotonic())
    assert len(arrivals) == module_fake.stream_events
    # the fake sends a chunk every stream_interval (50 ms): the deltas must not arrive all at once
    assert arrivals[-1] - arrivals[0] >= 0.5 * module_fake.stream_interval * (len(arrivals) - 1)


def test_function_calling_round_trip(client, module_fake):
    first = client.responses.create(
        model=MODEL,
        input="What's the weather in Paris?",
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.arguments == CITY_ARGS
    sent = sent_to_mistral(module_fake)
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER["parameters"],
                "strict": True,
            },
        }
    ]
    assert sent["tool_choice"] == "required"

    second = client.responses.create(
        model=MODEL,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "What's the weather in Paris?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.output_text == "Tool results: sunny"
    sent = sent_to_mistral(module_fake)
    assistant, tool = sent["messages"][1], sent["messages"][2]
    assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    assert tool == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][0]["id"],
        "name": "get_weather",
        "content": "sunny",
    }
    assert tool["tool_call_id"] == call.call_id  # Mistral's own 9-character id kept as the call_id


def test_function_call_ids_from_openai_are_repaired(client, module_fake):
    """A conversation recorded against OpenAI (call_... ids) is sent with ids Mistral takes, the same
    mapping for the call and its output."""
    client.responses.create(
        model=MODEL,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": "call_9xQ2hT7LmN4pR8sV1wY3zB5c",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
                "id": "fc_0123",
                "status": "completed",
            },
            {"type": "function_call_output", "call_id": "call_9xQ2hT7LmN4pR8sV1wY3zB5c", "output": "sunny"},
        ],
    )
    messages = sent_to_mistral(module_fake)["messages"]
    new_id = messages[1]["tool_calls"][0]["id"]
    assert len(new_id) == 9 and new_id.isalnum() and messages[2]["tool_call_id"] == new_id


def test_stream_function_call(client, module_fake):
    events = list(client.responses.create(model=MODEL, input="Please call the tool", tools=[WEATHER], stream=True))
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.arguments == CITY_ARGS and done.name == "get_weather"
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert [o.type for o in final.output] == ["function_call"] and final.output[0].name == "get_weather"
    call_id = final.output[0].call_id  # Mistral's own id, which the next turn sends back
    assert len(call_id) == 9 and call_id.isalnum()


def test_unsupported_feature_is_a_clear_400(client, module_fake):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="Hi", previous_response_id="resp_123")
    assert e.value.status_code == 400
    assert e.value.param == "previous_response_id" and "mistral-compat" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="Hi", tools=[{"type": "web_search"}])
    assert e.value.param == "tools[0]" and "web_search" in e.value.message
    assert module_fake.received == []  # nothing reached the upstream


def test_upstream_error_in_responses_shape(client, module_fake, proxy):
    with pytest.raises(openai.RateLimitError) as e:
        client.responses.create(model=MODEL, input="Hi", extra_headers={"x-fake-status": "429"})
    assert e.value.status_code == 429 and e.value.type == "rate_limited" and e.value.code == "1300"  # Mistral's
    with httpx.Client(timeout=10) as c:  # the raw answer: OpenAI's {"error": {...}}, not Mistral's shape
        r = c.post(
            proxy.url + "/v1/responses",
            json={"model": MODEL, "input": "Hi"},
            headers={"authorization": f"Bearer {KEY}", "x-fake-status": "401"},
        )
    assert r.status_code == 401 and set(r.json()) == {"error"}
    assert set(r.json()["error"]) == {"message", "type", "param", "code"} and r.json()["error"]["message"]


def test_upstream_validation_error_names_the_field(proxy, module_fake):
    """A value the bridge passes on but Mistral rejects: Mistral's 422 comes back in the Responses shape."""
    with httpx.Client(timeout=10) as c:
        r = c.post(
            proxy.url + "/v1/responses",
            json={"model": MODEL, "input": "Hi", "temperature": "hot"},
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert r.status_code == 422 and r.json()["error"]["param"] == "temperature", r.text


def test_stored_responses_are_a_clear_404(client, module_fake):
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.retrieve("resp_123")
    assert "stores no responses" in e.value.message
    assert module_fake.received == []


def test_preflight_and_cors(proxy, module_fake):
    module_fake.clear()
    with httpx.Client(timeout=10) as c:
        pre = c.options(
            proxy.url + "/v1/responses",
            headers={
                "origin": "http://127.0.0.1:9",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type, x-stainless-os",
            },
        )
        assert pre.status_code == 204 and "x-stainless-os" in pre.headers["access-control-allow-headers"]
        r = c.post(
            proxy.url + "/v1/responses",
            json={"model": MODEL, "input": "Hi", "background": True},
            headers={"origin": "http://127.0.0.1:9", "authorization": f"Bearer {KEY}"},
        )
    assert r.status_code == 400 and r.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in r.headers["access-control-expose-headers"]  # set by the proxy, not the upstream
    assert r.json()["error"]["param"] == "background"
    assert module_fake.received == []


def test_dry_run_logs_the_translation_and_forwards_unchanged(mitmdump, fake):
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", "connection_strategy=lazy", "--set", "mistral_dry_run=true")
    raw = json.dumps({"model": MODEL, "input": "Hi", "store": False, "max_output_tokens": 9}).encode()
    with httpx.Client(timeout=10) as c:
        r = c.post(p.url + "/v1/responses", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 404  # Mistral has no /v1/responses: the dry run changes nothing
    assert fake.received[-1].path == "/v1/responses" and fake.received[-1].body == raw
    line = p.wait_for(r"dry run, not applied\) responses \[")
    assert line and "max_output_tokens -> max_tokens" in line.string
