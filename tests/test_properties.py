"""Property-based tests (hypothesis) of the pure core: rewrite(rules, endpoint, body) over generated bodies.

Bodies are generated from the compiled rules (tests/strategies.py): valid Mistral bodies, the same bodies
dirtied the way OpenAI-compatible clients send them, the spec's field names mixed with arbitrary JSON, and
arbitrary bytes. fake_mistral.validate() is the judge of what Mistral accepts.

Profiles (env HYPOTHESIS_PROFILE): "ci" (default; the whole file well under a minute on 2 cores) and "long"
(50x the examples, for local runs):  HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_properties.py
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal

import pytest
import strategies as S
from fake_mistral import validate
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from mistral_compat import jsonio
from mistral_compat.rewrite import Result, rewrite
from mistral_compat.rules import builtin

RULES = builtin()
ENDPOINTS = list(S.ENDPOINTS)

_COMMON = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("long", max_examples=5000, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
SCALE = {"long": 50}.get(PROFILE, 1)

# Examples per run of each property, per endpoint (ci profile; "long" multiplies them).
# Chat and agents completions carry most of the translations, so they get the most.
WEIGHT = {"chat/completions": 3, "agents/completions": 2, "chat/moderations": 1, "chat/classifications": 1}


def examples(base: int, endpoint: str | None = None) -> settings:
    return settings(max_examples=base * WEIGHT.get(endpoint or "", 1) * SCALE)


def path(endpoint: str) -> str:
    return "/v1/" + endpoint


# jsonio's placeholder for a number literal a double cannot hold, as text and inside JSON output
_PLACEHOLDER = re.compile(r"(?:\x00|\\x00)[0-9a-f]{32}:\d+")
_PLACEHOLDER_JSON = re.compile(rb"\\u0000[0-9a-f]{32}:\d+")


def _placeholder_leaked(res: Result) -> bool:
    return any(_PLACEHOLDER.search(c.detail) for c in res.changes) or (
        res.body is not None and _PLACEHOLDER_JSON.search(res.body) is not None
    )


def check_output(endpoint: str, raw: bytes) -> bytes:
    """The common contract: no exception, an error xor a JSON object body, changes iff a body,
    deterministic, no placeholder in the output, and idempotent. Returns what would be forwarded."""
    res = rewrite(RULES, endpoint, raw)
    assert isinstance(res, Result)
    assert rewrite(RULES, endpoint, raw) == res, "same input, different output"
    assert not _placeholder_leaked(res), "a number literal's placeholder leaked"
    if res.error is not None:
        assert isinstance(res.error, str) and res.error
        assert res.body is None
        return raw
    assert (res.body is not None) == bool(res.changes), res
    if res.body is None:
        return raw
    assert isinstance(json.loads(res.body), dict)
    again = rewrite(RULES, endpoint, res.body)
    assert again == Result(None, [], None), f"not idempotent: {again.changes}"
    return res.body


# --- valid bodies: accepted as they are, forwarded byte for byte ---------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_valid_bodies_pass_byte_identical(endpoint):
    @examples(60, endpoint)
    @given(body=S.valid_body(endpoint, loose=True), style=S.styles)
    def check(body, style):
        raw = S.emit(body, style)
        note(raw)
        assert validate(path(endpoint), raw) is None, "strategy bug: generated a body Mistral rejects"
        assert rewrite(RULES, endpoint, raw) == Result(None, [], None)

    check()


@pytest.mark.parametrize("endpoint", ["chat/completions", "embeddings", "ocr"])
def test_every_serialisation_of_a_valid_body_passes(endpoint):
    """The same body in several JSON spellings: key order, whitespace, ASCII escapes, float spellings."""

    @examples(30, endpoint)
    @given(body=S.valid_body(endpoint), styles=st.lists(S.styles, min_size=2, max_size=4))
    def check(body, styles):
        for style in styles:
            raw = S.emit(body, style)
            assert rewrite(RULES, endpoint, raw) == Result(None, [], None), raw

    check()


# --- dirty bodies: made acceptable, every Mistral value kept ---------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_dirty_bodies_become_acceptable_and_keep_every_value(endpoint):
    @examples(70, endpoint)
    @given(case=S.dirty_case(endpoint), style=S.styles)
    def check(case, style):
        raw = S.emit(case.dirty, style)
        note(raw)
        sent = check_output(endpoint, raw)
        note(sent)
        assert validate(path(endpoint), sent) is None
        problems = S.diff(case.expected, json.loads(sent, parse_float=Decimal), case.ids)
        assert not problems, problems

    check()


def _typed(value):
    """value with each scalar paired with its type (json.loads gives true and 1 as equal Python values)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value), value)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_spliced_body_is_the_body_written_anew(endpoint, monkeypatch):
    """Large bodies are written back spliced from their own text (jsonio.splice). With splicing for bodies of
    any size, every repaired body must say exactly what writing it anew says: the same values (numbers as
    written), the same changes; and a member that is the same in both is its original text."""

    @examples(50, endpoint)
    @given(
        body=st.one_of(S.dirty_case(endpoint).map(lambda c: c.dirty), S.mutated_body(endpoint), S.fuzz_body()),
        style=S.styles,
    )
    def check(body, style):
        raw = S.emit(body, style)
        note(raw)
        monkeypatch.setattr(jsonio, "SPLICE_MIN", 1 << 62)
        anew = rewrite(RULES, endpoint, raw)
        monkeypatch.setattr(jsonio, "SPLICE_MIN", 0)
        spliced = rewrite(RULES, endpoint, raw)
        note(spliced.body)
        assert spliced.changes == anew.changes and spliced.error == anew.error
        assert (spliced.body is None) == (anew.body is None)
        if anew.body is not None:  # the same values, of the same types (true is not 1, 2.0 is not 2)
            assert _typed(json.loads(spliced.body, parse_float=Decimal)) == _typed(
                json.loads(anew.body, parse_float=Decimal)
            )

    check()


# --- anything else: never raises, JSON object out, idempotent --------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bodies_of_spec_names_and_arbitrary_json(endpoint):
    @examples(60)
    @given(body=S.fuzz_body(), style=S.styles)
    def check(body, style):
        check_output(endpoint, S.emit(body, style))

    check()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_valid_bodies_with_parts_replaced(endpoint):
    @examples(50, endpoint)
    @given(body=S.mutated_body(endpoint), style=S.styles)
    def check(body, style):
        check_output(endpoint, S.emit(body, style))

    check()


@st.composite
def broken_json(draw):
    """JSON text with a few bytes changed, cut short or spliced: mostly not JSON any more."""
    raw = bytearray(S.emit(draw(S.fuzz_body()), draw(S.styles)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["cut", "insert", "replace"]))
        if op == "cut":
            del raw[i:]
        else:
            junk = draw(
                st.binary(min_size=1, max_size=3)
                | st.sampled_from([b"\xff", b"\xed\xa0\x80", b"NaN", b"-Infinity", b"[", b"}", b'"', b","])
            )
            raw[i : i + (op == "replace")] = junk
    return bytes(raw)


@examples(300)
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    raw=st.one_of(
        st.binary(max_size=64),
        broken_json(),
        st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]).flatmap(
            lambda enc: S.fuzz_body().map(lambda b: S.emit(b).decode().encode(enc, "surrogatepass"))
        ),
    ),
)
def test_arbitrary_bytes(endpoint, raw):
    check_output(endpoint, raw)


# --- core bugs these properties found, kept as regression tests -------------------------------------------
# (a new one: a strict xfail here and its name in S.KNOWN_BUGS, for the strategies to steer around until fixed)

USER = {"role": "user", "content": "hi"}


def _chat(**top) -> dict:
    return {"model": "mistral-small-latest", "messages": [USER], **top}


def test_rename_onto_null_then_dropped_does_not_crash():
    """rename-vs-dropped-target: max_completion_tokens -1 (no limit) is dropped; the null sent as max_tokens,
    which Mistral accepts, stays as it is (once a KeyError)."""
    raw = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":-1,"max_tokens":null}'
    res = rewrite(RULES, "chat/completions", raw)
    assert res.error is None and validate("/v1/chat/completions", res.body or raw) is None
    assert json.loads(res.body) == {"model": "m", "messages": [USER], "max_tokens": None}
    assert [(c.kind, c.path) for c in res.changes] == [("dropped", "max_completion_tokens")]


@pytest.mark.parametrize(
    "target,source,expected",
    [
        (-1, 100, {"max_tokens": 100}),  # the Mistral key is dropped (no limit): the renamed value takes its place
        (-1, None, {"max_tokens": None}),
        (-1, "x", {}),  # neither is valid: both dropped
        (-1, -5, {}),
        (5, 100, {"max_tokens": 5}),  # the Mistral key wins when Mistral takes it
        (None, 100, {"max_tokens": 100}),
        ("x", 100, {"max_tokens": 100}),  # ... and not when it is of a type Mistral does not take there
        (5, "x", {"max_tokens": 5}),
    ],
)
def test_rename_does_not_depend_on_key_order(target, source, expected):
    """rename-vs-dropped-target: the result was the renamed value or nothing, depending on the key order."""
    first = json.dumps(_chat(max_tokens=target, max_completion_tokens=source)).encode()
    second = json.dumps(_chat(max_completion_tokens=source, max_tokens=target)).encode()
    a, b = rewrite(RULES, "chat/completions", first), rewrite(RULES, "chat/completions", second)
    assert json.loads(a.body) == json.loads(b.body) == _chat(**expected)
    assert sorted(a.changes) == sorted(b.changes)
    assert validate("/v1/chat/completions", a.body) is None


@pytest.mark.parametrize(
    "endpoint,body,kept",
    [
        (
            "ocr",
            {"model": "mistral-ocr-latest", "document": {"document_url": "https://example.com/a.pdf", "a": 1, "b": 2}},
            lambda out: out["document"] == {"document_url": "https://example.com/a.pdf"},
        ),
        (
            "ocr",
            {
                "model": "mistral-ocr-latest",
                "document": {
                    "image_url": "https://example.com/a.png",
                    "type": None,
                    "detail": "auto",
                    "x": [],
                    "y": {},
                },
            },
            lambda out: out["document"] == {"image_url": "https://example.com/a.png"},
        ),
        (
            "chat/completions",
            _chat(
                messages=[
                    USER,
                    {
                        "role": "assistant",
                        "content": [{"type": "thinking", "thinking": [{"reference_ids": [1], "a": 1, "b": 2}]}],
                    },
                    USER,
                ]
            ),
            lambda out: out["messages"][1]["content"][0]["thinking"] == [{"reference_ids": [1]}],
        ),
        (
            "chat/completions",
            _chat(
                messages=[
                    USER,
                    {
                        "role": "assistant",
                        "content": [{"type": "thinking", "thinking": [{"reference_ids": [1], "type": None}]}],
                    },
                    USER,
                ]
            ),
            lambda out: out["messages"][1]["content"][0]["thinking"] == [{"reference_ids": [1]}],
        ),
    ],
    ids=["ocr-document", "ocr-image-null-type", "thinking-unknown-keys", "thinking-null-type"],
)
def test_anyof_branch_survives_unknown_keys(endpoint, body, kept):
    """anyof-unknown-keys: an anyOf branch was chosen by a score clamped at 1, so an object without its 'type'
    and with two unknown keys (or a null 'type') tied with the first branch, which dropped its real fields."""
    res = rewrite(RULES, endpoint, json.dumps(body).encode())
    assert res.error is None and res.body is not None
    assert validate("/v1/" + endpoint, res.body) is None
    assert kept(json.loads(res.body))


@pytest.mark.parametrize(
    "endpoint,body",
    [
        (
            "chat/moderations",
            {"model": "mistral-moderation-latest", "input": [USER, {"role": "assistant", "content": None}]},
        ),
        (
            "chat/moderations",
            {
                "model": "mistral-moderation-latest",
                "input": [
                    USER,
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": "{}"}}],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                ],
            },
        ),
        ("chat/moderations", {"model": "mistral-moderation-latest", "input": [[{"role": "assistant", "content": ""}]]}),
        ("chat/classifications", {"model": "m", "input": {"messages": [USER, {"role": "assistant", "content": ""}]}}),
    ],
    ids=["empty-assistant", "openai-tool-ids", "nested-empty-assistant", "classifications-empty-assistant"],
)
def test_bodies_accepted_by_mistral_pass_on_moderation_endpoints(endpoint, body):
    """moderation-conversation-rules: the conversation repairs of chat/agents completions (an assistant message
    with no content removed, tool-call ids mapped) were applied to moderation/classification inputs, which
    Mistral accepts as they are."""
    raw = json.dumps(body).encode()
    assert validate("/v1/" + endpoint, raw) is None
    assert rewrite(RULES, endpoint, raw) == Result(None, [], None)


def test_moderation_inputs_still_get_the_schema_repairs():
    body = {
        "model": "mistral-moderation-latest",
        "input": [
            {"role": "developer", "content": "be brief", "name": "x"},
            USER,
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"},
                        "cache_control": {},
                    }
                ],
            },
        ],
    }
    res = rewrite(RULES, "chat/moderations", json.dumps(body).encode())
    assert validate("/v1/chat/moderations", res.body) is None
    assert json.loads(res.body)["input"] == [
        {"role": "system", "content": "be brief"},
        USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
    ]


@pytest.mark.parametrize(
    "body,check",
    [
        (
            b'{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":'
            b'1.0000000000000001,"function":{"name":"f","arguments":"{}"}}]},'
            b'{"role":"tool","tool_call_id":1.0000000000000001,"content":"x"}]}',
            lambda res: res.body is None,
        ),  # a number is no tool-call id: left for Mistral to judge
        (
            b'{"model":"m","messages":[{"role":"user","content":"hi"}],"prediction":{"type":"content","content":'
            b'[{"type":"text","text":"a"},{"type":"text","text":1.0000000000000001}]}}',
            lambda res: res.body is None,
        ),  # not all text: not joined
        (
            b'{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":[1.0000000000000001]}}',
            lambda res: "[1.0000000000000001] is not one of" in res.changes[0].detail,
        ),
        (
            b'{"model":"m","messages":[{"role":"user","content":"hi"}],"user":"u","temperature":1.0000000000000001,'
            b'"metadata":{"a":[1e400,{"b":-0.30000000000000001}]}}',
            lambda res: (
                res.body == b'{"model":"m","messages":[{"role":"user","content":"hi"}],'
                b'"temperature":1.0000000000000001,"metadata":{"a":[1e400,{"b":-0.30000000000000001}]}}'
            ),
        ),
    ],
    ids=["tool-call-ids", "prediction-join", "change-detail", "kept-verbatim"],
)
def test_number_literals_are_not_strings(body, check):
    """rawnumber-as-string: a number literal a double cannot hold (1.0000000000000001) was parsed to a str
    subclass holding a random placeholder, and code that takes strings took it: tool-call ids derived from the
    placeholder (different per request), prediction text parts joined it into the content, and a change detail
    showed it inside a list."""
    a, b = rewrite(RULES, "chat/completions", body), rewrite(RULES, "chat/completions", body)
    assert a == b
    assert not _placeholder_leaked(a)
    assert check(a), a


@pytest.mark.parametrize("tag", ["[]", "{}"])
def test_unhashable_union_tag_does_not_crash(tag):
    """union-tag-unhashable: a list or object where a union's discriminator is expected, in a union inside an
    anyOf (a connector tool's authorization), raised TypeError: unhashable type."""
    raw = (
        '{"model":"m","messages":[{"role":"user","content":"hi"}],'
        '"tools":[{"type":"connector","connector_id":"c","authorization":{"type":%s}}]}' % tag
    ).encode()
    res = rewrite(RULES, "chat/completions", raw)
    assert res.error is None
