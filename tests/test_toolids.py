"""Unit tests of the tool-call id repair (mistral_compat/toolids.py)."""

from __future__ import annotations

import re

import pytest

from mistral_compat import toolids
from mistral_compat.changes import TOOL_ID, Collector

MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")


@pytest.mark.parametrize(
    "tool_id, valid",
    [
        ("abcDEF123", True),
        ("000000000", True),
        ("abcDEF12", False),
        ("abcDEF1234", False),
        ("abc-EF123", False),
        ("call_abc123def456ghi789jkl012", False),
        ("", False),
        (None, False),
        (123456789, False),
        ("é" * 9, False),
    ],
)
def test_is_valid(tool_id, valid):
    assert toolids.is_valid(tool_id) is valid


def test_derive_is_deterministic_valid_and_spread():
    ids = [f"call_{i:024d}" for i in range(2000)]
    derived = [toolids.derive(i) for i in ids]
    assert derived == [toolids.derive(i) for i in ids]  # the same in every request (clients resend history)
    assert all(MISTRAL_ID.fullmatch(d) for d in derived)
    assert len(set(derived)) == len(ids)
    assert toolids.derive("x", 1) != toolids.derive("x")  # another attempt, another id
    assert MISTRAL_ID.fullmatch(toolids.derive("\ud800 lone surrogate"))  # any text, even unencodable


def conversation(call_id: str, result_id: str | None = None) -> list:
    return [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": call_id if result_id is None else result_id, "content": "ok"},
    ]


def test_repair_maps_a_call_and_its_result_alike_and_records_where():
    messages = conversation("call_abc123def456ghi789jkl012")
    fx = Collector()
    toolids.repair(messages, fx, ("messages",))
    new = toolids.derive("call_abc123def456ghi789jkl012")
    assert messages[1]["tool_calls"][0]["id"] == new and messages[2]["tool_call_id"] == new
    assert [(c.kind, c.path, c.detail) for c in fx.changes] == [
        (TOOL_ID, "messages[1].tool_calls[0].id", f"call_abc123def456ghi789jkl012 -> {new}"),
        (TOOL_ID, "messages[2].tool_call_id", f"call_abc123def456ghi789jkl012 -> {new}"),
    ]


def test_repair_keeps_valid_ids_and_changes_nothing_then():
    messages = conversation("abcDEF123")
    fx = Collector()
    toolids.repair(messages, fx, ("messages",))
    assert messages == conversation("abcDEF123") and fx.changes == []


def test_repair_never_gives_two_ids_one_value():
    taken = toolids.derive("call_1")
    messages = conversation("call_1") + conversation(taken)[1:]  # a valid id equal to what call_1 derives to
    fx = Collector()
    toolids.repair(messages, fx, ())
    first, second = messages[1]["tool_calls"][0]["id"], messages[3]["tool_calls"][0]["id"]
    assert second == taken and first == toolids.derive("call_1", 1) != taken
    assert messages[2]["tool_call_id"] == first and messages[4]["tool_call_id"] == second


def test_repair_leaves_other_shapes_alone():
    messages = [
        "text",
        {"role": "tool", "tool_call_id": 5},
        {"role": "assistant", "tool_calls": "x"},
        {"role": "user", "tool_call_id": "call_1"},
        {"role": "assistant", "tool_calls": [None, {"id": 3}]},
    ]
    before = repr(messages)
    fx = Collector()
    toolids.repair(messages, fx, ())
    assert repr(messages) == before and fx.changes == []
