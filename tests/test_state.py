"""The flow state: what the matcher decides once, and how a saved flow keeps it."""

from __future__ import annotations

import copy

import pytest

from mistral_compat import state
from mistral_compat.changes import Change
from mistral_compat.rules import builtin
from mistral_compat.state import FlowState, classify


@pytest.mark.parametrize(
    "method,path,expected",
    [
        ("POST", "/v1/chat/completions", (state.REWRITE, "chat/completions")),
        ("POST", "/openai/v1/chat/completions?x=1", (state.REWRITE, "chat/completions")),
        ("POST", "/v1/embeddings", (state.REWRITE, "embeddings")),
        ("POST", "/v1/responses", (state.BRIDGE, "responses")),
        ("POST", "/v1/responses/", (state.BRIDGE, "responses")),
        ("GET", "/v1/responses/resp_1", (state.STORED, "responses")),
        ("DELETE", "/v1/responses/resp_1", (state.STORED, "responses")),
        ("GET", "/v1/responses", (state.PASSED, None)),
        ("OPTIONS", "/v1/chat/completions", (state.PREFLIGHT, None)),
        ("OPTIONS", "/v1/responses/resp_1", (state.PREFLIGHT, None)),
        ("GET", "/v1/models", (state.PASSED, None)),
        ("GET", "/v1/chat/completions", (state.PASSED, None)),
        ("POST", "/v1/nothing", (state.PASSED, None)),
    ],
)
def test_classify(method, path, expected):
    assert classify(method, path, builtin()) == expected


def test_a_saved_flow_keeps_plain_data_and_reads_back():
    st = FlowState("ua/1", state.REWRITE, "chat/completions", dry_run=True)
    st.changes = [Change("dropped", "user"), Change("renamed", "seed", "random_seed")]
    st.original = b'{"a":1}'
    st.rejected = (413, "too large")
    st.answer_stream = object()  # live only: never saved
    saved = copy.deepcopy(st)  # what mitmproxy's get_state does to metadata
    assert isinstance(saved, dict) and "answer_stream" not in saved
    assert saved["original"] == b'{"a":1}' and saved["changes"] == [
        ("dropped", "user", ""),
        ("renamed", "seed", "random_seed"),
    ]
    assert saved["rejected"] == "too large" and saved["reject_status"] == 413
    back = FlowState.from_saved(saved)
    assert back.changes == st.changes and back.rejected == st.rejected and back.dry_run
    assert (back.kind, back.endpoint, back.original) == (state.REWRITE, "chat/completions", b'{"a":1}')


def test_from_saved_takes_a_live_state_and_refuses_anything_else():
    st = FlowState("c")
    assert FlowState.from_saved(st) is st
    assert FlowState.from_saved(None) is None and FlowState.from_saved("x") is None
    assert FlowState.from_saved({}).client == ""


def test_a_saved_flow_round_trips_through_mitmproxys_flow_format():
    from mitmproxy import http
    from mitmproxy.test import tflow

    f = tflow.tflow()
    st = FlowState("ua", state.REWRITE, "chat/completions")
    st.original, st.changes = b"{}", [Change("dropped", "user")]
    f.metadata["mistral_compat"] = st
    g = http.HTTPFlow.from_state(f.get_state())
    assert FlowState.from_saved(g.metadata["mistral_compat"]).changes == [Change("dropped", "user")]
    f.backup()  # mitmweb's revert copy, saved with the flow: plain data too
    http.HTTPFlow.from_state(f.get_state())
