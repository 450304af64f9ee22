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
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

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


class SpecError(ValueError):
    """The spec cannot be turned into rules."""


def load_spec_file(path: str | Path) -> dict:
    """Read an OpenAPI document, JSON or YAML."""
    data = Path(path).read_bytes()
    text = data.decode("utf-8")
    if text.lstrip().startswith("{"):
        doc = json.loads(text)
    else:
        from ruamel.yaml import YAML  # shipped with mitmproxy

        try:
            doc = YAML(typ="safe").load(text)  # the C loader where ruamel.yaml.clib is installed
        except ImportError:  # pragma: no cover
            doc = YAML(typ="safe", pure=True).load(text)
    if not isinstance(doc, dict):
        raise SpecError(f"{path} is not an OpenAPI document (top level is not a mapping)")
    return doc


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
    info = doc.get("info") or {}
    rules = {
        "source": source,
        "spec_version": str(info.get("version", "")),
        "endpoints": endpoints,
        "schemas": dict(sorted(compiler.done.items())),
    }
    return rules, problems


def spec_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Compiler:
    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.components = ((doc.get("components") or {}).get("schemas")) or {}
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
        name = ref[len(_REF_PREFIX):]
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
            out = {"type": _json_type(s["const"]), "enum": [s["const"]]}
            return _nullable(out, s)
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
            for src, dst in (("minimum", "min"), ("maximum", "max"),
                             ("exclusiveMinimum", "xmin"), ("exclusiveMaximum", "xmax")):
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
                part = self.components[part["$ref"][len(_REF_PREFIX):]]
            props.update(part.get("properties") or {})
            required += part.get("required") or []
            closed = closed or part.get("additionalProperties") is False
        merged = {"type": "object", "properties": props, "required": required}
        if closed:
            merged["additionalProperties"] = False
        return self.object(merged)

    def alternatives(self, options: list, discriminator: Any, nullable: Any) -> Any:
        nodes = [self.node(o) for o in options]
        if isinstance(discriminator, dict) and discriminator.get("propertyName"):
            mapping = discriminator.get("mapping") or {}
            if mapping:
                out: Any = {"union": discriminator["propertyName"],
                            "map": {tag: self.ref(ref) for tag, ref in mapping.items()}}
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
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "object"
