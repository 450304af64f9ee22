"""Mistral's chat completion stream -> the Responses event stream.

EventTranslator works on events only: each upstream event (an sse.Event) becomes the Responses events it
makes (dicts), with the stream's state (the output items opened, the tool calls, the finish). StreamTranslator
is the bytes around it: sse.Reader (shared with the chat answer translation) cuts the bytes into events, and
the Responses events are written as SSE. Pure: no I/O, no mitmproxy.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .. import answers, errors, jsonio, sse
from .answer import (
    arguments_text,
    call_id_of,
    call_item,
    message_item,
    name_of,
    new_id,
    reasoning_item,
    response_object,
    split_content,
    status_of,
    text_part,
    usage,
)
from .values import dict_or_empty

_ID_PREFIXES = {"message": "msg", "reasoning": "rs", "function_call": "fc"}


class _Item:
    """One output item as it is streamed: a message, a reasoning item or a function call."""

    __slots__ = ("kind", "id", "index", "parts", "call_id", "name", "status", "done")

    def __init__(self, kind: str, index: int, call_id: str = "", name: str = "") -> None:
        self.kind = kind  # "message", "reasoning" or "function_call"
        self.id = new_id(_ID_PREFIXES[kind])
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
            item = message_item(self.id, self.text, self.status)
            if empty:
                item["content"] = []
            return item
        if self.kind == "reasoning":
            item = reasoning_item(self.id, self.text, self.status)
            if empty:
                item["content"] = []
            return item
        return call_item(self.id, self.call_id, self.name, "" if empty else self.text, self.status)


class EventTranslator:
    """Mistral's chat.completion.chunk events -> the Responses events, one upstream event at a time.

    event() takes an upstream event, end() the end of the upstream stream (response.failed when it stopped
    before finishing its answer), abort() ends at once; take() hands over the events made so far, in order.
    """

    def __init__(self, request: dict) -> None:
        self.request = request if isinstance(request, dict) else {}
        self.id = new_id("resp")
        self.created_at = int(time.time())
        model = self.request.get("model")
        self.model: str = model if isinstance(model, str) else ""
        self.seq = 0
        self.started = False
        self.finished = False  # the terminal event was made
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.items: list[_Item] = []
        self.unclosed: list[_Item] = []  # the items not closed yet (closing walks these, not all items)
        self.open: _Item | None = None  # the message or reasoning item being written
        self.calls: dict[int, _Item] = {}  # tool-call index -> its function_call item
        self.indexes = answers.ToolIndexes()
        self._out: list[dict] = []

    def take(self) -> list[dict]:
        out, self._out = self._out, []
        return out

    def event(self, event: sse.Event) -> None:
        data = event.data
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

    def end(self) -> None:
        if not self.finished:
            if self.finish_reason is not None:
                self._finish()
            else:
                self._fail("the upstream stream ended before the answer was complete")

    def abort(self, message: str) -> dict | None:
        """A bare response.failed in place of whatever was not taken yet, whatever state the stream is in;
        None when it had ended already. Never raises."""
        if self.finished:
            return None
        self.finished = True
        self._out = []
        event = {
            "type": "response.failed",
            "sequence_number": self.seq,
            "response": {
                "id": self.id,
                "object": "response",
                "created_at": self.created_at,
                "status": "failed",
                "model": self.model,
                "output": [],
                "error": {"code": "server_error", "message": errors.PREFIX + message},
            },
        }
        self.seq += 1
        return event

    # -- events out -----------------------------------------------------------------------------------

    def _emit(self, kind: str, **fields: Any) -> None:
        self._out.append({"type": kind, "sequence_number": self.seq, **fields})
        self.seq += 1

    def _response(self, status: str, error: dict | None = None, reason: str | None = None) -> dict:
        output = [i.json() for i in self.items] if status != "in_progress" else []
        return response_object(
            self.request,
            resp_id=self.id,
            created_at=self.created_at,
            model=self.model,
            status=status,
            output=output,
            usage_=usage(self.usage) if status != "in_progress" else None,
            error=error,
            incomplete_reason=reason,
        )

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
            delta = dict_or_empty(choice.get("delta"))
            content = delta.get("content")
            if isinstance(content, str):
                self._delta("message", content)
            elif isinstance(content, list):
                for part in content:
                    text, thinking = split_content([part])
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
            self._emit(
                "response.output_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        else:
            self._emit(
                "response.reasoning_text.delta", item_id=item.id, output_index=item.index, content_index=0, delta=text
            )

    def _open_item(self, kind: str) -> _Item:
        """Start a message or reasoning item (closing the items before it)."""
        self._close_all()
        item = self.open = _Item(kind, len(self.items))
        self.items.append(item)
        self.unclosed.append(item)
        self._emit("response.output_item.added", output_index=item.index, item=item.json(empty=True))
        part = text_part("") if kind == "message" else {"type": "reasoning_text", "text": ""}
        self._emit("response.content_part.added", item_id=item.id, output_index=item.index, content_index=0, part=part)
        return item

    def _tool_call(self, call: dict) -> None:
        index, _ = self.indexes.of(call)
        fn = dict_or_empty(call.get("function"))
        item = self.calls.get(index)
        if item is None:
            self._close_all()
            item = _Item("function_call", len(self.items), call_id_of(call.get("id")), name_of(fn.get("name")))
            self.calls[index] = item
            self.items.append(item)
            self.unclosed.append(item)
            self._emit("response.output_item.added", output_index=item.index, item=item.json(empty=True))
        arguments = fn.get("arguments")
        if arguments is not None:
            text = arguments_text(arguments)
            if text:
                item.add(text)
                self._emit(
                    "response.function_call_arguments.delta", item_id=item.id, output_index=item.index, delta=text
                )

    def _close(self, item: _Item, status: str) -> None:
        if item.done:
            return
        item.done = True
        item.status = status
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "message":
            self._emit("response.output_text.done", **where, content_index=0, text=item.text, logprobs=[])
            self._emit("response.content_part.done", **where, content_index=0, part=text_part(item.text))
        elif item.kind == "reasoning":
            self._emit("response.reasoning_text.done", **where, content_index=0, text=item.text)
            self._emit(
                "response.content_part.done",
                **where,
                content_index=0,
                part={"type": "reasoning_text", "text": item.text},
            )
        else:
            self._emit("response.function_call_arguments.done", **where, name=item.name, arguments=item.text)
        self._emit("response.output_item.done", output_index=item.index, item=item.json())

    def _item_status(self) -> str:
        status = status_of(self.finish_reason)[0]
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
        status, reason = status_of(self.finish_reason)
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


def write(events: list[dict]) -> bytes:
    """Responses events -> their SSE bytes: an `event:` line naming the type, the `data:` line, a blank line."""
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + jsonio.dumps(e) + b"\n\n" for e in events)


class StreamTranslator:
    """Mistral's chat SSE stream (bytes split anywhere) -> the Responses SSE event stream, as it arrives.

    feed() returns the events made from every complete upstream event so far; close() ends the stream,
    with response.failed when the upstream stopped before finishing its answer; abort() ends it at once.
    """

    def __init__(self, request: dict) -> None:
        self.events = EventTranslator(request)
        self.reader = sse.Reader()

    def feed(self, data: bytes) -> bytes:
        events = self.events
        for event in self.reader.feed(data):
            events.event(event)
        return write(events.take())

    def close(self) -> bytes:
        events = self.events
        for event in self.reader.close():
            events.event(event)
        events.end()
        return write(events.take())

    def abort(self, message: str = "the answer could not be translated") -> bytes:
        """End the stream at once with a bare response.failed, whatever state it is in; never raises."""
        event = self.events.abort(message)
        return write([event]) if event is not None else b""
