"""Answers translated for OpenAI clients, through a real `mitmdump -s addon.py` in front of the strict fake
Mistral answering in Mistral's recorded shapes: JSON and streams, compressed and oddly framed, errors, the
modes, Mistral-native clients, dry run, and what the debugging tools show."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fake_mistral import REASONING_THINKING
from mitmproxy import io as mitmio

KEY = "sk-answers-0123456789SECRET"
AUTH = {"authorization": f"Bearer {KEY}"}
REASONING = {
    "model": "mistral-small-latest",
    "reasoning_effort": "high",
    "messages": [{"role": "user", "content": "What is 17*23?"}],
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
    },
]
PARALLEL = {
    "model": "mistral-small-latest",
    "tools": TOOLS,
    "messages": [{"role": "user", "content": "Please call every tool"}],
}


def post(proxy, body, headers=None, path="/v1/chat/completions", ua="AnswersTest/1.0"):
    h = {"content-type": "application/json", "user-agent": ua, **AUTH, **(headers or {})}
    with httpx.Client(timeout=20) as c:
        return c.post(proxy.url + path, content=json.dumps(body).encode(), headers=h)


def stream(proxy, body, headers=None, ua="AnswersTest/1.0"):
    """(the decoded event objects, arrival times, the raw bytes, the response headers)."""
    h = {"content-type": "application/json", "user-agent": ua, **AUTH, **(headers or {})}
    raw, times = b"", []
    start = time.monotonic()
    with httpx.Client(timeout=20) as c:
        with c.stream(
            "POST", proxy.url + "/v1/chat/completions", content=json.dumps(dict(body, stream=True)), headers=h
        ) as r:
            assert r.status_code == 200
            headers_seen = r.headers
            for piece in r.iter_bytes():
                raw += piece
                times.append(time.monotonic() - start)
    objs = [
        json.loads(line[5:])
        for line in raw.replace(b"\r\n", b"\n").split(b"\n")
        if line.startswith(b"data:") and line.strip() != b"data: [DONE]"
    ]
    return objs, times, raw, headers_seen


def text_and_reasoning(objs) -> tuple[str, str]:
    text = "".join(o["choices"][0]["delta"].get("content") or "" for o in objs)
    reasoning = "".join(o["choices"][0]["delta"].get("reasoning_content") or "" for o in objs)
    return text, reasoning


@pytest.fixture(scope="module")
def proxy(module_reverse):
    return module_reverse


# -- JSON ----------------------------------------------------------------------------------------------


def test_reasoning_answer(proxy):
    r = post(proxy, REASONING)
    message = r.json()["choices"][0]["message"]
    assert message["content"] == "391" and message["reasoning_content"] == REASONING_THINKING
    assert proxy.wait_for(r"chat/completions \[AnswersTest/1\.0\]: answer: content chunks -> text \+ reasoning_content")


def test_magistral_and_reference_answers(proxy):
    message = post(proxy, dict(REASONING, model="magistral-medium-2507")).json()["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == ("391", REASONING_THINKING)
    body = {"model": "mistral-large-2512", "messages": [{"role": "user", "content": "Answer with references"}]}
    message = post(proxy, body).json()["choices"][0]["message"]
    assert message["content"] == "Paris is the capital of France." and "reasoning_content" not in message
    assert proxy.wait_for(r"answer: content chunks -> text; reference chunks left out of the text")


def test_parallel_tool_calls_json(proxy):
    choice = post(proxy, PARALLEL).json()["choices"][0]
    calls = choice["message"]["tool_calls"]
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "get_weather", {"city": "Paris"}),
        ("function", "get_time", {"tz": "Paris"}),
    ]
    assert choice["finish_reason"] == "tool_calls"


def test_truncation_reads_as_length(proxy):
    body = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "run out of context"}]}
    assert post(proxy, body).json()["choices"][0]["finish_reason"] == "length"
    objs, *_ = stream(proxy, body)
    assert objs[-1]["choices"][0]["finish_reason"] == "length"
    fim = post(proxy, {"model": "codestral-latest", "prompt": "run out of context"}, path="/v1/fim/completions")
    assert fim.json()["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd", "deflate"])
def test_compressed_json_answer(proxy, coding):
    from mitmproxy.net import encoding  # httpx cannot decode zstd everywhere

    h = {"content-type": "application/json", **AUTH, "x-fake-encoding": coding, "accept-encoding": coding}
    with httpx.Client(timeout=20) as c:
        with c.stream("POST", proxy.url + "/v1/chat/completions", content=json.dumps(REASONING), headers=h) as r:
            raw = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == coding  # re-encoded as it came
    assert json.loads(encoding.decode(raw, coding))["choices"][0]["message"]["content"] == "391"


# -- streams -------------------------------------------------------------------------------------------


def test_reasoning_stream_translated_as_it_arrives(proxy, module_fake):
    objs, times, _, headers = stream(proxy, REASONING)
    assert text_and_reasoning(objs) == ("391", REASONING_THINKING)
    assert all(isinstance(o["choices"][0]["delta"].get("content"), (str, type(None))) for o in objs)
    assert "content-length" not in headers
    # not buffered: the pieces arrive spread over the fake's pauses between events
    assert times[-1] - times[0] >= 2 * module_fake.stream_interval
    assert proxy.wait_for(r"chat/completions \[AnswersTest/1\.0\]: answer: content chunks -> text \+ reasoning_content")


def test_magistral_stream(proxy):
    objs, *_ = stream(proxy, dict(REASONING, model="magistral-medium-2507"))
    assert text_and_reasoning(objs) == ("391", REASONING_THINKING)


def test_parallel_tool_calls_stream_get_index_and_type(proxy):
    objs, *_ = stream(proxy, PARALLEL)
    calls = [c for o in objs for c in o["choices"][0]["delta"].get("tool_calls") or []]
    assert [(c["index"], c["type"], c["function"]["name"]) for c in calls] == [
        (0, "function", "get_weather"),
        (1, "function", "get_time"),
    ]
    assert proxy.wait_for(r"answer: tool_calls type added; tool_calls index added")


@pytest.mark.parametrize("coding", ["identity", "gzip", "br", "zstd", "deflate"])
def test_odd_framing_and_compressed_streams(proxy, coding):
    headers = {"x-fake-sse": "crlf-split", "accept-encoding": coding}
    if coding != "identity":
        headers["x-fake-encoding"] = coding
    objs, times, raw, resp_headers = stream(proxy, REASONING, headers)
    assert text_and_reasoning(objs) == ("391", REASONING_THINKING)
    assert "content-encoding" not in resp_headers  # decoded as it streams
    assert raw.startswith(b": keep-alive\r\n\r\n") and b"\r\n\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    assert len(times) >= 3  # still streamed


def test_stream_error_event_gets_openai_error(proxy):
    objs, *_ = stream(
        proxy, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, {"x-fake-error": "stream-error"}
    )
    error = objs[-1]
    assert error["error"]["message"] == "Internal server error" and error["object"] == "error"


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,status,message",
    [
        ("422-object", 422, "messages[1].content: Extra inputs are not permitted; model: Field required"),
        ("422-detail", 422, "messages[1].content: Extra inputs are not permitted; model: Field required"),
        ("401-message", 401, "Unauthorized"),
        ("401-detail", 401, "Unauthorized"),
        ("429-message", 429, "Requests rate limit exceeded"),
        ("429-object", 429, "Rate limit exceeded"),
    ],
)
def test_mistral_errors_get_openai_error_beside_their_own_fields(proxy, name, status, message):
    r = post(proxy, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, {"x-fake-error": name})
    assert r.status_code == status
    body = r.json()
    assert body["error"]["message"] == message
    assert set(body) > {"error"}  # Mistral's own fields are still there
    if name.startswith("422"):
        assert body["error"]["param"] == "messages[1].content"
    assert r.headers["access-control-allow-origin"] == "*"


def test_errors_of_other_endpoints_too(proxy):
    r = post(proxy, {"model": "mistral-embed", "input": "x"}, {"x-fake-error": "401-detail"}, path="/v1/embeddings")
    assert r.status_code == 401 and r.json() == {
        "detail": "Unauthorized",
        "error": {"message": "Unauthorized", "type": "authentication_error", "param": None, "code": None},
    }


def test_the_proxys_own_400_has_both_shapes(proxy):
    with httpx.Client() as c:
        r = c.post(proxy.url + "/v1/chat/completions", content=b"{not json", headers=AUTH)
    body = r.json()
    assert r.status_code == 400 and body["object"] == "error"
    assert body["error"]["message"] == body["message"] and "not valid JSON" in body["message"]


# -- a fixed upstream, to compare bytes ----------------------------------------------------------------

FIXED_JSON = json.dumps(
    {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "ok",
                    "tool_calls": [
                        {"id": "abcdefghi", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                "finish_reason": "stop",
            }
        ],
    },
    indent=2,
).encode()
FIXED_STREAM = (
    b': ping\r\n\r\ndata: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\r\n\r\n'
    b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"abcdefghi",'
    b'"type":"function","function":{"name":"f","arguments":"{}"}}]},'
    b'"finish_reason":null}]}\n\ndata: {"choices":[{"index":0,"delta":{},'
    b'"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'
)


class _Fixed(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        sse = json.loads(self.headers.get("x-stream", "false"))
        body = FIXED_STREAM if sse else FIXED_JSON
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if sse else "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def fixed(mitmdump_module):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fixed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield mitmdump_module("--mode", f"reverse:http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()


@pytest.fixture(scope="module")
def mitmdump_module(tmp_path_factory):
    from conftest import Mitmdump

    started = []

    def start(*args):
        started.append(Mitmdump(tmp_path_factory.mktemp("mitm"), *args))
        return started[-1]

    yield start
    for p in started:
        p.stop()


def test_fixed_answers_needing_no_change_pass_byte_for_byte(fixed):
    assert post(fixed, {"model": "m", "messages": []}).content == FIXED_JSON
    *_, raw, _ = stream(fixed, {"model": "m", "messages": []}, {"x-stream": "true"})
    assert raw == FIXED_STREAM


# -- modes, native clients, dry run, debugging tools ---------------------------------------------------


def test_mistral_sdk_user_agent_keeps_mistral_shapes(proxy):
    ua = "speakeasy-sdk/python 3.7.0 2.935.1 1.0.0 mistralai"
    content = post(proxy, REASONING, ua=ua).json()["choices"][0]["message"]["content"]
    assert isinstance(content, list) and content[0]["type"] == "thinking"
    r = post(proxy, REASONING, {"x-fake-error": "401-detail"}, ua=ua)
    assert r.json() == {"detail": "Unauthorized"}


def test_modes_and_named_native_clients(mitmdump, module_fake):
    never = mitmdump("--mode", f"reverse:{module_fake.url}", "--set", "mistral_answers=mistral")
    assert isinstance(post(never, REASONING).json()["choices"][0]["message"]["content"], list)
    objs, *_ = stream(never, REASONING)
    assert any(isinstance(o["choices"][0]["delta"].get("content"), list) for o in objs)

    always = mitmdump("--mode", f"reverse:{module_fake.url}", "--set", "mistral_answers=openai")
    ua = "speakeasy-sdk/python 3.7.0 2.935.1 1.0.0 mistralai"
    assert post(always, REASONING, ua=ua).json()["choices"][0]["message"]["content"] == "391"

    named = mitmdump("--mode", f"reverse:{module_fake.url}", "--set", "mistral_native_clients=MyMistralApp")
    assert isinstance(post(named, REASONING, ua="mymistralapp/3").json()["choices"][0]["message"]["content"], list)
    assert post(named, REASONING, ua="OtherApp/1").json()["choices"][0]["message"]["content"] == "391"


def test_bad_mode_stops_start_up(tmp_path):
    from conftest import Mitmdump

    p = Mitmdump(tmp_path, "--set", "mistral_answers=sometimes")
    assert p.proc.wait(timeout=15) == 1
    assert "OptionsError: mistral_answers: 'sometimes' is not one of auto, openai, mistral" in p.output


def test_dry_run_changes_no_answer_and_logs_what_it_would(mitmdump, module_fake):
    p = mitmdump("--mode", f"reverse:{module_fake.url}", "--set", "mistral_dry_run=true")
    assert isinstance(post(p, REASONING).json()["choices"][0]["message"]["content"], list)
    objs, *_ = stream(p, PARALLEL)
    assert all("index" not in c for o in objs for c in o["choices"][0]["delta"].get("tool_calls") or [])
    r = post(p, REASONING, {"x-fake-error": "401-detail"})
    assert r.json() == {"detail": "Unauthorized"}
    assert p.wait_for(
        r"mistral-compat \(dry run, not applied\) chat/completions \[AnswersTest/1\.0\]: "
        r"answer: content chunks -> text \+ reasoning_content"
    )
    assert p.wait_for(r"\(dry run, not applied\) .*answer: tool_calls type added; tool_calls index added")


def test_log_comment_view_and_summary(mitmdump, module_fake, tmp_path):
    flows_file = tmp_path / "flows.mitm"
    p = mitmdump("--mode", f"reverse:{module_fake.url}", "-w", str(flows_file), "--set", "termlog_verbosity=debug")
    post(p, REASONING, ua="SummaryAnswers/1.0")
    stream(p, PARALLEL, ua="SummaryAnswers/1.0")
    post(
        p,
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        {"x-fake-error": "429-message"},
        ua="SummaryAnswers/1.0",
    )
    assert p.wait_for(r"answer: error object added")
    assert p.wait_for(r"\+\+\+ forwarded to the client")  # the debug before/after of the JSON answer
    assert p.stop() == 0
    out = p.output
    assert REASONING_THINKING not in out.split("--- sent by Mistral")[0]  # no message text above debug level
    assert KEY not in out
    summary = out[out.index("mistral-compat summary") :].splitlines()
    row = next(line for line in summary if line.startswith("SummaryAnswers/1.0"))
    assert row.split()[-4:] == ["3", "0", "0", "3"]
    assert "         1x  answer: content chunks -> text + reasoning_content" in summary
    assert "         1x  answer: tool_calls index added" in summary
    assert "         1x  answer: error object added" in summary
    with open(flows_file, "rb") as f:
        flows = list(mitmio.FlowReader(f).stream())
    reasoning = flows[0]
    assert reasoning.marked and "translated the answer for OpenAI clients" in reasoning.comment
    assert "- content chunks -> text + reasoning_content" in reasoning.comment
    assert "tool_calls index added" in flows[1].comment
