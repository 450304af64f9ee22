"""Unit tests of the pure core of issue 16 (requests for api.openai.com served by Mistral):
mistral_compat/redirect.py (target URL, OpenAI-only endpoints) and mistral_compat/models.py (model map,
default map, /v1/models merge)."""

from __future__ import annotations

import fnmatch
import importlib
import json
import time
from pathlib import Path

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mistral_compat import models, redirect
from mistral_compat.errors import PREFIX
from mistral_compat.redirect import (
    DEFAULT_MAP,
    FEATURES,
    MAX_ENTRIES,
    MAX_NAME,
    Entry,
    ModelMap,
    Target,
    combine,
    markdown_table,
    merge_models,
    model_id,
    not_found_body,
    openai_only,
    parse_model_map,
    parse_target,
    rename_model,
    retrieve_model,
)

SMALL, MEDIUM = "mistral-small-latest", "mistral-medium-latest"
EMBED, MODERATION = "mistral-embed", "mistral-moderation-latest"
README = Path(__file__).resolve().parent.parent / "README.md"


# --- mistral_redirect_to ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, scheme, host, port, url",
    [
        ("https://api.mistral.ai", "https", "api.mistral.ai", 443, "https://api.mistral.ai"),
        ("https://api.mistral.ai/", "https", "api.mistral.ai", 443, "https://api.mistral.ai"),
        ("  https://api.mistral.ai  ", "https", "api.mistral.ai", 443, "https://api.mistral.ai"),
        ("HTTPS://API.Mistral.AI:443", "https", "api.mistral.ai", 443, "https://api.mistral.ai"),
        ("https://api.mistral.ai.", "https", "api.mistral.ai", 443, "https://api.mistral.ai"),
        ("http://127.0.0.1:8080", "http", "127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("http://localhost", "http", "localhost", 80, "http://localhost"),
        ("http://localhost:443/", "http", "localhost", 443, "http://localhost:443"),
        ("https://mistral.internal:8443", "https", "mistral.internal", 8443, "https://mistral.internal:8443"),
        ("https://my_proxy.lan:1", "https", "my_proxy.lan", 1, "https://my_proxy.lan:1"),
        ("http://[::1]:8080", "http", "::1", 8080, "http://[::1]:8080"),
        ("https://[0:0::1]", "https", "::1", 443, "https://[::1]"),
        ("https://[2001:DB8::1]:65535/", "https", "2001:db8::1", 65535, "https://[2001:db8::1]:65535"),
        ("https://bücher.example", "https", "xn--bcher-kva.example", 443, "https://xn--bcher-kva.example"),
        ("https://xn--bcher-kva.example", "https", "xn--bcher-kva.example", 443, "https://xn--bcher-kva.example"),
    ],
)
def test_parse_target(text, scheme, host, port, url):
    target = parse_target(text)
    assert target == Target(scheme, host, port)
    assert target.url == str(target) == url
    assert target.authority == url.split("://", 1)[1]
    assert target.secure is (scheme == "https")


def test_default_target_parses():
    assert parse_target(redirect.DEFAULT_TARGET) == Target("https", "api.mistral.ai", 443)


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("api.mistral.ai", "not a URL"),
        ("//api.mistral.ai", "not a URL"),
        ("://api.mistral.ai", "scheme must be http or https"),
        ("ftp://api.mistral.ai", "scheme must be http or https"),
        ("wss://api.mistral.ai", "scheme must be http or https"),
        ("https://", "no host"),
        ("https:///v1", "no host"),
        ("https://api.mistral.ai/v1", "has a path"),
        ("https://api.mistral.ai//", "has a path"),
        ("https://api.mistral.ai/v1/chat/completions", "has a path"),
        ("https://api.mistral.ai?", "query or fragment"),
        ("https://api.mistral.ai/?key=1", "query or fragment"),
        ("https://api.mistral.ai#top", "query or fragment"),
        ("https://user:secret@api.mistral.ai", "user name or password"),
        ("https://@api.mistral.ai", "user name or password"),
        ("https://api.mistral.ai:", "no port"),
        ("https://api.mistral.ai:0", "port must be"),
        ("https://api.mistral.ai:65536", "port must be"),
        ("https://api.mistral.ai:-1", "port must be"),
        ("https://api.mistral.ai:+80", "port must be"),
        ("https://api.mistral.ai:0000443", "port must be"),
        ("https://api.mistral.ai:８０", "port must be"),  # fullwidth digits: str.isdigit() says yes
        ("https://api.mistral.ai:http", "port must be"),
        ("https://[::1", "no closing"),
        ("https://[::1]x", "only ':port'"),
        ("https://[::1]:", "no port"),
        ("https://[not-v6]", "not an IPv6"),
        ("https://[127.0.0.1]", "not an IPv6"),
        ("http://[fe80::1%25eth0]:80", "not an IPv6"),
        ("https://::1", "brackets"),
        ("https://1.2.3", "not an IPv4"),
        ("https://999.1.1.1", "not an IPv4"),
        ("https://8080", "not an IPv4"),
        ("https://ho st", "whitespace"),
        ("https://ho\nst", "whitespace"),
        ("https://host:80\t/", "whitespace"),
        ("https://host\x00", "control"),
        ("https://-bad-.example", "not a host name"),
        ("https://a..b", "not a host name"),
        ("https://..", "not a host name"),
        ("https://a%2eb", "not a host name"),
        ("https://a\\b", "not a host name"),
        ("https://straße.example", "two different ways"),
        ("https://api.openai.com", "is OpenAI"),
        ("https://API.OpenAI.com:443/", "is OpenAI"),
        ("https://eu.api.openai.com", "is OpenAI"),
        ("https://openai.com.", "is OpenAI"),
    ],
)
def test_parse_target_rejects(text, why):
    with pytest.raises(ValueError, match="mistral_redirect_to|mistral") as e:
        parse_target(text)
    assert why in str(e.value)


@pytest.mark.parametrize("value", [None, 443, b"https://api.mistral.ai", ["https://api.mistral.ai"]])
def test_parse_target_odd_types(value):
    with pytest.raises(ValueError, match="must be text"):
        parse_target(value)


@pytest.mark.parametrize(
    "text",
    ["https://" + "a" * 1_000_000, "https://a/" + "\x1b[31m" * 100_000, "x" * 3000, "https://[" + "1" * 5000 + "]"],
)
def test_parse_target_errors_are_short(text):
    with pytest.raises(ValueError) as e:
        parse_target(text)
    assert len(str(e.value)) < 600 and "\x1b" not in str(e.value)


# --- the model map: parsing --------------------------------------------------------------------------------


def test_parse_model_map_basics():
    mm = parse_model_map(
        [
            " gpt-4o = mistral-large-latest ",
            "gpt-4o-mini*=mistral-small-latest",
            "my-?=ft:open-mistral-7b:587a6b29:20240514:7e773925",
        ]
    )
    assert mm.entries == (
        Entry("gpt-4o", "mistral-large-latest"),
        Entry("gpt-4o-mini*", "mistral-small-latest"),
        Entry("my-?", "ft:open-mistral-7b:587a6b29:20240514:7e773925"),
    )
    assert len(mm) == 3 and bool(mm) and not ModelMap()
    assert mm.map("gpt-4o") == "mistral-large-latest"
    assert mm.map("gpt-4o-mini-2024-07-18") == "mistral-small-latest"
    assert mm.map("my-x") == "ft:open-mistral-7b:587a6b29:20240514:7e773925"
    assert mm.map("my-xy") is None and mm.map("gpt-4") is None


def test_parse_model_map_commas_blanks_and_a_single_string():
    mm = parse_model_map(["a=b, c=d,,", "", "  ", "e*=f"])
    assert [e[:2] for e in mm.entries] == [("a", "b"), ("c", "d"), ("e*", "f")]
    assert parse_model_map("a=b,c=d") == parse_model_map(["a=b", "c=d"])
    assert parse_model_map([]) == ModelMap() and parse_model_map(()) == ModelMap()


def test_exact_names_before_globs_then_globs_in_order():
    mm = parse_model_map(["gpt-4*=glob-first", "gpt-4o*=glob-second", "gpt-4o=exact-last"])
    assert mm.map("gpt-4o") == "exact-last"  # an exact name wins wherever it stands
    assert mm.map("gpt-4o-mini") == "glob-first"  # then the first glob that matches
    narrow_first = parse_model_map(["gpt-4o*=narrow", "gpt-4*=wide"])
    assert narrow_first.map("gpt-4o-mini") == "narrow" and narrow_first.map("gpt-4-turbo") == "wide"


def test_glob_rules():
    mm = parse_model_map(["a?c=q", "x*=star", "end*=e", "ft:*:org:*=tuned"])
    assert mm.map("abc") == "q" and mm.map("ac") is None and mm.map("abbc") is None
    assert mm.map("x") == "star" and mm.map("x-anything") == "star"  # * matches nothing too
    assert mm.map("ft:gpt-4o:org:abc") == "tuned" and mm.map("ft:gpt-4o:other:abc") is None
    with pytest.raises(ValueError, match="characters model names do not use"):
        parse_model_map(["[a]*=b"])  # no character classes
    assert mm.map("END") is None and mm.map("end") == "e"  # case-sensitive
    assert parse_model_map(["GPT-4o=x"]).map("gpt-4o") is None


_ALPHABET = "ab-*?"


@settings(max_examples=300, deadline=None)
@given(st.text(_ALPHABET, max_size=12), st.text("ab-", max_size=14))
def test_glob_matches_like_fnmatch(pattern, name):
    assert models._glob_match(pattern, name) == fnmatch.fnmatchcase(name, pattern)


def test_glob_matching_is_not_exponential():
    pattern = "*a" * 40 + "*b"  # a regex built from it backtracks for ages on 'aaa...'
    mm = parse_model_map([f"{pattern}=x"] + [f"{'*a' * 10}{i}*?b=y" for i in range(200)])
    start = time.perf_counter()
    for n in range(20):
        assert mm.map("a" * (MAX_NAME - n)) is None
    assert time.perf_counter() - start < 5


def test_a_name_mapped_to_itself_stays_unchanged():
    mm = parse_model_map(["gpt-4o=gpt-4o", "*=mistral-small-latest"])
    assert mm.map("gpt-4o") is None and mm.map("anything") == SMALL
    assert mm.map(SMALL) is None  # the target itself: unchanged, not renamed to itself


@pytest.mark.parametrize(
    "entry, why",
    [
        ("gpt-4o", "no '='"),
        ("gpt-4o mistral-small-latest", "no '='"),
        ("=mistral-small-latest", "nothing before '='"),
        ("  =x", "nothing before '='"),
        ("gpt-4o=", "nothing after '='"),
        ("gpt-4o=  ", "nothing after '='"),
        ("a=b=c", "more than one '='"),
        ("gpt-4o=mistral-*", "plain model name"),
        ("gpt-4o=mistral-small-?", "plain model name"),
        ("gpt-4o=-small", "start with a letter or a digit"),
        ("gpt-4o=.hidden", "start with a letter or a digit"),
        ("gpt 4o=x", "whitespace"),
        ("gpt-4o=mistral small", "whitespace"),
        ("gpt\x00=x", "control"),
        ("gpt-4o=x\x1b[31m", "control"),
        ("gpt\u200e=x", "control"),
        ("gpt-4ö=x", "characters model names do not use"),
        ("gpt-4o=x;rm", "characters model names do not use"),
        ('gpt"=x', "characters model names do not use"),
        ("g" * (MAX_NAME + 1) + "=x", "characters long"),
        ("x=" + "m" * (MAX_NAME + 1), "characters long"),
    ],
)
def test_parse_model_map_rejects(entry, why):
    with pytest.raises(ValueError, match="mistral_model_map") as e:
        parse_model_map([entry])
    assert why in str(e.value)
    assert len(str(e.value)) < 600


def test_parse_model_map_rejects_duplicates_and_too_many():
    with pytest.raises(ValueError, match="given twice"):
        parse_model_map(["gpt-4o=a", "gpt-4o = b"])
    with pytest.raises(ValueError, match="given twice"):
        parse_model_map(["gpt-*=a,gpt-*=a"])
    parse_model_map([f"m{i}=x" for i in range(MAX_ENTRIES)])
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"more than {MAX_ENTRIES} entries"):
        parse_model_map([f"m{i}=x" for i in range(1_000_000)])
    with pytest.raises(ValueError, match=f"more than {MAX_ENTRIES} entries"):
        parse_model_map([",".join(f"m{i}=x" for i in range(MAX_ENTRIES + 1))])
    with pytest.raises(ValueError, match="longer than"):
        parse_model_map(["a=b," * 2_000_000])
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("value", [None, 5, b"a=b", {"a": "b"}, iter(["a=b"]), [None], ["a=b", 5], [b"a=b"], [["a=b"]]])
def test_parse_model_map_odd_types(value):
    with pytest.raises(ValueError, match="mistral_model_map"):
        parse_model_map(value)


def test_huge_entry_error_is_short():
    for text in ("x" * 5_000_000, "\x1b" * 100_000 + "=x", "a=" + "b" * 1_000_000):
        with pytest.raises(ValueError) as e:
            parse_model_map([text])
        assert len(str(e.value)) < 600 and "\x1b" not in str(e.value)


@pytest.mark.parametrize("name", [None, 5, 1.5, True, [], {}, ("gpt-4o",), b"gpt-4o", "", "x" * (MAX_NAME + 1)])
def test_map_odd_names(name):
    assert parse_model_map(["*=x"]).map(name) is None
    assert DEFAULT_MAP.map(name) is None


def test_map_cache_stays_bounded():
    mm = parse_model_map(["gpt-*=x"])
    for i in range(5000):
        assert mm.map(f"gpt-{i}") == "x"
    assert len(mm._cache) <= 512


# --- the default map ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, target",
    [
        ("gpt-4o", MEDIUM),
        ("gpt-4o-2024-08-06", MEDIUM),
        ("gpt-4o-2024-05-13", MEDIUM),
        ("chatgpt-4o-latest", MEDIUM),
        ("gpt-4o-search-preview", MEDIUM),
        ("gpt-4.1", MEDIUM),
        ("gpt-4.1-2025-04-14", MEDIUM),
        ("gpt-4-turbo", MEDIUM),
        ("gpt-4-turbo-2024-04-09", MEDIUM),
        ("gpt-4", MEDIUM),
        ("gpt-4-0613", MEDIUM),
        ("gpt-4.5-preview", MEDIUM),
        ("gpt-4o-mini", SMALL),
        ("gpt-4o-mini-2024-07-18", SMALL),
        ("gpt-4.1-mini", SMALL),
        ("gpt-4.1-mini-2025-04-14", SMALL),
        ("gpt-4.1-nano", SMALL),
        ("gpt-4.1-nano-2025-04-14", SMALL),
        ("gpt-3.5-turbo", SMALL),
        ("gpt-3.5-turbo-0125", SMALL),
        ("gpt-3.5-turbo-16k", SMALL),
        ("gpt-5", MEDIUM),
        ("gpt-5-2025-08-07", MEDIUM),
        ("gpt-5-chat-latest", MEDIUM),
        ("gpt-5.1", MEDIUM),
        ("gpt-5.2", MEDIUM),
        ("gpt-5-codex", MEDIUM),
        ("gpt-5.1-codex", MEDIUM),
        ("gpt-5-pro", MEDIUM),
        ("gpt-5-mini", SMALL),
        ("gpt-5-mini-2025-08-07", SMALL),
        ("gpt-5-nano", SMALL),
        ("gpt-5.4-mini", SMALL),
        ("gpt-5.1-codex-mini", SMALL),
        ("o1", MEDIUM),
        ("o1-2024-12-17", MEDIUM),
        ("o1-pro", MEDIUM),
        ("o3", MEDIUM),
        ("o3-2025-04-16", MEDIUM),
        ("o3-pro", MEDIUM),
        ("o3-deep-research", MEDIUM),
        ("o1-mini", SMALL),
        ("o3-mini", SMALL),
        ("o3-mini-2025-01-31", SMALL),
        ("o4-mini", SMALL),
        ("o4-mini-2025-04-16", SMALL),
        ("codex-mini-latest", SMALL),
        ("text-embedding-3-small", EMBED),
        ("text-embedding-3-large", EMBED),
        ("text-embedding-ada-002", EMBED),
        ("omni-moderation-latest", MODERATION),
        ("omni-moderation-2024-09-26", MODERATION),
        ("text-moderation-latest", MODERATION),
        ("text-moderation-stable", MODERATION),
        ("text-moderation-007", MODERATION),
    ],
)
def test_default_map(name, target):
    assert DEFAULT_MAP.map(name) == target


@pytest.mark.parametrize(
    "name",
    [
        "mistral-large-latest",
        SMALL,
        MEDIUM,
        EMBED,
        MODERATION,
        "codestral-latest",
        "magistral-medium-latest",
        "gpt-image-1",
        "dall-e-3",
        "whisper-1",
        "tts-1",
        "gpt-audio",
        "gpt-realtime",
        "gpt-oss-120b",
        "GPT-4o",
        "Gpt-4o-mini",
        "o",
        "o2",
        "omni",
        "davinci-002",
        "babbage-002",
        "ft:gpt-4o-mini:org::abc",
        "my-gpt-4o",
    ],
)
def test_default_map_leaves_other_names(name):
    assert DEFAULT_MAP.map(name) is None


def test_default_map_is_well_formed():
    targets = {MEDIUM, SMALL, EMBED, MODERATION}
    seen: set[str] = set()
    for names, target, why in models.DEFAULT_GROUPS:
        assert target in targets and len(why) > 20 and "|" not in why
        for name in names:
            assert name not in seen, name
            seen.add(name)
            assert models.parse_entry(f"{name}={target}") == Entry(name, target)
            # every name (a glob with its wildcards filled in) lands in its own group: no earlier glob of
            # another group shadows it
            example = name.replace("*", "x").replace("?", "y")
            assert DEFAULT_MAP.map(example) == target, (name, example)
    assert len(DEFAULT_MAP) == len(seen)


def test_default_map_lists_the_common_names():
    names = dict(DEFAULT_MAP.concrete_names())
    for name in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-3.5-turbo",
        "gpt-4-turbo",
        "gpt-4",
        "chatgpt-4o-latest",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "omni-moderation-latest",
    ):
        assert names[name] == DEFAULT_MAP.map(name)
    assert not any("*" in n or "?" in n for n in names)


def test_user_entries_win_over_defaults():
    user = parse_model_map(["gpt-4*=mistral-large-latest", "o3=o3", "my-model=mistral-small-2603"])
    both = user.with_defaults()
    assert both == combine(user, DEFAULT_MAP)
    assert both.map("gpt-4o-mini") == "mistral-large-latest"  # a user glob beats a default exact name
    assert both.map("gpt-4o") == "mistral-large-latest"
    assert both.map("o3") is None  # switched off: sent as it is
    assert both.map("o3-mini") == SMALL  # the other defaults still apply
    assert both.map("my-model") == "mistral-small-2603"
    assert both.map("gpt-5") == MEDIUM
    assert user.map("gpt-5") is None  # the defaults only where asked for
    assert len(both) == len(user) + len(DEFAULT_MAP)
    assert both.entries[:3] == user.entries
    listed = dict(both.concrete_names())
    assert listed["gpt-4o"] == "mistral-large-latest" and "o3" not in listed
    assert listed["my-model"] == "mistral-small-2603"
    assert ModelMap().with_defaults(parse_model_map(["a=b"])).map("a") == "b"


def test_markdown_table():
    table = markdown_table()
    lines = table.splitlines()
    assert lines[0] == "| OpenAI model | Mistral model | why |" and lines[1] == "|---|---|---|"
    assert len(lines) == 2 + len(models.DEFAULT_GROUPS) and table.endswith("\n")
    for line, (names, target, _) in zip(lines[2:], models.DEFAULT_GROUPS):
        assert line.startswith("| `") and line.endswith(" |") and f"| `{target}` |" in line
        assert all(f"`{n}`" in line for n in names)
    assert all(f"`{e.pattern}`" in table for e in DEFAULT_MAP.entries)
    assert markdown_table([(["a*"], "b", "x | y")]).splitlines()[2] == "| `a*` | `b` | x \\| y |"


def test_readme_table_matches_the_default_map():
    text = README.read_text(encoding="utf-8")
    if "| OpenAI model | Mistral model | why |" not in text:
        pytest.skip("the README has no default model map table yet")
    assert markdown_table() in text


# --- renaming a request's model ----------------------------------------------------------------------------


def test_rename_model():
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    assert rename_model(body, DEFAULT_MAP) == ("gpt-4o-mini", SMALL)
    assert body == {"model": SMALL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    assert rename_model(body, DEFAULT_MAP) is None  # already a Mistral name
    assert body["model"] == SMALL


@pytest.mark.parametrize(
    "body",
    [
        {"model": "mistral-large-latest"},
        {"messages": []},
        {"model": None},
        {"model": 4},
        {"model": ["gpt-4o"]},
        {"model": {"id": "gpt-4o"}},
        {"model": "gpt-4o" * 1000},
        {"model": ""},
        {},
    ],
)
def test_rename_model_leaves_bodies_it_cannot_map(body):
    before = json.dumps(body)
    assert rename_model(body, DEFAULT_MAP) is None
    assert json.dumps(body) == before


@pytest.mark.parametrize("body", [None, "gpt-4o", ["gpt-4o"], 5, b'{"model": "gpt-4o"}'])
def test_rename_model_odd_bodies(body):
    assert rename_model(body, DEFAULT_MAP) is None


# --- OpenAI-only endpoints ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, feature",
    [
        ("/v1/images/generations", "images"),
        ("/v1/images/edits", "images"),
        ("/v1/images/variations", "images"),
        ("/images/generations", "images"),
        ("/v1/audio/speech", "audio"),
        ("/v1/audio/transcriptions", "audio"),
        ("/v1/audio/translations", "audio"),
        ("/v1/audio/voices", "audio"),
        ("/v1/audio/voice_consents", "audio"),
        ("/v1/files", "files"),
        ("/v1/files/file-abc", "files"),
        ("/v1/files/file-abc/content", "files"),
        ("/v1/uploads", "uploads"),
        ("/v1/uploads/upload_1/parts", "uploads"),
        ("/v1/batches", "batches"),
        ("/v1/batches/batch_1/cancel", "batches"),
        ("/v1/assistants", "assistants"),
        ("/v1/assistants/asst_1", "assistants"),
        ("/v1/threads", "threads"),
        ("/v1/threads/runs", "threads"),
        ("/v1/threads/t/runs/r/steps", "threads"),
        ("/v1/vector_stores", "vector_stores"),
        ("/v1/vector_stores/vs_1/file_batches", "vector_stores"),
        ("/v1/fine_tuning/jobs", "fine_tuning"),
        ("/v1/fine_tuning/jobs/ftjob-1/checkpoints", "fine_tuning"),
        ("/v1/fine_tuning/checkpoints/ck/permissions", "fine_tuning"),
        ("/v1/fine_tuning/alpha/graders/run", "fine_tuning"),
        ("/v1/fine-tunes", "fine_tuning"),
        ("/v1/realtime?model=gpt-realtime", "realtime"),
        ("/v1/realtime/client_secrets", "realtime"),
        ("/v1/realtime/calls/c/accept", "realtime"),
        ("/v1/realtime/sessions", "realtime"),
        ("/v1/evals", "evals"),
        ("/v1/evals/e/runs/r/output_items", "evals"),
        ("/v1/containers", "containers"),
        ("/v1/containers/c/files/f/content", "containers"),
        ("/v1/videos", "videos"),
        ("/v1/videos/v/content", "videos"),
        ("/v1/videos/v/remix", "videos"),
        ("/v1/skills", "skills"),
        ("/v1/skills/s/versions/1/content", "skills"),
        ("/v1/chatkit/sessions", "chatkit"),
        ("/v1/chatkit/threads/t/items", "chatkit"),
        ("/v1/conversations", "conversations"),
        ("/v1/conversations/conv_1/items", "conversations"),
        ("/v1/agents", "agents"),
        ("/v1/agents/sessions", "agents"),
        ("/v1/agents/agent_1", "agents"),
        ("/v1/organization/usage/completions", "organization"),
        ("/v1/organization/projects", "organization"),
        ("/v1/organization/admin_api_keys", "organization"),
        ("/v1/usage?date=2024-01-01", "organization"),
        ("/dashboard/billing/subscription", "billing"),
        ("/v1/dashboard/billing/usage", "billing"),
        ("/v1/completions", "completions"),
        ("/completions", "completions"),
        ("/v1/chat/completions/chatcmpl-1", "stored_completions"),
        ("/v1/chat/completions/chatcmpl-1/messages", "stored_completions"),
        ("/v1/engines/davinci/completions", "legacy"),
        ("/v1/edits", "legacy"),
        ("/v1/answers", "legacy"),
        ("/v1/classifications", "legacy"),
    ],
)
def test_openai_only(path, feature):
    assert openai_only(path) == feature
    assert openai_only(path, "POST") == feature
    assert feature in FEATURES


@pytest.mark.parametrize(
    "path",
    [
        "/v1/chat/completions",
        "/chat/completions",
        "/v1/chat/completions/",
        "/v1/chat/completions?x=1",
        "/v1/embeddings",
        "/v1/moderations",
        "/v1/models",
        "/v1/models/gpt-4o",
        "/v1/models/ft:gpt-4o:org",
        "/v1/responses",
        "/v1/responses/",
        "/v1/responses/resp_1",
        "/v1/responses/resp_1/input_items",
        "/v1/responses/resp_1/cancel",
        "/v1/responses/input_tokens",
        "/v1/responses/compact",
        "/responses",
        "/",
        "",
        "/v1",
        "/v1/",
        "/v1/chat",
        "/v1/chat/moderations",
        "/v1/ocr",
        "/v1/fim/completions",
        "/v1/unknown",
        "/v2/images",
        "/v1/v1/images",
        "/favicon.ico",
    ],
)
def test_forwarded(path):
    assert openai_only(path) is None
    assert openai_only(path, "POST") is None


def test_method_matters_for_stored_completions_and_preflights():
    assert openai_only("/v1/chat/completions", "GET") == "stored_completions"  # list stored completions
    assert openai_only("/v1/chat/completions?limit=5", "get") == "stored_completions"
    assert openai_only("/v1/chat/completions", "POST") is None
    assert openai_only("/v1/chat/completions/chatcmpl-1", "DELETE") == "stored_completions"
    assert openai_only("/v1/images/generations", "OPTIONS") is None  # the CORS preflight is answered elsewhere
    assert openai_only("/v1/images/generations", "options") is None
    assert openai_only("/v1/images/generations", 5) == "images"  # an odd method is ignored


@pytest.mark.parametrize(
    "path, feature",
    [
        ("/v1//images/generations", "images"),
        ("//v1/images", "images"),
        ("/v1/./images/generations", "images"),
        ("/v1/x/../images/generations", "images"),
        ("/v1/responses/../images/generations", "images"),
        ("/../../v1/images", "images"),
        ("/V1/IMAGES/Generations", "images"),
        ("/v1/Files", "files"),
        ("/v1/%69mages/generations", "images"),
        ("/v1/%2569mages/generations", "images"),
        ("/v1%2Fimages%2Fgenerations", "images"),
        ("\\v1\\images", "images"),
        ("/v1/images/generations#frag", "images"),
        ("/v1/images?x=/v1/chat/completions", "images"),
        ("/v1/chat/completions?next=/v1/images", None),
        ("/v1/chat/completions%3F/images", None),
        ("/v1/chat/completions%2Fchatcmpl-1", "stored_completions"),
        ("/v1/chat%2Fcompletions", None),
        ("/v1/images/../chat/completions", None),
        ("/v1/fine_tuning/../models", None),
    ],
)
def test_paths_are_judged_as_the_server_routes_them(path, feature):
    assert openai_only(path) == feature


@pytest.mark.parametrize("path", [None, 5, b"/v1/images", ["/v1/images"], {}])
def test_openai_only_odd_paths(path):
    assert openai_only(path) is None and openai_only(path, "GET") is None


def test_openai_only_huge_paths_are_bounded():
    start = time.perf_counter()
    assert openai_only("/v1/images/" + "a" * 5_000_000) == "images"
    assert openai_only("/v1/" + "%25" * 2_000_000 + "images") is None
    # only the first MAX_PATH characters are read: what comes after them does not count
    assert openai_only("/" * 5_000_000 + "images") is None
    assert openai_only("/v1/" + "../" * 1_000_000 + "files") is None
    assert openai_only("/v1/" + "../" * 100 + "files") == "files"
    assert redirect.route("/v1/" + "a/" * 1_000_000) == ("a",) * ((redirect.MAX_PATH - 4) // 2)
    assert time.perf_counter() - start < 5


def test_every_feature_has_a_family():
    assert set(redirect._FAMILIES.values()) | {"stored_completions"} == set(FEATURES)


# --- the local 404 -----------------------------------------------------------------------------------------


def test_not_found_body_is_openais_unknown_url_error():
    body = json.loads(not_found_body("/v1/images/generations", "images", "post"))
    assert list(body) == ["error"]
    error = body["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "unknown_url" and error["param"] is None
    message = error["message"]
    assert message.startswith(PREFIX + "POST /v1/images/generations ")
    assert "image generation" in message and "no counterpart at Mistral" in message
    assert "sent neither to Mistral nor to OpenAI" in message


def test_not_found_body_never_repeats_the_query_and_escapes_the_path():
    body = not_found_body("/v1/files?api_key=sk-secret-123", "files")
    assert b"sk-secret" not in body and b"/v1/files" in body
    body = not_found_body("/v1/files/\x1b[31m\u2028evil" + "x" * 100_000, "files", "GET\r\nX: y")
    message = json.loads(body)["error"]["message"]
    assert "\x1b" not in message and "\u2028" not in message and "\r\n" not in message
    assert len(body) < 2000
    assert json.loads(not_found_body(None, "odd"))["error"]["code"] == "unknown_url"


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_not_found_body_for_every_feature(feature):
    message = json.loads(not_found_body("/v1/x", feature))["error"]["message"]
    assert FEATURES[feature] in message


# --- /v1/models ---------------------------------------------------------------------------------------------

CAPS = {"completion_chat": True, "function_calling": True, "vision": True, "reasoning": True}
MISTRAL_LIST = {
    "object": "list",
    "data": [
        {
            "id": MEDIUM,
            "object": "model",
            "created": 1777420800,
            "owned_by": "mistralai",
            "capabilities": CAPS,
            "max_context_length": 262144,
            "type": "base",
            "aliases": ["mistral-medium-2604"],
        },
        {
            "id": SMALL,
            "object": "model",
            "created": 1773619200,
            "owned_by": "mistralai",
            "capabilities": {"completion_chat": True},
            "max_context_length": 262144,
            "type": "base",
        },
        {"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "someone"},  # already listed
        "odd",
        {"no": "id"},
        {"id": 5},
    ],
    "extra": {"kept": True},
}


def test_merge_models():
    raw = json.dumps(MISTRAL_LIST).encode()
    merged = json.loads(merge_models(raw, DEFAULT_MAP))
    assert merged["object"] == "list" and merged["extra"] == {"kept": True}
    assert merged["data"][:6] == MISTRAL_LIST["data"]  # Mistral's own entries first, unchanged
    added = merged["data"][6:]
    ids = [m["id"] for m in added]
    expected = [name for name, _ in DEFAULT_MAP.concrete_names() if name != "gpt-4o"]
    assert ids == expected and len(set(ids)) == len(ids)
    assert "gpt-4o" not in ids and not any("*" in i or "?" in i for i in ids)
    by_id = {m["id"]: m for m in added}
    mini = by_id["gpt-4o-mini"]
    assert mini == {
        "id": "gpt-4o-mini",
        "object": "model",
        "created": 1773619200,
        "owned_by": f"mistral-compat -> {SMALL}",
        "mistral_model": SMALL,
        "capabilities": {"completion_chat": True},
        "max_context_length": 262144,
    }
    assert by_id["o3"]["capabilities"] == CAPS and by_id["o3"]["mistral_model"] == MEDIUM
    embed = by_id["text-embedding-3-small"]  # its target is not in the list: no card to copy
    assert embed == {
        "id": "text-embedding-3-small",
        "object": "model",
        "created": 0,
        "owned_by": f"mistral-compat -> {EMBED}",
        "mistral_model": EMBED,
    }
    for m in added:
        assert isinstance(m["created"], int) and m["object"] == "model" and m["owned_by"].startswith("mistral-compat")
        openai.types.Model.model_validate(m)


def test_merge_models_with_a_user_map():
    mm = parse_model_map(["gpt-4o*=mistral-large-latest", "o1=o1", "gpt-4.1*=gpt-4.1", "custom=" + SMALL])
    raw = json.dumps({"object": "list", "data": [{"id": MEDIUM, "created": 7}]}).encode()
    added = {m["id"]: m for m in json.loads(merge_models(raw, mm.with_defaults()))["data"][1:]}
    assert added["gpt-4o"]["mistral_model"] == "mistral-large-latest"  # the user's glob wins
    assert added["gpt-4o-mini"]["mistral_model"] == "mistral-large-latest"
    assert "o1" not in added and "gpt-4.1" not in added  # switched off
    assert added["gpt-4.1-mini"]["mistral_model"] == "gpt-4.1"  # the user's glob, again
    assert added["custom"]["mistral_model"] == SMALL
    assert added["o3"]["created"] == 7
    only_user = json.loads(merge_models(raw, mm))["data"]
    assert [m["id"] for m in only_user] == [MEDIUM, "custom"]  # globs are never listed


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b"null",
        b'"list"',
        b'{"object": "list"}',
        b'{"data": {}}',
        b'{"data": null}',
        b"\xff\xfe{}",
        b"{" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        "{}",
        None,
        5,
        b'{"data": []}' + b" " * (models.MAX_MODEL_LIST + 1),
    ],
)
def test_merge_models_leaves_what_it_cannot_read(raw):
    assert merge_models(raw, DEFAULT_MAP) is None


def test_merge_models_with_nothing_to_add():
    raw = json.dumps(MISTRAL_LIST).encode()
    assert merge_models(raw, ModelMap()) is None
    assert merge_models(raw, parse_model_map(["gpt-*=x"])) is None  # globs only
    everything = json.dumps({"data": [{"id": n} for n, _ in DEFAULT_MAP.concrete_names()]}).encode()
    assert merge_models(everything, DEFAULT_MAP) is None


def test_merge_models_large_list_is_linear():
    data = [{"id": f"m{i}", "object": "model", "created": i, "owned_by": "mistralai"} for i in range(100_000)]
    raw = json.dumps({"object": "list", "data": data}).encode()
    start = time.perf_counter()
    merged = json.loads(merge_models(raw, DEFAULT_MAP))
    assert len(merged["data"]) == 100_000 + len(DEFAULT_MAP.concrete_names())
    assert time.perf_counter() - start < 5


def test_model_id_and_retrieve_model():
    assert model_id("/v1/models/gpt-4o") == "gpt-4o"
    assert model_id("/models/gpt-4o?x=1") == "gpt-4o"
    assert model_id("/v1/models/ft%3Agpt-4o-mini%3Aorg%3A%3Aabc") == "ft:gpt-4o-mini:org::abc"
    assert model_id("/v1/models/GPT-4o/") == "GPT-4o"
    for path in (
        "/v1/models",
        "/v1/models/",
        "/v1/models/a/b",
        "/v1/chat/completions",
        None,
        5,
        "/v1/models/" + "x" * (MAX_NAME + 1),
        "/v1/models/" + "x" * 100_000,
    ):
        assert model_id(path) is None
    card = json.loads(retrieve_model("gpt-4o", DEFAULT_MAP, {"created": 3, "capabilities": CAPS}))
    assert card == {
        "id": "gpt-4o",
        "object": "model",
        "created": 3,
        "owned_by": f"mistral-compat -> {MEDIUM}",
        "mistral_model": MEDIUM,
        "capabilities": CAPS,
    }
    assert retrieve_model("mistral-large-latest", DEFAULT_MAP) is None
    assert retrieve_model(None, DEFAULT_MAP) is None
    assert json.loads(retrieve_model("gpt-4o", DEFAULT_MAP, {"created": True}))["created"] == 0


# --- the real openai SDK against the pieces, as the addon will wire them ------------------------------------

_http = importlib.import_module(
    "httpx2" if hasattr(importlib.import_module("openai._base_client"), "httpx2") else "httpx"
)


class _Proxy:
    """What the redirect does for a request to api.openai.com, with a tiny Mistral behind it."""

    def __init__(self) -> None:
        self.mm = DEFAULT_MAP
        self.sent: list[tuple[str, str, dict | None]] = []  # what reached "Mistral"

    def __call__(self, request):
        path, method = request.url.raw_path.decode(), request.method
        json_headers = {"content-type": "application/json"}
        feature = openai_only(path, method)
        if feature:
            return _http.Response(404, content=not_found_body(path, feature, method), headers=json_headers)
        name = model_id(path)
        if method == "GET" and name is not None and (local := retrieve_model(name, self.mm)) is not None:
            return _http.Response(200, content=local, headers=json_headers)
        body = json.loads(request.content) if request.content else None
        change = rename_model(body, self.mm)
        self.sent.append((method, path, body))
        if path == "/v1/models":
            upstream = json.dumps({"object": "list", "data": MISTRAL_LIST["data"][:3]}).encode()
            return _http.Response(200, content=merge_models(upstream, self.mm) or upstream, headers=json_headers)
        if path == "/v1/chat/completions":
            answer = {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": f"renamed {change}"},
                    }
                ],
            }
            return _http.Response(200, content=json.dumps(answer).encode(), headers=json_headers)
        return _http.Response(404, content=b'{"detail": "Not Found"}', headers=json_headers)


@pytest.fixture
def proxied():
    proxy = _Proxy()
    client = openai.OpenAI(
        api_key="sk-openai",
        max_retries=0,  # the default base URL: https://api.openai.com/v1
        http_client=openai.DefaultHttpxClient(transport=_http.MockTransport(proxy)),
    )
    yield client, proxy
    client.close()


def test_sdk_chat_model_renamed(proxied):
    client, proxy = proxied
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == f"renamed ('gpt-4o-mini', '{SMALL}')"
    assert proxy.sent == [
        ("POST", "/v1/chat/completions", {"model": SMALL, "messages": [{"role": "user", "content": "hi"}]})
    ]


def test_sdk_model_list_and_retrieve(proxied):
    client, proxy = proxied
    listed = {m.id: m for m in client.models.list()}
    assert {"gpt-4o", "gpt-4o-mini", "o3", "text-embedding-3-small", MEDIUM, SMALL} <= set(listed)
    assert listed["gpt-4o-mini"].owned_by == f"mistral-compat -> {SMALL}"
    got = client.models.retrieve("o4-mini")
    assert got.id == "o4-mini" and got.owned_by == f"mistral-compat -> {SMALL}"
    assert [s[:2] for s in proxy.sent] == [("GET", "/v1/models")]  # the retrieve was answered locally


def test_sdk_openai_only_endpoints_get_a_local_404(proxied):
    client, proxy = proxied
    with pytest.raises(openai.NotFoundError) as e:
        client.images.generate(prompt="a cat", model="gpt-image-1")
    assert e.value.status_code == 404 and e.value.code == "unknown_url"
    assert "no counterpart at Mistral" in e.value.message and "POST /v1/images/generations" in e.value.message
    with pytest.raises(openai.NotFoundError):
        client.files.list()
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-1", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.list()
    assert proxy.sent == []  # nothing reached Mistral


def test_origin_refused_unless_listed():
    from mistral_compat.redirect import origin_refused, refused_body

    assert origin_refused(None) is None  # an app, not a web page
    assert origin_refused("https://chat.example.com", frozenset({"https://chat.example.com"})) is None
    message = origin_refused("https://evil.example")
    assert message and "mistral_cors_origins" in message
    assert origin_refused("null") is not None
    assert origin_refused("https://chat.example.com/", frozenset({"https://chat.example.com"})) is None
    body = json.loads(refused_body(message))
    assert body["error"]["code"] == "origin_not_allowed"
