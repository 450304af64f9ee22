"""Responses input items (messages, function calls and their outputs, content parts) -> Mistral chat
messages, for request.py. Raises BridgeError for an item Mistral's chat completions cannot take. Pure.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

from ..changes import DROPPED, REMOVED, RENAMED, VALUE, Collector, format_path
from .errors import BridgeError
from .values import one_of

IMAGE_DETAIL = {"low", "auto", "high"}  # what Mistral's image_url.detail takes
IMAGE_DETAIL_ALIASES = {"original": "high"}  # Responses' full-resolution detail -> Mistral's highest


class Items:
    """Input items -> chat messages, appended to `messages`; the changes recorded in fx. Consecutive assistant
    output (text, function calls) forms one assistant message, as Mistral expects one assistant turn before
    the tool results."""

    def __init__(self, fx: Collector, messages: list[dict]) -> None:
        self.fx = fx
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
                self.fx.add(DROPPED, path + (key,))

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
            self.fx.add(REMOVED, path, "reasoning item: Mistral takes no reasoning history")
        elif kind == "item_reference":
            raise BridgeError(
                where,
                "item_reference needs items stored by the server; Mistral stores none. Send the item itself",
                "unsupported_value",
            )
        else:
            raise BridgeError(
                where,
                f"input item type {kind!r} is not available through Mistral's chat completions",
                "unsupported_value",
            )

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
            raise BridgeError(
                format_path(path + ("role",)),
                f"message role {role!r} is not one of 'user', 'assistant', 'system', 'developer'",
            )

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
        self.fx.add(
            RENAMED,
            path + ("call_id",),
            format_path(("messages", len(self.messages) - 1, "tool_calls", len(calls) - 1, "id")),
        )

    def function_call_output(self, item: dict, path: tuple) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BridgeError(
                format_path(path + ("call_id",)), "a function_call_output item needs the call_id of its function_call"
            )
        output = item.get("output")
        content = output if isinstance(output, str) else self.content(output, path, key="output")
        self.dropped(item, ("type", "call_id", "output", "name"), path)
        message = {"role": "tool", "tool_call_id": call_id, "content": content}
        name = item.get("name") if isinstance(item.get("name"), str) else self.call_names.get(call_id)
        if name:
            message["name"] = name
        self.messages.append(message)
        self.fx.add(RENAMED, path + ("call_id",), format_path(("messages", len(self.messages) - 1, "tool_call_id")))

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
            self.fx.add(RENAMED, path + ("refusal",), "text")
            return {"type": "text", "text": part.get("refusal")}
        if text_only:
            raise BridgeError(
                where,
                f"a {kind!r} part cannot go in a system or developer message: Mistral's system messages take text only",
            )
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
        raise BridgeError(
            where,
            f"content part type {kind!r} is not available through Mistral's chat completions",
            "unsupported_value",
        )

    def image(self, part: dict, path: tuple) -> dict:
        url, file_id, detail = part.get("image_url"), part.get("file_id"), part.get("detail")
        if isinstance(url, str):
            image: dict[str, Any] = {"url": url}
            if one_of(detail, IMAGE_DETAIL):
                image["detail"] = detail
            elif one_of(detail, IMAGE_DETAIL_ALIASES):
                image["detail"] = IMAGE_DETAIL_ALIASES[detail]
                self.fx.add(VALUE, path + ("detail",), f"{detail!r} -> {image['detail']!r}")
            elif "detail" in part:
                self.fx.add(DROPPED, path + ("detail",), "null" if detail is None else "")
            self.dropped(part, ("type", "image_url", "detail", "file_id"), path)
            if file_id is not None:
                self.fx.add(DROPPED, path + ("file_id",), "image_url also sent")
            return {"type": "image_url", "image_url": image}
        if isinstance(file_id, str):
            self.dropped(part, ("type", "file_id", "image_url"), path)
            self.fx.add(RENAMED, path + ("file_id",), "file chunk (a file uploaded to Mistral)")
            return {"type": "file", "file_id": file_id}
        raise BridgeError(format_path(path), "an input_image needs image_url or file_id")

    def file(self, part: dict, path: tuple) -> dict:
        data, url, file_id, name = (
            part.get("file_data"),
            part.get("file_url"),
            part.get("file_id"),
            part.get("filename"),
        )
        if isinstance(data, str) or isinstance(url, str):
            if isinstance(data, str):
                if not data.startswith("data:"):
                    mime = (mimetypes.guess_type(name)[0] if isinstance(name, str) else None) or "application/pdf"
                    data = f"data:{mime};base64,{data}"
                    self.fx.add(VALUE, path + ("file_data",), f"base64 -> data:{mime} URL")
                used = ("type", "file_data", "filename")
                url_value = data
            else:
                assert isinstance(url, str)  # (the condition above, data not being one)
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
