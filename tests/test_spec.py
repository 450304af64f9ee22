"""Rules generated from OpenAPI specs, the built-in rules' provenance, and mistral_openapi end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mistral_compat import rules as rules_mod
from mistral_compat import spec
from mistral_compat.rewrite import rewrite

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MINI = FIXTURES / "specs" / "mini.yaml"


def mistral_spec(add_chat_field: str | None = None, drop: tuple[str, ...] = ()) -> dict:
    """An OpenAPI document made of Mistral's request schemas (the verbatim subset in tests/fixtures)."""
    subset = json.loads((FIXTURES / "mistral_request_schemas.json").read_text())
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "Mistral AI API", "version": "1.0.0"},
        "components": subset["components"],
        "paths": {},
    }
    for path, ref in subset["endpoints"].items():
        if path[len("/v1/") :] in drop:
            continue
        doc["paths"][path] = {"post": {"requestBody": {"content": {"application/json": {"schema": ref}}}}}
    if add_chat_field:
        props = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]
        props[add_chat_field] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    return doc


# --- the generator ----------------------------------------------------------------------------


def test_mini_spec_compiles_to_expected_rules():
    rules, problems = spec.compile_spec(spec.load_spec_file(MINI))
    assert sorted(p.split(":")[0] for p in problems) == sorted(set(spec.ENDPOINTS) - {"chat/completions", "embeddings"})
    assert rules["endpoints"] == {
        "chat/completions": {"ref": "ChatRequest"},
        "embeddings": {
            "object": {
                "model": {"type": "string"},
                "input": {"anyof": [{"type": "string"}, {"array": {"type": "string"}}]},
                "dims": {"anyof": [{"type": "integer", "xmin": 0}, {"type": "null"}]},
            },
            "required": ["model", "input"],
            "closed": True,
        },
    }
    chat = rules["schemas"]["ChatRequest"]["object"]
    assert chat["temperature"] == {"anyof": [{"type": "number", "min": 0, "max": 1.5}, {"type": "null"}]}
    assert chat["mode"] == {"type": "string", "enum": ["fast"]}
    assert chat["effort"] == {"ref": "Effort"} and rules["schemas"]["Effort"] == {
        "type": "string",
        "enum": ["low", "high"],
    }
    assert chat["metadata"] == {"type": "object"}
    assert chat["messages"] == {"array": {"union": "role", "map": {"user": {"ref": "User"}, "bot": {"ref": "Bot"}}}}
    assert rules["schemas"]["Bot"]["closed"] is True


def test_mini_rules_rewrite():
    r = rules_mod.Rules(spec.compile_spec(spec.load_spec_file(MINI))[0])
    body = {"model": "m", "x": 1, "messages": [{"role": "user", "content": "a", "name": "n"}], "effort": "max"}
    res = rewrite(r, "chat/completions", json.dumps(body).encode())
    assert json.loads(res.body) == {"model": "m", "messages": [{"role": "user", "content": "a"}]}


def test_json_spec_same_as_yaml(tmp_path):
    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load(MINI.read_text())
    j = tmp_path / "mini.json"
    j.write_text(json.dumps(doc))
    assert spec.compile_spec(spec.load_spec_file(j)) == spec.compile_spec(spec.load_spec_file(MINI))


def test_gen_rules_script(tmp_path):
    out = tmp_path / "rules.json"
    full = tmp_path / "mistral.json"
    full.write_text(json.dumps(mistral_spec()))
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_rules.py"), str(full), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_rules.py"), str(full), "-o", str(out), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0
    out.write_text(out.read_text().replace('"random_seed"', '"random_sneed"'))
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_rules.py"), str(full), "-o", str(out), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1 and "is not what" in check.stderr
    lacking = tmp_path / "lacking.json"
    lacking.write_text(json.dumps(mistral_spec(drop=("ocr",))))
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_rules.py"), str(lacking), "-o", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0 and "ocr" in run.stderr


def test_builtin_rules_are_what_the_spec_gives():
    """rules.json == the generator's output for Mistral's 2026-08-13 request schemas (.ci/run also checks it
    against the full published spec)."""
    generated, problems = spec.compile_spec(mistral_spec())
    builtin = json.loads((ROOT / "mistral_compat" / "rules.json").read_text())
    assert problems == []
    assert generated["endpoints"] == builtin["endpoints"]
    assert generated["schemas"] == builtin["schemas"]
    assert "61436a496404607a7c27f7d2d45989bc51bd699d2106690fd6cc76a3a6c9b692" in builtin["source"]


@pytest.mark.parametrize(
    "content,needle",
    [
        ("{not: [valid", "not valid YAML or JSON"),
        ("- a list\n- not a spec\n", "not an OpenAPI document"),
        ("openapi: 3.1.0\ninfo: {version: x}\n", "describes none of the endpoints"),
        ("openapi: 3.1.0\npaths: [1, 2]\n", "describes none of the endpoints"),
        (b"\xff\xfe\x00garbage", "not valid YAML or JSON"),
    ],
)
def test_unusable_spec_files(tmp_path, content, needle):
    f = tmp_path / "spec.yaml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(spec.SpecError, match=needle):
        rules_mod.from_spec_file(f)
    with pytest.raises(spec.SpecError, match="cannot read"):
        rules_mod.from_spec_file(tmp_path / "missing.yaml")


def test_spec_file_new_field_and_fallback(tmp_path):
    f = tmp_path / "spec.json"
    f.write_text(json.dumps(mistral_spec(add_chat_field="new_field", drop=("ocr",))))
    loaded, problems = rules_mod.from_spec_file(f)
    assert loaded.from_fallback == ["ocr"] and [p.split(":")[0] for p in problems] == ["ocr"]
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "new_field": "v"}).encode()
    assert rewrite(loaded, "chat/completions", body).body is None  # passes through
    assert "new_field" not in json.loads(rewrite(rules_mod.builtin(), "chat/completions", body).body)
    ocr = json.dumps({"model": "o", "document": {"type": "document_url", "document_url": "u"}, "x": 1}).encode()
    assert json.loads(rewrite(loaded, "ocr", ocr).body) == {
        "model": "o",
        "document": {"type": "document_url", "document_url": "u"},
    }


# --- mistral_openapi end to end ---------------------------------------------------------------

NEW = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hi"}], "new_field": "kept"}


def send(p):
    with httpx.Client(timeout=20) as c:
        c.post(p.url + "/v1/chat/completions", json=NEW)


def test_mistral_openapi_option(mitmdump, fake, tmp_path):
    f = tmp_path / "mistral.yaml"
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    with open(f, "w") as out:
        yaml.dump(mistral_spec(add_chat_field="new_field"), out)
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", f"mistral_openapi={f}")
    assert p.wait_for(r"rules for 9 endpoints loaded from .*mistral\.yaml")
    send(p)
    assert json.loads(fake.received[-1].body)["new_field"] == "kept"  # (the strict fake does not know it)


def test_builtin_rules_drop_the_new_field(mitmdump, fake):
    p = mitmdump("--mode", f"reverse:{fake.url}")
    send(p)
    assert "new_field" not in json.loads(fake.received[-1].body)


def test_broken_spec_keeps_builtin_rules(mitmdump, fake, tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("openapi: 3.1.0\npaths: {/v1/chat/completions: [oops\n")
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", f"mistral_openapi={f}")
    assert p.wait_for(r"mistral_openapi: .*broken\.yaml is not valid YAML or JSON.*built-in rules stay in force")
    with httpx.Client(timeout=20) as c:
        r = c.post(p.url + "/v1/chat/completions", json=dict(NEW, user="u"))
    assert r.status_code == 200  # new_field and user dropped by the built-in rules
    assert "Traceback" not in p.output


def test_spec_reloaded_when_file_changes(mitmdump, fake, tmp_path):
    f = tmp_path / "mistral.json"
    f.write_text(json.dumps(mistral_spec(drop=("ocr",))))
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", f"mistral_openapi={f}")
    assert p.wait_for(r"rules for 8 endpoints loaded from .*; built-in rules for ocr")
    assert p.wait_for(r"mistral_openapi .*: ocr: no POST /v1/ocr in the spec")
    send(p)
    assert "new_field" not in json.loads(fake.received[-1].body)
    time.sleep(0.05)
    f.write_text(json.dumps(mistral_spec(add_chat_field="new_field")))
    assert p.wait_for(r"rules for 9 endpoints loaded from", timeout=15)
    send(p)
    assert json.loads(fake.received[-1].body)["new_field"] == "kept"
