"""Unit tests of the rules in force (mistral_compat/rules.py): which endpoint a path names, and loading a spec
file with the fallback policy (load: the rules plus the messages to log, nothing logged here)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mistral_compat import rules as rules_mod
from mistral_compat import spec
from mistral_compat.rules import Loaded, Rules, builtin, load, split_path

MINI = Path(__file__).parent / "fixtures" / "specs" / "mini.yaml"
MISSING = (
    "agents/completions, chat/classifications, chat/moderations, classifications, fim/completions, moderations, ocr"
)


# --- paths ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/v1/chat/completions", ("/v1/chat/completions", "")),
        ("/v1/chat/completions?x=1&y=/v1/ocr", ("/v1/chat/completions", "?x=1&y=/v1/ocr")),
        ("/v1/responses#frag", ("/v1/responses", "")),
        ("/v1/responses?", ("/v1/responses", "?")),
        ("", ("", "")),
    ],
)
def test_split_path(path, expected):
    assert split_path(path) == expected


@pytest.mark.parametrize(
    "path, endpoint",
    [
        ("/v1/chat/completions", "chat/completions"),
        ("/openai/v1/chat/completions/?stream=1", "chat/completions"),
        ("/v1/chat/moderations", "chat/moderations"),  # the longest suffix wins over moderations
        ("/v1/moderations", "moderations"),
        ("v1/ocr#x", "ocr"),
        ("/v1/models?next=/v1/chat/completions", None),  # only the route counts, never the query
        ("/v1/chat/completionsx", None),
        ("/v2/chat/completions", None),
    ],
)
def test_endpoint(path, endpoint):
    assert builtin().endpoint(path) == endpoint


def test_builtin_is_made_once_and_covers_every_endpoint():
    assert builtin() is builtin()
    assert set(builtin().endpoints) == set(
        spec.ENDPOINTS
    )  # every endpoint the spec reader knows (listed in test_rewrite)
    assert builtin().from_fallback == [] and builtin().source


def test_rules_without_endpoints_match_nothing():
    empty = Rules({"endpoints": {}, "schemas": {}})
    assert empty.endpoint("/v1/chat/completions") is None and empty.source == ""


# --- load: a spec file with the fallback policy ---------------------------------------------------------


def test_no_path_means_the_builtin_rules_and_nothing_to_say():
    assert load("") == Loaded(builtin(), [])


def test_a_good_file_gives_its_rules_the_problems_and_one_line_saying_what_was_loaded():
    loaded = load(str(MINI), isolate=False)
    assert loaded.rules.source == str(MINI) and loaded.rules.from_fallback == MISSING.split(", ")
    *problems, (level, line) = loaded.messages
    assert level == logging.INFO
    assert line == f"mistral-compat: rules for 2 endpoints loaded from {MINI}; built-in rules for {MISSING}"
    assert problems[0] == (
        logging.WARNING,
        f"mistral-compat: mistral_openapi {MINI}: fim/completions: no POST /v1/fim/completions in the spec",
    )
    assert len(problems) == 7 and all(lvl == logging.WARNING for lvl, _ in problems)


def test_a_spec_without_any_endpoint_is_of_no_use(tmp_path):
    f = tmp_path / "empty.json"
    f.write_text(json.dumps({"openapi": "3.1.0", "paths": {}}))
    loaded = load(str(f), isolate=False)
    assert loaded.rules is builtin()
    [(level, line)] = loaded.messages
    assert level == logging.WARNING and line.startswith(f"mistral-compat: mistral_openapi: {f}")
    assert line.endswith("; the built-in rules stay in force")


def test_an_unusable_file_keeps_the_builtin_rules_at_start_up(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text("{")
    loaded = load(str(f), isolate=False)
    assert loaded.rules is builtin()
    [(level, line)] = loaded.messages
    assert level == logging.WARNING
    assert line.startswith(f"mistral-compat: mistral_openapi: {f} is not valid YAML or JSON: ")
    assert line.endswith("; the built-in rules stay in force")


def test_an_unusable_file_keeps_the_rules_loaded_before(tmp_path):
    before = load(str(MINI), isolate=False).rules
    loaded = load(str(tmp_path / "gone.yaml"), before, isolate=False)
    assert loaded.rules is before
    assert loaded.messages == [
        (
            logging.WARNING,
            f"mistral-compat: mistral_openapi: cannot read "
            f"{tmp_path / 'gone.yaml'}: No such file or directory; the rules "
            f"loaded before from {MINI} stay in force",
        )
    ]


def test_load_isolates_by_default(monkeypatch):
    seen = []
    real = rules_mod.from_spec_file

    def spy(path, *, isolate=False):
        seen.append(isolate)
        return real(path, isolate=False)

    monkeypatch.setattr(rules_mod, "from_spec_file", spy)
    assert load(str(MINI)).rules.source == str(MINI) and seen == [True]


def test_load_never_raises_and_logs_nothing(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    f = tmp_path / "x.yaml"
    f.write_text("a: [")
    assert load(str(f), isolate=False).rules is builtin()
    assert caplog.records == []
