"""The pure reporting pieces: log line, comment, before/after text, summary table, redaction."""

from __future__ import annotations

import json

from mistral_compat import report
from mistral_compat.changes import Change
from mistral_compat.redact import MASK, redact_json, redact_text

CHANGES = [
    Change("renamed", "seed", "random_seed"),
    Change("dropped", "stream_options"),
    Change("dropped", "messages[2].refusal"),
    Change("tool_call_id", "messages[1].tool_calls[0].id", "call_abc -> Ab3dE5gH9"),
    Change("value", "temperature", "2 -> 1.5, Mistral's limit"),
]


def test_log_line():
    line = report.log_line("chat/completions", "OpenAI/Python 3.57.0", CHANGES)
    assert line == (
        "mistral-compat chat/completions [OpenAI/Python 3.57.0]: renamed seed -> random_seed; "
        "dropped stream_options, messages[2].refusal; tool_call_id messages[1].tool_calls[0].id "
        "(call_abc -> Ab3dE5gH9); value temperature (2 -> 1.5, Mistral's limit)"
    )
    assert report.log_line("embeddings", "x", CHANGES[:1], dry_run=True).startswith(
        "mistral-compat (dry run, not applied) embeddings [x]: "
    )


def test_comment_one_change_per_line():
    text = report.comment(CHANGES)
    assert text.splitlines()[0] == "mistral-compat changed this request (5):"
    assert "- dropped messages[2].refusal" in text.splitlines()


def test_before_after_masks_and_shortens():
    original = json.dumps(
        {
            "model": "m",
            "user": "u",
            "messages": [{"role": "user", "content": "x" * 5000}],
            "tools": [
                {"type": "connector", "connector_id": "c", "authorization": {"type": "api-key", "value": "sk-secret"}}
            ],
        }
    ).encode()
    text = report.before_after(original, b'{"model":"m"}', CHANGES)
    assert "--- sent by the client" in text and "+++ forwarded to Mistral" in text
    assert "<5000 characters>" in text and "x" * 300 not in text
    dry = report.before_after(original, None, CHANGES)
    assert "(dry run: forwarded unchanged)" in dry


def test_summary_table_counts_by_client_and_field():
    s = report.Summary()
    for _ in range(3):
        s.matched("OpenAI/Python 3.57.0")
        s.changed(
            "OpenAI/Python 3.57.0",
            [
                Change("dropped", "messages[0].name"),
                Change("dropped", "messages[3].name"),
                Change("renamed", "seed", "random_seed"),
            ],
        )
    s.matched("curl/8")
    s.matched("curl/8")
    s.rejected("curl/8")
    s.answered("curl/8", ["content chunks -> text + reasoning_content", "tool_calls index added"])
    s.answered("curl/8", ["tool_calls index added"])
    table = s.table()
    lines = table.splitlines()
    assert lines[0] == "mistral-compat summary"
    assert any(line.startswith("OpenAI/Python 3.57.0") and line.split()[-4:] == ["3", "3", "0", "0"] for line in lines)
    assert any(line.startswith("curl/8") and line.split()[-4:] == ["2", "0", "1", "2"] for line in lines)
    assert lines[1].split() == ["client", "matched", "changed", "400", "answers"]
    assert "         2x  answer: tool_calls index added" in lines
    assert "         1x  answer: content chunks -> text + reasoning_content" in lines
    assert "         6x  dropped messages[].name" in lines
    assert "         3x  seed -> random_seed" in lines
    assert report.Summary().table() == ""


def test_redact_text():
    key = "sk-live-0123456789abcdef"
    for line in (
        f"authorization: Bearer {key}",
        f"Authorization: {key}",
        f"x-api-key: {key}",
        f"api-key: {key}",
        f"POST https://api.mistral.ai/v1/chat/completions?api_key={key}&x=1",
        f"GET /v1/models?key={key}",
        f"sending Bearer {key} upstream",
        f"cookie: session={key}",
    ):
        out = redact_text(line)
        assert key not in out and MASK in out, line
    assert redact_text("POST /v1/chat/completions 200") == "POST /v1/chat/completions 200"
    assert redact_text("?monkey=1") == "?monkey=[REDACTED]"  # errs on the side of masking


def test_redact_json():
    data = {"api_key": "k", "nested": [{"Authorization": "Bearer x", "token": 5, "ok": "fine"}], "text": "y" * 10}
    assert redact_json(data) == {
        "api_key": MASK,
        "nested": [{"Authorization": MASK, "token": MASK, "ok": "fine"}],
        "text": "y" * 10,
    }


def test_redact_table_lines():
    text = "    key: abc123\n    access_token: t0k\n    model: mistral\n  x-goog-api-key: zzz"
    assert redact_text(text) == (
        "    key: [REDACTED]\n    access_token: [REDACTED]\n    model: mistral\n  x-goog-api-key: [REDACTED]"
    )


def test_summary_memory_is_bounded():
    s = report.Summary(max_clients=3)
    for i in range(50):
        s.matched(f"client-{i}")
    assert len(s.clients) == 4  # three by name, the rest together
    assert s.clients[report.OTHER_CLIENTS].matched == 47


def test_rejected_line_and_bounded_summaries():
    assert (
        report.rejected_line("chat/completions", "c", 400, "the body is not JSON")
        == "mistral-compat chat/completions [c]: answered 400: the body is not JSON"
    )
    assert (
        report.rejected_line("embeddings", "c", 400, "x", dry_run=True)
        == "mistral-compat embeddings [c]: would answer 400: x"
    )
    changes = [Change("dropped", f"k{i}") for i in range(5)]
    assert report.summarize(changes) == "dropped k0, k1, k2, k3, k4"
    assert report.summarize(changes, 12) == "dropped k0 ... and 4 more changes"
    s = report.Summary(max_fields=3)
    s.changed("c", changes)
    assert s.clients["c"].fields == {"dropped k0": 1, "dropped k1": 1, "dropped k2": 1, report.OTHER_FIELDS: 2}
