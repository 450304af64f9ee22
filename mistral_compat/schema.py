"""The schema walker: rules (see spec.py for the format) compiled into nodes that repair a parsed body.

Every node has fix(value, fx, path) -> value | Drop. Objects are repaired in place; a node returns a
new value only when it replaces a scalar. Drop asks the parent to remove the value; the parent
decides (a required key is kept) and records the change.
"""

from __future__ import annotations

from typing import Any

from . import toolids, translate
from .changes import DROPPED, REMOVED, RENAMED, VALUE
from .jsonio import RawNumber

_KINDS = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
          float: "number", type(None): "null"}


def kind_of(value: Any) -> str:
    k = _KINDS.get(type(value))
    if k is None:
        if isinstance(value, RawNumber):
            return "number"
        for t, name in _KINDS.items():
            if isinstance(value, t):
                return name
    return k or "unknown"


def _show(value: Any) -> str:
    """A value as the client wrote it, for change details."""
    return value.literal if isinstance(value, RawNumber) else repr(value)


class Drop:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Node:
    accepts_null = False
    kinds: frozenset = frozenset()

    def fix(self, value: Any, fx, path: tuple) -> Any:
        return value

    def score(self, value: Any) -> int:
        """How well a value fits this node, to choose among anyOf branches."""
        return 1


class AnyNode(Node):
    accepts_null = True
    kinds = frozenset(_KINDS.values()) | {"unknown"}


class ScalarNode(Node):
    __slots__ = ("type", "enum", "min", "max", "xmin", "xmax", "name", "kinds", "accepts_null")

    def __init__(self, spec: dict, name: str | None) -> None:
        self.type = spec["type"]
        self.enum = spec.get("enum")
        self.min, self.max = spec.get("min"), spec.get("max")
        self.xmin, self.xmax = spec.get("xmin"), spec.get("xmax")
        self.name = name
        self.accepts_null = self.type == "null"
        if self.type == "number":
            self.kinds = frozenset({"number", "integer"})
        elif self.type == "object":
            self.kinds = frozenset({"object"})
        else:
            self.kinds = frozenset({self.type})

    def score(self, value: Any) -> int:
        if self.enum is not None and value not in self.enum:
            return 0
        return 2

    def fix(self, value: Any, fx, path: tuple) -> Any:
        if self.enum is not None and value not in self.enum:
            alias = translate.ENUM_ALIASES.get(self.name or "", {}).get(value) if isinstance(value, str) else None
            if alias is not None:
                fx.add(VALUE, path, f"{value!r} -> {alias!r}")
                return alias
            return Drop(f"{_show(value)} is not one of {', '.join(map(repr, self.enum))}")
        if self.type in ("number", "integer") and not isinstance(value, bool):
            return self._range(value, fx, path)
        return value

    def _range(self, value: Any, fx, path: tuple) -> Any:
        num = value.value if isinstance(value, RawNumber) else value
        if not isinstance(num, (int, float)):
            return value
        new = num
        step = 1 if self.type == "integer" else translate.EXCLUSIVE_STEP
        if self.min is not None and num < self.min:
            new = self.min
        elif self.xmin is not None and num <= self.xmin:
            new = self.xmin + step
        if self.max is not None and num > self.max:
            new = self.max
        elif self.xmax is not None and num >= self.xmax:
            new = self.xmax - step
        if new == num:
            return value
        key = path[-1] if path else ""
        if new > num and key in translate.UNSET_BELOW_MINIMUM:
            return Drop(f"{_show(value)} is below Mistral's minimum {self.min!r}; unset means no limit")
        fx.add(VALUE, path, f"{_show(value)} -> {new!r}, Mistral's limit")
        return new


class ObjectNode(Node):
    kinds = frozenset({"object"})

    def __init__(self) -> None:
        self.props: dict[str, Node] = {}
        self.required: frozenset = frozenset()
        self.closed = False
        self.name: str | None = None
        self.before = None
        self.after = None
        self.consts: dict[str, list] = {}

    def setup(self, spec: dict, name: str | None, compile_) -> None:
        self.props = {k: compile_(v, None) for k, v in spec["object"].items()}
        self.required = frozenset(spec.get("required", ()))
        self.closed = bool(spec.get("closed"))
        self.name = name
        self.before = translate.BEFORE.get(name or "")
        self.after = translate.AFTER.get(name or "")

    def score(self, value: Any) -> int:
        if not isinstance(value, dict):
            return 0
        s = 1
        for k in value:
            child = self.props.get(k)
            if child is None:
                if self.closed:
                    s -= 1
                continue
            if isinstance(child, ScalarNode) and child.enum is not None:
                if value[k] not in child.enum:
                    return 0
                s += 10
            else:
                s += 2
        return max(s, 1)

    def fix(self, value: Any, fx, path: tuple) -> Any:
        if not isinstance(value, dict):
            return value
        if self.before is not None:
            self.before(value, fx, path)
        props = self.props
        for key in list(value):
            child = props.get(key)
            if child is None:
                target = translate.RENAMES.get(key)
                if target is not None and target in props:
                    v = value.pop(key)
                    if value.get(target) is not None:
                        fx.add(DROPPED, path + (key,), f"{target} also sent")
                        continue
                    value[target] = v
                    fx.add(RENAMED, path + (key,), target)
                    key, child = target, props[target]
                elif self.closed:
                    del value[key]
                    fx.add(DROPPED, path + (key,))
                    continue
                else:
                    continue
            v = value[key]
            if v is None and not child.accepts_null:
                if key not in self.required:
                    del value[key]
                    fx.add(DROPPED, path + (key,), "null")
                continue
            new = child.fix(v, fx, path + (key,))
            if new is v:
                continue
            if isinstance(new, Drop):
                if key not in self.required:
                    del value[key]
                    fx.add(DROPPED, path + (key,), new.reason)
            else:
                value[key] = new
        if self.after is not None:
            reason = self.after(value)
            if reason:
                return Drop(reason)
        return value


class ArrayNode(Node):
    kinds = frozenset({"array"})

    def __init__(self) -> None:
        self.items: Node = AnyNode()
        self.messages = False

    def setup(self, spec: dict, compile_) -> None:
        self.items = compile_(spec["array"], None)
        self.messages = isinstance(self.items, UnionNode) and self.items.by == "role"

    def score(self, value: Any) -> int:
        if not isinstance(value, list):
            return 0
        if not value:
            return 1
        first = value[0]
        return 2 + (kind_of(first) in self.items.kinds) * 2

    def fix(self, value: Any, fx, path: tuple) -> Any:
        if not isinstance(value, list):
            return value
        items = self.items
        if isinstance(items, AnyNode):
            return value
        removed = 0
        for i in range(len(value)):
            j = i - removed
            v = value[j]
            new = items.fix(v, fx, path + (i,))
            if new is v:
                continue
            if isinstance(new, Drop):
                del value[j]
                removed += 1
                fx.add(REMOVED, path + (i,), new.reason)
            else:
                value[j] = new
        if self.messages:
            toolids.repair(value, fx, path)
        return value


class UnionNode(Node):
    kinds = frozenset({"object"})

    def __init__(self) -> None:
        self.by = ""
        self.map: dict[str, Node] = {}

    def setup(self, spec: dict, compile_) -> None:
        self.by = spec["union"]
        self.map = {tag: compile_(node, None) for tag, node in spec["map"].items()}
        self.aliases = translate.TAG_ALIASES.get(self.by, {})

    def score(self, value: Any) -> int:
        if not isinstance(value, dict):
            return 0
        tag = value.get(self.by)
        return 20 if tag in self.map or tag in self.aliases else 1

    def fix(self, value: Any, fx, path: tuple) -> Any:
        if not isinstance(value, dict):
            return value
        tag = value.get(self.by)
        node = self.map.get(tag) if isinstance(tag, str) else None
        if node is None:
            alias = self.aliases.get(tag) if isinstance(tag, str) else None
            if alias is None or alias not in self.map:
                return value  # unknown shape: leave it for Mistral to judge
            value[self.by] = alias
            fx.add(VALUE, path + (self.by,), f"{tag!r} -> {alias!r}")
            node = self.map[alias]
        return node.fix(value, fx, path)


class AnyOfNode(Node):
    def __init__(self) -> None:
        self.options: list[Node] = []

    def setup(self, spec: dict, compile_) -> None:
        self.options = [compile_(o, None) for o in spec["anyof"]]
        self.accepts_null = any(o.accepts_null for o in self.options)
        self.kinds = frozenset().union(*(o.kinds for o in self.options))

    def score(self, value: Any) -> int:
        return max((o.score(value) for o in self.options), default=0)

    def fix(self, value: Any, fx, path: tuple) -> Any:
        k = kind_of(value)
        best, best_score = None, 0
        for o in self.options:
            if k in o.kinds:
                s = o.score(value)
                if s > best_score:
                    best, best_score = o, s
        if best is None:
            # the value fits no branch: an enum value Mistral lacks can be dropped (if optional)
            for o in self.options:
                if k in o.kinds:
                    return o.fix(value, fx, path)
            return value
        return best.fix(value, fx, path)


def compile_rules(rules: dict) -> dict[str, Node]:
    """rules -> {endpoint suffix: root node}."""
    schemas = rules.get("schemas", {})
    named: dict[str, Node] = {}

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
                    named[ref] = compile_(target, ref)
                else:
                    named[ref] = _shell(target)
                    _fill(named[ref], target, ref)
            return named[ref]
        node = _shell(spec)
        _fill(node, spec, name)
        return node

    def _shell(spec: Any) -> Node:
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
            return ScalarNode(spec, None)
        raise ValueError(f"unknown rule {spec!r}")

    def _fill(node: Node, spec: Any, name: str | None) -> None:
        if isinstance(node, ObjectNode):
            node.setup(spec, name, compile_)
        elif isinstance(node, (ArrayNode, UnionNode, AnyOfNode)):
            node.setup(spec, compile_)
        elif isinstance(node, ScalarNode):
            node.name = name

    return {suffix: compile_(spec, None) for suffix, spec in rules.get("endpoints", {}).items()}
