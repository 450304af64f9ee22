"""The rules in force: built-in (rules.json, generated from Mistral's OpenAPI spec) or from a spec file.

This is the one place that knows where rules come from (builtin, from_spec_file, and load: a spec file with
the fallback policy, returning the messages to log), how a request path names an endpoint (split_path,
Rules.endpoint), and how rules become the walker's nodes (compile_rules: refusing rules that cannot be used).
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from . import spec
from .schema import AnyNode, AnyOfNode, ArrayNode, Node, ObjectNode, ScalarNode, UnionNode

BUILTIN = Path(__file__).with_name("rules.json")

# Limits on the process that parses a spec file (isolate=True). Mistral's 1.1 MB spec takes 0.3 s of CPU
# (2 s where ruamel.yaml has no libyaml, as on Python 3.12 with ruamel.yaml 0.19) and 30 MB.
PARSE_TIMEOUT = 60.0  # seconds of wall time
PARSE_CPU = 60  # seconds of CPU time
PARSE_MEMORY = 1024 * 2**20  # bytes of address space


class Rules:
    """Compiled rules: which endpoint a path is, and the node that repairs its body."""

    def __init__(self, rules: dict, fallback: "Rules | None" = None) -> None:
        self.source = rules.get("source", "")
        self.endpoints: dict[str, Node] = compile_rules(rules)
        # endpoints this spec lacks keep the fallback's (built-in) rules
        self.from_fallback = sorted(set(fallback.endpoints) - set(self.endpoints)) if fallback else []
        if fallback:
            self.endpoints = {**{k: fallback.endpoints[k] for k in self.from_fallback}, **self.endpoints}
        # longest suffix first, so chat/moderations wins over moderations
        names = sorted(self.endpoints, key=len, reverse=True)
        self._path = (
            re.compile(r"(?:^|/)v1/(" + "|".join(re.escape(n) for n in names) + r")/?$")
            if names
            else re.compile(r"(?!)")
        )

    def endpoint(self, path: str) -> str | None:
        """'/openai/v1/chat/completions?x=1' -> 'chat/completions'; None if not a rewritten endpoint."""
        m = self._path.search(split_path(path)[0])
        return m.group(1) if m else None


def split_path(path: str) -> tuple[str, str]:
    """A request path -> (its route, without query or fragment; the query as sent, from its "?", or "").
    '/v1/responses?x=1' -> ('/v1/responses', '?x=1'). Only the route names an endpoint, never the query."""
    route, sep, query = path.partition("?")
    return route.split("#", 1)[0], sep + query


@lru_cache(maxsize=1)
def builtin() -> Rules:
    return Rules(json.loads(BUILTIN.read_text(encoding="utf-8")))


def from_spec_file(path: str | Path, *, isolate: bool = False) -> tuple[Rules, list[str]]:
    """Rules from a Mistral OpenAPI file (YAML or JSON), with the built-in rules for whatever it lacks.

    Returns (rules, problems); raises spec.SpecError with a readable message when the file is of no use.
    isolate: parse it in a separate process with a time and memory limit (what the proxy does), so that
    nothing in the file (a crash of the YAML library, a runaway, a memory blow-up) can reach this process.
    """
    if isolate and sys.executable and not getattr(sys, "frozen", False):
        compiled, problems = _compile_in_child(path)
    else:
        compiled, problems = spec.compile_file(path)
    try:
        return Rules(compiled, fallback=builtin()), problems
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise spec.SpecError(f"{path} gave rules that cannot be used: {e}") from None


class Loaded(NamedTuple):
    """What load() gives: the rules to use, and the messages to log as (logging level, text)."""

    rules: Rules
    messages: list[tuple[int, str]]


def load(path: str, keep: Rules | None = None, *, isolate: bool = True) -> Loaded:
    """The rules from a spec file (from_spec_file, isolated by default), with the fallback policy: when the
    file is of no use, keep (the rules in force; the built-in ones at start-up) stays, and the messages say
    why. An empty path means the built-in rules. Never raises; logs nothing (the caller logs the messages)."""
    if not path:
        return Loaded(builtin(), [])
    keep = keep or builtin()
    stay = (
        "the built-in rules stay in force"
        if keep is builtin()
        else f"the rules loaded before from {keep.source} stay in force"
    )
    try:
        rules, problems = from_spec_file(path, isolate=isolate)
    except spec.SpecError as e:
        return Loaded(keep, [(logging.WARNING, f"mistral-compat: mistral_openapi: {e}; {stay}")])
    except Exception as e:  # pragma: no cover - every failure should be a SpecError
        return Loaded(
            keep,
            [
                (
                    logging.WARNING,
                    f"mistral-compat: mistral_openapi: {path} could not be loaded ({type(e).__name__}: {e}); {stay}",
                )
            ],
        )
    messages = [(logging.WARNING, f"mistral-compat: mistral_openapi {path}: {problem}") for problem in problems]
    fallback = f"; built-in rules for {', '.join(rules.from_fallback)}" if rules.from_fallback else ""
    messages.append(
        (
            logging.INFO,
            f"mistral-compat: rules for {len(rules.endpoints) - len(rules.from_fallback)} "
            f"endpoints loaded from {path}{fallback}",
        )
    )
    return Loaded(rules, messages)


# -c rather than -m: -I (isolated mode) leaves the current directory out of sys.path
_CHILD = "import sys; sys.path.insert(0, sys.argv.pop(1)); from mistral_compat.spec import main; sys.exit(main())"
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def _compile_in_child(path: str | Path) -> tuple[dict, list[str]]:
    """spec.compile_file(path), run as `python -m mistral_compat.spec` in a child process."""
    cmd = [
        sys.executable,
        "-I",
        "-c",
        _CHILD,
        _PACKAGE_PARENT,
        "--memory",
        str(PARSE_MEMORY),
        "--cpu",
        str(PARSE_CPU),
        "--",
        str(path),
    ]
    try:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise spec.SpecError(f"cannot start a process to parse {path}: {e}") from None
    with _children_lock:
        _children.add(child)
    try:
        out, err = child.communicate(timeout=PARSE_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise spec.SpecError(f"parsing {path} took longer than {PARSE_TIMEOUT:g} s; stopped") from None
    finally:
        with _children_lock:
            _children.discard(child)
    code = child.returncode
    if code == 0:
        try:
            result = json.loads(out)
        except ValueError:  # pragma: no cover - the child writes JSON
            result = None
        if isinstance(result, dict) and "error" in result:
            raise spec.SpecError(str(result["error"]))
        if (
            isinstance(result, dict)
            and isinstance(result.get("rules"), dict)
            and isinstance(result.get("problems"), list)
        ):
            return result["rules"], [str(p) for p in result["problems"]]
        raise spec.SpecError(f"the process parsing {path} wrote no rules")  # pragma: no cover
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:  # pragma: no cover
            name = f"signal {-code}"
        why = {
            "SIGXCPU": f"it used more than {PARSE_CPU} s of CPU",
            "SIGKILL": "it was killed (out of memory, or stopped)",
            "SIGTERM": "it was stopped",
        }.get(name, "it crashed")
        raise spec.SpecError(f"the process parsing {path} ended with {name} ({why})")
    last = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    if "MemoryError" in last[0]:
        raise spec.SpecError(f"{path} needs more than {PARSE_MEMORY // 2**20} MB of memory to load")
    detail = f": {last[0][:300]}" if last[0] else ""
    raise spec.SpecError(f"the process parsing {path} failed (exit status {code}){detail}")


def stop_parsing() -> None:
    """Kill any process still parsing a spec file (at shutdown)."""
    with _children_lock:
        children = list(_children)
    for child in children:
        if child.poll() is None:
            child.kill()


# --- rules -> the walker's nodes (schema.py) ---------------------------------------------------------------


def compile_rules(rules: dict) -> dict[str, Node]:
    """rules -> {endpoint suffix: root node}. ValueError when the rules cannot be used (a missing schema,
    a schema that is only an alias of itself, shapes that lead back to themselves without going deeper)."""
    schemas = rules.get("schemas", {})
    named: dict[str, Node] = {}
    aliasing: list[str] = []  # the chain of schemas being resolved that are only a ref to another one
    branching: list[Node] = []  # the unions and anyOfs: what hands a value on without going deeper

    def compile_(spec: Any, name: str | None) -> Node:
        if spec == "any":
            return AnyNode()
        if "ref" in spec:
            ref = spec["ref"]
            if ref not in named:
                if ref not in schemas:
                    raise ValueError(f"rules refer to a missing schema {ref!r}")
                target = schemas[ref]
                if isinstance(target, dict) and "ref" in target:  # an alias of another schema
                    if ref in aliasing:
                        cycle = " -> ".join(aliasing[aliasing.index(ref) :] + [ref])
                        raise ValueError(f"schemas that are only a $ref to one another form a cycle: {cycle}")
                    aliasing.append(ref)
                    try:
                        named[ref] = compile_(target, ref)
                    finally:
                        aliasing.pop()
                else:
                    named[ref] = _shell(target, ref)
                    _fill(named[ref], target, ref)
            return named[ref]
        node = _shell(spec, name)
        _fill(node, spec, name)
        return node

    def _shell(spec: Any, name: str | None) -> Node:
        if spec == "any":
            return AnyNode()
        if "object" in spec:
            return ObjectNode()
        if "array" in spec:
            return ArrayNode()
        if "union" in spec:
            return UnionNode()
        if "anyof" in spec:
            return AnyOfNode()
        if "type" in spec:
            return ScalarNode(spec, name)
        raise ValueError(f"unknown rule {spec!r}")

    def _fill(node: Node, spec: Any, name: str | None) -> None:
        if isinstance(node, ObjectNode):
            node.setup(spec, name, compile_)
        elif isinstance(node, (ArrayNode, UnionNode, AnyOfNode)):
            node.setup(spec, compile_)
            if not isinstance(node, ArrayNode):
                branching.append(node)

    roots = {suffix: compile_(spec, None) for suffix, spec in rules.get("endpoints", {}).items()}
    _refuse_cycles(branching, {id(node): ref for ref, node in named.items()})
    return roots


def _same_value_steps(node: Node) -> tuple:
    """The nodes that node.fix hands the very same value to (no key or index further into the body)."""
    if isinstance(node, UnionNode):
        return tuple(node.map.values())
    if isinstance(node, AnyOfNode):  # the branches fix() can choose, by the value's kind
        return tuple({id(o): o for options in node.by_kind.values() for o in options}.values())
    return ()


def _refuse_cycles(branching: list, names: dict[int, str]) -> None:
    """ValueError if a walk could go round a circle of unions and anyOfs on one value (forever), e.g. a
    discriminated union whose member is the union itself. Cycles through an object or array are fine: they
    go one level deeper into the body each time (a recursive schema). Iterative: no depth limit."""
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    for start in branching:
        if id(start) in state:
            continue
        path = [start]
        stack = [iter(_same_value_steps(start))]
        state[id(start)] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[id(path.pop())] = 2
                stack.pop()
                continue
            s = state.get(id(nxt))
            if s == 1:
                loop = path[[id(n) for n in path].index(id(nxt)) :] + [nxt]
                shown = " -> ".join(names.get(id(n), type(n).__name__) for n in loop)
                raise ValueError(
                    f"rules lead from a schema back to itself without going deeper into the body ({shown})"
                )
            if s is None:
                state[id(nxt)] = 1
                path.append(nxt)
                stack.append(iter(_same_value_steps(nxt)))
