"""Unit tests of the OpenAI-to-Mistral fixes and their registry (mistral_compat/translate.py): each fixup on
its own, and that every fix is registered under a schema the rules have, so none is silently off."""

from __future__ import annotations

import json

import pytest

from mistral_compat import translate
from mistral_compat.changes import ADDED, RENAMED, TOOL_ID, VALUE, Collector
from mistral_compat.rewrite import rewrite
from mistral_compat.rules import BUILTIN, builtin

SCHEMAS = json.loads(BUILTIN.read_text(encoding="utf-8"))["schemas"]


def fixed(fixup, obj: dict, path: tuple = ("x",)) -> tuple[dict, list]:
    fx = translate.Fixer()
    fixup(obj, fx, path)
    return obj, [tuple(c) for c in fx.changes]


# --- the registry ---------------------------------------------------------------------------------------


def test_every_fix_is_registered_under_a_schema_the_builtin_rules_have():
    for table in (translate.BEFORE, translate.AFTER, translate.AFTER_KEY, translate.ENUM_ALIASES):
        missing = set(table) - set(SCHEMAS)
        assert not missing, f"fixes registered under schemas the rules lack: {missing}"
    for name, keys in translate.AFTER_KEY.items():
        assert set(keys) <= set(SCHEMAS[name]["object"]), name
    for name, aliases in translate.ENUM_ALIASES.items():
        assert set(aliases.values()) <= set(SCHEMAS[name]["enum"])  # aliases lead to a value Mistral takes
        assert not set(aliases) & set(SCHEMAS[name]["enum"])  # and only from one it does not


def test_renames_lead_to_keys_mistral_has():
    props = {k for s in SCHEMAS.values() if isinstance(s, dict) and "object" in s for k in s["object"]}
    assert set(translate.RENAMES.values()) <= props
    assert not set(translate.RENAMES) & {k for k in props if k in SCHEMAS["ChatCompletionRequest"]["object"]}


def test_tool_call_ids_are_a_registered_conversation_rule_of_both_conversation_requests():
    for name in ("ChatCompletionRequest", "AgentsCompletionRequest"):
        assert "messages" in translate.AFTER_KEY[name]
    assert translate.CONVERSATION_ENDPOINTS == {"chat/completions", "agents/completions"}


def test_fixer_is_the_shared_change_collector():
    fx = translate.Fixer(conversation=False)
    assert isinstance(fx, Collector) and fx.conversation is False and translate.Fixer().conversation is True
    fx.add(VALUE, ("messages", 2, "role"), "'developer' -> 'system'")
    assert [tuple(c) for c in fx.changes] == [(VALUE, "messages[2].role", "'developer' -> 'system'")]


# --- each fixup -----------------------------------------------------------------------------------------


def test_function_without_parameters_gets_an_empty_object_schema():
    obj, changes = fixed(translate.BEFORE["Function"], {"name": "f", "parameters": None})
    assert obj["parameters"] == {"type": "object", "properties": {}}
    assert changes == [(ADDED, "x.parameters", "empty object schema, required by Mistral")]
    obj["parameters"]["properties"]["a"] = 1
    assert translate.EMPTY_PARAMETERS == {"type": "object", "properties": {}}  # a copy was given
    assert fixed(translate.BEFORE["Function"], {"name": "f", "parameters": {"type": "object"}})[1] == []


def test_audio_chunk_takes_the_data_string():
    obj, changes = fixed(
        translate.BEFORE["AudioChunk"], {"type": "input_audio", "input_audio": {"data": "QUJD", "format": "wav"}}
    )
    assert obj == {"type": "input_audio", "input_audio": "QUJD"} and changes[0][0] == VALUE
    assert fixed(translate.BEFORE["AudioChunk"], {"input_audio": "QUJD"})[1] == []


def test_file_chunk_moves_file_id_up():
    obj, changes = fixed(translate.BEFORE["FileChunk"], {"type": "file", "file": {"file_id": "f1"}})
    assert obj == {"type": "file", "file_id": "f1"} and changes == [(RENAMED, "x.file.file_id", "file_id")]
    kept = {"type": "file", "file": {"file_id": "f1"}, "file_id": "f0"}
    assert fixed(translate.BEFORE["FileChunk"], dict(kept))[0] == kept  # Mistral's own key wins


def test_prediction_text_parts_are_joined():
    obj, _ = fixed(
        translate.BEFORE["Prediction"],
        {"type": "content", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    )
    assert obj["content"] == "ab"
    odd = {"content": [{"type": "image_url"}]}
    assert fixed(translate.BEFORE["Prediction"], odd)[1] == []


@pytest.mark.parametrize(
    "message, content",
    [
        ({"role": "assistant", "content": None, "refusal": "no"}, "no"),
        ({"role": "assistant", "content": "", "refusal": "no"}, "no"),
        ({"role": "assistant", "content": "yes", "refusal": "no"}, "yes"),  # content wins
        ({"role": "assistant", "content": None, "refusal": "no", "tool_calls": [{}]}, None),
    ],
)
def test_assistant_refusal_becomes_content_only_when_there_is_none(message, content):
    obj, _ = fixed(translate.BEFORE["AssistantMessage"], dict(message))
    assert obj["content"] == content


def test_legacy_functions_become_tools():
    body = {"functions": [{"name": "f"}], "function_call": {"name": "f"}}
    obj, changes = fixed(translate.BEFORE["ChatCompletionRequest"], body, ())
    assert obj == {
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    }
    assert changes == [(RENAMED, "functions", "tools"), (RENAMED, "function_call", "tool_choice")]
    both = {"functions": [{"name": "f"}], "tools": [], "function_call": "auto", "tool_choice": "none"}
    assert fixed(translate.BEFORE["AgentsCompletionRequest"], dict(both), ())[0] == both  # Mistral's keys win


def test_an_assistant_that_says_nothing_is_removed():
    rule = translate.AFTER["AssistantMessage"]
    assert rule({"role": "assistant", "content": ""}) == "assistant message with no content and no tool calls"
    assert rule({"role": "assistant", "content": [], "prefix": True}) is None
    assert rule({"role": "assistant", "content": None, "tool_calls": [{"id": "x"}]}) is None


# --- through the walker: the conversation rules run on conversation endpoints only ----------------------

MESSAGES = [
    {"role": "user", "content": "hi"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    {"role": "assistant", "content": ""},
]


@pytest.mark.parametrize("endpoint", ["chat/completions", "agents/completions"])
def test_conversation_rules_apply_on_conversation_endpoints(endpoint):
    body = {"model": "m", "agent_id": "a", "messages": MESSAGES, "seed": 1}
    result = rewrite(builtin(), endpoint, json.dumps(body).encode())
    kinds = [c.kind for c in result.changes]
    assert kinds.count(TOOL_ID) == 2 and "removed" in kinds
    # the ids are repaired right after the messages, before the keys that follow them
    assert kinds.index(TOOL_ID) < kinds.index(RENAMED)
    assert len(json.loads(result.body)["messages"]) == 3


def test_conversation_rules_do_not_apply_to_moderation():
    body = {"model": "m", "input": MESSAGES}
    result = rewrite(builtin(), "chat/moderations", json.dumps(body).encode())
    assert TOOL_ID not in [c.kind for c in result.changes]
