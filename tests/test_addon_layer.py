"""The mitmproxy layer's own plumbing, in-process (mitmproxy's taddons/tflow): the one registered object
and its dispatch, the batched log lines, the hot-path header and body helpers. End-to-end behaviour is
in test_e2e.py and friends."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Optional

from mitmproxy import http
from mitmproxy.test import taddons, tflow

import addon
from mistral_compat.settings import Settings
from mistral_compat.state import FlowState


def chat_flow(body: dict, host: str = "api.mistral.ai", **headers) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.host = host
    f.request.method = "POST"
    f.request.path = "/v1/chat/completions"
    f.request.headers.update({"content-type": "application/json", **headers})
    f.request.content = json.dumps(body).encode()
    return f


def fresh() -> addon.MistralCompat:
    return addon.build()


def part(mc: addon.MistralCompat, kind: type):
    return next(p for p in mc.parts if isinstance(p, kind))


DIRTY = {"model": "m", "messages": [{"role": "user", "content": "hi", "name": "x"}], "user": "u", "seed": 1}


def test_matched_flow_is_rewritten_through_the_composite():
    mc = fresh()
    with taddons.context(mc):
        f = chat_flow(DIRTY, **{"user-agent": "ua/1"})
        mc.requestheaders(f)
        mc.request(f)
        assert json.loads(f.request.content) == {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "random_seed": 1,
        }
        assert f.request.headers["content-length"] == str(len(f.request.raw_content))
        assert f.marked == addon.MARKER and "dropped user" in f.comment


class Spy:
    """A part that records every hook it is handed."""

    def __init__(self, calls: list, name: str) -> None:
        self.calls, self.name = calls, name

    def _hook(self, hook: str):
        return lambda *args: self.calls.append((self.name, hook))

    def __getattr__(self, hook: str):
        if hook in ("requestheaders", "request", "responseheaders", "response", "load", "configure", "running", "done"):
            return self._hook(hook)
        raise AttributeError(hook)


FLOW_HOOKS = ("requestheaders", "request", "responseheaders", "response")


def test_unmatched_flow_reaches_no_part():
    calls: list = []
    mc = addon.MistralCompat(addon.Matcher(Settings()), Spy(calls, "a"), Spy(calls, "b"))
    with taddons.context(mc):
        f = chat_flow(DIRTY, host="api.openai.com")
        for hook in FLOW_HOOKS:
            getattr(mc, hook)(f)
        assert addon.META not in f.metadata and [c for c in calls if c[1] in FLOW_HOOKS] == []
        g = chat_flow(DIRTY)  # api.mistral.ai: matched
        for hook in FLOW_HOOKS:
            getattr(mc, hook)(g)
        assert [c for c in calls if c[0] == "a" and c[1] in FLOW_HOOKS] == [("a", h) for h in FLOW_HOOKS]


def test_every_part_hook_is_dispatched_in_order_and_done_in_reverse():
    calls: list = []

    class Marker:
        def requestheaders(self, flow):
            calls.append(("m", "requestheaders"))
            flow.metadata[addon.META] = FlowState("c")

    mc = addon.MistralCompat(Marker(), Spy(calls, "a"), object(), Spy(calls, "b"))
    f = tflow.tflow()
    mc.requestheaders(f)
    mc.request(f)
    mc.running()
    mc.done()
    assert calls == [
        ("m", "requestheaders"),
        ("a", "requestheaders"),
        ("b", "requestheaders"),
        ("a", "request"),
        ("b", "request"),
        ("a", "running"),
        ("b", "running"),
        ("b", "done"),
        ("a", "done"),
    ]


def test_a_part_is_handed_only_the_kinds_of_flow_it_acts_on():
    calls: list = []

    class Choosy(Spy):
        def acts_on(self, hook: str, kind: str, redirected: bool) -> bool:
            return kind == "rewrite" and hook != "response"

    mc = addon.MistralCompat(addon.Matcher(Settings()), Choosy(calls, "c"), Spy(calls, "all"))
    with taddons.context(mc):
        for path, method in (("/v1/chat/completions", "POST"), ("/v1/models", "GET"), ("/v1/chat/completions", "POST")):
            f = chat_flow(DIRTY)
            f.request.path, f.request.method = path, method
            for hook in FLOW_HOOKS:
                getattr(mc, hook)(f)
    seen = [c for c in calls if c[1] in FLOW_HOOKS]
    assert [c for c in seen if c[0] == "c"] == 2 * [("c", h) for h in FLOW_HOOKS[:3]]
    assert [c for c in seen if c[0] == "all"] == 3 * [("all", h) for h in FLOW_HOOKS]


def test_the_parts_each_kind_of_flow_goes_through():
    mc = fresh()

    def names(hook: str, kind: str, redirected: bool = False) -> list[str]:
        return [h.__self__.__class__.__name__ for h in mc._for(hook, FlowState("c", kind, redirected=redirected))]

    assert names("request", "rewrite") == ["Rewriter", "Pacing", "Report"]
    assert names("request", "bridge") == ["ResponsesBridge", "Pacing", "Report"]
    assert names("request", "rewrite", redirected=True) == ["Redirect", "Rewriter", "Pacing", "Report"]
    assert names("requestheaders", "preflight") == ["Cors"]
    assert names("requestheaders", "passed") == []
    assert names("responseheaders", "passed") == ["Cors", "Answers", "Pacing"]
    assert names("response", "bridge") == ["ResponsesBridge", "Report"]


async def test_pending_log_lines_are_redacted_at_shutdown():
    """done runs in reverse: Report writes its pending lines while Redaction still filters the handlers."""
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        mc = fresh()
        with taddons.context(mc):
            mc.running()
            report = part(mc, addon.Report)
            report.log.pending.append((logging.INFO, "mistral-compat x: authorization: Bearer sk-SECRET-123456"))
            mc.done()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert any("mistral-compat x" in r for r in records)
    assert not any("sk-SECRET-123456" in r for r in records)


def test_set_body_keeps_chunked_framing_and_adds_a_missing_length():
    f = chat_flow({})
    f.request.headers["transfer-encoding"] = "chunked"
    del f.request.headers["content-length"]
    addon.set_body(f.request, b'{"a":1}')
    assert f.request.raw_content == b'{"a":1}' and "content-length" not in f.request.headers
    g = chat_flow({})  # an HTTP/2 request may come without a length
    del g.request.headers["content-length"]
    addon.set_body(g.request, b'{"b":2}')
    assert g.request.headers["content-length"] == "7"
    h = chat_flow({})
    addon.set_body(h.request, b"{}")
    assert h.request.headers.get_all("content-length") == ["2"]


def test_compressed_bodies_keep_mitmproxys_own_handling():
    mc = fresh()
    with taddons.context(mc):
        f = chat_flow({})
        f.request.headers["content-encoding"] = "gzip"
        f.request.content = json.dumps(DIRTY).encode()  # gzip-compressed by mitmproxy
        assert f.request.raw_content != f.request.content
        mc.requestheaders(f)
        mc.request(f)
        assert f.request.headers["content-encoding"] == "gzip"
        assert json.loads(f.request.content)["random_seed"] == 1
        assert f.request.headers["content-length"] == str(len(f.request.raw_content))


def test_header_helper_reads_the_first_value_case_insensitively():
    h = http.Headers([(b"User-Agent", b"a"), (b"user-agent", b"b"), (b"X", b"\xff")])
    assert addon.header(h, b"user-agent") == "a"
    assert addon.header(h, b"missing", None) is None
    assert addon.header(h, b"x").encode("utf-8", "surrogateescape") == b"\xff"


def test_log_lines_batched_one_record_per_level_run(caplog):
    async def go():
        log = addon.RequestLog()
        log.add(logging.INFO, "one")
        log.add(logging.INFO, "two")
        log.add(logging.WARNING, "three")
        log.add(logging.INFO, "four")
        assert not [r for r in caplog.records if r.name == addon.logger.name]  # waits for FLUSH_DELAY
        await asyncio.sleep(log.FLUSH_DELAY + 0.1)
        return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == addon.logger.name]

    caplog.set_level(logging.DEBUG, logger=addon.logger.name)
    assert asyncio.run(go()) == [(logging.INFO, "one\ntwo"), (logging.WARNING, "three"), (logging.INFO, "four")]


def test_log_lines_written_at_once_without_an_event_loop(caplog):
    caplog.set_level(logging.INFO, logger=addon.logger.name)
    addon.RequestLog().add(logging.INFO, "now")
    assert [r.getMessage() for r in caplog.records if r.name == addon.logger.name] == ["now"]


def test_done_flushes_pending_lines_before_the_summary(caplog):
    caplog.set_level(logging.INFO, logger=addon.logger.name)
    report = addon.Report(Settings())
    report.log.pending.append((logging.INFO, "pending line"))
    report.done()
    assert [r.getMessage() for r in caplog.records if r.name == addon.logger.name][0] == "pending line"


# --- the Responses bridge's answer side --------------------------------------------------------------


def bridged_flow(mc: addon.MistralCompat, body: dict) -> http.HTTPFlow:
    f = chat_flow(body)
    f.request.path = "/v1/responses"
    f.request.content = json.dumps(body).encode()
    mc.requestheaders(f)
    mc.request(f)
    assert f.request.path == "/v1/chat/completions" and f.metadata[addon.META].bridge is not None
    return f


SSE = (
    b'data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":"hel"},"finish_reason":null}]}\n\n'
    b'data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
    b'"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


def events_of(raw: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


def streamed_answer(mc: addon.MistralCompat, **headers: str) -> http.HTTPFlow:
    """A bridged streamed request whose answer's headers (an event stream, plus these) have arrived."""
    f = bridged_flow(mc, {"model": "m", "input": "Hi", "stream": True})
    f.response = tflow.tresp(content=b"")
    f.response.headers["content-type"] = "text/event-stream"
    f.response.headers.update(headers)
    mc.responseheaders(f)
    return f


def test_streamed_answer_is_translated_chunk_by_chunk_with_its_framing_fixed():
    mc = fresh()
    with taddons.context(mc):
        f = streamed_answer(mc, **{"content-length": "999"})
        assert callable(f.response.stream)
        assert "content-length" not in f.response.headers
        assert f.response.headers["transfer-encoding"] == "chunked"
        pieces = [f.response.stream(SSE[i : i + 7]) for i in range(0, len(SSE), 7)] + [f.response.stream(b"")]
        assert all(isinstance(p, list) and b"" not in p for p in pieces)
        events = events_of(b"".join(b"".join(p) for p in pieces))
        assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
        assert events[-1]["response"]["output"][0]["content"][0]["text"] == "hello"


def test_stream_translation_failure_ends_with_response_failed(monkeypatch, caplog):
    mc = fresh()
    with taddons.context(mc):
        f = streamed_answer(mc)

        def boom(self, data):
            raise RuntimeError("bug")

        monkeypatch.setattr(addon.responses.StreamTranslator, "feed", boom)
        (out,) = f.response.stream(SSE)
        assert events_of(out)[-1]["type"] == "response.failed"
        assert f.response.stream(b"") == []
        assert "could not be translated" in caplog.text


def test_compressed_event_stream_is_decoded_and_translated_as_it_streams():
    import gzip

    mc = fresh()
    with taddons.context(mc):
        f = streamed_answer(mc, **{"content-encoding": "gzip"})
        assert callable(f.response.stream) and "content-encoding" not in f.response.headers
        blob = gzip.compress(SSE)
        pieces = [f.response.stream(blob[i : i + 9]) for i in range(0, len(blob), 9)] + [f.response.stream(b"")]
        assert all(isinstance(p, list) and b"" not in p for p in pieces)
        events = events_of(b"".join(b"".join(p) for p in pieces))
        assert events[-1]["type"] == "response.completed"
        assert events[-1]["response"]["output"][0]["content"][0]["text"] == "hello"


def test_event_stream_in_an_unknown_encoding_is_translated_whole():
    mc = fresh()
    with taddons.context(mc):
        f = streamed_answer(mc, **{"content-encoding": "compress"})
        assert f.response.stream is False


def test_broken_compressed_event_stream_ends_with_response_failed():
    mc = fresh()
    with taddons.context(mc):
        f = streamed_answer(mc, **{"content-encoding": "gzip"})
        out = b"".join(b"".join(f.response.stream(p)) for p in (b"\x1f\x8b not gzip", b"more", b""))
        assert events_of(out)[-1]["type"] == "response.failed"


def answered(mc: addon.MistralCompat, content: bytes, content_type: str, stream: bool = False) -> http.HTTPFlow:
    """A bridged request with Mistral's whole answer through the bridge's responseheaders (where `stream`
    is what mitmproxy had set before it) and response hooks."""
    f = bridged_flow(mc, {"model": "m", "input": "Hi"})
    f.response = tflow.tresp(content=content)
    f.response.headers["content-type"] = content_type
    f.response.stream = stream
    mc.responseheaders(f)
    assert f.response.stream is False
    mc.response(f)
    return f


def test_answer_that_is_not_json_is_a_502_in_the_responses_shape():
    mc = fresh()
    with taddons.context(mc):
        f = answered(mc, b"<html>oops</html>", "text/html")
        assert f.response.status_code == 502 and f.response.reason == "Bad Gateway"
        assert f.response.headers["content-type"] == "application/json"
        assert "not a JSON object" in f.response.json()["error"]["message"]


def test_stream_large_bodies_cannot_stream_a_bridged_json_answer():
    mc = fresh()
    with taddons.context(mc):
        # stream=True: as mitmproxy's StreamBodies sets it for a large answer; the bridge buffers it anyway
        f = answered(mc, b'{"choices":[{"message":{"content":"ok"}}]}', "application/json", stream=True)
        assert f.response.json()["output"][0]["content"][0]["text"] == "ok"


def test_backup_only_when_a_flow_view_can_revert():
    class View:  # mitmweb's and the console's flow list is an addon named "view"
        name = "view"

    mc = fresh()
    with taddons.context(mc) as tctx:
        f = chat_flow(DIRTY)
        mc.requestheaders(f)
        mc.request(f)
        assert not f.modified()
        tctx.master.addons.add(View())
        # (mitmweb's view is there from the start: the Rewriter looks for it once, when running)
        next(p for p in mc.parts if isinstance(p, addon.Rewriter)).running()
        g = chat_flow(DIRTY)
        mc.requestheaders(g)
        mc.request(g)
        assert g.modified()
        g.revert()
        assert json.loads(g.request.content) == DIRTY


# -- Answers: chat answers translated for OpenAI clients ------------------------------------------------

REASONING_SSE = (
    b'data: {"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":'
    b'[{"type":"text","text":"hmm"}]},{"type":"text","text":"3"}]},"finish_reason":null}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"91"},"finish_reason":"model_length"}]}\n\n'
    b"data: [DONE]\n\n"
)


def chat_answer_headers(
    mc: addon.MistralCompat,
    content_type: str = "text/event-stream",
    status: int = 200,
    dry_run: bool = False,
    **headers: str,
) -> http.HTTPFlow:
    """A matched chat request whose answer's headers have arrived."""
    f = chat_flow({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    mc.requestheaders(f)
    mc.request(f)
    f.response = tflow.tresp(content=b"", status_code=status)
    f.response.headers["content-type"] = content_type
    f.response.headers.update(headers)
    mc.responseheaders(f)
    return f


def chunks_of(raw: bytes) -> list[dict]:
    return [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]


def run_stream(f: http.HTTPFlow, data: bytes, size: int = 5) -> bytes:
    pieces = [f.response.stream(data[i : i + size]) for i in range(0, len(data), size)] + [f.response.stream(b"")]
    assert all(isinstance(p, list) and b"" not in p for p in pieces)  # never b"" mid-stream
    return b"".join(b"".join(p) for p in pieces)


def test_chat_stream_translated_with_notes_in_the_log_and_comment(caplog):
    mc = fresh()
    with taddons.context(mc) as tctx, caplog.at_level(logging.INFO):
        tctx.configure(mc, mistral_answers="auto")
        f = chat_answer_headers(mc, **{"content-length": "999"})
        assert callable(f.response.stream) and "content-length" not in f.response.headers
        events = chunks_of(run_stream(f, REASONING_SSE))
        assert [e["choices"][0]["delta"] for e in events] == [
            {"content": "3", "reasoning_content": "hmm"},
            {"content": "91"},
        ]
        assert events[1]["choices"][0]["finish_reason"] == "length"
        mc.response(f)
        mc.done()
    assert "answer: content chunks -> text + reasoning_content; finish_reason model_length -> length" in caplog.text
    assert "- finish_reason model_length -> length" in f.comment


def test_chat_stream_compressed_is_decoded_as_it_streams():
    import gzip

    mc = fresh()
    with taddons.context(mc):
        f = chat_answer_headers(mc, **{"content-encoding": "gzip"})
        assert "content-encoding" not in f.response.headers
        out = run_stream(f, gzip.compress(REASONING_SSE), size=3)
        assert chunks_of(out)[0]["choices"][0]["delta"]["content"] == "3"


def test_chat_stream_with_an_unknown_encoding_is_passed_on():
    mc = fresh()
    with taddons.context(mc):
        f = chat_answer_headers(mc, **{"content-encoding": "compress"})
        assert f.response.stream is True and f.response.headers["content-encoding"] == "compress"


def test_chat_stream_dry_run_passes_every_byte(caplog):
    import gzip

    mc = fresh()
    with taddons.context(mc) as tctx, caplog.at_level(logging.INFO):
        tctx.configure(mc, mistral_dry_run=True)
        f = chat_answer_headers(mc, **{"content-encoding": "gzip", "content-length": "10"})
        assert f.response.headers["content-encoding"] == "gzip" and f.response.headers["content-length"] == "10"
        blob = gzip.compress(REASONING_SSE)
        assert run_stream(f, blob) == blob
        mc.response(f)
        mc.done()
    assert "(dry run, not applied) chat/completions [(no user-agent)]: answer: content chunks" in caplog.text


def test_chat_stream_failure_passes_the_rest_untranslated(monkeypatch, caplog):
    mc = fresh()
    with taddons.context(mc):
        f = chat_answer_headers(mc)
        monkeypatch.setattr(addon.answers.StreamTranslator, "feed", lambda self, data: 1 / 0)
        assert f.response.stream(b"data: x\n\n") == [b"data: x\n\n"]
        assert f.response.stream(b"data: y\n\n") == [b"data: y\n\n"]
        assert f.response.stream(b"") == []
    assert "could not be read (ZeroDivisionError" in caplog.text and "passed on as it came" in caplog.text


def test_an_event_that_cannot_be_translated_passes_as_it_came_and_the_stream_goes_on(monkeypatch):
    bad = b'data: {"choices":[{"index":0,"delta":{"content":[{"type":"text","text":"BAD"}]}}]}\n\n'
    original = addon.answers._Translator.document

    def document(self, obj, stream, status=200):
        if "BAD" in json.dumps(obj):
            raise TypeError("unforeseen")
        return original(self, obj, stream, status)

    monkeypatch.setattr(addon.answers._Translator, "document", document)
    mc = fresh()
    with taddons.context(mc):
        f = chat_answer_headers(mc)
        out = run_stream(f, bad + REASONING_SSE, size=7)  # split across network chunks
    assert out.startswith(bad)  # whole, as it came
    assert chunks_of(out[len(bad) :])[0]["choices"][0]["delta"]["content"] == "3"  # and the rest translated


def test_a_compressed_stream_that_breaks_ends_with_what_decoded(caplog):
    import gzip

    mc = fresh()
    blob = gzip.compress(REASONING_SSE)
    with taddons.context(mc):
        f = chat_answer_headers(mc, **{"content-encoding": "gzip"})
        first = f.response.stream(blob[: len(blob) // 2])
        assert f.response.stream(b"\xff" * 64) == []  # not gzip: nothing more can be made of it
        assert f.response.stream(b"more") == [] and f.response.stream(b"") == []
    out = b"".join(first)
    assert not out or out.startswith(b"data: ")  # only whole, decoded text reached the client
    assert "could not be decoded" in caplog.text and "it ends here" in caplog.text


def test_json_answers_buffered_even_with_stream_large_bodies_and_shown_in_the_view():
    mc = fresh()
    body = b'{"choices":[{"index":0,"message":{"content":[{"type":"text","text":"x"}]},"finish_reason":"stop"}]}'
    with taddons.context(mc):
        f = chat_answer_headers(mc, content_type="application/json")
        assert f.response.stream is False
        f.response.content = body
        mc.response(f)
        assert json.loads(f.response.content)["choices"][0]["message"] == {"content": "x"}
        view = addon._view_text(f.response.content, f, f.response)
        assert "--- sent by Mistral" in view and '"text": "x"' in view and '"content": "x"' in view
        assert addon._view_text(f.request.content, f, f.request) is None  # the request was not changed


def test_error_answers_of_any_matched_path_but_not_successes():
    mc = fresh()
    with taddons.context(mc):
        f = tflow.tflow()
        f.request.host, f.request.method, f.request.path = "api.mistral.ai", "GET", "/v1/models"
        mc.requestheaders(f)
        mc.request(f)
        f.response = tflow.tresp(content=b'{"object":"list","data":[]}', status_code=200)
        mc.responseheaders(f)
        mc.response(f)
        assert f.response.content == b'{"object":"list","data":[]}'
        f.response = tflow.tresp(content=b'{"detail":"Unauthorized"}', status_code=401)
        mc.responseheaders(f)
        assert f.response.stream is False
        mc.response(f)
        assert json.loads(f.response.content)["error"]["message"] == "Unauthorized"


async def test_comments_written_only_where_flows_are_kept():
    """mitmdump prints no flow comment: it is built only for mitmweb/the console (an addon named "view") or
    a flow file (-w). The log line and the marker are always there."""

    class View:
        name = "view"

    mc = fresh()
    with taddons.context(mc) as tctx:
        tctx.options.add_option("save_stream_file", Optional[str], None, "")  # (mitmproxy's Save addon's)
        mc.configure(set(tctx.options.keys()))  # as at start-up
        f = chat_flow(DIRTY)
        mc.requestheaders(f)
        mc.request(f)
        assert f.marked == addon.MARKER and f.comment == ""
        tctx.configure(mc, save_stream_file="/dev/null")
        g = chat_flow(DIRTY)
        mc.requestheaders(g)
        mc.request(g)
        assert "dropped user" in g.comment
        tctx.configure(mc, save_stream_file=None)
        tctx.master.addons.add(View())
        mc.running()
        h = chat_flow(DIRTY)
        mc.requestheaders(h)
        mc.request(h)
        assert "dropped user" in h.comment
        mc.done()


def test_a_changed_requests_line_and_counts_are_made_when_the_batch_is_written(caplog):
    """Report.request leaves a changed request's log line and summary counts to the next flush
    (RequestLog.later): nothing is made in the hook, and everything is there once the batch is written."""

    async def go():
        mc = fresh()
        with taddons.context(mc):
            mc.running()
            report = part(mc, addon.Report)
            f = chat_flow(DIRTY)
            mc.requestheaders(f)
            mc.request(f)
            assert f.marked  # the flow is marked at once
            assert not report.summary.clients  # counted with the batch
            assert len(report.log.pending) == 1 and len(report.log.pending[0]) == 3
            await asyncio.sleep(report.log.FLUSH_DELAY + 0.1)
            lines = [r.getMessage() for r in caplog.records if r.name == addon.logger.name]
            stats = next(iter(report.summary.clients.values()))
            mc.done()
            return lines, stats

    caplog.set_level(logging.INFO, logger=addon.logger.name)
    lines, stats = asyncio.run(go())
    assert any("renamed seed -> random_seed" in line for line in lines)
    assert stats.matched == 1 and stats.changed == 1 and stats.fields["seed -> random_seed"] == 1


def test_lines_made_later_keep_their_place_and_level(caplog):
    caplog.set_level(logging.DEBUG, logger=addon.logger.name)
    log = addon.RequestLog()
    log.pending.append((logging.INFO, "first"))
    log.pending.append((logging.INFO, str.upper, ("second",)))
    log.pending.append((logging.WARNING, "third"))
    log.later(logging.WARNING, "{} and {}".format, ("fourth", "fifth"))  # no event loop: written at once
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == addon.logger.name] == [
        (logging.INFO, "first\nSECOND"),
        (logging.WARNING, "third\nfourth and fifth"),
    ]


def _report_sequence(report: addon.Report) -> None:
    """Report's hooks for a run of flows of several clients: changed, refused (400 and a full queue's 429),
    waited, an answer translated, Mistral's 429, unchanged."""
    from mistral_compat.changes import DROPPED, RENAMED, Change

    def state(client: str, **kw) -> FlowState:
        st = FlowState(client, "rewrite", "chat/completions", False)
        for k, v in kw.items():
            setattr(st, k, v)
        return st

    for st, notes in [
        (state("A", changes=[Change(DROPPED, "user")]), []),
        (state("B", rejected=(400, "the body is not JSON")), []),
        (state("A", changes=[Change(RENAMED, "seed", "random_seed")]), ["content chunks -> text"]),
        (state("C", waited=1.5, wait_note="waited 1.5 s"), []),
        (state("B", rejected=(429, "queue full")), []),
        (state("A", changes=[Change(DROPPED, "user")], limited=True), []),
        (state("D"), ["tool calls -> index"]),
        (state("C", endpoint=None, rejected=(429, "queue full"), wait_note="held"), []),
    ]:
        f = tflow.tflow(resp=True)
        report.request(f, st)
        st.answer_notes = notes
        report.response(f, st)


def test_the_summary_and_lines_made_in_batches_are_those_made_at_once(caplog):
    """Counts and lines left to the batch (RequestLog.later) come out as if each was made in its hook: the same
    summary (clients and fields in the same order) and the same log lines."""
    caplog.set_level(logging.DEBUG, logger=addon.logger.name)

    def at_once() -> tuple[str, list]:  # no event loop: every line is written (and counted) when added
        report = addon.Report(Settings())
        _report_sequence(report)
        return report.summary.table(), [r.getMessage() for r in caplog.records if r.name == addon.logger.name]

    async def batched() -> tuple[str, list]:
        report = addon.Report(Settings())
        _report_sequence(report)
        assert len(report.log.pending) > 5 and not report.summary.clients  # nothing counted yet
        await asyncio.sleep(report.log.FLUSH_DELAY + 0.1)
        return report.summary.table(), [r.getMessage() for r in caplog.records if r.name == addon.logger.name]

    table, lines = at_once()
    caplog.clear()
    table2, lines2 = asyncio.run(batched())
    assert table2 == table and "\n".join(lines2) == "\n".join(lines)
    rows = table.splitlines()
    assert [row.split()[0] for row in rows[2:] if not row.startswith(" ")] == ["A", "B", "C", "D"]
    assert [row.split("x  ")[1] for row in rows[3:6]] == [
        "dropped user",
        "seed -> random_seed",
        "answer: content chunks -> text",
    ]


def test_a_line_that_cannot_be_made_costs_only_itself(caplog):
    caplog.set_level(logging.INFO, logger=addon.logger.name)
    log = addon.RequestLog()
    log.pending.append((logging.INFO, "before"))
    log.pending.append((logging.INFO, lambda: 1 / 0, ()))
    log.pending.append((logging.INFO, lambda: None, ()))  # a count without a line
    log.later(logging.INFO, str, ("after",))
    got = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == addon.logger.name]
    assert got == [
        (logging.INFO, "before"),
        (logging.WARNING, "mistral-compat: a log line could not be made (ZeroDivisionError: division by zero)"),
        (logging.INFO, "after"),
    ]
