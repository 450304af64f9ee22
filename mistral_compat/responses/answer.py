"""Mistral's chat completion -> a Responses `response` object (chat_to_response), and the parts it is made
of, which the stream translator (stream.py) builds event by event: ids, usage, status, output items, and the
echo of the request's settings (response_object). Pure: no I/O, no mitmproxy.
"""

from __future__ import annotations

import json
import secrets
import string
import time
import uuid
from typing import Any

from .. import answers
from .values import dict_or_empty, int_or_zero, number_or_none, one_of, str_or_none

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def new_call_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(9))


def arguments_text(value: Any) -> str:
    """A tool call's arguments (JSON text, or an object) -> JSON text."""
    if isinstance(value, str):
        return value
    return json.dumps(value if value is not None else {}, ensure_ascii=False)


def usage(chat_usage: Any) -> dict | None:
    """Mistral's usage -> the Responses usage object (with the details objects the SDKs require)."""
    if not isinstance(chat_usage, dict):
        return None
    prompt = int_or_zero(chat_usage.get("prompt_tokens"))
    completion = int_or_zero(chat_usage.get("completion_tokens"))
    total = int_or_zero(chat_usage.get("total_tokens")) or prompt + completion
    details = chat_usage.get("prompt_tokens_details")
    cached = int_or_zero(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = cached or int_or_zero(chat_usage.get("num_cached_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total,
    }


def split_content(content: Any) -> tuple[str, str]:
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


def status_of(finish: Any) -> tuple[str, str | None]:
    """A chat finish_reason -> (the response's status, its incomplete reason)."""
    return _FINISH.get(answers.openai_finish(finish) if isinstance(finish, str) else "stop", ("completed", None))


REASONING_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh", "max"}


def _echo_tools(request: dict) -> list[dict]:
    out = []
    tools = request.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        function = tool.get("function")
        fn = function if isinstance(function, dict) and "name" not in tool else tool
        if not isinstance(fn.get("name"), str):
            continue
        out.append(
            {
                "type": "function",
                "name": fn["name"],
                "description": str_or_none(fn.get("description")),
                "parameters": fn.get("parameters") if isinstance(fn.get("parameters"), dict) else None,
                "strict": fn.get("strict") if isinstance(fn.get("strict"), bool) else None,
            }
        )
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
        if (
            choice.get("type") == "allowed_tools"
            and choice.get("mode") in ("auto", "required")
            and isinstance(choice.get("tools"), list)
            and all(isinstance(t, dict) for t in choice["tools"])
        ):
            return {"type": "allowed_tools", "mode": choice["mode"], "tools": choice["tools"]}
    return "auto"


def _echo_text(text: Any) -> dict:
    fmt = dict_or_empty(text.get("format") if isinstance(text, dict) else None)
    kind = fmt.get("type")
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


def response_object(
    request: dict,
    *,
    resp_id: str,
    created_at: int | float,
    model: str,
    status: str,
    output: list,
    usage_: dict | None = None,
    error: dict | None = None,
    incomplete_reason: str | None = None,
) -> dict:
    """A Responses `response` object, echoing the request's settings the way OpenAI does."""
    request = request if isinstance(request, dict) else {}
    metadata = request.get("metadata")
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        metadata = {}
    reasoning = dict_or_empty(request.get("reasoning"))
    effort = reasoning.get("effort") if one_of(reasoning.get("effort"), REASONING_EFFORTS) else None
    parallel = request.get("parallel_tool_calls")
    obj = {
        "id": resp_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if status == "incomplete" else None,
        "instructions": str_or_none(request.get("instructions")),
        "max_output_tokens": int_or_zero(request.get("max_output_tokens")) or None,
        "max_tool_calls": None,
        "model": model if isinstance(model, str) else "",
        "output": output,
        "parallel_tool_calls": parallel if isinstance(parallel, bool) else True,
        "previous_response_id": None,
        "prompt_cache_key": str_or_none(request.get("prompt_cache_key")),
        "reasoning": {"effort": effort, "summary": None},
        "safety_identifier": str_or_none(request.get("safety_identifier")),
        "service_tier": None,
        "store": False,
        "temperature": number_or_none(request.get("temperature")),
        "text": _echo_text(request.get("text")),
        "tool_choice": _echo_tool_choice(request.get("tool_choice")),
        "tools": _echo_tools(request),
        "top_logprobs": 0,
        "top_p": number_or_none(request.get("top_p")),
        "truncation": "disabled",
        "usage": usage_,
        "user": str_or_none(request.get("user")),
        "metadata": metadata,
    }
    if status == "completed":
        obj["completed_at"] = int(time.time())
    return obj


def message_item(item_id: str, text: str, status: str) -> dict:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": [text_part(text)]}


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str, status: str) -> dict:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [],
        "status": status,
        "content": [{"type": "reasoning_text", "text": text}],
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def chat_to_response(chat: dict, request: dict) -> dict:
    """A chat.completion (as Mistral answers) + the original Responses request -> a `response` object."""
    chat = chat if isinstance(chat, dict) else {}
    request = request if isinstance(request, dict) else {}
    choices = chat.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = dict_or_empty(choice.get("message"))
    finish = choice.get("finish_reason")
    status, reason = status_of(finish)
    item_status = "incomplete" if status == "incomplete" else "completed"
    text, thinking = split_content(message.get("content"))
    output: list[dict] = []
    if thinking:
        output.append(reasoning_item(new_id("rs"), thinking, item_status))
    calls = message.get("tool_calls")
    calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    if text or not calls:
        output.append(message_item(new_id("msg"), text, item_status))
    for call in calls:
        fn = dict_or_empty(call.get("function"))
        output.append(
            call_item(
                new_id("fc"),
                call_id_of(call.get("id")),
                name_of(fn.get("name")),
                arguments_text(fn.get("arguments")),
                item_status,
            )
        )
    error = {"code": "server_error", "message": "Mistral stopped with an error"} if status == "failed" else None
    model = chat.get("model") if isinstance(chat.get("model"), str) else request.get("model")
    return response_object(
        request,
        resp_id=new_id("resp"),
        created_at=int_or_zero(chat.get("created")) or int(time.time()),
        model=model if isinstance(model, str) else "",
        status=status,
        output=output,
        usage_=usage(chat.get("usage")),
        error=error,
        incomplete_reason=reason,
    )


def call_id_of(value: Any) -> str:
    """Mistral's tool-call id, kept as the call_id (so the next turn's function_call_output maps back)."""
    return value if isinstance(value, str) and value and value != "null" else new_call_id()


def name_of(value: Any) -> str:
    return value if isinstance(value, str) else ""
