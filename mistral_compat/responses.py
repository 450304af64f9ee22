"""OpenAI's Responses API (POST /v1/responses) bridged onto Mistral's chat completions.

Mistral has no /v1/responses. This module translates, in both directions:

- request_to_chat: a Responses request body -> a Mistral chat completions body, plus the Change records
  of everything dropped, renamed or translated; BridgeError for what cannot be honoured (server-side
  state, built-in tools, background mode, prompt templates);
- chat_to_response: a chat.completion (Mistral's answer) -> a Responses `response` object;
- error_body: Mistral's error bodies (and our own 400s) -> the Responses/OpenAI error shape;
- StreamTranslator: Mistral's chat.completion.chunk SSE stream -> the Responses event stream,
  chunk by chunk as bytes arrive.

bridge_request runs the chat body made here through the normal chat rewrite (rewrite.py), which
repairs tool-call ids, clamps values into Mistral's ranges and drops whatever Mistral does not accept.
Pure: no I/O, no mitmproxy.
"""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
import string
import time
import uuid
from typing import Any, NamedTuple

from . import answers, errors, jsonio, sse
from .changes import DROPPED, REMOVED, RENAMED, VALUE, Change, format_path
from .rewrite import rewrite
from .rules import Rules

PREFIX = errors.PREFIX
json_bytes = errors.json_bytes


class BridgeError(Exception):
    """A Responses request that cannot be sent to Mistral: answer 400 naming .param."""

    def __init__(self, param: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.code = code  # "unsupported_parameter" / "unsupported_value" for what Mistral cannot do


# ---------------------------------------------------------------------------------------------------
# Request: Responses -> chat completions

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
DROPPABLE = frozenset({
    "store", "include", "truncation", "user", "safety_identifier", "service_tier", "stream_options",
    "prompt_cache_retention", "prompt_cache_options", "top_logprobs", "max_tool_calls", "access_programs",
    "image", "context_management", "background_options",
})

# Kept as they are (Mistral's chat takes them under the same name and meaning).
KEPT = frozenset({"model", "temperature", "top_p", "parallel_tool_calls", "metadata", "prompt_cache_key", "stream"})

HOSTED_TOOLS = {
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26",
    "file_search", "code_interpreter", "computer", "computer_use", "computer_use_preview", "image_generation",
    "mcp", "local_shell", "shell", "apply_patch", "tool_search", "programmatic_tool_calling",
}

IMAGE_DETAIL = {"low", "auto", "high"}          # what Mistral's image_url.detail takes
IMAGE_DETAIL_ALIASES = {"original": "high"}      # Responses' full-resolution detail -> Mistral's highest


def request_to_chat(body: dict) -> tuple[dict, list[Change]]:
    """A Responses request body -> (Mistral chat completions body, changes). Raises BridgeError."""
    if not isinstance(body, dict):
        raise BridgeError("", "the body must be a JSON object")
    try:
        return _Request(_copy(body)).translate()
    except RecursionError:  # pragma: no cover - _copy and the translation do not recurse into user data
        raise BridgeError("", "the body is nested too deeply") from None


_RESPONSES_PATH = re.compile(r"(?:^|/)v1/responses(/.*)?$")


def match_path(path: str) -> tuple[str, str] | None:
    """Which Responses API path this is: ('create', chat completions path) for POST .../v1/responses,
    ('stored', '') for .../v1/responses/{id}[/...] (stored responses), None for any other path."""
    route, sep, query = path.partition("?")
    route = route.split("#", 1)[0]
    m = _RESPONSES_PATH.search(route)
    if m is None:
        return None
    if m.group(1) and m.group(1).strip("/"):
        return "stored", ""
    return "create", route[:m.start()] + route[m.start():].rstrip("/").replace("v1/responses", "v1/chat/completions",
                                                                              1) + sep + query


STORED_MESSAGE = ("Mistral stores no responses, so a stored response cannot be retrieved, listed, cancelled or "
                  "deleted; keep the output of each response on the client and send it back in `input`")


class Bridged(NamedTuple):
    """A Responses request made into a chat completions request (or the reason it cannot be)."""
    body: bytes | None        # the chat completions body to forward; None when it cannot be sent
    changes: list[Change]     # the bridge's translations, then the chat rewrite's repairs
    request: dict | None      # the Responses request as the client sent it (the answer echoes parts of it)
    error: str | None = None  # why it cannot be sent (answer 400 with error_body(400, None, error, param, code))
    param: str | None = None
    code: str | None = None


def bridge_request(rules: Rules, body: bytes) -> Bridged:
    """A Responses request body -> the Mistral chat completions body to forward, through the same rewrite
    as a chat completion sent directly (tool-call ids, ranges, unknown keys)."""
    try:
        doc = jsonio.parse(body)
        request = json.loads(body)  # plain values, for the echo in the answer
    except (jsonio.BodyError, ValueError, RecursionError) as e:
        return Bridged(None, [], None, str(e) if isinstance(e, jsonio.BodyError) else "the body is not valid JSON")
    try:
        chat, changes = request_to_chat(doc.data)
    except BridgeError as e:
        return Bridged(None, [], request, e.message, e.param or None, e.code)
    doc.data = chat
    try:
        raw = doc.dumps()
    except jsonio.BodyError as e:
        return Bridged(None, changes, request, str(e))
    result = rewrite(rules, "chat/completions", raw)
    if result.error:
        return Bridged(None, changes + result.changes, request, result.error)
    return Bridged(result.body or raw, changes + result.changes, request)


def _copy(value: Any) -> Any:
    """A deep copy of parsed JSON without recursion: bodies may nest deeper than Python's recursion limit
    (free-form values such as metadata or a JSON schema), and the chat rewrite repairs objects in place."""
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack = [(value, root)]
    while stack:
        src, dst = stack.pop()
        for key, item in (src.items() if isinstance(src, dict) else enumerate(src)):
            if isinstance(item, (dict, list)):
                new: Any = {} if isinstance(item, dict) else []
                stack.append((item, new))
            else:
                new = item
            if isinstance(dst, dict):
                dst[key] = new
            else:
                dst.append(new)
    return root


class _Request:
    def __init__(self, body: dict) -> None:
        self.body = body
        self.changes: list[Change] = []

    def change(self, kind: str, path: tuple | str, detail: str = "") -> None:
        self.changes.append(Change(kind, path if isinstance(path, str) else format_path(path), detail))

    def translate(self) -> tuple[dict, list[Change]]:
        body = self.body
        for key, message in UNSUPPORTED.items():
            value = body.get(key)
            if value is None or (key == "background" and value is False):
                continue
            raise BridgeError(key, message, "unsupported_parameter")
        if "messages" in body:
            raise BridgeError("messages", "/v1/responses takes `input`, not `messages` "
                                          "(that is /v1/chat/completions)")

        out: dict[str, Any] = {}
        messages: list[dict] = []
        for key, value in body.items():
            if key in ("instructions", "input"):
                out.setdefault("messages", messages)
            elif key in KEPT:
                if value is None and key in ("parallel_tool_calls", "stream"):  # Mistral takes no null here
                    self.change(DROPPED, key, "null")
                else:
                    out[key] = value
            elif key in UNSUPPORTED or key in DROPPABLE:
                self.change(DROPPED, key, "null" if value is None else "")
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
            self.change(RENAMED, "instructions", "messages[0] (system)")
        elif "instructions" in body:
            self.change(DROPPED, "instructions", "null")

        if "input" not in body or body["input"] is None:
            raise BridgeError("input", "input is required: a string or a list of input items")
        self.change(RENAMED, "input", "messages")
        _Input(self, messages).add(body["input"])
        last = messages[-1] if messages else None
        if last is None or last["role"] not in ("user", "tool"):
            what = "nothing" if last is None else ("a function_call without its function_call_output"
                                                    if last.get("tool_calls") else f"an {last['role']} message" if last["role"] == "assistant"
                                                    else f"a {last['role']} message")
            raise BridgeError("input", f"Mistral answers only after a user message or a function_call_output, "
                                       f"but the input ends with {what}")

        self._tools(out)
        self._text(out)
        self._reasoning(out)
        return out, self.changes

    def _rename(self, out: dict, key: str, target: str, value: Any) -> None:
        if self.body.get(target) is not None:
            self.change(DROPPED, key, f"{target} also sent")
        elif value is None:
            self.change(DROPPED, key, "null")
        else:
            out[target] = value
            self.change(RENAMED, key, target)

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
                self.change(VALUE, "tools", "flat function tools -> {type: function, function: {...}}")
        elif "tools" in body:
            self.change(DROPPED, "tools", "null")

        if "tool_choice" in body:
            choice = body["tool_choice"]
            if choice is None:
                self.change(DROPPED, "tool_choice", "null")
            elif choice in ("auto", "none", "required"):
                out["tool_choice"] = choice
            elif isinstance(choice, dict):
                kind = choice.get("type")
                if kind == "function" and isinstance(choice.get("name"), str):
                    out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
                    self.change(VALUE, "tool_choice", "{type, name} -> {type, function: {name}}")
                elif kind == "function" and isinstance(choice.get("function"), dict):
                    out["tool_choice"] = choice  # already in the chat shape
                elif kind == "allowed_tools":
                    chat_tools = self._allowed_tools(choice, chat_tools, out)
                else:
                    raise BridgeError("tool_choice", f"tool_choice {kind!r} is not available through Mistral's "
                                                     f"chat completions (only function tools are)", "unsupported_value")
            else:
                raise BridgeError("tool_choice", f"tool_choice {choice!r} is not one of 'auto', 'none', "
                                                 f"'required' or a function choice")
        if chat_tools is not None:
            out["tools"] = chat_tools

    def _tool(self, tool: Any, i: int) -> dict:
        if not isinstance(tool, dict):
            raise BridgeError(f"tools[{i}]", "a tool must be an object")
        kind = tool.get("type")
        if kind != "function":
            what = "built-in tool" if _one_of(kind, HOSTED_TOOLS) else "tool type"
            raise BridgeError(f"tools[{i}]", f"{what} {kind!r} is not available through Mistral's chat "
                                             f"completions; only function tools are", "unsupported_value")
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
                self.change(DROPPED, ("tools", i, key))
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
                raise BridgeError(f"tool_choice.tools[{k}]", "only function tools can be allowed through "
                                                             "Mistral's chat completions", "unsupported_value")
            names.append(t["name"])
        out["tool_choice"] = mode
        allowed_names = set(names)  # (a list would make this tools x allowed tools)
        kept = [t for t in chat_tools or [] if _str_or_none(t.get("function", {}).get("name")) in allowed_names]
        self.change(VALUE, "tool_choice", f"allowed_tools -> {mode!r}, tools limited to {', '.join(names)}")
        return kept

    # -- text.format and reasoning --------------------------------------------------------------------

    def _object(self, key: str) -> dict | None:
        """The body's object under key: None when absent or null (a null logged as dropped)."""
        value = self.body.get(key)
        if value is None:
            if key in self.body:
                self.change(DROPPED, key, "null")
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
                self.change(DROPPED, ("text", key), "null" if text[key] is None else "")
        fmt = text.get("format")
        if fmt is None:
            if "format" in text:
                self.change(DROPPED, "text.format", "null")
            return
        if self.body.get("response_format") is not None:
            self.change(DROPPED, "text.format", "response_format also sent")
            return
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind in ("text", "json_object"):
            out["response_format"] = {"type": kind}
        elif kind == "json_schema":
            schema = {k: fmt[k] for k in ("name", "schema", "description", "strict") if fmt.get(k) is not None}
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
        else:
            raise BridgeError("text.format", f"text.format type {kind!r} is not one of 'text', 'json_object', "
                                             f"'json_schema'")
        self.change(RENAMED, "text.format", "response_format")

    def _reasoning(self, out: dict) -> None:
        reasoning = self._object("reasoning")
        if reasoning is None:
            return
        for key, value in reasoning.items():
            if key == "effort":
                if value is None:
                    self.change(DROPPED, "reasoning.effort", "null")
                elif self.body.get("reasoning_effort") is not None:
                    self.change(DROPPED, "reasoning.effort", "reasoning_effort also sent")
                else:
                    out["reasoning_effort"] = value
                    self.change(RENAMED, "reasoning.effort", "reasoning_effort")
            else:
                self.change(DROPPED, ("reasoning", key), "null" if value is None else "")


class _Input:
    """Input items -> chat messages. Consecutive assistant output (text, function calls) forms one
    assistant message, as Mistral expects one assistant turn before the tool results."""

    def __init__(self, req: _Request, messages: list[dict]) -> None:
        self.req = req
        self.messages = messages
        self.call_names: dict[str, str] = {}  # call_id -> function name, for the tool messages
        # id(assistant message) -> (it, the contents of the consecutive assistant items that make it), joined
        # once at the end: joining as they come would copy the content so far for each (quadratic)
        self.joins: dict[int, tuple[dict, list]] = {}

    def add(self, value: Any) -> None:
        if isinstance(value, str):
            self.messages.append({"role": "user", "content": value})
            return
        if not isinstance(value, list):
            raise BridgeError("input", "input must be a string or a list of input items")
        for i, item in enumerate(value):
            self.item(item, ("input", i))
        for message, contents in self.joins.values():
            message["content"] = _join(contents)
        self.joins.clear()

    def dropped(self, item: dict, used: tuple, path: tuple) -> None:
        for key in item:
            if key not in used:
                self.req.change(DROPPED, path + (key,))

    def item(self, item: Any, path: tuple) -> None:
        where = format_path(path)
        if not isinstance(item, dict):
            raise BridgeError(where, "an input item must be an object")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            self.message(item, path)
        elif kind == "function_call":
            self.function_call(item, path)
        elif kind == "function_call_output":
            self.function_call_output(item, path)
        elif kind == "reasoning":
            self.req.change(REMOVED, where, "reasoning item: Mistral takes no reasoning history")
        elif kind == "item_reference":
            raise BridgeError(where, "item_reference needs items stored by the server; Mistral stores none. "
                                     "Send the item itself", "unsupported_value")
        else:
            raise BridgeError(where, f"input item type {kind!r} is not available through Mistral's chat "
                                     f"completions", "unsupported_value")

    def last_assistant(self) -> dict | None:
        last = self.messages[-1] if self.messages else None
        return last if last is not None and last["role"] == "assistant" else None

    def message(self, item: dict, path: tuple) -> None:
        role = item.get("role")
        content = item.get("content")
        self.dropped(item, ("type", "role", "content"), path)
        if role in ("system", "developer"):
            self.messages.append({"role": "system", "content": self.content(content, path, text_only=True)})
        elif role == "user":
            self.messages.append({"role": "user", "content": self.content(content, path)})
        elif role == "assistant":
            chunks = "" if content is None else self.content(content, path)
            last = self.last_assistant()
            if last is not None:  # no tool result since: the same assistant turn
                join = self.joins.get(id(last))
                if join is None:
                    join = self.joins[id(last)] = (last, [last.get("content")])
                join[1].append(chunks)
            else:
                self.messages.append({"role": "assistant", "content": chunks})
        else:
            raise BridgeError(format_path(path + ("role",)), f"message role {role!r} is not one of 'user', "
                                                             f"'assistant', 'system', 'developer'")

    def function_call(self, item: dict, path: tuple) -> None:
        call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
        if not isinstance(call_id, str) or not call_id:
            raise BridgeError(format_path(path + ("call_id",)), "a function_call item needs its call_id")
        if not isinstance(name, str):
            raise BridgeError(format_path(path + ("name",)), "a function_call item needs the function name")
        if arguments is None:
            arguments = "{}"
        elif not isinstance(arguments, (str, dict)):  # Mistral takes an object or a string
            arguments = json.dumps(arguments, ensure_ascii=False)
        self.dropped(item, ("type", "call_id", "name", "arguments"), path)
        last = self.last_assistant()
        if last is None:
            last = {"role": "assistant"}
            self.messages.append(last)
        calls = last.setdefault("tool_calls", [])
        calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
        self.call_names.setdefault(call_id, name)
        self.req.change(RENAMED, path + ("call_id",),
                        format_path(("messages", len(self.messages) - 1, "tool_calls", len(calls) - 1, "id")))

    def function_call_output(self, item: dict, path: tuple) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BridgeError(format_path(path + ("call_id",)), "a function_call_output item needs the call_id "
                                                                "of its function_call")
        output = item.get("output")
        content = output if isinstance(output, str) else self.content(output, path, key="output")
        self.dropped(item, ("type", "call_id", "output", "name"), path)
        message = {"role": "tool", "tool_call_id": call_id, "content": content}
        name = item.get("name") if isinstance(item.get("name"), str) else self.call_names.get(call_id)
        if name:
            message["name"] = name
        self.messages.append(message)
        self.req.change(RENAMED, path + ("call_id",), format_path(("messages", len(self.messages) - 1,
                                                                   "tool_call_id")))

    def content(self, content: Any, path: tuple, text_only: bool = False, key: str = "content") -> Any:
        """A message's content (a string or a list of parts) -> Mistral content."""
        if isinstance(content, str):
            return content
        if not isinstance(content, list):
            raise BridgeError(format_path(path + (key,)), f"{key} must be a string or a list of content parts")
        return [self.part(p, path + (key, j), text_only) for j, p in enumerate(content)]

    def part(self, part: Any, path: tuple, text_only: bool) -> dict:
        where = format_path(path)
        if not isinstance(part, dict):
            raise BridgeError(where, "a content part must be an object")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            self.dropped(part, ("type", "text"), path)
            return {"type": "text", "text": part.get("text")}
        if kind == "refusal":
            self.dropped(part, ("type", "refusal"), path)
            self.req.change(RENAMED, path + ("refusal",), "text")
            return {"type": "text", "text": part.get("refusal")}
        if text_only:
            raise BridgeError(where, f"a {kind!r} part cannot go in a system or developer message: "
                                     f"Mistral's system messages take text only")
        if kind == "input_image":
            return self.image(part, path)
        if kind == "input_file":
            return self.file(part, path)
        if kind == "input_audio":
            audio = part.get("input_audio")
            data = audio.get("data") if isinstance(audio, dict) else audio
            self.dropped(part, ("type", "input_audio"), path)
            if isinstance(audio, dict):
                self.dropped(audio, ("data",), path + ("input_audio",))
            return {"type": "input_audio", "input_audio": data}
        raise BridgeError(where, f"content part type {kind!r} is not available through Mistral's chat "
                                 f"completions", "unsupported_value")

    def image(self, part: dict, path: tuple) -> dict:
        url, file_id, detail = part.get("image_url"), part.get("file_id"), part.get("detail")
        if isinstance(url, str):
            image: dict[str, Any] = {"url": url}
            if _one_of(detail, IMAGE_DETAIL):
                image["detail"] = detail
            elif _one_of(detail, IMAGE_DETAIL_ALIASES):
                image["detail"] = IMAGE_DETAIL_ALIASES[detail]
                self.req.change(VALUE, path + ("detail",), f"{detail!r} -> {image['detail']!r}")
            elif "detail" in part:
                self.req.change(DROPPED, path + ("detail",), "null" if detail is None else "")
            self.dropped(part, ("type", "image_url", "detail", "file_id"), path)
            if file_id is not None:
                self.req.change(DROPPED, path + ("file_id",), "image_url also sent")
            return {"type": "image_url", "image_url": image}
        if isinstance(file_id, str):
            self.dropped(part, ("type", "file_id", "image_url"), path)
            self.req.change(RENAMED, path + ("file_id",), "file chunk (a file uploaded to Mistral)")
            return {"type": "file", "file_id": file_id}
        raise BridgeError(format_path(path), "an input_image needs image_url or file_id")

    def file(self, part: dict, path: tuple) -> dict:
        data, url, file_id, name = (part.get("file_data"), part.get("file_url"), part.get("file_id"),
                                    part.get("filename"))
        if isinstance(data, str) or isinstance(url, str):
            if isinstance(data, str):
                if not data.startswith("data:"):
                    mime = (mimetypes.guess_type(name)[0] if isinstance(name, str) else None) or "application/pdf"
                    data = f"data:{mime};base64,{data}"
                    self.req.change(VALUE, path + ("file_data",), f"base64 -> data:{mime} URL")
                used = ("type", "file_data", "filename")
                url_value = data
            else:
                used = ("type", "file_url", "filename")
                url_value = url
            chunk: dict[str, Any] = {"type": "document_url", "document_url": url_value}
            if isinstance(name, str):
                chunk["document_name"] = name
            self.dropped(part, used, path)
            return chunk
        if isinstance(file_id, str):
            self.dropped(part, ("type", "file_id"), path)
            return {"type": "file", "file_id": file_id}
        raise BridgeError(format_path(path), "an input_file needs file_data, file_url or file_id")


def _one_of(value: Any, options) -> bool:
    return isinstance(value, str) and value in options


def _join(contents: list) -> Any:
    """The contents of consecutive assistant items (str, a list of parts, or None) -> one content, in one
    pass: strings before the first list are run together into one text; after it, each string is a text part
    and each list's parts follow; empty ones count for nothing (all empty: the last of them)."""
    full = [c for c in contents if c not in (None, "", [])]
    if not full:
        return contents[-1]
    if len(full) == 1:
        return full[0]
    lead = 0
    while lead < len(full) and isinstance(full[lead], str):
        lead += 1
    if lead == len(full):
        return "".join(full)
    out: list = [{"type": "text", "text": "".join(full[:lead])}] if lead else []
    for c in full[lead:]:
        if isinstance(c, str):
            out.append({"type": "text", "text": c})
        else:
            out.extend(c)
    return out


# ---------------------------------------------------------------------------------------------------
# Response: chat completion -> Responses `response`

_ID_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _new_call_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def usage(chat_usage: Any) -> dict | None:
    """Mistral's usage -> the Responses usage object (with the details objects the SDKs require)."""
    if not isinstance(chat_usage, dict):
        return None
    prompt, completion = _int(chat_usage.get("prompt_tokens")), _int(chat_usage.get("completion_tokens"))
    total = _int(chat_usage.get("total_tokens")) or prompt + completion
    details = chat_usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = cached or _int(chat_usage.get("num_cached_tokens"))
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": total}


def _split_content(content: Any) -> tuple[str, str]:
    """Mistral message content (a string, or chunks with text and thinking) -> (text, reasoning)."""
    text, thinking, _ = answers.split_content(content)
    return text or "", thinking


# OpenAI's finish_reason (answers.openai_finish) -> (status, incomplete reason)
_FINISH = {
    "stop": ("completed", None),
    "tool_calls": ("completed", None),
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
    "error": ("failed", None),
}

def _status(finish: Any) -> tuple[str, str | None]:
    """A chat finish_reason -> (the response's status, its incomplete reason)."""
    return _FINISH.get(answers.openai_finish(finish) if isinstance(finish, str) else "stop", ("completed", None))


REASONING_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh", "max"}


def _echo_tools(request: dict) -> list[dict]:
    out = []
    tools = request.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        fn = tool.get("function") if isinstance(tool.get("function"), dict) and "name" not in tool else tool
        if not isinstance(fn.get("name"), str):
            continue
        out.append({"type": "function", "name": fn["name"], "description": _str_or_none(fn.get("description")),
                    "parameters": fn.get("parameters") if isinstance(fn.get("parameters"), dict) else None,
                    "strict": fn.get("strict") if isinstance(fn.get("strict"), bool) else None})
    return out


def _echo_tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict):
        if choice.get("type") == "function" and isinstance(choice.get("name"), str):
            return {"type": "function", "name": choice["name"]}
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {"type": "function", "name": fn["name"]}
        if (choice.get("type") == "allowed_tools" and choice.get("mode") in ("auto", "required")
                and isinstance(choice.get("tools"), list) and all(isinstance(t, dict) for t in choice["tools"])):
            return {"type": "allowed_tools", "mode": choice["mode"], "tools": choice["tools"]}
    return "auto"


def _echo_text(text: Any) -> dict:
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema" and isinstance(fmt.get("name"), str) and isinstance(fmt.get("schema"), dict):
        echo = {"type": "json_schema", "name": fmt["name"], "schema": fmt["schema"]}
        if isinstance(fmt.get("description"), str):
            echo["description"] = fmt["description"]
        if isinstance(fmt.get("strict"), bool):
            echo["strict"] = fmt["strict"]
    elif kind in ("text", "json_object"):
        echo = {"type": kind}
    else:
        echo = {"type": "text"}
    verbosity = text.get("verbosity") if isinstance(text, dict) else None
    return {"format": echo, "verbosity": verbosity if verbosity in ("low", "medium", "high") else "medium"}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def response_object(request: dict, *, resp_id: str, created_at: int | float, model: str, status: str,
                    output: list, usage_: dict | None = None, error: dict | None = None,
                    incomplete_reason: str | None = None) -> dict:
    """A Responses `response` object, echoing the request's settings the way OpenAI does."""
    request = request if isinstance(request, dict) else {}
    metadata = request.get("metadata")
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        metadata = {}
    reasoning = request.get("reasoning") if isinstance(request.get("reasoning"), dict) else {}
    effort = reasoning.get("effort") if _one_of(reasoning.get("effort"), REASONING_EFFORTS) else None
    parallel = request.get("parallel_tool_calls")
    obj = {
        "id": resp_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if status == "incomplete" else None,
        "instructions": _str_or_none(request.get("instructions")),
        "max_output_tokens": _int(request.get("max_output_tokens")) or None,
        "max_tool_calls": None,
        "model": model if isinstance(model, str) else "",
        "output": output,
        "parallel_tool_calls": parallel if isinstance(parallel, bool) else True,
        "previous_response_id": None,
        "prompt_cache_key": _str_or_none(request.get("prompt_cache_key")),
        "reasoning": {"effort": effort, "summary": None},
        "safety_identifier": _str_or_none(request.get("safety_identifier")),
        "service_tier": None,
        "store": False,
        "temperature": _number(request.get("temperature")),
        "text": _echo_text(request.get("text")),
        "tool_choice": _echo_tool_choice(request.get("tool_choice")),
        "tools": _echo_tools(request),
        "top_logprobs": 0,
        "top_p": _number(request.get("top_p")),
        "truncation": "disabled",
        "usage": usage_,
        "user": _str_or_none(request.get("user")),
        "metadata": metadata,
    }
    if status == "completed":
        obj["completed_at"] = int(time.time())
    return obj


def _message_item(item_id: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": [_text_part(text)]}


def _text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _reasoning_item(item_id: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "reasoning", "summary": [], "status": status,
            "content": [{"type": "reasoning_text", "text": text}]}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id, "name": name,
            "arguments": arguments}


def chat_to_response(chat: dict, request: dict) -> dict:
    """A chat.completion (as Mistral answers) + the original Responses request -> a `response` object."""
    chat = chat if isinstance(chat, dict) else {}
    request = request if isinstance(request, dict) else {}
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    finish = choice.get("finish_reason")
    status, reason = _status(finish)
    item_status = "incomplete" if status == "incomplete" else "completed"
    text, thinking = _split_content(message.get("content"))
    output: list[dict] = []
    if thinking:
        output.append(_reasoning_item(_new_id("rs"), thinking, item_status))
    calls = message.get("tool_calls")
    calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    if text or not calls:
        output.append(_message_item(_new_id("msg"), text, item_status))
    for call in calls:
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        output.append(_call_item(_new_id("fc"), _call_id(call.get("id")), _name(fn.get("name")),
                                 _arguments(fn.get("arguments")), item_status))
    error = {"code": "server_error", "message": "Mistral stopped with an error"} if status == "failed" else None
    model = chat.get("model") if isinstance(chat.get("model"), str) else request.get("model")
    return response_object(
        request, resp_id=_new_id("resp"), created_at=_int(chat.get("created")) or int(time.time()),
        model=model if isinstance(model, str) else "", status=status, output=output,
        usage_=usage(chat.get("usage")), error=error, incomplete_reason=reason)


def _call_id(value: Any) -> str:
    """Mistral's tool-call id, kept as the call_id (so the next turn's function_call_output maps back)."""
    return value if isinstance(value, str) and value and value != "null" else _new_call_id()


def _name(value: Any) -> str:
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------------------------------------------
# Errors

def error_body(status: int, upstream: bytes | None, message: str | None = None, param: str | None = None,
               code: str | None = None) -> bytes:
    """The Responses/OpenAI error shape {"error": {message, type, param, code}} as JSON bytes: from Mistral's
    error body when `upstream` is given (errors.describe), else the proxy's own (`message`, prefixed
    "mistral-compat: "). A given `param` wins over the one found upstream."""
    if upstream is None:
        info = errors.own(status, message or "invalid request", param, code)
    else:
        info = errors.describe(status, upstream, " (in the chat completion request sent to Mistral)")
        if param:
            info = info._replace(param=param)
    return errors.openai_error(info)


def translate_answer(status: int, content_type: str, content: bytes, request: dict) -> tuple[int, str, bytes]:
    """Mistral's whole answer to the chat completion -> (status, content type, body) of the Responses answer:
    a response object, the event stream (when Mistral's stream had to be buffered), or an error."""
    if not 200 <= status < 300:
        return status, "application/json", error_body(status, content)
    problem = "is not a JSON object"
    try:
        if content_type.startswith("text/event-stream"):
            translator = StreamTranslator(request)
            return status, "text/event-stream", translator.feed(content) + translator.close()
        chat = json.loads(content)
        if isinstance(chat, dict):
            return status, "application/json", json_bytes(chat_to_response(chat, request))
    except ValueError:
        pass
    except RecursionError:  # an echoed schema nested too deeply to write back
        problem = "could not be translated"
    return 502, "application/json", error_body(502, None, f"Mistral's answer to the chat completion {problem}")


# ---------------------------------------------------------------------------------------------------
# Streaming: chat.completion.chunk SSE -> Responses events


class _Item:
    __slots__ = ("kind", "id", "index", "parts", "call_id", "name", "status", "done")

    def __init__(self, kind: str, index: int, call_id: str = "", name: str = "") -> None:
        self.kind = kind  # "message", "reasoning" or "function_call"
        self.id = _new_id({"message": "msg", "reasoning": "rs", "function_call": "fc"}[kind])
        self.index = index
        self.parts: list[str] = []  # the text, reasoning text or arguments so far, as the deltas came
        self.call_id = call_id
        self.name = name
        self.status = "in_progress"
        self.done = False

    def add(self, text: str) -> None:
        self.parts.append(text)  # (text += delta would copy the text so far for every delta: quadratic)

    @property
    def text(self) -> str:
        parts = self.parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    def json(self, empty: bool = False) -> dict:
        if self.kind == "message":
            item = _message_item(self.id, self.text, self.status)
            if empty:
                item["content"] = []
            return item
        if self.kind == "reasoning":
            item = _reasoning_item(self.id, self.text, self.status)
            if empty:
                item["content"] = []
            return item
        return _call_item(self.id, self.call_id, self.name, "" if empty else self.text, self.status)


class StreamTranslator:
    """Mistral's chat SSE stream (bytes split anywhere) -> the Responses SSE event stream, as it arrives.

    feed() returns the events made from every complete upstream event so far; close() ends the stream,
    with response.failed when the upstream stopped before finishing its answer.
    """

    def __init__(self, request: dict) -> None:
        self.request = request if isinstance(request, dict) else {}
        self.id = _new_id("resp")
        self.created_at = int(time.time())
        self.model = self.request.get("model") if isinstance(self.request.get("model"), str) else ""
        self.seq = 0
        self.started = False
        self.finished = False      # the terminal event was sent
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.items: list[_Item] = []
        self.unclosed: list[_Item] = []     # the items not closed yet (closing walks these, not all items)
        self.open: _Item | None = None      # the message or reasoning item being written
        self.calls: dict[int, _Item] = {}   # tool-call index -> its function_call item
        self.indexes = answers.ToolIndexes()
        self._reader = sse.Reader()
        self._out: list[bytes] = []

    # -- SSE in ---------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        for event in self._reader.feed(data):
            self._dispatch(event.data)
        return self._take()

    def close(self) -> bytes:
        for event in self._reader.close():
            self._dispatch(event.data)
        if not self.finished:
            if self.finish_reason is not None:
                self._finish()
            else:
                self._fail("the upstream stream ended before the answer was complete")
        return self._take()

    def abort(self, message: str = "the answer could not be translated") -> bytes:
        """End the stream at once with a bare response.failed, whatever state it is in; never raises."""
        if self.finished:
            return b""
        self.finished = True
        self._out = []
        event = {"type": "response.failed", "sequence_number": self.seq, "response": {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": "failed",
            "model": self.model, "output": [], "error": {"code": "server_error", "message": PREFIX + message}}}
        self.seq += 1
        return b"event: response.failed\ndata: " + json_bytes(event) + b"\n\n"

    def _take(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out

    def _dispatch(self, data: str | None) -> None:
        if data is None or self.finished:
            return
        if data.strip() == "[DONE]":
            self._finish()
            return
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):
            return  # not an event we understand: skip it
        if not isinstance(obj, dict):
            return
        if answers.is_error(obj):
            self._fail(f"Mistral: {errors.describe_data(500, obj).message}")
            return
        self._chunk(obj)

    # -- events out -----------------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        self._out.append(b"event: " + kind.encode() + b"\ndata: " + json_bytes(event) + b"\n\n")

    def _response(self, status: str, error: dict | None = None, reason: str | None = None) -> dict:
        output = [i.json() for i in self.items] if status != "in_progress" else []
        return response_object(self.request, resp_id=self.id, created_at=self.created_at, model=self.model,
                               status=status, output=output, usage_=usage(self.usage) if status != "in_progress"
                               else None, error=error, incomplete_reason=reason)

    def _start(self) -> None:
        if not self.started:
            self.started = True
            self._emit("response.created", response=self._response("in_progress"))
            self._emit("response.in_progress", response=self._response("in_progress"))

    def _chunk(self, chunk: dict) -> None:
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        self._start()
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index") not in (0, None):
                continue  # n > 1: the Responses API has one answer
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            content = delta.get("content")
            if isinstance(content, str):
                self._delta("message", content)
            elif isinstance(content, list):
                for part in content:
                    text, thinking = _split_content([part])
                    self._delta("reasoning", thinking)
                    self._delta("message", text)
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else []:
                if isinstance(call, dict):
                    self._tool_call(call)
            if choice.get("finish_reason") is not None:
                self.finish_reason = str(choice["finish_reason"])
                self._close_all()

    def _delta(self, kind: str, text: str) -> None:
        if not text:
            return
        item = self.open
        if item is None or item.kind != kind or item.done:
            item = self._open_item(kind)
        item.add(text)
        if kind == "message":
            self._emit("response.output_text.delta", item_id=item.id, output_index=item.index, content_index=0,
                       delta=text, logprobs=[])
        else:
            self._emit("response.reasoning_text.delta", item_id=item.id, output_index=item.index,
                       content_index=0, delta=text)

    def _open_item(self, kind: str) -> _Item:
        """Start a message or reasoning item (closing the items before it)."""
        self._close_all()
        item = self.open = _Item(kind, len(self.items))
        self.items.append(item)
        self.unclosed.append(item)
        self._emit("response.output_item.added", output_index=item.index, item=item.json(empty=True))
        part = _text_part("") if kind == "message" else {"type": "reasoning_text", "text": ""}
        self._emit("response.content_part.added", item_id=item.id, output_index=item.index, content_index=0,
                   part=part)
        return item

    def _tool_call(self, call: dict) -> None:
        index, _ = self.indexes.of(call)
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        item = self.calls.get(index)
        if item is None:
            self._close_all()
            item = _Item("function_call", len(self.items), _call_id(call.get("id")), _name(fn.get("name")))
            self.calls[index] = item
            self.items.append(item)
            self.unclosed.append(item)
            self._emit("response.output_item.added", output_index=item.index, item=item.json(empty=True))
        arguments = fn.get("arguments")
        if arguments is not None:
            text = _arguments(arguments)
            if text:
                item.add(text)
                self._emit("response.function_call_arguments.delta", item_id=item.id, output_index=item.index,
                           delta=text)

    def _close(self, item: _Item, status: str) -> None:
        if item.done:
            return
        item.done = True
        item.status = status
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "message":
            self._emit("response.output_text.done", **where, content_index=0, text=item.text, logprobs=[])
            self._emit("response.content_part.done", **where, content_index=0, part=_text_part(item.text))
        elif item.kind == "reasoning":
            self._emit("response.reasoning_text.done", **where, content_index=0, text=item.text)
            self._emit("response.content_part.done", **where, content_index=0,
                       part={"type": "reasoning_text", "text": item.text})
        else:
            self._emit("response.function_call_arguments.done", **where, name=item.name, arguments=item.text)
        self._emit("response.output_item.done", output_index=item.index, item=item.json())

    def _item_status(self) -> str:
        status = _status(self.finish_reason)[0]
        return "incomplete" if status == "incomplete" else "completed"

    def _close_all(self, status: str | None = None) -> None:
        status = status or self._item_status()
        unclosed, self.unclosed = self.unclosed, []
        for item in unclosed:
            self._close(item, status)
        self.open = None

    def _finish(self) -> None:
        """The upstream finished ([DONE], or its end after a finish_reason): the terminal event."""
        self._start()
        self._close_all()
        if not self.items and self.finish_reason != "error":  # an empty answer is still a message
            self._open_item("message")
            self._close_all()
        status, reason = _status(self.finish_reason)
        self.finished = True
        if status == "failed":
            error = {"code": "server_error", "message": "Mistral stopped with an error"}
            self._emit("response.failed", response=self._response("failed", error=error))
        elif status == "incomplete":
            self._emit("response.incomplete", response=self._response("incomplete", reason=reason))
        else:
            self._emit("response.completed", response=self._response("completed"))

    def _fail(self, message: str) -> None:
        self._start()
        self._close_all("incomplete")
        self.finished = True
        error = {"code": "server_error", "message": message}
        self._emit("response.failed", response=self._response("failed", error=error))
