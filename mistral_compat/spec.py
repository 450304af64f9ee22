"""Mistral's OpenAPI spec -> the addon's rules (pure; no I/O beyond reading a spec file).

The rules are a compact, readable schema language covering exactly what the rewriter needs:

    "any"                                      anything goes (metadata, JSON-schema parameters)
    {"ref": "UserMessage"}                     a named schema from "schemas"
    {"object": {...props}, "required": [...], "closed": true}
                                               an object; closed = unknown keys are rejected
    {"array": node}                            a list of node
    {"union": "role", "map": {"user": node}}   a list of shapes told apart by one property
    {"anyof": [node, ...]}                     one of several shapes
    {"type": "string" | "integer" | "number" | "boolean" | "null",
     "enum": [...], "min": x, "max": x, "xmin": x, "xmax": x}

Endpoints map a path suffix (e.g. "chat/completions") to the node of its request body.

A spec file is untrusted input, read with limits (see load_spec_file): its size, its nesting depth and what
its YAML aliases stand for are checked while it is read, never after. The proxy reads it in a separate
process (rules.from_spec_file(..., isolate=True) runs `main` below) with a time and memory limit, so that
even a crash of the YAML library cannot take the proxy down.

    python -m mistral_compat.spec mistral-openapi.yaml     # the rules as JSON, or the reason it is of no use
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from itertools import accumulate, repeat
from pathlib import Path
from typing import Any

from .jsonio import kind_of

# The JSON endpoints the addon rewrites: path suffix after /v1/.
ENDPOINTS = (
    "chat/completions",
    "fim/completions",
    "agents/completions",
    "embeddings",
    "moderations",
    "chat/moderations",
    "classifications",
    "chat/classifications",
    "ocr",
)

_SCALARS = {"string", "integer", "number", "boolean", "null"}
_REF_PREFIX = "#/components/schemas/"


# Limits on a spec file (Mistral's own, 2026-08: 1.1 MB, nested 15 deep, no YAML aliases).
MAX_FILE_BYTES = 32 * 1024 * 1024  # bigger files are not read at all
MAX_DEPTH = 100  # nesting of mappings/lists (JSON objects/arrays)
MAX_ALIAS_NODES = 100_000  # nodes that all YAML aliases (*name, <<: *name) stand for, in all


class SpecError(ValueError):
    """The spec cannot be turned into rules."""


def load_spec_file(path: str | Path) -> dict:
    """Read an OpenAPI document, JSON or YAML, within the limits above (SpecError when over one)."""
    chunks: list[bytes] = []
    size = 0
    with open(path, "rb") as f:  # no further than the limit, whatever the file claims to be (/dev/zero)
        while size <= MAX_FILE_BYTES:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    if size > MAX_FILE_BYTES:
        raise SpecError(f"{path} is bigger than {MAX_FILE_BYTES:,} bytes, the most a spec file may be")
    text = b"".join(chunks).decode("utf-8")
    del chunks
    if text.lstrip().startswith("{"):
        depth = json_depth(text)
        if depth > MAX_DEPTH:
            raise SpecError(f"{path} is nested {depth} deep, more than the {MAX_DEPTH} a spec file may be")
        doc = json.loads(text)
    else:
        doc = load_yaml(text, str(path))
    if not isinstance(doc, dict):
        raise SpecError(f"{path} is not an OpenAPI document (top level is not a mapping)")
    return doc


# a JSON string; an unterminated one runs to the end (so never a second try: linear time)
_JSON_STRING = re.compile(r'"(?:[^"\\]+|\\[\s\S])*(?:"|\\?\Z)')
_NOT_BRACKETS = str.maketrans("", "", "".join(chr(i) for i in range(128) if chr(i) not in "[]{}"))
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deep JSON text nests (brackets outside strings), without parsing it: a regex and a translate,
    then a running sum in C (30 MB of brackets take about a second, less than json.loads)."""
    brackets = _JSON_STRING.sub("", text).translate(_NOT_BRACKETS)
    return max(accumulate(map(_DELTA.get, brackets, repeat(0))), default=0)


_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_NO_KEY = object()


def load_yaml(text: str, name: str = "the spec") -> Any:
    """One YAML document -> plain Python data, as ruamel.yaml's safe loader makes it, but built here from
    the parser's events (libyaml's parser keeps its state on the heap, never recursing) so that the limits
    are checked as the file is read: nesting deeper than MAX_DEPTH, aliases standing for more than
    MAX_ALIAS_NODES nodes in all (a "billion laughs" file is refused after a few hundred bytes), an alias
    of a node that contains it. An alias gives the same object, never a copy. SpecError when over a limit;
    ruamel.yaml's own errors for text that is not YAML."""
    from ruamel.yaml import (
        YAML,  # shipped with mitmproxy
        events,
    )
    from ruamel.yaml.nodes import ScalarNode

    yaml = YAML(typ="safe")  # libyaml's parser where ruamel.yaml.clib is installed, else the pure one
    resolver, constructor = yaml.resolver, yaml.constructor
    scalar_start, mapping_start, sequence_start = (
        events.ScalarEvent,
        events.MappingStartEvent,
        events.SequenceStartEvent,
    )
    collection_end, alias_event = events.CollectionEndEvent, events.AliasEvent
    document_start = events.DocumentStartEvent
    built: dict[tuple, Any] = {}  # (tag, text) -> value of a plain or tagged scalar
    anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, its size in nodes, aliases expanded)
    open_anchors: set[str] = set()
    # one frame per open collection: [container, is_mapping, pending key, size, anchor, merges, start event]
    stack: list[list] = []
    alias_nodes = documents = 0
    root: Any = None

    def where(ev) -> str:
        mark = ev.start_mark
        return f" (line {mark.line + 1})" if mark is not None else ""

    def scalar(ev) -> Any:
        tag = ev.tag
        if tag is None or tag == "!":
            if not ev.implicit[0]:  # quoted, literal or folded: a string
                return ev.value
            tag = str(resolver.resolve(ScalarNode, ev.value, ev.implicit))
            if tag == _STR:
                return ev.value
            if tag == _MERGE:
                return _MERGE_KEY
        key = (tag, ev.value)
        if key not in built:
            node = ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, style=ev.style)
            built[key] = constructor.construct_object(node, deep=True)
            constructor.constructed_objects.clear()
        return built[key]

    for ev in yaml.parse(text):
        cls = ev.__class__
        if cls is scalar_start:
            value, size = scalar(ev), 1
            if ev.anchor is not None:
                anchors[ev.anchor] = (value, 1)
        elif cls is mapping_start or cls is sequence_start:
            if len(stack) >= MAX_DEPTH:
                raise SpecError(f"{name} is nested more than {MAX_DEPTH} deep{where(ev)}, more than a spec file may be")
            if ev.anchor is not None:
                open_anchors.add(ev.anchor)
            is_map = cls is mapping_start
            stack.append([{} if is_map else [], is_map, _NO_KEY, 1, ev.anchor, None, ev])
            continue
        elif isinstance(ev, collection_end):
            value, is_map, _, size, anchor, merges, start = stack.pop()
            if merges:
                value = _merged(value, merges, name, start, where)
            if anchor is not None:
                open_anchors.discard(anchor)
                anchors[anchor] = (value, size)
        elif cls is alias_event:
            if ev.anchor not in anchors:
                what = "a node that contains it" if ev.anchor in open_anchors else "an anchor not defined before"
                raise SpecError(f"{name}: the YAML alias *{ev.anchor}{where(ev)} refers to {what}")
            value, size = anchors[ev.anchor]
            alias_nodes += size
            if alias_nodes > MAX_ALIAS_NODES:
                raise SpecError(
                    f"{name}: its YAML aliases stand for more than {MAX_ALIAS_NODES:,} nodes "
                    f"(an alias bomb?){where(ev)}"
                )
        else:
            if cls is document_start:
                documents += 1
                if documents > 1:
                    raise SpecError(f"{name} holds more than one YAML document{where(ev)}")
            continue
        if not stack:
            root = value
            continue
        frame = stack[-1]
        frame[3] += size
        if not frame[1]:
            frame[0].append(value)
        elif frame[2] is _NO_KEY:
            if isinstance(value, (dict, list)):
                raise SpecError(f"{name}: a mapping key that is a mapping or list{where(ev)} is not supported")
            frame[2] = value
        else:
            key, frame[2] = frame[2], _NO_KEY
            if key is _MERGE_KEY:
                if frame[5] is None:
                    frame[5] = []
                frame[5].append(value)
            elif key in frame[0]:
                raise SpecError(f"{name}: duplicate key {key!r}{where(ev)}")
            else:
                frame[0][key] = value
    return root


class _MergeKey:
    """The YAML merge key (<<)."""


_MERGE_KEY = _MergeKey()


def _merged(mapping: dict, merges: list, name: str, start, where) -> dict:
    """A mapping with its << merges: its own keys win, then the merged mappings in the order given."""
    parts: list[dict] = []
    for m in merges:
        for part in m if isinstance(m, list) else [m]:
            if not isinstance(part, dict):
                raise SpecError(f"{name}: a << merge{where(start)} must be a mapping or a list of mappings")
            parts.append(part)
    out: dict = {}
    for part in reversed(parts):
        out.update(part)
    out.update(mapping)
    return out


def compile_spec(doc: dict, *, source: str = "") -> tuple[dict, list[str]]:
    """Turn an OpenAPI document into rules. Returns (rules, problems).

    An endpoint the spec lacks is left out of the rules and named in problems.
    """
    compiler = _Compiler(doc)
    endpoints: dict[str, Any] = {}
    problems: list[str] = []
    for suffix in ENDPOINTS:
        try:
            endpoints[suffix] = compiler.endpoint(f"/v1/{suffix}")
        except SpecError as e:
            problems.append(f"{suffix}: {e}")
        except (TypeError, AttributeError, KeyError, ValueError, RecursionError) as e:
            problems.append(f"{suffix}: the spec's schema for it is malformed ({type(e).__name__}: {e})")
    info = doc.get("info")
    info = info if isinstance(info, dict) else {}
    rules = {
        "source": source,
        "spec_version": str(info.get("version", "")),
        "endpoints": endpoints,
        "schemas": dict(sorted(compiler.done.items())),
    }
    return rules, problems


def compile_file(path: str | Path, *, source: str | None = None) -> tuple[dict, list[str]]:
    """A spec file -> (rules, problems); SpecError with a readable message when the file is of no use."""
    try:
        doc = load_spec_file(path)
    except OSError as e:
        raise SpecError(f"cannot read {path}: {e.strerror or e}") from None
    except (SpecError, MemoryError):
        raise
    except RecursionError:  # pragma: no cover - nesting is limited before any parsing
        raise SpecError(f"{path} is nested too deep") from None
    except Exception as e:  # YAML/JSON/encoding errors of every kind
        raise SpecError(f"{path} is not valid YAML or JSON: {str(e).splitlines()[0] if str(e) else e}") from None
    try:
        rules, problems = compile_spec(doc, source=str(path) if source is None else source)
    except MemoryError:
        raise
    except Exception as e:  # a shape of document the compiler did not foresee
        raise SpecError(f"{path} cannot be turned into rules ({type(e).__name__}: {e})") from None
    if not rules["endpoints"]:
        raise SpecError(f"{path} describes none of the endpoints mistral-compat rewrites: " + "; ".join(problems))
    return rules, problems


def spec_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Compiler:
    def __init__(self, doc: dict) -> None:
        self.doc = doc
        components = doc.get("components")
        schemas = components.get("schemas") if isinstance(components, dict) else None
        self.components = schemas if isinstance(schemas, dict) else {}
        self.done: dict[str, Any] = {}
        self._busy: set[str] = set()

    def endpoint(self, path: str) -> Any:
        paths = self.doc.get("paths")
        if not isinstance(paths, dict):
            raise SpecError("the spec has no paths")
        op = (paths.get(path) or {}).get("post")
        if not isinstance(op, dict):
            raise SpecError(f"no POST {path} in the spec")
        content = ((op.get("requestBody") or {}).get("content")) or {}
        media = content.get("application/json")
        if not isinstance(media, dict) or "schema" not in media:
            raise SpecError(f"POST {path} has no application/json request body schema")
        return self.node(media["schema"])

    def ref(self, ref: str) -> dict:
        if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
            raise SpecError(f"unsupported $ref {ref!r}")
        name = ref[len(_REF_PREFIX) :]
        if name not in self.components:
            raise SpecError(f"$ref to missing schema {name!r}")
        if name not in self.done and name not in self._busy:
            self._busy.add(name)
            self.done[name] = self.node(self.components[name])
            self._busy.discard(name)
        return {"ref": name}

    def node(self, s: Any) -> Any:
        if s is True or s == {}:
            return "any"
        if not isinstance(s, dict):
            raise SpecError(f"unsupported schema {s!r}")
        if "$ref" in s:
            return self.ref(s["$ref"])
        if "allOf" in s:
            return self.all_of(s)
        for key in ("oneOf", "anyOf"):
            if key in s:
                return self.alternatives(s[key], s.get("discriminator"), s.get("nullable"))
        if "const" in s:
            const = {"type": _json_type(s["const"]), "enum": [s["const"]]}
            return _nullable(const, s)
        t = s.get("type")
        if isinstance(t, list):
            return self.alternatives([dict(s, type=x) for x in t], None, s.get("nullable"))
        if t == "object" or "properties" in s:
            return _nullable(self.object(s), s)
        if t == "array":
            items = s.get("items")
            return _nullable({"array": self.node(items) if items is not None else "any"}, s)
        if t in _SCALARS:
            out: dict[str, Any] = {"type": t}
            if "enum" in s:
                out["enum"] = list(s["enum"])
            for src, dst in (
                ("minimum", "min"),
                ("maximum", "max"),
                ("exclusiveMinimum", "xmin"),
                ("exclusiveMaximum", "xmax"),
            ):
                if isinstance(s.get(src), (int, float)) and not isinstance(s.get(src), bool):
                    out[dst] = s[src]
            return _nullable(out, s)
        return "any"

    def object(self, s: dict) -> Any:
        props = s.get("properties") or {}
        extra = s.get("additionalProperties", True)
        if not props and extra is not False:
            return {"type": "object"}
        out: dict[str, Any] = {"object": {k: self.node(v) for k, v in props.items()}}
        req = [r for r in s.get("required") or [] if r in props]
        if req:
            out["required"] = req
        if extra is False:
            out["closed"] = True
        return out

    def all_of(self, s: dict) -> Any:
        props: dict[str, Any] = {}
        required: list[str] = []
        closed = s.get("additionalProperties") is False
        for part in s["allOf"]:
            if "$ref" in part:
                self.ref(part["$ref"])
                part = self.components[part["$ref"][len(_REF_PREFIX) :]]
            props.update(part.get("properties") or {})
            required += part.get("required") or []
            closed = closed or part.get("additionalProperties") is False
        merged: dict[str, Any] = {"type": "object", "properties": props, "required": required}
        if closed:
            merged["additionalProperties"] = False
        return self.object(merged)

    def alternatives(self, options: list, discriminator: Any, nullable: Any) -> Any:
        nodes = [self.node(o) for o in options]
        if isinstance(discriminator, dict) and discriminator.get("propertyName"):
            mapping = discriminator.get("mapping") or {}
            if mapping:
                out: Any = {
                    "union": discriminator["propertyName"],
                    "map": {tag: self.ref(ref) for tag, ref in mapping.items()},
                }
                if nullable:
                    out = {"anyof": [out, {"type": "null"}]}
                return out
        if nullable:
            nodes.append({"type": "null"})
        # flatten nested anyOf
        flat: list[Any] = []
        for n in nodes:
            if isinstance(n, dict) and set(n) == {"anyof"}:
                flat.extend(n["anyof"])
            elif n not in flat:
                flat.append(n)
        if "any" in flat:
            return "any"
        return flat[0] if len(flat) == 1 else {"anyof": flat}


def _nullable(node: dict, s: dict) -> Any:
    if s.get("nullable") is True:
        return {"anyof": [node, {"type": "null"}]}
    return node


def _json_type(v: Any) -> str:
    """A const's type as a scalar rule names it (jsonio's names; an object or array const: "object")."""
    kind = kind_of(v)
    return kind if kind in _SCALARS else "object"


# --- the parser process -----------------------------------------------------------------------

MAX_OUTPUT_BYTES = 64 * 1024 * 1024  # rules bigger than this (as JSON) are refused


def _limit(memory: int, cpu: int) -> None:
    """Limit this process's address space (bytes) and CPU time (seconds), where the OS allows it."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: the parent's timeout still applies
        return
    for what, soft, hard in ((resource.RLIMIT_AS, memory, memory), (resource.RLIMIT_CPU, cpu, cpu + 5)):
        if soft <= 0:
            continue
        old_soft, old_hard = resource.getrlimit(what)
        if old_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, old_hard), min(hard, old_hard)
        try:
            resource.setrlimit(what, (soft, hard))
        except (ValueError, OSError):  # pragma: no cover
            pass


def main(argv: list[str] | None = None) -> int:
    """python -m mistral_compat.spec FILE [--memory BYTES] [--cpu SECONDS]

    Writes {"rules": ..., "problems": [...]} or {"error": "..."} as JSON to stdout; exit status 0 either way
    (anything else means the process failed). Run by the proxy in a child process, with limits."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m mistral_compat.spec",
        description="Turn a Mistral OpenAPI file into mistral-compat's rules (JSON).",
    )
    ap.add_argument("spec", help="Mistral OpenAPI file (YAML or JSON)")
    ap.add_argument("--memory", type=int, default=0, help="address space limit in bytes (0: none)")
    ap.add_argument("--cpu", type=int, default=0, help="CPU time limit in seconds (0: none)")
    args = ap.parse_args(argv)
    _limit(args.memory, args.cpu)
    try:
        rules, problems = compile_file(args.spec)
        try:
            out = json.dumps({"rules": rules, "problems": problems}, default=str)
        except (TypeError, ValueError) as e:  # e.g. a property name that is a date
            raise SpecError(f"{args.spec} gives rules that cannot be written as JSON ({e})") from None
        if len(out) > MAX_OUTPUT_BYTES:
            raise SpecError(f"{args.spec} gives rules bigger than {MAX_OUTPUT_BYTES // 2**20} MB")
    except SpecError as e:
        out = json.dumps({"error": str(e)})
    except MemoryError:
        out = json.dumps(
            {
                "error": f"{args.spec} needs more than {args.memory // 2**20} MB of memory to load"
                if args.memory
                else f"{args.spec} needs more memory than there is to load"
            }
        )
    except RecursionError:  # pragma: no cover - nesting is limited before any parsing
        out = json.dumps({"error": f"{args.spec} is nested too deep"})
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
