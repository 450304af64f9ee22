"""The schema walker: rules (see spec.py for the format) compiled (rules.compile_rules) into nodes that repair a
parsed body, with the OpenAI-to-Mistral fixes registered in translate.py, run where their schema names them.

Every node has fix(value, fx, path) -> value | Drop: objects are repaired in place, a new value replaces a
scalar, and Drop asks the parent to remove the value (the parent decides: a required key is kept; and records it).

The walk recurses, one level per key or index (path), so its depth is bounded: objects and arrays deeper
than MAX_DEPTH (possible only with a recursive schema, e.g. a tree of nodes) are left as they are, and
compile_rules refuses rules that would walk in a circle without going deeper into the body.
"""

from __future__ import annotations

from typing import Any

from . import translate
from .changes import DROPPED, REMOVED, RENAMED, VALUE, Change
from .jsonio import KINDS, kind_of

# Objects and arrays at a path longer than this are left untouched (only a recursive schema goes this deep;
# Mistral's own reach 9 levels). A level costs the walk 2-4 Python frames, far from Python's limit of 1000;
# rewrite_doc catches what rules with long chains of anyOf schemas could still cause.
MAX_DEPTH = 100
TOO_DEEP = "the body is nested too deep for mistral-compat's rules"
_change = tuple.__new__  # Change(...) without the NamedTuple's Python-level __new__ (for the commonest changes)


class Drop:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Node:
    accepts_null = False
    kinds: frozenset = frozenset()
    trivial = False  # fix() returns every value unchanged, so callers may skip it

    def fix(self, value: Any, fx, path: tuple) -> Any:
        return value

    def score(self, value: Any) -> int:
        """How well a value fits this node, to choose among anyOf branches."""
        return 1


class AnyNode(Node):
    accepts_null = True
    trivial = True
    kinds = frozenset(KINDS.values()) | {"unknown"}


class ScalarNode(Node):
    __slots__ = (
        "type",
        "enum",
        "min",
        "max",
        "xmin",
        "xmax",
        "name",
        "kinds",
        "accepts_null",
        "ranged",
        "trivial",
        "bounds",
    )

    def __init__(self, spec: dict, name: str | None) -> None:
        self.type = spec["type"]
        self.enum = spec.get("enum")
        self.min, self.max = spec.get("min"), spec.get("max")
        self.xmin, self.xmax = spec.get("xmin"), spec.get("xmax")
        self.name = name
        self.accepts_null = self.type == "null"
        # a number with limits: the only scalar (besides an enum) whose value can need repair
        self.ranged = self.type in ("number", "integer") and any(
            b is not None for b in (self.min, self.max, self.xmin, self.xmax)
        )
        self.trivial = self.enum is None and not self.ranged
        inf = float("inf")
        # (min, xmin, max, xmax) with the missing ones unbounded, for one quick check of a value in range
        self.bounds = tuple(
            inf * sign if b is None else b
            for b, sign in ((self.min, -1), (self.xmin, -1), (self.max, 1), (self.xmax, 1))
        )
        self.kinds = frozenset({"number", "integer"} if self.type == "number" else {self.type})

    def score(self, value: Any) -> int:
        return 0 if self.enum is not None and value not in self.enum else 2

    def fix(self, value: Any, fx, path: tuple) -> Any:
        if self.enum is not None and value not in self.enum:
            alias = translate.ENUM_ALIASES.get(self.name or "", {}).get(value) if isinstance(value, str) else None
            if alias is not None:
                fx.add(VALUE, path, f"{value!r} -> {alias!r}")
                return alias
            return Drop(f"{value!r} is not one of {', '.join(map(repr, self.enum))}")
        if self.ranged and isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, xlo, hi, xhi = self.bounds  # a RawNumber is a float: its nearest double
            if lo <= value <= hi and xlo < value < xhi:
                return value
            return self._clamp(value, fx, path)
        return value

    def _clamp(self, value: Any, fx, path: tuple) -> Any:
        """A number outside the limits -> Mistral's limit, or Drop where below the minimum means no limit."""
        num = new = value
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
            return Drop(f"{value!r} is below Mistral's minimum {self.min!r}; unset means no limit")
        fx.add(VALUE, path, f"{value!r} -> {new!r}, Mistral's limit")  # a RawNumber's repr is its literal
        return new


class ObjectNode(Node):
    kinds = frozenset({"object"})

    def __init__(self) -> None:
        self.props: dict[str, Node] = {}
        self.required: frozenset = frozenset()
        self.closed = False
        self.before: translate.Fixup | None = None
        self.before_keys: frozenset[str] | None = None  # before runs only on an object with one of these keys
        self.after: translate.ConversationRule | None = None
        self.renames: dict[str, str] = {}  # OpenAI key -> the Mistral key of this object it is renamed to
        self.targets: frozenset[str] = frozenset()  # the Mistral keys renames lead to
        self._plan: dict[str, Any] | None = None  # see plan()

    def plan(self) -> dict[str, Any]:
        """What fix() does with each key it knows, in one lookup (a key it does not know is kept or, in a closed
        object, dropped):
        - True: the value is kept as it is unless null (a trivial child);
        - (min, xmin, max, xmax, child): a number within the limits (the child is a number with limits, or null)
          is kept, so fix() checks it in place instead of handing it down two nodes; anything else is the
          child's to repair;
        - a frozenset: a string of that enum is kept; anything else is the child's (a ScalarNode's) to repair;
        - a str: the key is renamed to it (renames);
        - a Node: the value is that child's to repair (an AnyOfNode's only when its branches may repair a value
          of that type).
        Made on first use, when every node is compiled."""
        if self._plan is None:
            out: dict[str, Any] = {}
            for key, child in self.props.items():
                node = child
                if isinstance(node, AnyOfNode):
                    others = [o for o in node.options if not (isinstance(o, ScalarNode) and o.type == "null")]
                    node = others[0] if len(others) == 1 else node
                if isinstance(node, ScalarNode) and node.ranged and node.enum is None:
                    out[key] = (*node.bounds, child)
                elif (
                    child.__class__ is ScalarNode
                    and child.enum is not None
                    and all(e.__class__ is str for e in child.enum)
                ):
                    out[key] = frozenset(child.enum)
                else:
                    out[key] = True if child.trivial else child
            out.update(self.renames)
            self._plan = out
        return self._plan

    def setup(self, spec: dict, name: str | None, compile_) -> None:
        self.props = {k: compile_(v, None) for k, v in spec["object"].items()}
        self.required = frozenset(spec.get("required", ()))
        self.closed = bool(spec.get("closed"))
        self.before = translate.BEFORE.get(name or "")
        self.before_keys = translate.BEFORE_KEYS.get(name or "")
        self.after = translate.AFTER.get(name or "")
        for key, rule in translate.AFTER_KEY.get(name or "", {}).items():
            if key in self.props:
                self.props[key] = ThenNode(self.props[key], rule)
        self.renames = {k: t for k, t in translate.RENAMES.items() if t in self.props and k not in self.props}
        self.targets = frozenset(self.renames.values())

    def score(self, value: Any) -> int:
        """How well an object fits this branch, to choose among anyOf branches: a discriminating (enum) key
        that matches weighs most (one that does not, against), then the required keys present (missing, against),
        then every other key the branch keeps. Keys the branch would drop weigh nothing, so unknown keys never
        make a branch that drops the known ones win."""
        if not isinstance(value, dict):
            return 0
        s = 0
        props = self.props
        for k, v in value.items():
            child = props.get(k)
            if child is None:
                s += not self.closed  # kept by an open object
            elif v is None and not child.accepts_null:
                continue  # dropped by every branch
            elif (enum := getattr(child, "enum", None)) is not None:
                s += 100 if v in enum else -100
            elif kind_of(v) in child.kinds:
                s += 2
        for k in self.required:
            s += 10 if k in value else -10
        return s

    def fix(self, value: Any, fx, path: tuple) -> Any:
        if not isinstance(value, dict) or len(path) > MAX_DEPTH:
            return value
        if self.before is not None and (self.before_keys is None or not value.keys().isdisjoint(self.before_keys)):
            self.before(value, fx, path)
        renames = self.renames
        plan = self._plan if self._plan is not None else self.plan()
        # the rename targets repaired, tracked only when a rename may repair its target ahead of its turn
        done: set | None = set() if renames and not value.keys().isdisjoint(renames) else None
        for key in list(value):
            if done is not None and key in done:
                continue
            p = plan.get(key)
            if p is None:
                if self.closed:
                    del value[key]
                    if path or key.__class__ is not str or not key:
                        fx.add(DROPPED, path + (key,))
                    else:  # a top-level key, most drops: fx.add's common case, without the call
                        fx.changes.append(_change(Change, (DROPPED, key, "")))
                continue
            if p.__class__ is str:
                v, t = value[key], plan[p]  # (t: the target's plan, its child last when it is a number with limits)
                if (  # _rename's common case, without the call: an integer within the limits, the target not sent
                    v.__class__ is int
                    and t.__class__ is tuple
                    and p not in value
                    and t[0] <= v <= t[2]
                    and t[1] < v < t[3]
                    and "integer" in t[4].kinds
                ):
                    del value[key]
                    value[p] = v
                    if path:
                        fx.add(RENAMED, path + (key,), p)
                    else:
                        fx.changes.append(_change(Change, (RENAMED, key, p)))
                    done.add(p)  # type: ignore[union-attr]
                else:
                    self._rename(value, key, p, fx, path, done)  # type: ignore[arg-type]
                continue
            if done is not None and key in self.targets:
                done.add(key)
            v = value[key]
            cls = p.__class__
            if p is True:  # a trivial child takes any value but null
                if v is not None:
                    continue
                p = self.props[key]
            elif cls is tuple:
                if (v.__class__ is float or v.__class__ is int) and p[0] <= v <= p[2] and p[1] < v < p[3]:
                    continue  # a number within its limits
                p = p[4]
            elif cls is frozenset:
                if v.__class__ is str and v in p:
                    continue  # one of the enum's strings
                p = self.props[key]
            elif cls is AnyOfNode and v is not None and p.by_type.get(v.__class__, _UNSEEN) is None:
                continue  # a type no branch repairs (AnyOfNode.fix would return it as it is)
            self._fix_key(value, key, p, fx, path)
        if self.after is not None and fx.conversation:
            reason = self.after(value)
            if reason:
                return Drop(reason)
        return value

    def _fix_key(self, value: dict, key: str, child: Node, fx, path: tuple) -> None:
        """Repair value[key] in place: replaced, dropped (unless required) or kept."""
        v = value[key]
        if v is None:
            if not child.accepts_null and key not in self.required:
                del value[key]
                fx.add(DROPPED, path + (key,), "null")
            return
        if child.trivial:
            return
        new = child.fix(v, fx, path + (key,))
        if new is v:
            return
        if isinstance(new, Drop):
            if key not in self.required:
                del value[key]
                fx.add(DROPPED, path + (key,), new.reason)
        else:
            value[key] = new

    def _rename(self, value: dict, key: str, target: str, fx, path: tuple, done: set) -> None:
        """An OpenAI key whose Mistral name is target. The value the client sent under target wins when Mistral
        takes it (after its own repair); otherwise (absent, null, dropped or of a type Mistral does not take
        there) the renamed value takes its place if it is valid. The same in any key order; never raises.
        (fix() does the common case itself, an integer within the target's limits: keep the two alike.)"""
        child = self.props[target]
        if target in value and target not in done:
            done.add(target)  # repair the target first, whichever key comes first
            self._fix_key(value, target, child, fx, path)
        v = value.pop(key)
        old = value.get(target)
        if old is not None and (KINDS.get(old.__class__) or kind_of(old)) in child.kinds:
            fx.add(DROPPED, path + (key,), f"{target} also sent")
            return
        if v is None:
            if target in value or not child.accepts_null:
                fx.add(DROPPED, path + (key,), "null")
            else:
                value[target] = None
                fx.add(RENAMED, path + (key,), target)
            return
        if (KINDS.get(v.__class__) or kind_of(v)) not in child.kinds:
            fx.add(DROPPED, path + (key,), f"not a valid {target}")
            return
        p = (self._plan or self.plan())[target]
        if child.trivial or (
            p.__class__ is tuple
            and (v.__class__ is float or v.__class__ is int)
            and p[0] <= v <= p[2]
            and p[1] < v < p[3]
        ):
            repairs: list = []  # nothing to repair (a number within its limits, as in fix()): the common case
            new = v
        else:
            mark = len(fx.changes)
            new = child.fix(v, fx, path + (target,))
            repairs = fx.changes[mark:]  # recorded after the renaming, or not at all when the value is dropped
            del fx.changes[mark:]
            if isinstance(new, Drop):
                fx.add(DROPPED, path + (key,), new.reason)
                return
        if old is not None:  # sent under Mistral's name too, as a type Mistral does not take there
            fx.add(DROPPED, path + (target,), f"not valid; {key} used instead")
        if path:
            fx.add(RENAMED, path + (key,), target)
        else:  # a top-level key (keys are strings, renamed ones never empty): fx.add's common case, without the call
            fx.changes.append(_change(Change, (RENAMED, key, target)))
        if repairs:
            fx.changes.extend(repairs)
        value[target] = new
        done.add(target)


class ThenNode(Node):
    """A key's node, then a conversation rule (translate.AFTER_KEY) on the value it repaired."""

    __slots__ = ("node", "rule")
    kinds = property(lambda self: self.node.kinds)  # (read when used: the node may still be being compiled)
    accepts_null = property(lambda self: self.node.accepts_null)
    enum = property(lambda self: getattr(self.node, "enum", None))

    def __init__(self, node: Node, rule) -> None:
        self.node, self.rule = node, rule

    def fix(self, value: Any, fx, path: tuple) -> Any:
        new = self.node.fix(value, fx, path)
        if fx.conversation and new.__class__ is not Drop:
            self.rule(new, fx, path)
        return new


class ArrayNode(Node):
    kinds = frozenset({"array"})

    def __init__(self) -> None:
        self.items: Node = AnyNode()
        self.union: UnionNode | None = None  # items, when they are a union (messages): chosen here, one call less

    def setup(self, spec: dict, compile_) -> None:
        self.items = compile_(spec["array"], None)
        self.trivial = self.items.trivial
        self.union = self.items if isinstance(self.items, UnionNode) else None

    def score(self, value: Any) -> int:
        if not isinstance(value, list):
            return 0
        return 2 + (kind_of(value[0]) in self.items.kinds) * 2 if value else 1

    def fix(self, value: Any, fx, path: tuple) -> Any:
        if not isinstance(value, list):
            return value
        items = self.items
        if items.trivial or len(path) > MAX_DEPTH:
            return value
        kept: list | None = None  # the items kept, from the first removal on (a del per removal is quadratic)
        union = self.union
        for i, v in enumerate(value):
            if union is not None and v.__class__ is dict:  # UnionNode.fix's common case: a known tag
                tag = v.get(union.by)
                node = union.map.get(tag) if tag.__class__ is str else None
                new = (items if node is None else node).fix(v, fx, path + (i,))
            else:
                new = items.fix(v, fx, path + (i,))
            if isinstance(new, Drop):
                if kept is None:
                    kept = value[:i]
                fx.add(REMOVED, path + (i,), new.reason)
            elif kept is not None:
                kept.append(new)
            elif new is not v:
                value[i] = new
        if kept is not None:
            value[:] = kept
        return value


class UnionNode(Node):
    kinds = frozenset({"object"})
    by: str  # the key that tells the shapes apart (set by setup, like map and aliases)
    map: dict[str, Node]

    def setup(self, spec: dict, compile_) -> None:
        self.by = spec["union"]
        self.map = {tag: compile_(node, None) for tag, node in spec["map"].items()}
        self.aliases = translate.TAG_ALIASES.get(self.by, {})

    def score(self, value: Any) -> int:
        if not isinstance(value, dict):
            return 0
        tag = value.get(self.by)
        return 20 if isinstance(tag, str) and (tag in self.map or tag in self.aliases) else 1

    def fix(self, value: Any, fx, path: tuple) -> Any:
        # (ArrayNode.fix does the common case itself, a known tag, for the items of an array: keep the two alike)
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


_UNSEEN = object()


class AnyOfNode(Node):
    def __init__(self) -> None:
        self.options: list[Node] = []
        self.by_kind: dict[str, tuple[Node, ...]] = {}
        # Python type of a value -> None (no branch takes it, or the one that does needs no repair), the one
        # branch that takes it, or the branches to choose from; filled as types are met (kind_of is by type)
        self.by_type: dict[type, Any] = {}

    def setup(self, spec: dict, compile_) -> None:
        self.options = [compile_(o, None) for o in spec["anyof"]]
        self.accepts_null = any(o.accepts_null for o in self.options)
        self.kinds = frozenset().union(*(o.kinds for o in self.options))
        self.trivial = all(o.trivial for o in self.options)
        # kind of value -> the branches that take it, in order: most kinds have one, so no scoring
        self.by_kind = {k: tuple(o for o in self.options if k in o.kinds) for k in self.kinds}

    def score(self, value: Any) -> int:
        return max((o.score(value) for o in self.options), default=0)

    def fix(self, value: Any, fx, path: tuple) -> Any:
        branch = self.by_type.get(value.__class__, _UNSEEN)
        if branch is _UNSEEN:
            branch = self._branches(value)
        if branch is None:
            return value  # fits no branch (left for Mistral to judge), or needs no repair
        if branch.__class__ is tuple:
            branch = self._best(branch, value)
            if branch.trivial:
                return value
        return branch.fix(value, fx, path)

    def _branches(self, value: Any) -> Any:
        options = self.by_kind.get(kind_of(value))
        if options is None or (len(options) == 1 and options[0].trivial):
            branch = None
        else:
            branch = options[0] if len(options) == 1 else options
        self.by_type[value.__class__] = branch
        return branch

    @staticmethod
    def _best(options: tuple, value: Any) -> Node:
        """The best fit; the first on ties (so an enum value Mistral lacks gets dropped by the first enum)."""
        best = options[0]
        best_score = best.score(value)
        for o in options[1:]:
            s = o.score(value)
            if s > best_score:
                best, best_score = o, s
        return best
