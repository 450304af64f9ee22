"""Every OpenAI-to-Mistral fix of a request, registered here: where OpenAI-compatible clients and Mistral
name or shape the same thing differently.

The rules (rules.json) say what Mistral accepts; this module says how to turn what OpenAI clients send
into that. Everything here is applied by the schema walker (schema.py), keyed by schema name, so it
applies wherever that schema appears (chat, agents, moderation inputs, ...):

- RENAMES (keys), TAG_ALIASES (discriminator values), ENUM_ALIASES (enum values), UNSET_BELOW_MINIMUM and
  EXCLUSIVE_STEP (numbers out of range): read by the walker's nodes;
- BEFORE: fixups run on an object of the named schema before its keys are checked;
- AFTER and AFTER_KEY: the conversation rules (CONVERSATION_ENDPOINTS only), on an object of the named
  schema or on the value under one of its keys, once repaired: assistant messages that say nothing are
  removed, tool-call ids mapped to Mistral's form (toolids.py).
"""

from __future__ import annotations

from typing import Any, Callable

from . import jsonio, toolids
from .changes import ADDED, RENAMED, VALUE, Collector

# OpenAI key -> Mistral key, applied in any object that accepts the Mistral key but not the OpenAI one.
# The Mistral key wins when a client sends both.
RENAMES = {
    "seed": "random_seed",
    "max_completion_tokens": "max_tokens",
    "dimensions": "output_dimension",
}

# Discriminator values Mistral spells differently: {discriminator: {openai: mistral}}.
TAG_ALIASES = {
    "role": {"developer": "system"},
}

# Enum values Mistral spells differently, by the enum's schema name.
ENUM_ALIASES = {
    "ReasoningEffort": {"max": "xhigh"},
}

# Integer limits where clients use a value below Mistral's minimum (-1) to mean "no limit":
# such a value is dropped (Mistral's default is no limit) instead of clamped to 0.
UNSET_BELOW_MINIMUM = frozenset({"max_tokens", "min_tokens"})

# An exclusive minimum (top_p > 0) is met by the smallest step above it.
EXCLUSIVE_STEP = 1e-6

# What Mistral requires for a function without parameters: an empty object schema.
EMPTY_PARAMETERS = {"type": "object", "properties": {}}


# Endpoints whose messages are a conversation Mistral serves, so mistral-common's conversation rules apply:
# tool-call ids of 9 characters, no assistant message without content or tool calls. Moderation and
# classification take the same messages without those rules, so those endpoints get the schema repairs only.
CONVERSATION_ENDPOINTS = frozenset({"chat/completions", "agents/completions"})


class Fixer(Collector):
    """The changes of one walk (changes.Collector), passed to fixups and the walker; conversation: apply the
    conversation rules."""

    __slots__ = ("conversation",)

    def __init__(self, conversation: bool = True) -> None:
        self.changes = []  # (Collector.__init__, without the call: one Fixer per request)
        self.conversation = conversation


Fixup = Callable[[dict, Fixer, tuple], Any]


def _function_parameters(obj: dict, fx: Fixer, path: tuple) -> None:
    if obj.get("parameters") is None:
        obj["parameters"] = jsonio.copy(EMPTY_PARAMETERS)  # deep: the request may be changed after
        fx.add(ADDED, path + ("parameters",), "empty object schema, required by Mistral")


def _audio_chunk(obj: dict, fx: Fixer, path: tuple) -> None:
    audio = obj.get("input_audio")
    if isinstance(audio, dict) and isinstance(audio.get("data"), str):
        obj["input_audio"] = audio["data"]
        fx.add(VALUE, path + ("input_audio",), "{data, format} -> base64 data string")


def _file_chunk(obj: dict, fx: Fixer, path: tuple) -> None:
    file = obj.get("file")
    if isinstance(file, dict) and "file_id" in file and "file_id" not in obj:
        obj["file_id"] = file["file_id"]
        del obj["file"]
        fx.add(RENAMED, path + ("file", "file_id"), "file_id")


def _prediction(obj: dict, fx: Fixer, path: tuple) -> None:
    content = obj.get("content")
    if isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
        obj["content"] = "".join(p["text"] for p in content)
        fx.add(VALUE, path + ("content",), "text parts joined into one string")


def _empty(content: Any) -> bool:
    return content is None or content == "" or content == []


def _assistant_refusal(obj: dict, fx: Fixer, path: tuple) -> None:
    refusal = obj.get("refusal")
    if isinstance(refusal, str) and refusal and _empty(obj.get("content")) and not obj.get("tool_calls"):
        obj["content"] = refusal
        del obj["refusal"]
        fx.add(RENAMED, path + ("refusal",), "content")


def _legacy_functions(obj: dict, fx: Fixer, path: tuple) -> None:
    """OpenAI's deprecated functions/function_call -> tools/tool_choice."""
    functions = obj.get("functions")
    if isinstance(functions, list) and "tools" not in obj and all(isinstance(f, dict) for f in functions):
        obj["tools"] = [{"type": "function", "function": f} for f in functions]
        del obj["functions"]
        fx.add(RENAMED, path + ("functions",), "tools")
    call = obj.get("function_call")
    if "function_call" in obj and "tool_choice" not in obj:
        if call in ("auto", "none"):
            choice: Any = call
        elif isinstance(call, dict) and isinstance(call.get("name"), str):
            choice = {"type": "function", "function": {"name": call["name"]}}
        else:
            return
        obj["tool_choice"] = choice
        del obj["function_call"]
        fx.add(RENAMED, path + ("function_call",), "tool_choice")


# Run on an object of the named schema before unknown keys are dropped.
BEFORE: dict[str, Fixup] = {
    "Function": _function_parameters,
    "AudioChunk": _audio_chunk,
    "FileChunk": _file_chunk,
    "Prediction": _prediction,
    "AssistantMessage": _assistant_refusal,
    "ChatCompletionRequest": _legacy_functions,
    "AgentsCompletionRequest": _legacy_functions,
}
# The keys without which a fixup of BEFORE does nothing: it is run only on an object that has one of them (one
# look instead of a call per object). A fixup not named here always runs.
BEFORE_KEYS: dict[str, frozenset[str]] = {
    "AudioChunk": frozenset({"input_audio"}),
    "FileChunk": frozenset({"file"}),
    "Prediction": frozenset({"content"}),
    "AssistantMessage": frozenset({"refusal"}),
    "ChatCompletionRequest": frozenset({"functions", "function_call"}),
    "AgentsCompletionRequest": frozenset({"functions", "function_call"}),
}


def assistant_said_nothing(obj: dict) -> bool:
    """An assistant message Mistral rejects: no content, no tool calls, not a prefix."""
    return _empty(obj.get("content")) and not obj.get("tool_calls") and not obj.get("prefix")


# Conversation rules (CONVERSATION_ENDPOINTS only): run on an object of the named schema after its keys were
# fixed; a returned reason removes it.
ConversationRule = Callable[[dict], str | None]
AFTER: dict[str, ConversationRule] = {
    "AssistantMessage": lambda obj: (
        "assistant message with no content and no tool calls" if assistant_said_nothing(obj) else None
    ),
}


# Conversation rules (CONVERSATION_ENDPOINTS only): run on the value under a key of the named schema once it
# was repaired (its items fixed, the empty assistant messages removed), before the object's next key.
AFTER_KEY: dict[str, dict[str, Fixup]] = {
    "ChatCompletionRequest": {"messages": toolids.repair},
    "AgentsCompletionRequest": {"messages": toolids.repair},
}
