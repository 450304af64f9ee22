"""The mitmproxy layer's own plumbing, in-process (mitmproxy's taddons/tflow): the one registered object
and its dispatch, the batched log lines, the hot-path header and body helpers. End-to-end behaviour is
in test_e2e.py and friends."""

from __future__ import annotations

import asyncio
import json
import logging

from mitmproxy import http
from mitmproxy.test import taddons, tflow

import addon


def chat_flow(body: dict, host: str = "api.mistral.ai", **headers) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.host = host
    f.request.method = "POST"
    f.request.path = "/v1/chat/completions"
    f.request.headers.update({"content-type": "application/json", **headers})
    f.request.content = json.dumps(body).encode()
    return f


def fresh() -> addon.MistralCompat:
    rewriter = addon.Rewriter()
    return addon.MistralCompat(addon.Redaction(), addon.Matcher(), addon.InterceptScope(), addon.Cors(),
                               addon.ResponsesBridge(rewriter), rewriter, addon.StreamEvents(), addon.Report())


DIRTY = {"model": "m", "messages": [{"role": "user", "content": "hi", "name": "x"}], "user": "u", "seed": 1}


def test_matched_flow_is_rewritten_through_the_composite():
    mc = fresh()
    with taddons.context(mc):
        f = chat_flow(DIRTY, **{"user-agent": "ua/1"})
        mc.requestheaders(f)
        mc.request(f)
        assert json.loads(f.request.content) == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                                 "random_seed": 1}
        assert f.request.headers["content-length"] == str(len(f.request.raw_content))
        assert f.marked == addon.MARKER and "dropped user" in f.comment


def test_unmatched_flow_reaches_no_part():
    mc = fresh()
    with taddons.context(mc):
        f = chat_flow(DIRTY, host="api.openai.com")
        before = f.request.raw_content
        mc.requestheaders(f)
        assert addon.META not in f.metadata
        # a part called anyway would mark or rewrite it; none is
        for hook in (mc.request, mc.responseheaders, mc.response):
            hook(f)
        assert f.request.raw_content is before and not f.comment and not f.marked


def test_every_part_hook_is_dispatched_in_order():
    calls = []

    class Part:
        def __init__(self, name):
            self.name = name

        def requestheaders(self, flow):
            calls.append((self.name, "requestheaders"))
            flow.metadata[addon.META] = {}

        def request(self, flow):
            calls.append((self.name, "request"))

    mc = addon.MistralCompat(Part("a"), object(), Part("b"))
    f = tflow.tflow()
    mc.requestheaders(f)
    mc.request(f)
    assert calls == [("a", "requestheaders"), ("b", "requestheaders"), ("a", "request"), ("b", "request")]


def test_compressed_and_chunked_bodies_keep_mitmproxys_own_handling():
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
    report = addon.Report()
    report.log.pending.append((logging.INFO, "pending line"))
    report.done()
    assert [r.getMessage() for r in caplog.records if r.name == addon.logger.name][0] == "pending line"
