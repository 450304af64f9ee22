"""End to end with real Node.js clients: openai-node and the Vercel AI SDK (@ai-sdk/openai's `.chat()` and
@ai-sdk/openai-compatible) through a real `mitmdump -s addon.py` reverse proxy in front of the strict fake
Mistral, which answers in Mistral's own shapes (content chunk arrays with thinking, tool calls without
type/index, finish_reason model_length, Mistral's error bodies). What each client SAW is checked: the
answer text, the reasoning where that client reads it, parallel tool calls, truncation, error messages,
and the AI SDK's multi-step tool loop.

Without the translation (`--set mistral_answers=mistral`) every test here fails except test_plain_answer
(the harness) and the @ai-sdk/openai-compatible cases of reasoning, references, parallel calls and the tool
loop: that provider (>= 2.0.92) reads Mistral's content chunks and index-less calls itself, and those cases
check that the translated answers keep working for it.

tests/node/clients.mjs makes the calls (versions pinned in tests/node/package-lock.json; `make test` runs
`npm ci` there). All calls run in one Node process per module (`clients.mjs --batch`); a failing
assertion prints the single-call command that repeats it against a proxy of your own.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import clean_env
from fake_mistral import REASONING_THINKING

NODE_DIR = Path(__file__).resolve().parent / "node"
CLIENTS = NODE_DIR / "clients.mjs"
NODE = shutil.which("node")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing():
    if NODE is None:
        return "node is not on PATH (the Node client tests need Node.js 20+ and npm)"
    if not (NODE_DIR / "node_modules").is_dir():
        return "tests/node/node_modules is missing: `make test` installs it (or: cd tests/node && npm ci)"
    return None


MISSING = _missing()
if MISSING and not IN_CI:
    pytest.skip(MISSING, allow_module_level=True)

MODEL = "mistral-small-latest"
MAGISTRAL = "magistral-medium-latest"
ANSWER = "391"
REFERENCES_ANSWER = "Paris is the capital of France."
LOOP_ANSWER = "Tool results: sunny in Paris"

OPENAI_NODE = ("openai-create", "openai-stream", "openai-helper")
AI_SDK = ("ai-openai-generate", "ai-openai-stream", "ai-compat-generate", "ai-compat-stream")
ALL = OPENAI_NODE + AI_SDK
STREAMED = ("openai-stream", "openai-helper", "ai-openai-stream", "ai-compat-stream")
# the scenarios whose request can carry reasoning_effort (@ai-sdk/openai sends it only for OpenAI's reasoning models)
EFFORT = OPENAI_NODE + ("ai-compat-generate", "ai-compat-stream")

PAIR_CALLS = [("get_weather", {"city": "Paris"}), ("get_forecast", {"city": "Paris", "days": 3, "units": "celsius"})]

# x-fake-error name -> (HTTP status, the words of Mistral's reason the client's error message must show)
ERRORS = {
    "422-object": (422, "Extra inputs are not permitted"),
    "422-detail": (422, "Extra inputs are not permitted"),
    "401-message": (401, "Unauthorized"),
    "401-detail": (401, "Unauthorized"),
    "429-message": (429, "rate limit"),
    "429-object": (429, "rate limit"),
}

# Every client call of the module: key -> job for `clients.mjs --batch`.
JOBS: dict = {}


def _job(group: str, scenario: str, model: str = MODEL, prompt: str = "Hi", **options) -> None:
    JOBS[f"{group}/{scenario}"] = {"scenario": scenario, "model": model, "prompt": prompt, "options": options}


for _s in ALL:
    _job("plain", _s)
    _job("magistral", _s, MAGISTRAL, "What is 17 * 23?")
    _job("references", _s, prompt="Answer with references: what is the capital of France?")
    _job("parallel", _s, prompt="Please call every tool.", tools="pair")
    _job("truncated", _s, prompt="Write until you run out of context.")
    for _kind in ERRORS:
        _job(f"error-{_kind}", _s, error=_kind)
for _s in EFFORT:
    _job("effort", _s, prompt="What is 17 * 23?", effort="high")
for _s in AI_SDK:
    _job("loop", _s, prompt="Please call the tool: what is the weather in Paris?", tools="weather")


@pytest.fixture(scope="module")
def seen(request):
    """(base URL, key -> what the client saw: one parsed JSON line of clients.mjs) for every job, through one
    reverse proxy (conftest's module_reverse) in front of the module's fake Mistral."""
    if MISSING:
        pytest.fail(f"{MISSING} (CI=true: not skipped)", pytrace=False)
    base_url = request.getfixturevalue("module_reverse").url + "/v1"
    jobs = "".join(json.dumps({"id": key, **job}) + "\n" for key, job in JOBS.items())
    proc = subprocess.run(
        [NODE, str(CLIENTS), "--batch", base_url],
        input=jobs,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(NODE_DIR),
        env=clean_env(),
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            results[data.pop("id")] = data
    assert proc.returncode == 0 and len(results) == len(JOBS), (
        f"clients.mjs --batch exited {proc.returncode} with {len(results)}/{len(JOBS)} results\n"
        f"stderr:\n{proc.stderr[-4000:]}"
    )
    return base_url, results


def saw(seen, key: str):
    """(what the client saw, a message with the command that repeats this one call) for a job key."""
    base_url, results = seen
    job = JOBS[key]
    command = shlex.join(
        [
            "node",
            "tests/node/clients.mjs",
            job["scenario"],
            base_url,
            job["model"],
            job["prompt"],
            json.dumps(job["options"]),
        ]
    )
    result = results[key]
    return result, f"{key}: the client saw\n{json.dumps(result, indent=1)[:3000]}\nrepeat: {command}"


def _answered(result, message, text):
    assert result["error"] is None, message
    assert isinstance(result["text"], str) and "[object Object]" not in result["text"], message
    assert result["text"] == text, message


def _finish(scenario: str, openai_reason: str) -> str:
    """The finish reason as the client names it: OpenAI's wire value, or the AI SDK's unified one."""
    if scenario in OPENAI_NODE:
        return openai_reason
    return {"tool_calls": "tool-calls"}.get(openai_reason, openai_reason)


@pytest.mark.parametrize("scenario", ALL)
def test_plain_answer(seen, scenario):
    """The harness itself: a plain question gets the fake's plain answer (no translation needed)."""
    result, message = saw(seen, f"plain/{scenario}")
    _answered(result, message, "tok0 tok1 tok2 tok3 tok4 " if scenario in STREAMED else "ok")
    assert result["finishReason"] == "stop", message


def _check_reasoning(result, message, scenario):
    _answered(result, message, ANSWER)
    assert result["finishReason"] == "stop", message
    assert REASONING_THINKING not in result["text"], message
    if scenario in OPENAI_NODE:
        # reasoning_content on the message, or on the deltas (the helper: read from its "chunk" events)
        assert result["reasoning"] == REASONING_THINKING, message
    elif scenario.startswith("ai-compat"):
        assert REASONING_THINKING in (result["reasoning"] or ""), message
    else:
        # @ai-sdk/openai's .chat() model reads no reasoning field: the text alone must be right
        assert result["reasoning"] is None or REASONING_THINKING in result["reasoning"], message
    if scenario == "openai-stream":
        assert result["contentTypes"] == ["string"], message  # every delta.content a string, never a chunk array
    if scenario.endswith("stream") and scenario.startswith("ai-"):
        assert result["streamedText"] == ANSWER, message


@pytest.mark.parametrize("scenario", ALL)
def test_magistral_reasoning(seen, scenario):
    """A Magistral answer (content = thinking chunk + text chunk): text "391", the thinking as reasoning."""
    _check_reasoning(*saw(seen, f"magistral/{scenario}"), scenario)


@pytest.mark.parametrize("scenario", EFFORT)
def test_reasoning_effort(seen, scenario):
    """reasoning_effort on a Mistral model: thinking chunks, then a mixed delta (thinking + "3"), then "91"."""
    _check_reasoning(*saw(seen, f"effort/{scenario}"), scenario)


@pytest.mark.parametrize("scenario", ALL)
def test_references(seen, scenario):
    """Text chunks around a reference chunk read as one plain text."""
    result, message = saw(seen, f"references/{scenario}")
    _answered(result, message, REFERENCES_ANSWER)
    assert result["finishReason"] == "stop", message


@pytest.mark.parametrize("scenario", ALL)
def test_parallel_tool_calls(seen, scenario):
    """Two calls in one answer (in a stream: one delta, no index or type from Mistral) stay two calls."""
    result, message = saw(seen, f"parallel/{scenario}")
    assert result["error"] is None, message
    calls = result["toolCalls"]
    assert [(c["name"], c["arguments"]) for c in calls] == PAIR_CALLS, message
    ids = [c["id"] for c in calls]
    assert all(ids) and len(set(ids)) == 2, message
    if scenario in OPENAI_NODE:
        assert all(c["type"] == "function" for c in calls), message
    assert result["finishReason"] == _finish(scenario, "tool_calls"), message
    if scenario == "openai-stream":
        assert result["callsWithoutIndex"] == 0, message
    if scenario.startswith("ai-") and scenario.endswith("stream"):
        assert [(c["name"], c["arguments"]) for c in result["streamedToolCalls"]] == PAIR_CALLS, message


@pytest.mark.parametrize("scenario", ALL)
def test_truncation_reads_as_length(seen, scenario):
    """Mistral's finish_reason "model_length" reads as OpenAI's "length" (the AI SDK: finishReason "length")."""
    result, message = saw(seen, f"truncated/{scenario}")
    _answered(result, message, "tok0 tok1 tok2 tok3 tok4 " if scenario in STREAMED else "ok")
    assert result["finishReason"] == "length", message


@pytest.mark.parametrize("scenario", ALL)
@pytest.mark.parametrize("kind", ERRORS)
def test_error_message_names_mistral_reason(seen, kind, scenario):
    """Mistral's error bodies get an OpenAI `error` object: the client's error message shows Mistral's reason."""
    status, reason = ERRORS[kind]
    result, message = saw(seen, f"error-{kind}/{scenario}")
    error = result["error"]
    assert error is not None, message
    assert error["status"] == status, message
    assert error["hasData"], message  # the client found an OpenAI-shaped error object in the body
    assert reason.lower() in error["message"].lower(), message
    if scenario in OPENAI_NODE:
        assert error["message"].startswith(f"{status} "), message
        assert "status code (no body)" not in error["message"], message


@pytest.mark.parametrize("scenario", AI_SDK)
def test_ai_sdk_tool_loop(seen, scenario):
    """generateText/streamText with an executing tool and stopWhen stepCountIs(3): call, result, final answer."""
    result, message = saw(seen, f"loop/{scenario}")
    assert result["error"] is None, message
    assert result["toolResults"] == ["sunny in Paris"], message
    assert result["steps"] == 2, message
    assert LOOP_ANSWER in result["text"], message
    assert result["finishReason"] == "stop", message
    if scenario.endswith("stream"):
        assert LOOP_ANSWER in result["streamedText"], message
        streamed = [(c["name"], c["arguments"]) for c in result["streamedToolCalls"]]
        assert streamed == [("get_weather", {"city": "Paris"})], message
