"""The stream translator of the Responses bridge (mistral_compat/responses/stream.py): EventTranslator on events
only (upstream sse.Events in, Responses events as dicts out), StreamTranslator the bytes around it."""

from __future__ import annotations

import json

from mistral_compat import sse
from mistral_compat.responses.stream import EventTranslator, StreamTranslator, write


def event(chunk: dict | str) -> sse.Event:
    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
    return sse.parse_event(b"data: " + data.encode() + b"\n\n")


def delta(content: str | None = None, finish: str | None = None, **more) -> dict:
    d = {"content": content, **more} if content is not None else dict(more)
    return {"model": "mistral-small", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def test_events_in_dicts_out_numbered_in_order():
    t = EventTranslator({"model": "m"})
    t.event(event(delta("Bon")))
    first = t.take()
    assert types(first) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert [e["sequence_number"] for e in first] == [0, 1, 2, 3, 4]
    assert first[0]["response"]["model"] == "mistral-small"  # the model Mistral named, from its first chunk
    assert first[-1]["delta"] == "Bon"
    t.event(event(delta("jour", "stop")))
    t.event(event("[DONE]"))
    rest = t.take()
    assert types(rest) == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert rest[-1]["response"]["output"][0]["content"][0]["text"] == "Bonjour"
    assert t.take() == []


def test_what_is_not_a_chunk_is_skipped_and_nothing_follows_the_end():
    t = EventTranslator({})
    t.event(sse.parse_event(b": keep-alive\n\n"))
    t.event(event("{not json"))
    t.event(event("[1, 2]"))
    assert t.take() == []
    t.event(event(delta("x", "length")))
    t.end()
    assert types(t.take())[-1] == "response.incomplete"
    t.event(event(delta("more")))
    t.end()
    assert t.take() == []


def test_an_error_event_fails_the_response_with_mistrals_message():
    t = EventTranslator({})
    t.event(event({"object": "error", "message": "Service unavailable", "type": "internal"}))
    last = t.take()[-1]
    assert last["type"] == "response.failed"
    assert last["response"]["error"] == {"code": "server_error", "message": "Mistral: Service unavailable"}


def test_an_upstream_that_ends_early_fails():
    t = EventTranslator({})
    t.event(event(delta("half")))
    t.end()
    events = t.take()
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "the upstream stream ended before the answer was complete"
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"


def test_abort_replaces_what_was_not_taken_and_happens_once():
    t = EventTranslator({"model": "m"})
    t.event(event(delta("x")))
    failed = t.abort("boom")
    assert failed is not None and failed["type"] == "response.failed" and failed["sequence_number"] == 5
    assert failed["response"]["error"]["message"] == "mistral-compat: boom"
    assert t.take() == [] and t.abort("again") is None


def test_tool_calls_become_function_call_items():
    t = EventTranslator({})
    t.event(event(delta(tool_calls=[{"id": "abcDEF123", "function": {"name": "f", "arguments": '{"a":'}}])))
    t.event(event(delta(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}], finish="tool_calls")))
    t.end()
    done = [e for e in t.take() if e["type"] == "response.function_call_arguments.done"]
    assert done == [
        {
            "type": "response.function_call_arguments.done",
            "sequence_number": done[0]["sequence_number"],
            "item_id": done[0]["item_id"],
            "output_index": 0,
            "name": "f",
            "arguments": '{"a":1}',
        }
    ]


def test_write_gives_sse_that_reads_back():
    events = [{"type": "response.created", "sequence_number": 0, "x": "é\ud800"}, {"type": "a.b", "n": 1}]
    data = write(events)
    assert data.startswith(b"event: response.created\ndata: {") and data.endswith(b"\n\n")
    back = sse.Reader().feed(data)
    assert [json.loads(e.data) for e in back] == events
    assert write([]) == b""


def test_the_stream_translator_reads_bytes_with_the_shared_sse_reader():
    t = StreamTranslator({"model": "m"})
    assert isinstance(t.reader, sse.Reader) and isinstance(t.events, EventTranslator)
    line = b"data: " + json.dumps(delta("hi", "stop")).encode()
    assert t.feed(line[:10]) == b"" and t.feed(line[10:] + b"\r\n") == b""  # no blank line yet
    out = t.feed(b"\r\n") + t.close()
    assert [json.loads(e.data)["type"] for e in sse.Reader().feed(out)][-1] == "response.completed"
    assert t.close() == b"" and t.abort() == b""  # ended: nothing more
