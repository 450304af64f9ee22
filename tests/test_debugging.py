"""'What is my client sending?': log lines, dry run, flow comments/markers, summary, no secrets (real mitmdump)."""

from __future__ import annotations

import json

import httpx
from mitmproxy import io as mitmio

KEY = "sk-e2e-KNOWNKEY-0123456789abcdef"
QUERY_KEY = "qk-e2e-QUERYKEY-987654321"
OPENAI_HEAVY = {
    "model": "mistral-small-latest",
    "messages": [
        {"role": "developer", "content": "You are terse."},
        {"role": "user", "content": "weather?", "name": "alice"},
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "annotations": [],
            "audio": None,
            "function_call": None,
            "tool_calls": [
                {
                    "id": "call_QWERTYUIOPASDFGHJKLZXCVB",
                    "type": "function",
                    "function": {"name": "weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_QWERTYUIOPASDFGHJKLZXCVB", "content": "sunny"},
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    "stream_options": {"include_usage": True},
    "user": "u-42",
    "seed": 7,
    "max_completion_tokens": 100,
    "logprobs": False,
    "store": False,
    "temperature": 1.8,
}


def send(proxy, body, ua="DebugClient/2.0", path="/v1/chat/completions"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with httpx.Client(timeout=20) as c:
        return c.post(
            proxy.url + path + f"?api_key={QUERY_KEY}",
            content=raw,
            headers={
                "content-type": "application/json",
                "authorization": f"Bearer {KEY}",
                "x-api-key": KEY,
                "user-agent": ua,
            },
        )


def test_log_line_names_every_change(mitmdump, fake):
    p = mitmdump("--mode", f"reverse:{fake.url}")
    assert send(p, OPENAI_HEAVY).status_code == 200
    m = p.wait_for(r"mistral-compat chat/completions \[DebugClient/2\.0\]: ")
    assert m, p.output
    line = m.string
    for part in (
        "seed -> random_seed",
        "max_completion_tokens -> max_tokens",
        "stream_options",
        "user",
        "logprobs",
        "store",
        "messages[1].name",
        "messages[2].refusal",
        "messages[2].annotations",
        "messages[2].audio",
        "messages[2].function_call",
        "messages[0].role ('developer' -> 'system')",
        "temperature (1.8 -> 1.5",
        "messages[2].tool_calls[0].id (call_QWERTYUIOPASDFGHJKLZXCVB -> ",
        "messages[3].tool_call_id (call_QWERTYUIOPASDFGHJKLZXCVB -> ",
    ):
        assert part in line, part
    # a request that needs no change logs nothing of ours
    clean = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert send(p, clean, ua="CleanClient/1.0").status_code == 200
    assert send(p, OPENAI_HEAVY, ua="Marker/1.0").status_code == 200
    assert p.wait_for(r"\[Marker/1\.0\]")
    assert "CleanClient" not in p.output


def test_dry_run_forwards_byte_identical(mitmdump, fake):
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", "mistral_dry_run=true")
    raw = json.dumps(OPENAI_HEAVY, indent=2).encode()
    r = send(p, raw)
    assert r.status_code == 422  # Mistral's own answer: nothing was changed
    assert fake.received[-1].raw_body == raw
    assert p.wait_for(
        r"mistral-compat \(dry run, not applied\) chat/completions \[DebugClient/2\.0\]: .*stream_options"
    )
    # a bad body is not answered by the proxy in a dry run either
    r = send(p, b"[1, 2]")
    assert r.status_code == 422 and fake.received[-1].raw_body == b"[1, 2]"
    assert p.wait_for(r"would answer 400: the body is a JSON array")


def test_summary_after_sigterm(mitmdump, fake):
    p = mitmdump("--mode", f"reverse:{fake.url}")
    for _ in range(3):
        assert send(p, OPENAI_HEAVY, ua="SummaryClient/1.0").status_code == 200
    send(p, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, ua="SummaryClient/1.0")
    send(p, b"not json", ua="BrokenClient/0.1")
    with httpx.Client() as c:
        c.get(p.url + "/v1/models", headers={"user-agent": "SummaryClient/1.0"})
    assert p.stop() == 0
    out = p.output
    assert "mistral-compat summary" in out
    summary = out[out.index("mistral-compat summary") :].splitlines()
    row = next(line for line in summary if line.startswith("SummaryClient/1.0"))
    assert row.split()[-4:] == ["5", "3", "0", "0"]
    assert next(line for line in summary if line.startswith("BrokenClient/0.1")).split()[-4:] == ["1", "0", "1", "0"]
    assert "         3x  dropped stream_options" in summary
    assert "         3x  seed -> random_seed" in summary
    assert "         3x  dropped messages[].name" in summary


def test_flows_carry_comment_marker_and_original(mitmdump, fake, tmp_path):
    """What mitmweb and the console show, checked on flows saved by a real mitmdump (-w)."""
    flows_file = tmp_path / "flows.mitm"
    p = mitmdump("--mode", f"reverse:{fake.url}", "-w", str(flows_file))
    raw = json.dumps(OPENAI_HEAVY).encode()
    assert send(p, raw).status_code == 200
    assert send(p, {"model": "m", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    p.stop()
    with open(flows_file, "rb") as f:
        flows = list(mitmio.FlowReader(f).stream())
    changed, clean = flows
    assert changed.marked == ":wrench:"
    assert changed.comment.startswith("mistral-compat changed this request (")
    assert "- dropped stream_options" in changed.comment.splitlines()
    assert changed.metadata["mistral_compat"]["original"] == raw
    assert changed.request.content != raw
    assert clean.marked == "" and clean.comment == ""


def test_secrets_never_logged_at_any_verbosity(mitmdump, fake):
    p = mitmdump(
        "--mode",
        f"reverse:{fake.url}",
        "--set",
        "termlog_verbosity=debug",
        "--set",
        "flow_detail=4",
        "--set",
        "proxy_debug=true",
    )
    assert send(p, OPENAI_HEAVY).status_code == 200
    assert send(p, b"{broken").status_code == 400
    with httpx.Client() as c:
        c.get(p.url + f"/v1/models?key={QUERY_KEY}", headers={"authorization": f"Bearer {KEY}"})
    assert p.wait_for(r"sent by the client")  # the debug before/after dump happened
    p.stop()
    out = p.output
    assert "authorization" in out.lower()  # headers were printed (flow_detail=4) ...
    assert KEY not in out and QUERY_KEY not in out  # ... but never the key
    assert "[REDACTED]" in out


def test_before_after_content_view(mitmdump, fake, tmp_path):
    """The 'mistral-compat' content view (mitmweb, console) renders a saved flow on this mitmproxy version."""
    from mitmproxy import contentviews

    import addon

    flows_file = tmp_path / "flows.mitm"
    p = mitmdump("--mode", f"reverse:{fake.url}", "-w", str(flows_file))
    assert send(p, OPENAI_HEAVY).status_code == 200
    p.stop()
    with open(flows_file, "rb") as f:
        (flow,) = list(mitmio.FlowReader(f).stream())
    view = addon.BeforeAfterView()
    if hasattr(contentviews, "Contentview"):  # mitmproxy 12
        meta = contentviews.Metadata(flow=flow, http_message=flow.request)
        assert view.render_priority(flow.request.content, meta) > 1
        text = view.prettify(flow.request.content, meta)
        assert view.render_priority(b"{}", contentviews.Metadata(flow=flow, http_message=flow.response)) < 0
    else:  # mitmproxy 11
        assert view.render_priority(flow.request.content, flow=flow, http_message=flow.request) > 1
        _, lines = view(flow.request.content, flow=flow, http_message=flow.request)
        text = "\n".join("".join(t for _, t in line) for line in lines)
    assert "- dropped stream_options" in text
    before, after = text.split("--- sent by the client")[1].split("+++ forwarded to Mistral")
    assert '"stream_options"' in before and '"stream_options"' not in after
    assert '"random_seed": 7' in after
