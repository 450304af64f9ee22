"""Responses request -> Mistral chat completions request: request_to_chat, with the allow-list of the
Responses fields at the top (what is refused, dropped, kept as it is; everything else is translated below or,
not being a Responses field, left for the chat rewrite to judge). The input items become messages in
items.py. Raises BridgeError for what cannot be honoured. Pure: no I/O, no mitmproxy.
"""

from __future__ import annotations

from typing import Any

from .. import jsonio
from ..changes import DROPPED, RENAMED, VALUE, Change, Collector
from .errors import BridgeError
from .items import Items
from .values import one_of, str_or_none

# Fields that need server-side state or features Mistral lacks: a 400 when set to anything but null
# (background: anything but false).
UNSUPPORTED = {
    "previous_response_id": "previous_response_id needs a response stored by the server; Mistral stores none. "
    "Send the whole conversation in `input` instead",
    "conversation": "conversations are server-side state; Mistral keeps none. "
    "Send the whole conversation in `input` instead",
    "prompt": "prompt templates are stored by OpenAI; Mistral has none. Send the prompt text in `input`",
    "background": "background mode needs responses stored and polled on the server; Mistral has no such mode",
    "moderation": "moderated responses are not available through Mistral's chat completions",
}

# Fields that can go without changing the answer: dropped, and logged.
DROPPABLE = frozenset(
    {
        "store",
        "include",
        "truncation",
        "user",
        "safety_identifier",
        "service_tier",
        "stream_options",
        "prompt_cache_retention",
        "prompt_cache_options",
        "top_logprobs",
        "max_tool_calls",
        "access_programs",
        "image",
        "context_management",
        "background_options",
    }
)

# Kept as they are (Mistral's chat takes them under the same name and meaning).
KEPT = frozenset({"model", "temperature", "top_p", "parallel_tool_calls", "metadata", "prompt_cache_key", "stream"})

# Translated into their chat counterparts below: instructions, input (items.py), max_output_tokens, tools,
# tool_choice, text (.format), reasoning (.effort). Any other key is not a Responses field: left for the chat
# rewrite, which keeps it if Mistral takes it.

# OpenAI's built-in tools, named as such when refused (Mistral's chat completions take function tools only).
HOSTED_TOOLS = {
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "web_search_2025_08_26",
    "file_search",
    "code_interpreter",
    "computer",
    "computer_use",
    "computer_use_preview",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
    "tool_search",
    "programmatic_tool_calling",
}


def request_to_chat(body: dict) -> tuple[dict, list[Change]]:
    """A Responses request body -> (Mistral chat completions body, changes). Raises BridgeError. The body is
    left as it was (the chat body is made from a copy: the chat rewrite repairs it in place)."""
    if not isinstance(body, dict):
        raise BridgeError("", "the body must be a JSON object")
    try:
        return _Request(jsonio.copy(body)).translate()
    except RecursionError:  # pragma: no cover - jsonio.copy and the translation do not recurse into user data
        raise BridgeError("", "the body is nested too deeply") from None


class _Request:
    """One request's translation: the top-level fields here, the input items in items.py."""

    def __init__(self, body: dict) -> None:
        self.body = body
        self.fx = Collector()

    def translate(self) -> tuple[dict, list[Change]]:
        body = self.body
        for key, message in UNSUPPORTED.items():
            value = body.get(key)
            if value is None or (key == "background" and value is False):
                continue
            raise BridgeError(key, message, "unsupported_parameter")
        if "messages" in body:
            raise BridgeError("messages", "/v1/responses takes `input`, not `messages` (that is /v1/chat/completions)")

        out: dict[str, Any] = {}
        messages: list[dict] = []
        for key, value in body.items():
            if key in ("instructions", "input"):
                out.setdefault("messages", messages)
            elif key in KEPT:
                if value is None and key in ("parallel_tool_calls", "stream"):  # Mistral takes no null here
                    self.fx.add(DROPPED, (key,), "null")
                else:
                    out[key] = value
            elif key in UNSUPPORTED or key in DROPPABLE:
                self.fx.add(DROPPED, (key,), "null" if value is None else "")
            elif key == "max_output_tokens":
                self._rename(out, key, "max_tokens", value)
            elif key in ("tools", "tool_choice", "text", "reasoning"):
                pass  # below, in a fixed order (tool_choice may narrow tools)
            else:
                out[key] = value  # not a Responses field: the chat rewrite keeps it if Mistral takes it

        instructions = body.get("instructions")
        if instructions is not None:
            if not isinstance(instructions, str):
                raise BridgeError("instructions", "instructions must be a string")
            messages.append({"role": "system", "content": instructions})
            self.fx.add(RENAMED, ("instructions",), "messages[0] (system)")
        elif "instructions" in body:
            self.fx.add(DROPPED, ("instructions",), "null")

        if "input" not in body or body["input"] is None:
            raise BridgeError("input", "input is required: a string or a list of input items")
        self.fx.add(RENAMED, ("input",), "messages")
        Items(self.fx, messages).add(body["input"])
        last = messages[-1] if messages else None
        if last is None or last["role"] not in ("user", "tool"):
            raise BridgeError(
                "input",
                f"Mistral answers only after a user message or a function_call_output, "
                f"but the input ends with {_named(last)}",
            )

        self._tools(out)
        self._text(out)
        self._reasoning(out)
        return out, self.fx.changes

    def _rename(self, out: dict, key: str, target: str, value: Any) -> None:
        if self.body.get(target) is not None:
            self.fx.add(DROPPED, (key,), f"{target} also sent")
        elif value is None:
            self.fx.add(DROPPED, (key,), "null")
        else:
            out[target] = value
            self.fx.add(RENAMED, (key,), target)

    # -- tools and tool_choice ------------------------------------------------------------------------

    def _tools(self, out: dict) -> None:
        body = self.body
        tools = body.get("tools")
        chat_tools: list[dict] | None = None
        if tools is not None:
            if not isinstance(tools, list):
                raise BridgeError("tools", "tools must be a list")
            chat_tools = [self._tool(t, i) for i, t in enumerate(tools)]
            if any(isinstance(t, dict) and "function" not in t for t in tools):
                self.fx.add(VALUE, ("tools",), "flat function tools -> {type: function, function: {...}}")
        elif "tools" in body:
            self.fx.add(DROPPED, ("tools",), "null")

        if "tool_choice" in body:
            choice = body["tool_choice"]
            if choice is None:
                self.fx.add(DROPPED, ("tool_choice",), "null")
            elif choice in ("auto", "none", "required"):
                out["tool_choice"] = choice
            elif isinstance(choice, dict):
                kind = choice.get("type")
                if kind == "function" and isinstance(choice.get("name"), str):
                    out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
                    self.fx.add(VALUE, ("tool_choice",), "{type, name} -> {type, function: {name}}")
                elif kind == "function" and isinstance(choice.get("function"), dict):
                    out["tool_choice"] = choice  # already in the chat shape
                elif kind == "allowed_tools":
                    chat_tools = self._allowed_tools(choice, chat_tools, out)
                else:
                    raise BridgeError(
                        "tool_choice",
                        f"tool_choice {kind!r} is not available through Mistral's "
                        f"chat completions (only function tools are)",
                        "unsupported_value",
                    )
            else:
                raise BridgeError(
                    "tool_choice",
                    f"tool_choice {choice!r} is not one of 'auto', 'none', 'required' or a function choice",
                )
        if chat_tools is not None:
            out["tools"] = chat_tools

    def _tool(self, tool: Any, i: int) -> dict:
        if not isinstance(tool, dict):
            raise BridgeError(f"tools[{i}]", "a tool must be an object")
        kind = tool.get("type")
        if kind != "function":
            what = "built-in tool" if one_of(kind, HOSTED_TOOLS) else "tool type"
            raise BridgeError(
                f"tools[{i}]",
                f"{what} {kind!r} is not available through Mistral's chat completions; only function tools are",
                "unsupported_value",
            )
        if isinstance(tool.get("function"), dict) and "name" not in tool:
            return tool  # already in the chat shape
        if not isinstance(tool.get("name"), str):
            raise BridgeError(f"tools[{i}].name", "a function tool needs a name")
        fn: dict[str, Any] = {"name": tool["name"]}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        for key in tool:
            if key not in ("type", "name", "description", "parameters", "strict"):
                self.fx.add(DROPPED, ("tools", i, key))
        return {"type": "function", "function": fn}

    def _allowed_tools(self, choice: dict, chat_tools: list[dict] | None, out: dict) -> list[dict] | None:
        mode = choice.get("mode")
        if mode not in ("auto", "required"):
            raise BridgeError("tool_choice.mode", "allowed_tools mode must be 'auto' or 'required'")
        allowed = choice.get("tools")
        if not isinstance(allowed, list):
            raise BridgeError("tool_choice.tools", "allowed_tools needs a list of tools")
        names = []
        for k, t in enumerate(allowed):
            if not (isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)):
                raise BridgeError(
                    f"tool_choice.tools[{k}]",
                    "only function tools can be allowed through Mistral's chat completions",
                    "unsupported_value",
                )
            names.append(t["name"])
        out["tool_choice"] = mode
        allowed_names = set(names)  # (a list would make this tools x allowed tools)
        kept = [t for t in chat_tools or [] if str_or_none(t.get("function", {}).get("name")) in allowed_names]
        self.fx.add(VALUE, ("tool_choice",), f"allowed_tools -> {mode!r}, tools limited to {', '.join(names)}")
        return kept

    # -- text.format and reasoning --------------------------------------------------------------------

    def _object(self, key: str) -> dict | None:
        """The body's object under key: None when absent or null (a null logged as dropped)."""
        value = self.body.get(key)
        if value is None:
            if key in self.body:
                self.fx.add(DROPPED, (key,), "null")
            return None
        if not isinstance(value, dict):
            raise BridgeError(key, f"{key} must be an object")
        return value

    def _text(self, out: dict) -> None:
        text = self._object("text")
        if text is None:
            return
        for key in text:
            if key != "format":
                self.fx.add(DROPPED, ("text", key), "null" if text[key] is None else "")
        fmt = text.get("format")
        if fmt is None:
            if "format" in text:
                self.fx.add(DROPPED, ("text", "format"), "null")
            return
        if self.body.get("response_format") is not None:
            self.fx.add(DROPPED, ("text", "format"), "response_format also sent")
            return
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind in ("text", "json_object"):
            out["response_format"] = {"type": kind}
        elif kind == "json_schema":
            schema = {k: fmt[k] for k in ("name", "schema", "description", "strict") if fmt.get(k) is not None}
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        else:
            raise BridgeError(
                "text.format", f"text.format type {kind!r} is not one of 'text', 'json_object', 'json_schema'"
            )
        self.fx.add(RENAMED, ("text", "format"), "response_format")

    def _reasoning(self, out: dict) -> None:
        reasoning = self._object("reasoning")
        if reasoning is None:
            return
        for key, value in reasoning.items():
            if key == "effort":
                if value is None:
                    self.fx.add(DROPPED, ("reasoning", "effort"), "null")
                elif self.body.get("reasoning_effort") is not None:
                    self.fx.add(DROPPED, ("reasoning", "effort"), "reasoning_effort also sent")
                else:
                    out["reasoning_effort"] = value
                    self.fx.add(RENAMED, ("reasoning", "effort"), "reasoning_effort")
            else:
                self.fx.add(DROPPED, ("reasoning", key), "null" if value is None else "")


def _named(message: dict | None) -> str:
    """The last message, as the error about what the input ends with names it."""
    if message is None:
        return "nothing"
    if message.get("tool_calls"):
        return "a function_call without its function_call_output"
    role = message["role"]
    return f"an {role} message" if role == "assistant" else f"a {role} message"
