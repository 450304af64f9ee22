"""Issue 13, finding 7: a bad mistral_openapi file is survived, at start-up and on reload.

  a. a cyclic $ref                      (was: RecursionError; start-up aborted, the watcher died silently)
  b. YAML nested 50,000 deep (250 KB)  (was: the C YAML loader segfaulted, mitmdump exited -11)
  c. a YAML alias bomb (600 bytes)     (was: never finished loading: CPU-bound, memory climbing, requests
                                        slowed, the next good file never loaded, SIGTERM not enough to stop)
  d. a recursive schema + a deep body  (was: RecursionError in the walker, "Addon error")

Each file is refused (a, b, c) or used safely (d) with a warning, the proxy stays up and responsive, the
built-in rules (the last good ones on reload) stay in force, and the next good file is loaded. The parse
runs in a separate process with limits: its crash, runaway or memory blow-up is reported like any other
problem. Code that could crash or run away on the code before the fix runs in a child process here too.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from test_spec import NEW, mistral_spec

from mistral_compat import rules as rules_mod
from mistral_compat import schema, spec
from mistral_compat.rewrite import rewrite

ROOT = Path(__file__).resolve().parent.parent
MISTRAL_SPEC = ROOT.parent / "shared" / "mistral-openapi" / "openapi.yaml"
CHAT = "/v1/chat/completions"
REF = "#/components/schemas/"


# --- the bad files ----------------------------------------------------------------------------


def cyclic_ref() -> str:
    """Mistral's spec, with a property whose schema is a $ref cycle (Loop1 -> Loop2 -> Loop1)."""
    doc = mistral_spec()
    doc["components"]["schemas"]["Loop1"] = {"$ref": REF + "Loop2"}
    doc["components"]["schemas"]["Loop2"] = {"$ref": REF + "Loop1"}
    doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]["loop"] = {"$ref": REF + "Loop1"}
    return json.dumps(doc)


def deep_yaml(n: int = 50_000) -> str:
    """250 KB of YAML nested 50,000 deep (flow style)."""
    return "openapi: 3.1.0\nx: " + "{a: " * n + "1" + "}" * n + "\n"


def deep_block_yaml(n: int = 50_000) -> str:
    """Nested block sequences on one line: no indentation, yet 50,000 deep."""
    return "openapi: 3.1.0\nx:\n  " + "- " * n + "1\n"


def deep_json(n: int = 50_000) -> str:
    return '{"openapi": "3.1.0", "x": ' + "[" * n + "]" * n + "}"


def merge_bomb(levels: int = 9, width: int = 9) -> str:
    """A billion laughs through merge keys: each level merges the one below nine times."""
    lines = ["openapi: 3.1.0", "x:", "  l0: &l0 {a: 1, b: 2}"]
    for i in range(1, levels + 1):
        lines.append(f"  l{i}: &l{i} {{<<: [" + ", ".join([f"*l{i - 1}"] * width) + "]}")
    return "\n".join(lines) + "\n"


def list_bomb(levels: int = 9, width: int = 9) -> str:
    """The classic billion laughs (lists of lists), used as an enum the compiler copies."""
    lines = ["openapi: 3.1.0", "x:", '  l0: &l0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    lines += [
        "paths:",
        f"  {CHAT}:",
        "    post:",
        "      requestBody:",
        "        content:",
        "          application/json:",
        "            schema:",
        "              type: object",
        "              properties:",
        f"                m: {{type: string, enum: *l{levels}}}",
    ]
    return "\n".join(lines) + "\n"


def tree_spec() -> dict:
    """A legitimately recursive schema: a closed tree node whose child and children are tree nodes."""
    return {
        "openapi": "3.1.0",
        "info": {"version": "tree"},
        "components": {
            "schemas": {
                "Tree": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "child": {"$ref": REF + "Tree"},
                        "children": {"type": "array", "items": {"$ref": REF + "Tree"}},
                    },
                }
            }
        },
        "paths": {
            CHAT: {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": REF + "Tree"}}}}}}
        },
    }


def deep_body(depth: int = 600) -> bytes:
    """A tree of nodes nested `depth` deep (child in child ...), each with a key the schema does not have."""
    return ('{"name": "n", "x": 1, "child": ' * depth + '{"name": "leaf", "x": 1}' + "}" * depth).encode()


def left_as_is(depth: int = 600) -> int:
    """How many of deep_body's nodes keep their "x": those below the walker's depth limit."""
    return depth + 1 - (schema.MAX_DEPTH + 1)


BAD = {  # name -> (file name, content, what the warning says)
    "cyclic-ref": ("cyclic.json", cyclic_ref, r"form a cycle: Loop1 -> Loop2 -> Loop1"),
    "deep-yaml": ("deep.yaml", deep_yaml, r"is nested more than 100 deep \(line 2\)"),
    "alias-bomb": ("bomb.yaml", merge_bomb, r"its YAML aliases stand for more than 100,000 nodes"),
}


def _write(path: Path, text: str) -> None:
    """Replace path atomically (a new file, as editors and curl -o do)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _in_child(code: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter with 2 GB of address space at most: a crash, runaway or memory
    blow-up (of the code before the fix) fails the test instead of taking pytest or the machine down."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    try:
        return subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=timeout, preexec_fn=limit
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s")


# --- the spec reader and compiler -------------------------------------------------------------


@pytest.mark.parametrize(
    "content,needle",
    [
        (cyclic_ref, r"form a cycle: Loop1 -> Loop2 -> Loop1"),
        (deep_yaml, r"nested more than 100 deep \(line 2\)"),
        (deep_block_yaml, r"nested more than 100 deep \(line 3\)"),
        (deep_json, r"nested 50001 deep, more than the 100"),
        (merge_bomb, r"aliases stand for more than 100,000 nodes \(an alias bomb\?\) \(line 8\)"),
        (list_bomb, r"aliases stand for more than 100,000 nodes"),
        (lambda: "a: &a [1, *a]\n", r"alias \*a \(line 1\) refers to a node that contains it"),
        (lambda: "a: *nowhere\n", r"alias \*nowhere \(line 1\) refers to an anchor not defined before"),
        (lambda: "a: 1\n---\nb: 2\n", r"more than one YAML document"),
        (lambda: "a: 1\na: 2\n", r"duplicate key 'a' \(line 2\)"),
    ],
    ids=[
        "cyclic-ref",
        "deep-yaml",
        "deep-block-yaml",
        "deep-json",
        "merge-bomb",
        "list-bomb",
        "self-alias",
        "undefined-alias",
        "two-documents",
        "duplicate-key",
    ],
)
@pytest.mark.parametrize("isolate", [True, False], ids=["isolated", "in-process"])
def test_bad_spec_is_refused_with_a_reason(tmp_path, content, needle, isolate):
    f = tmp_path / "spec.yaml"
    f.write_text(content())
    code = (
        f"import sys; from mistral_compat import rules, spec\n"
        f"try:\n    rules.from_spec_file({str(f)!r}, isolate={isolate})\n"
        f"except spec.SpecError as e:\n    print('SpecError:', e)\n"
    )
    run = _in_child(code)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("SpecError: ")
    assert re.search(needle, run.stdout), run.stdout


def test_alias_bomb_refused_within_a_few_hundred_bytes(tmp_path):
    """Counting what aliases stand for stops the bomb at its 8th line, in milliseconds, whatever its size."""
    f = tmp_path / "bomb.yaml"
    f.write_text(merge_bomb(levels=30))
    start = time.process_time()
    with pytest.raises(spec.SpecError, match=r"\(line 8\)"):
        spec.load_spec_file(f)
    assert time.process_time() - start < 0.5


def test_size_limit_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(spec, "MAX_FILE_BYTES", 1000)
    f = tmp_path / "big.yaml"
    f.write_text("openapi: 3.1.0\n" + "# padding\n" * 200)
    with pytest.raises(spec.SpecError, match=r"bigger than 1,000 bytes"):
        rules_mod.from_spec_file(f)
    monkeypatch.undo()
    # an endless file is read no further than the limit (32 MB), in the parser process
    start = time.monotonic()
    with pytest.raises(spec.SpecError, match=r"/dev/zero is bigger than 33,554,432 bytes"):
        rules_mod.from_spec_file("/dev/zero", isolate=True)
    assert time.monotonic() - start < 10


def test_json_depth_scan_is_linear():
    """The pre-parse depth scan of JSON: strings (escaped quotes, brackets inside) are skipped, and an
    unterminated string costs one pass, not one per quote."""
    assert spec.json_depth('{"a": "[[{{\\"", "b": [[{}]], "c": "\\\\"}') == 4
    nasty = '{"a": "' + '\\"' * 500_000  # 1 MB, a quote every other byte, never closed
    start = time.process_time()
    assert spec.json_depth(nasty) == 1
    assert time.process_time() - start < 1.0


def test_yaml_reader_reads_what_ruamel_reads():
    """The limit-checking YAML reader gives what ruamel.yaml's safe loader gives (tags, merges, aliases,
    implicit types of YAML 1.2), Mistral's own spec included."""
    from ruamel.yaml import YAML

    text = (
        "a: 1\nb: [yes, true, null, ~, 1.5, 0x1f, 0o17, 2020-01-01, '1', \"x\", !!str 5, .inf, -.5e3, 1_000, '']\n"
        "c: &x {d: 1, e: [1]}\ne: *x\nf: |\n  text\ng: {<<: *x, d: 2}\nh: {<<: [*x, {z: 0}], d: 3}\ni:\n"
        "j: !!binary aGVsbG8=\nk: {? a : b}\n"
    )
    assert spec.load_yaml(text) == YAML(typ="safe").load(text)
    loaded = spec.load_yaml(text)
    assert loaded["e"] is loaded["c"]  # an alias is the same object, never a copy
    if MISTRAL_SPEC.exists():
        real = MISTRAL_SPEC.read_text()
        assert spec.load_yaml(real) == YAML(typ="safe").load(real)


def test_mistral_spec_loads_isolated_to_the_builtin_rules():
    if not MISTRAL_SPEC.exists():
        pytest.skip("Mistral's spec is not here")
    loaded, problems = rules_mod.from_spec_file(MISTRAL_SPEC, isolate=True)
    assert problems == [] and loaded.from_fallback == []
    want = json.loads(rules_mod.BUILTIN.read_text())
    compiled, _ = spec.compile_file(MISTRAL_SPEC)
    assert compiled["endpoints"] == want["endpoints"] and compiled["schemas"] == want["schemas"]


def test_shapes_that_lead_back_to_themselves_are_refused(tmp_path):
    """A discriminated union whose member is the union itself would walk one value forever."""
    rules = {
        "endpoints": {"chat/completions": {"ref": "U"}},
        "schemas": {
            "U": {"union": "t", "map": {"a": {"ref": "U"}, "b": {"ref": "B"}}},
            "B": {"object": {"t": {"type": "string"}}, "closed": True},
        },
    }
    with pytest.raises(ValueError, match=r"back to itself without going deeper into the body \(U -> U\)"):
        rules_mod.compile_rules(rules)
    doc = {
        "openapi": "3.1.0",
        "components": {
            "schemas": {
                "U": {
                    "oneOf": [{"$ref": REF + "A"}],
                    "discriminator": {"propertyName": "t", "mapping": {"a": REF + "A"}},
                },
                "A": {"anyOf": [{"$ref": REF + "U"}, {"type": "string"}]},
            }
        },
        "paths": {CHAT: {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": REF + "U"}}}}}}},
    }
    f = tmp_path / "loop.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(spec.SpecError, match=r"back to itself .*\((A -> U -> A|U -> A -> U)\)"):
        rules_mod.from_spec_file(f, isolate=True)
    # recursion through an object (a tree) goes one level deeper each time: fine
    f.write_text(json.dumps(tree_spec()))
    assert "chat/completions" in rules_mod.from_spec_file(f, isolate=True)[0].endpoints


# --- the walker -------------------------------------------------------------------------------


def _at_stack_depth(frames: int, fn):
    """fn() called `frames` Python frames deep, as under mitmproxy's event loop and hooks."""

    def go(k):
        return go(k - 1) if k else fn()

    return go(frames)


@pytest.mark.parametrize("frames", [0, 150])
def test_walker_never_raises_on_a_deep_body(tmp_path, frames):
    f = tmp_path / "tree.json"
    f.write_text(json.dumps(tree_spec()))
    tree, _ = rules_mod.from_spec_file(f)
    res = _at_stack_depth(frames, lambda: rewrite(tree, "chat/completions", deep_body(600)))
    assert res.error is None
    # the nodes at the first MAX_DEPTH levels of the path are repaired, deeper ones left as they are
    assert len(res.changes) == schema.MAX_DEPTH + 1
    assert res.body.count(b'"x"') == left_as_is(600)
    assert res.body.startswith(b'{"name":"n","child":{"name":"n","child":')
    # the same tree through arrays (two path levels a node)
    arrays = b'{"x": 1, "children": [' * 300 + b"{}" + b"]}" * 300
    res = _at_stack_depth(frames, lambda: rewrite(tree, "chat/completions", arrays))
    assert res.error is None and len(res.changes) == schema.MAX_DEPTH // 2 + 1


def test_walker_safety_net_answers_400_never_raises():
    """Rules that chain 150 anyOf schemas per level of the body need ~150 frames a level: a deep body runs
    out of stack well before MAX_DEPTH. The request is refused with a clear error, nothing raises."""
    n = 150
    schemas = {f"A{i}": {"anyof": [{"ref": f"A{i + 1}"}, {"type": "null"}]} for i in range(n)}
    schemas[f"A{n}"] = {"object": {"x": {"ref": "A0"}, "keep": {"type": "string"}}, "closed": True}
    chained = rules_mod.Rules({"endpoints": {"chat/completions": {"ref": "A0"}}, "schemas": schemas})
    shallow = b'{"x": {"x": {"keep": "k", "drop": 1}}}'
    assert json.loads(rewrite(chained, "chat/completions", shallow).body) == {"x": {"x": {"keep": "k"}}}
    res = rewrite(chained, "chat/completions", b'{"x": ' * 40 + b'{"drop": 1}' + b"}" * 40)
    assert res.body is None and res.error == schema.TOO_DEEP


# --- the parser process -----------------------------------------------------------------------


def _child_code(body: str) -> str:
    return "import sys; sys.path.insert(0, sys.argv.pop(1))\n" + body


@pytest.mark.parametrize(
    "body,settings,needle",
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", {}, r"ended with SIGSEGV \(it crashed\)"),
        ("while True: pass", {"PARSE_TIMEOUT": 1.0}, r"took longer than 1 s; stopped"),
        (
            "from mistral_compat.spec import _limit\n_limit(0, 1)\nwhile True: pass",
            {},
            r"ended with SIGXCPU \(it used more than 60 s of CPU\)",
        ),
        (
            "from mistral_compat.spec import _limit\n_limit(256 << 20, 0)\nx = bytearray(1 << 30)",
            {},
            r"needs more than 1024 MB of memory",
        ),
        ("print('not JSON'); sys.exit(3)", {}, r"failed \(exit status 3\)"),
    ],
    ids=["segfault", "runaway", "cpu-limit", "memory-limit", "exit-status"],
)
def test_parser_process_failures_are_reported(tmp_path, monkeypatch, body, settings, needle):
    monkeypatch.setattr(rules_mod, "_CHILD", _child_code(body))
    for name, value in settings.items():
        monkeypatch.setattr(rules_mod, name, value)
    f = tmp_path / "spec.json"
    f.write_text(json.dumps(mistral_spec()))
    start = time.monotonic()
    with pytest.raises(spec.SpecError, match=needle):
        rules_mod.from_spec_file(f, isolate=True)
    assert time.monotonic() - start < 15


def test_memory_limit_of_the_parser_process(tmp_path, monkeypatch):
    """The real parser under a 128 MB address-space limit, given 4 million objects (12 MB of JSON, 300 MB
    parsed): MemoryError in the child, reported; the same file loads with the default limit (1 GB)."""
    f = tmp_path / "spec.json"
    f.write_text(json.dumps(mistral_spec())[:-1] + ', "x-many": [' + "{}," * 4_000_000 + "{}]}")
    monkeypatch.setattr(rules_mod, "PARSE_MEMORY", 128 << 20)
    with pytest.raises(spec.SpecError, match=r"spec\.json needs more than 128 MB of memory to load"):
        rules_mod.from_spec_file(f, isolate=True)
    monkeypatch.undo()
    assert rules_mod.from_spec_file(f, isolate=True)[1] == []


def test_no_parser_process_without_mistral_openapi(monkeypatch):
    import addon

    def no(*a, **k):
        raise AssertionError("a process was started")

    monkeypatch.setattr(rules_mod.subprocess, "Popen", no)
    assert addon.load_rules("").rules is rules_mod.builtin()


# --- a real mitmdump --------------------------------------------------------------------------


def _post(url: str, body: dict | bytes, timeout: float = 20) -> httpx.Response:
    with httpx.Client(timeout=timeout) as c:
        if isinstance(body, bytes):
            return c.post(url + CHAT, content=body, headers={"content-type": "application/json"})
        return c.post(url + CHAT, json=body)


def _last_chat(fake) -> bytes:
    """The body of the last chat request the fake received (the prober's requests go elsewhere)."""
    return [r for r in fake.received if r.path == CHAT][-1].body


def _vm(pid: int, field: str) -> int:
    """VmRSS / VmHWM of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return 0


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Prober:
    """Sends a small embeddings request every 20 ms through the proxy and records each one's latency."""

    def __init__(self, url: str) -> None:
        self.url, self.samples, self._stop = url, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        body = {"model": "mistral-embed", "input": "ping"}  # an endpoint every rules here have
        with httpx.Client(timeout=30) as c:
            while not self._stop.is_set():
                t = time.monotonic()
                r = c.post(self.url + "/v1/embeddings", json=body)
                self.samples.append((t, time.monotonic() - t, r.status_code))
                time.sleep(0.02)

    def max_between(self, start: float, end: float) -> tuple[float, int]:
        window = [lat for t, lat, _ in self.samples if start <= t <= end]
        return max(window, default=0.0), len(window)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=35)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_spec_at_startup(mitmdump, fake, tmp_path, case):
    name, content, warning = BAD[case]
    f = tmp_path / name
    f.write_text(content())
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", f"mistral_openapi={f}")
    assert p.wait_for(rf"mistral_openapi: .*{name}.*{warning}.*; the built-in rules stay in force")
    r = _post(p.url, dict(NEW, user="u"))
    assert r.status_code == 200  # the built-in rules dropped new_field and user (the strict fake knows neither)
    assert set(json.loads(_last_chat(fake))) == {"model", "messages"}
    print(f"\n[figures] startup {case}: VmHWM {_vm(p.proc.pid, 'VmHWM')} MB, CPU {_cpu(p.proc.pid):.2f} s")
    assert p.proc.poll() is None and "Traceback" not in p.output and "Addon error" not in p.output


def test_deep_body_with_recursive_schema_at_startup(mitmdump, fake, tmp_path):
    f = tmp_path / "tree.json"
    f.write_text(json.dumps(tree_spec()))
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", f"mistral_openapi={f}")
    assert p.wait_for(r"rules for 1 endpoints loaded from .*tree\.json")
    _post(p.url, deep_body(600))
    assert p.wait_for(r"Addon error|RecursionError", timeout=1) is None  # was: RecursionError in the walker
    sent = _last_chat(fake)
    assert sent.startswith(b'{"name":"n","child":{"name":"n","child":')  # rewritten at the top
    assert sent.count(b'"x"') == left_as_is(600)  # left as it was below the depth limit
    assert "Addon error" not in p.output and "RecursionError" not in p.output


@pytest.mark.parametrize("case", [*BAD, "recursive-schema"])
def test_bad_spec_on_reload(mitmdump, fake, tmp_path, case):
    """Good file -> bad file -> another good file, with requests flowing throughout."""
    f = tmp_path / "mistral.json"
    f.write_text(json.dumps(mistral_spec(add_chat_field="new_field")))
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", f"mistral_openapi={f}")
    assert p.wait_for(r"rules for 9 endpoints loaded from .*mistral\.json")
    prober = Prober(p.url)
    try:
        time.sleep(0.5)
        hwm_before, cpu_before = _vm(p.proc.pid, "VmHWM"), _cpu(p.proc.pid)
        start = time.monotonic()
        if case == "recursive-schema":
            _write(f, json.dumps(tree_spec()))
            assert p.wait_for(r"rules for 1 endpoints loaded from .*mistral\.json; built-in rules for", timeout=15)
        else:
            _write(f, BAD[case][1]())
            assert p.wait_for(
                rf"mistral_openapi: .*mistral\.json.*{BAD[case][2]}.*; the rules loaded before "
                rf"from .*mistral\.json stay in force",
                timeout=15,
            )
        time.sleep(0.5)
        end = time.monotonic()
        worst, count = prober.max_between(start, end)
        hwm_after, cpu_after = _vm(p.proc.pid, "VmHWM"), _cpu(p.proc.pid)
        print(
            f"\n[figures] reload {case}: max latency {worst * 1000:.0f} ms over {count} requests, "
            f"VmHWM {hwm_before} -> {hwm_after} MB, proxy CPU {cpu_after - cpu_before:.2f} s"
        )
        assert worst < 0.5 and count >= 10
        assert hwm_after - hwm_before < 100
        if case == "recursive-schema":
            _post(p.url, deep_body(600))
            assert p.wait_for(r"Addon error|RecursionError", timeout=1) is None
            assert _last_chat(fake).count(b'"x"') == left_as_is(600)
        else:  # the last good rules stay in force: new_field is kept
            _post(p.url, NEW)
            assert json.loads(_last_chat(fake))["new_field"] == "kept"
        # the watcher is alive: the next good file is loaded
        _write(f, json.dumps(mistral_spec(drop=("ocr",))))
        assert p.wait_for(r"rules for 8 endpoints loaded from .*mistral\.json; built-in rules for ocr", timeout=15)
        _post(p.url, NEW)
        assert "new_field" not in json.loads(_last_chat(fake))
    finally:
        prober.stop()
    assert all(code == 200 for _, _, code in prober.samples)
    assert p.proc.poll() is None and "Traceback" not in p.output and "Addon error" not in p.output


# --- the watcher, in-process ------------------------------------------------------------------


def test_watcher_survives_a_failing_reload_and_loads_off_the_loop(tmp_path, monkeypatch):
    """An exception in a reload does not end the watcher; a file set while running is loaded by the
    watcher (in a thread, the event loop free), not by configure on the event loop."""
    from mitmproxy.test import taddons

    import addon
    import mitmlayer.options
    from mistral_compat.settings import Settings

    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(mistral_spec(add_chat_field="new_field")))
    second.write_text(json.dumps(mistral_spec(drop=("ocr",))))
    real_load = addon.load_rules
    calls = []

    def flaky(path, keep=None):
        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("boom")  # the watcher's first load fails unexpectedly
        return real_load(path, keep)

    async def scenario():
        r = addon.RulesLoader(Settings())
        r.WATCH_INTERVAL = 0.05
        with taddons.context(r) as tctx:
            tctx.options.add_option("mistral_openapi", str, "", "")
            tctx.configure(r, mistral_openapi=str(first))  # start-up: loaded at once
            assert r.settings.rules.source == str(first)
            monkeypatch.setattr(mitmlayer.options, "load_rules", flaky)  # the name RulesLoader calls
            r.running()
            tctx.configure(r, mistral_openapi=str(second))  # while running: left to the watcher
            assert r.settings.rules.source == str(first) and calls == []
            loop = asyncio.get_running_loop()
            ticks, start, touched = 0, loop.time(), False
            while r.settings.rules.source != str(second) and loop.time() - start < 10:
                await asyncio.sleep(0.01)
                ticks += 1
                if calls and not touched:  # after the failure: a change makes the watcher load again
                    touched = True
                    _write(second, second.read_text())
            assert r.settings.rules.source == str(second) and r.settings.rules.from_fallback == ["ocr"]
            assert ticks > 5  # the loop kept running while the file was parsed
            assert not r.watcher.done()
            r.done()
            return calls

    assert asyncio.run(scenario()) == [str(second)] * 2
