"""Mistral's answers -> the shapes OpenAI clients read, for chat-shaped endpoints (chat, agents and FIM
completions), JSON and event streams. Pure: no I/O, no mitmproxy.

What changes (and nothing else: ids, usage, unknown keys stay as Mistral sent them):
- `content` given as chunks becomes the string of its text chunks; the text of `thinking` chunks goes to
  `reasoning_content` (DeepSeek's field, read by the openai SDKs as an extra field, pydantic-ai, the AI SDK's
  openai-compatible provider, LobeChat, Open WebUI, ...); other chunk types (`reference`, ...) leave the
  text. Content with no text chunk becomes null.
- tool calls get `"type": "function"` where it is missing; in streams each call gets an `index` where it is
  missing, counted per choice across the whole stream; arguments sent as an object become JSON text.
- `finish_reason` `model_length` becomes `length` (`error` stays).
- an error (a body, or an error event in a stream) gets OpenAI's `error` object beside Mistral's fields.
An answer or event that needs none of this is passed on byte for byte.
"""

from __future__ import annotations

import re
from typing import Any

from . import errors, jsonio, sse, state

# Endpoints whose answers have chat completion shapes.
ENDPOINTS = frozenset({"chat/completions", "agents/completions", "fim/completions"})

# Mistral's finish reasons that OpenAI's vocabulary names otherwise.
FINISH_REASONS = {"model_length": "length"}

# What a translation did: the notes the log line, the flow comment and the summary show (never message text).
CONTENT_REASONING = "content chunks -> text + reasoning_content"
CONTENT_TEXT = "content chunks -> text"
TOOL_TYPE = "tool_calls type added"
TOOL_INDEX = "tool_calls index added"
TOOL_ARGUMENTS = "tool_calls arguments object -> JSON text"
FINISH = "finish_reason model_length -> length"
TOOL_FINISH = "finish_reason after tool_calls sent as an event of its own"
UNTRANSLATED = "an event that could not be translated passed as it came"
ERROR = "error object added"
MAX_NOTES = 16  # other chunk types named in notes, at most (the type names come from the upstream)


def left_out(kind: str) -> str:
    return f"{kind} chunks left out of the text"


# A JSON text that may need a change: chunk arrays, tool calls, Mistral's finish reasons, an error. Text
# without any of these is passed on without being parsed.
_LOOK = re.compile(rb'"content"\s*:\s*\[|"tool_calls"\s*:\s*\[|"model_length"|"object"\s*:\s*"error"')


def split_content(content: Any) -> tuple[str | None, str, list[str]]:
    """Mistral message content (a string, or chunks) -> (text or None when there is no text chunk, the text
    of thinking chunks, the other chunk types met)."""
    if isinstance(content, str):
        return content, "", []
    text: list[str] = []
    thinking: list[str] = []
    other: list[str] = []
    has_text = False
    for chunk in content if isinstance(content, list) else []:
        if not isinstance(chunk, dict):
            continue
        kind = chunk.get("type")
        if kind == "text":
            has_text = True
            if isinstance(chunk.get("text"), str):
                text.append(chunk["text"])
        elif kind == "thinking":
            inner = chunk.get("thinking")
            if isinstance(inner, str):
                thinking.append(inner)
            for part in inner if isinstance(inner, list) else []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    thinking.append(part["text"])
        else:
            other.append(kind if isinstance(kind, str) else "untyped")
    return ("".join(text) if has_text else None), "".join(thinking), other


def openai_finish(reason: Any) -> Any:
    """Mistral's finish_reason -> OpenAI's (unknown ones unchanged)."""
    return FINISH_REASONS.get(reason, reason) if isinstance(reason, str) else reason


def is_error(obj: Any) -> bool:
    """Whether a parsed answer or stream event is an error rather than a completion."""
    return isinstance(obj, dict) and (
        obj.get("object") == "error"
        or ("choices" not in obj and ("message" in obj or "detail" in obj or "error" in obj))
    )


class Notes:
    """What a translation did, each note once, in the order first met; bounded."""

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}

    def add(self, note: str) -> None:
        if note not in self._seen and len(self._seen) < MAX_NOTES:
            self._seen[note] = None

    def __bool__(self) -> bool:
        return bool(self._seen)

    def list(self) -> list[str]:
        return list(self._seen)


class ToolIndexes:
    """The index of each streamed tool call, per choice, across the whole stream: the one Mistral sent, or
    else counted (a call with an id is a new call; one without continues the call before it), never
    restarting per chunk, so parallel calls stay apart."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}  # choice index -> the next index to give

    def of(self, call: dict, choice: int = 0) -> tuple[int, bool]:
        """(the call's index, whether Mistral sent it)."""
        sent = call.get("index")
        following = self._next.get(choice, 0)
        if isinstance(sent, int) and not isinstance(sent, bool):
            index, given = sent, True
        else:
            index, given = (following if "id" in call or following == 0 else following - 1), False
        self._next[choice] = max(following, index + 1)
        return index, given


class _Translator:
    """The repairs shared by whole answers and stream events."""

    def __init__(self) -> None:
        self.notes = Notes()
        self.indexes = ToolIndexes()

    def document(self, obj: dict, stream: bool, status: int = 200) -> bool:
        """Repair one parsed answer (stream=False) or chunk (stream=True) in place; whether it changed."""
        if is_error(obj):
            if not errors.needs_openai_error(obj):
                return False
            obj["error"] = errors.describe_data(status if status >= 400 else 500, obj).openai()
            self.notes.add(ERROR)
            return True
        changed = False
        choices = obj.get("choices")
        for position, choice in enumerate(choices if isinstance(choices, list) else []):
            if not isinstance(choice, dict):
                continue
            holder = choice.get("delta" if stream else "message")
            if isinstance(holder, dict):
                if isinstance(holder.get("content"), list):
                    changed |= self._content(holder)
                if isinstance(holder.get("tool_calls"), list):
                    key = choice.get("index", position)
                    changed |= self._tool_calls(holder["tool_calls"], key if isinstance(key, int) else position, stream)
            reason = choice.get("finish_reason")
            if openai_finish(reason) is not reason:
                choice["finish_reason"] = openai_finish(reason)
                self.notes.add(FINISH)
                changed = True
        return changed

    def _content(self, holder: dict) -> bool:
        text, reasoning, other = split_content(holder["content"])
        holder["content"] = text
        if reasoning:
            previous = holder.get("reasoning_content")
            holder["reasoning_content"] = previous + reasoning if isinstance(previous, str) else reasoning
            self.notes.add(CONTENT_REASONING)
        else:
            self.notes.add(CONTENT_TEXT)
        for kind in other:
            self.notes.add(left_out(kind))
        return True

    def _tool_calls(self, calls: list, choice: int, stream: bool) -> bool:
        changed = False
        for call in calls:
            if not isinstance(call, dict):
                continue
            starts = not stream or "id" in call
            if call.get("type") is None and starts:
                call["type"] = "function"
                self.notes.add(TOOL_TYPE)
                changed = True
            fn = call.get("function")
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), (dict, list)):
                fn["arguments"] = jsonio.dumps(fn["arguments"]).decode("utf-8")
                self.notes.add(TOOL_ARGUMENTS)
                changed = True
            if not stream:
                continue
            index, given = self.indexes.of(call, choice)
            if not given:
                call["index"] = index
                self.notes.add(TOOL_INDEX)
                changed = True
        return changed


def translate_json(status: int, body: bytes) -> tuple[bytes | None, list[str]]:
    """A whole answer -> (the new body, or None when it needs no change; the notes)."""
    if status >= 400:
        new = errors.with_openai_error(status, body)
        return new, [ERROR] if new is not None else []
    if not _LOOK.search(body):
        return None, []
    try:
        doc = jsonio.parse(body)
    except jsonio.BodyError:
        return None, []  # not a JSON object: passed on as it is
    translator = _Translator()
    if not translator.document(doc.data, stream=False, status=status):
        return None, []
    try:
        return doc.dumps(), translator.notes.list()
    except jsonio.BodyError:
        return None, []


class StreamTranslator(_Translator):
    """Mistral's chat completion event stream -> OpenAI's, event by event as bytes arrive.

    feed() returns the bytes of every event completed so far (an event that needs no change exactly as it
    came), close() the rest: every byte fed comes out in one of them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reader = sse.Reader()

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.event(e) for e in self.reader.feed(data))

    def close(self) -> bytes:
        return b"".join(self.event(e) for e in self.reader.close())

    def event(self, event: sse.Event) -> bytes:
        """One event -> its bytes to send; an event that cannot be translated passes as it came (a safety
        net: the translation of well-formed events is tested to never raise)."""
        try:
            return self._event(event)
        except Exception:  # noqa: BLE001 - whatever the upstream sent, the stream goes on
            self.notes.add(UNTRANSLATED)
            return event.raw

    def _event(self, event: sse.Event) -> bytes:
        data = event.data
        if data is None or not _LOOK.search(event.raw):
            return event.raw
        try:
            doc = jsonio.parse(data.encode("utf-8"))
        except (jsonio.BodyError, UnicodeEncodeError):
            return event.raw
        changed = self.document(doc.data, stream=True)
        split = self._split_finish(doc.data)
        if not changed and split is None:
            return event.raw
        try:
            if split is None:
                return sse.replace_data(event, doc.dumps())
            return b"".join(sse.replace_data(event, jsonio.Document(part, True).dumps()) for part in split)
        except jsonio.BodyError:
            return event.raw

    def _split_finish(self, chunk: dict) -> tuple[dict, dict] | None:
        """Mistral sends a whole tool call, its finish_reason and usage in one chunk; OpenAI streams end with
        a chunk of their own holding the finish_reason, and clients rely on it (openai-python's stream helper
        reports a call's arguments done only when a later chunk comes). (the calls, the finish) or None."""
        choices = chunk.get("choices")
        if not (isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], dict)):
            return None
        choice = choices[0]
        delta = choice.get("delta")
        if choice.get("finish_reason") is None or not isinstance(delta, dict) or not delta.get("tool_calls"):
            return None
        self.notes.add(TOOL_FINISH)
        calls = {k: v for k, v in chunk.items() if k != "usage"}
        calls["choices"] = [dict(choice, finish_reason=None)]
        finish = dict(chunk)
        finish["choices"] = [{"index": choice.get("index", 0), "delta": {}, "finish_reason": choice["finish_reason"]}]
        return calls, finish


# The kinds of flow whose answers are never translated here: the Responses bridge translates its own, and a
# preflight has none from Mistral.
LEFT_ALONE = frozenset({state.BRIDGE, state.STORED, state.PREFLIGHT})


def answers_for(
    kind: str, endpoint: str | None, user_agent: str, mode: str, native: tuple[str, ...] = ()
) -> str | None:
    """What is done to the answers of a matched request (FlowState.answers), by the mistral_answers mode
    and mistral_native_clients: chat-shaped answers and error bodies translated (state.CHAT_ANSWERS), error
    bodies only (state.ERROR_ANSWERS), or nothing (None: the Responses bridge translates its own answers; a
    preflight has none; Mistral's own SDKs read Mistral's shapes)."""
    if kind in LEFT_ALONE or mode == "mistral":
        return None
    if mode == "auto" and is_mistral_native(user_agent, native):
        return None
    return state.CHAT_ANSWERS if endpoint in ENDPOINTS else state.ERROR_ANSWERS


def is_mistral_native(user_agent: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether a client reads Mistral's own shapes: the official mistralai SDKs (User-Agent
    "speakeasy-sdk/python 3.7.0 2.935.1 1.0.0 mistralai", "speakeasy-sdk/typescript ... @mistralai/mistralai",
    their Azure and GCP variants; the 0.x clients' "mistral-client-python/..." and "mistral-client-js/..."),
    or one whose User-Agent contains any of `extra` (lower case)."""
    ua = user_agent.lower()
    if ua.startswith("mistral-client-") or (ua.startswith("speakeasy-sdk/") and "mistralai" in ua):
        return True
    return bool(extra) and any(s in ua for s in extra)
