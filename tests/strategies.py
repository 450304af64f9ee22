"""Hypothesis strategies for the pure core, generated from the compiled rules (mistral_compat/rules.json).

* valid(node)            values Mistral accepts for a rules node, with mistral-common's extra conversation
                         constraints (tools/messages/ids) so that fake_mistral.validate() accepts whole bodies;
* dirty_case(endpoint)   a valid body, the same body "dirtied" the way OpenAI clients do it (at any depth),
                         and what the rewriter must turn the dirty body back into;
* fuzz_body()            bodies built from the spec's field names, OpenAI-only names and arbitrary JSON;
* emit(value, style)     JSON text in many styles (indent, ASCII escapes, key order, float spellings),
                         with Lit number literals written verbatim.

The generators only know the rules language documented in mistral_compat/spec.py; the handful of
OpenAI->Mistral translations the dirtier produces are the documented ones in mistral_compat/translate.py.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import random
import string
from decimal import Decimal
from typing import Any, NamedTuple

from hypothesis import strategies as st

from mistral_compat import toolids, translate
from mistral_compat.rules import BUILTIN

RULES_DOC = json.loads(BUILTIN.read_text(encoding="utf-8"))
SCHEMAS: dict = RULES_DOC["schemas"]
ENDPOINTS: dict = RULES_DOC["endpoints"]

ABSENT = object()

# Core bugs the strategies steer around (each with a strict xfail test in test_properties.py); remove a name
# once the core is fixed, so the generated bodies cover that case again.
KNOWN_BUGS: set[str] = set()

# Endpoints where mistral-common's conversation rules apply (what fake_mistral enforces); elsewhere the same
# messages are accepted as they are, so the conversation repairs must not touch them.
CONVERSATION_ENDPOINTS = ("chat/completions", "agents/completions")


# ---------------------------------------------------------------------------------------------------------
# Number literals kept verbatim


class Lit:
    """A JSON number literal written as is, e.g. 1.0000000000000001 or 1e400 (a double can't hold it)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    @property
    def value(self) -> float:
        return float(self.text)

    def __repr__(self) -> str:
        return f"Lit({self.text!r})"


_TRICKY = [
    "1.0000000000000001",
    "0.70",
    "1E2",
    "2.5e-8",
    "1e-400",
    "-0.0",
    "0.1e1",
    "0.30000000000000004",
    "123456789012345678901234567890.5",
    "9007199254740993.0",
    "1e400",
    "-1e400",
    "1.7976931348623159e308",
    "4.9e-325",
    "100e-2",
]


@st.composite
def _decimal_literal(draw):
    sign = draw(st.sampled_from(["", "", "-"]))
    whole = draw(st.sampled_from(["0", "1", "2"]) | st.integers(0, 10**30).map(str))
    frac = draw(st.text(string.digits, min_size=1, max_size=24))
    exp = draw(st.none() | st.integers(-30, 30))
    e = "" if exp is None else draw(st.sampled_from(["e", "E"])) + str(exp)
    return f"{sign}{whole}.{frac}{e}"


@functools.lru_cache(maxsize=None)
def lits(finite: bool = True) -> st.SearchStrategy:
    s = st.one_of(st.sampled_from(_TRICKY), _decimal_literal()).map(Lit)
    return s.filter(lambda v: math.isfinite(v.value)) if finite else s


# ---------------------------------------------------------------------------------------------------------
# JSON text in several styles


class Style(NamedTuple):
    indent: int | None = None
    ascii: bool = False
    spaces: bool = False
    order: str = "as-is"  # as-is | sorted | reversed | shuffled
    floats: str = "repr"  # repr | zeros | upper | short-exp : all spell the same decimal value
    seed: int = 0
    pad: str = ""  # whitespace around the document


COMPACT = Style()

styles = st.builds(
    Style,
    indent=st.sampled_from([None, None, 0, 1, 2, 4]),
    ascii=st.booleans(),
    spaces=st.booleans(),
    order=st.sampled_from(["as-is", "sorted", "reversed", "shuffled"]),
    floats=st.sampled_from(["repr", "zeros", "upper", "short-exp"]),
    seed=st.integers(0, 2**32 - 1),
    pad=st.sampled_from(["", " ", "\n", "\r\n\t "]),
)


def _float_text(f: float, how: str) -> str:
    r = repr(f)
    if how == "zeros" and "e" not in r:
        return r + "000"
    if how == "upper":
        return r.upper()
    if how == "short-exp" and "e" in r:
        mant, exp = r.split("e")
        return f"{mant}e{int(exp)}"
    return r


def emit(value: Any, style: Style = COMPACT) -> bytes:
    """value -> JSON bytes in the given style (UTF-8)."""
    rng = random.Random(style.seed)
    item_sep = ", " if style.spaces and style.indent is None else ","
    key_sep = ": " if style.spaces or style.indent is not None else ":"

    def out(x: Any, level: int) -> str:
        if isinstance(x, Lit):
            return x.text
        if x is None:
            return "null"
        if x is True:
            return "true"
        if x is False:
            return "false"
        if isinstance(x, int):
            return str(x)
        if isinstance(x, float):
            return _float_text(x, style.floats)
        if isinstance(x, str):
            return _string(x)
        if isinstance(x, list):
            parts = [out(v, level + 1) for v in x]
            return wrap("[", "]", parts, level)
        if isinstance(x, dict):
            keys = list(x)
            if style.order == "sorted":
                keys.sort()
            elif style.order == "reversed":
                keys.reverse()
            elif style.order == "shuffled":
                rng.shuffle(keys)
            parts = [_string(k) + key_sep + out(x[k], level + 1) for k in keys]
            return wrap("{", "}", parts, level)
        raise TypeError(f"cannot emit {x!r}")

    def _string(x: str) -> str:  # lone surrogates can only be sent as \u escapes
        return json.dumps(x, ensure_ascii=style.ascii or any("\ud800" <= c <= "\udfff" for c in x))

    def wrap(open_: str, close: str, parts: list, level: int) -> str:
        if not parts:
            return open_ + close
        if style.indent is None:
            return open_ + item_sep.join(parts) + close
        inner = "\n" + " " * (style.indent * (level + 1))
        return open_ + inner + ("," + inner).join(parts) + "\n" + " " * (style.indent * level) + close

    return (style.pad + out(value, 0) + style.pad).encode("utf-8")


# ---------------------------------------------------------------------------------------------------------
# The rules language, read independently of the core


def resolve(node: Any, name: str | None = None) -> tuple[Any, str | None]:
    while isinstance(node, dict) and "ref" in node:
        name = node["ref"]
        node = SCHEMAS[name]
    return node, name


def is_messages(items: Any) -> bool:
    return isinstance(items, dict) and items.get("union") == "role"


def _num(v: Any):
    if isinstance(v, Lit):
        return v.value
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    return None


def conforms(node: Any, v: Any) -> bool:
    """Whether v fits the rules node (the rules' own view of validity)."""
    node, _ = resolve(node)
    if node == "any":
        return True
    if "object" in node:
        if not isinstance(v, dict):
            return False
        props = node["object"]
        if any(r not in v for r in node.get("required", ())):
            return False
        if node.get("closed") and any(k not in props for k in v):
            return False
        return all(conforms(props[k], x) for k, x in v.items() if k in props)
    if "array" in node:
        return isinstance(v, list) and all(conforms(node["array"], x) for x in v)
    if "union" in node:
        tag = v.get(node["union"]) if isinstance(v, dict) else None
        return isinstance(tag, str) and tag in node["map"] and conforms(node["map"][tag], v)
    if "anyof" in node:
        return any(conforms(o, v) for o in node["anyof"])
    t = node["type"]
    ok = {
        "string": isinstance(v, str),
        "integer": isinstance(v, int) and not isinstance(v, bool),
        "number": _num(v) is not None,
        "boolean": isinstance(v, bool),
        "null": v is None,
        "object": isinstance(v, dict),
    }[t]
    if not ok:
        return False
    if "enum" in node and v not in node["enum"]:
        return False
    n = _num(v)
    if n is not None and t in ("integer", "number"):
        if "min" in node and n < node["min"]:
            return False
        if "max" in node and n > node["max"]:
            return False
        if "xmin" in node and n <= node["xmin"]:
            return False
        if "xmax" in node and n >= node["xmax"]:
            return False
    return True


def accepts_null(node: Any) -> bool:
    node, _ = resolve(node)
    if node == "any":
        return True
    if "anyof" in node:
        return any(accepts_null(o) for o in node["anyof"])
    return isinstance(node, dict) and node.get("type") == "null"


def enum_only(node: Any) -> tuple[str | None, list] | None:
    """(enum schema name, values) when every non-null branch of node is one string enum, else None."""
    node, name = resolve(node)
    if isinstance(node, dict) and "anyof" in node:
        branches = [o for o in node["anyof"] if resolve(o)[0] != {"type": "null"}]
        if len(branches) != 1:
            return None
        return enum_only(branches[0])
    if isinstance(node, dict) and node.get("type") == "string" and "enum" in node:
        return name, node["enum"]
    return None


def bounded_scalar(node: Any) -> dict | None:
    """The integer/number scalar (with bounds) behind node, else None."""
    node, _ = resolve(node)
    if isinstance(node, dict) and "anyof" in node:
        found = [bounded_scalar(o) for o in node["anyof"]]
        found = [f for f in found if f]
        return found[0] if len(found) == 1 else None
    if (
        isinstance(node, dict)
        and node.get("type") in ("integer", "number")
        and any(k in node for k in ("min", "max", "xmin", "xmax"))
    ):
        return node
    return None


def _all_property_names() -> set:
    names: set = set()

    def walk(n: Any) -> None:
        if isinstance(n, dict):
            if "object" in n:
                names.update(n["object"])
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(SCHEMAS)
    return names


PROPERTY_NAMES = sorted(_all_property_names())


# ---------------------------------------------------------------------------------------------------------
# Leaves

text = st.text(max_size=6)
nonempty_text = st.text(min_size=1, max_size=6)
ALNUM = string.ascii_letters + string.digits
function_names = st.one_of(
    st.text(ALNUM + "_-", min_size=1, max_size=12), st.text(ALNUM + "_-", min_size=64, max_size=64)
)
uuids = st.uuids().map(str)

# OpenAI-only names: top level, messages, chunks, tools.
OPENAI_TOP = [
    "stream_options",
    "user",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "store",
    "modalities",
    "verbosity",
    "audio",
    "web_search_options",
    "reasoning",
    "safety_identifier",
    "prompt_cache_retention",
    "echo",
    "best_of",
    "suffix",
    "min_tokens",
    "model",
    "temperature",
    "top_p",
    "n",
    "service_tier",
    "metadata",
    "parallel_tool_calls",
    "encoding_format",
    "stream",
]
OPENAI_MESSAGE = [
    "name",
    "refusal",
    "audio",
    "function_call",
    "reasoning_content",
    "annotations",
    "tool_call_id",
    "tool_calls",
    "cache_control",
    "reasoning",
    "thinking_blocks",
]
OPENAI_MISC = [
    "cache_control",
    "index",
    "strict",
    "extra",
    "name",
    "detail",
    "format",
    "filename",
    "id",
    "providerOptions",
    "annotations",
    "logprobs",
    "x-foo",
    "",
]
SPECIAL_KEYS = set(translate.RENAMES) | {"functions", "function_call"}
TAGS = [
    "user",
    "assistant",
    "system",
    "tool",
    "developer",
    "function",
    "text",
    "image_url",
    "input_audio",
    "file",
    "thinking",
    "reference",
    "document_url",
    "tool_reference",
    "web_search",
    "json_schema",
    "json_object",
    "content",
    "auto",
    "none",
    "any",
    "required",
    "max",
    "xhigh",
]

# Tool-call ids: valid ones, some of them the 9-character form of an OpenAI id (to provoke collisions).
CALL_IDS = [
    "call_Qx8m2T4s1bC9dE7fG6hJ5kL3",
    "call_abc123def456ghi789jkl012",
    "call_ZZZZZZZZZZZZZZZZZZZZZZZZ",
    "call_000000000000000000000001",
    "toolu_01A09q90qw90lq917835lq9",
    "3f1c4c2e-0000-4000-8000-000000000000",
    "call_1",
    "call-é-ü",
]
VALID_IDS = ["abcDEF123", "A1b2C3d4E", "000000000", "zzzzzzzzz"] + [toolids.derive(c) for c in CALL_IDS[:4]]
valid_ids = st.one_of(st.sampled_from(VALID_IDS), st.text(ALNUM, min_size=9, max_size=9))
openai_ids = st.one_of(
    st.sampled_from(CALL_IDS),
    st.text(ALNUM, min_size=24, max_size=24).map(lambda s: "call_" + s),
    st.text(min_size=1, max_size=30).filter(lambda s: not toolids.is_valid(s)),
)


@functools.lru_cache(maxsize=None)
def json_values(keys: st.SearchStrategy | None = None, max_leaves: int = 8, finite: bool = False):
    """Arbitrary JSON, keys biased towards names the rewriter knows (inside "any" they must be left alone)."""
    if keys is None:
        keys = st.one_of(st.sampled_from(PROPERTY_NAMES + OPENAI_TOP + OPENAI_MESSAGE + sorted(SPECIAL_KEYS)), text)
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        text,
        st.sampled_from(TAGS + CALL_IDS),
        lits(finite=finite),
    )
    return st.recursive(
        scalars,
        lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(keys, c, max_size=3)),
        max_leaves=max_leaves,
    )


@functools.lru_cache(maxsize=None)
def json_objects():
    return st.dictionaries(st.one_of(st.sampled_from(PROPERTY_NAMES + OPENAI_TOP), text), json_values(), max_size=3)


# ---------------------------------------------------------------------------------------------------------
# Valid values, from the rules


class Always(NamedTuple):
    strategy: st.SearchStrategy


class Maybe(NamedTuple):
    strategy: st.SearchStrategy


NEVER = "never"

EMPTY_PARAMETERS = copy.deepcopy(translate.EMPTY_PARAMETERS)  # never hand out the core's own object

# Constraints outside the rules: the real schema (uuid format, minItems) and mistral-common's validator.
OVERRIDES: dict[str, dict[str, Any]] = {
    "FileChunk": {"file_id": uuids},
    "DocumentLibraryTool": {"library_ids": st.lists(text, min_size=1, max_size=3)},
    "Function": {
        "name": function_names,
        "parameters": st.one_of(st.builds(copy.deepcopy, st.just(EMPTY_PARAMETERS)), json_objects()),
    },
    "FunctionCall": {"name": function_names},
}

_memo: dict[str, st.SearchStrategy] = {}


def ref(name: str) -> st.SearchStrategy:
    if name not in _memo:
        _memo[name] = st.deferred(lambda: _named(name))
    return _memo[name]


def _named(name: str) -> st.SearchStrategy:
    target = SCHEMAS[name]
    if isinstance(target, dict) and "object" in target:
        return obj(name)
    return valid(target)


def obj(name: str, fields: dict | None = None) -> st.SearchStrategy:
    """A valid object of the named schema; fields: key -> strategy | Always(s) | Maybe(s) | NEVER."""
    spec = SCHEMAS[name]
    fields = {**OVERRIDES.get(name, {}), **(fields or {})}
    required = set(spec.get("required", ()))
    must: dict = {}
    may: dict = {}
    for key, node in spec["object"].items():
        f = fields.get(key)
        if f == NEVER:
            continue
        if isinstance(f, Always):
            must[key] = f.strategy
        elif isinstance(f, Maybe):
            may[key] = f.strategy
        elif f is not None:
            (must if key in required else may)[key] = f
        else:
            (must if key in required else may)[key] = valid(node)
    return st.fixed_dictionaries(must, optional=may)


_valid_memo: dict[str, st.SearchStrategy] = {}


def valid(node: Any) -> st.SearchStrategy:
    key = json.dumps(node, sort_keys=True)
    if key not in _valid_memo:
        _valid_memo[key] = _valid(node)
    return _valid_memo[key]


def _valid(node: Any) -> st.SearchStrategy:
    if node == "any":
        return json_values()
    if "ref" in node:
        return ref(node["ref"])
    if "object" in node:  # inline objects do not occur in the rules, but stay generic
        required = set(node.get("required", ()))
        props = node["object"]
        return st.fixed_dictionaries(
            {k: valid(v) for k, v in props.items() if k in required},
            optional={k: valid(v) for k, v in props.items() if k not in required},
        )
    if "array" in node:
        if is_messages(node["array"]):
            return conversation()
        return st.lists(valid(node["array"]), max_size=3)
    if "union" in node:
        by = node["union"]
        return st.one_of([obj(resolve(n)[1], {by: Always(st.just(tag))}) for tag, n in node["map"].items()])
    if "anyof" in node:
        return st.one_of([valid(o) for o in node["anyof"]])
    return scalar(node)


def scalar(node: dict) -> st.SearchStrategy:
    t = node["type"]
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if t == "string":
        return text
    if t == "boolean":
        return st.booleans()
    if t == "null":
        return st.none()
    if t == "object":
        return json_objects()
    lo, hi = node.get("min"), node.get("max")
    if t == "integer":
        ilo = lo if lo is not None else (math.floor(node["xmin"]) + 1 if "xmin" in node else None)
        ihi = hi if hi is not None else (math.ceil(node["xmax"]) - 1 if "xmax" in node else None)
        return st.integers(min_value=ilo, max_value=ihi)
    flo = lo if lo is not None else node.get("xmin")
    fhi = hi if hi is not None else node.get("xmax")
    floats = st.floats(
        min_value=flo,
        max_value=fhi,
        exclude_min="xmin" in node and lo is None,
        exclude_max="xmax" in node and hi is None,
        allow_nan=False,
        allow_infinity=False,
    )
    ilo = None if flo is None else math.floor(flo) + (1 if "xmin" in node and lo is None else 0)
    ihi = None if fhi is None else math.ceil(fhi) - (1 if "xmax" in node and hi is None else 0)
    ilo = None if ilo is None else max(ilo, math.ceil(flo))
    ihi = None if ihi is None else min(ihi, math.floor(fhi))
    ints = st.integers(min_value=ilo, max_value=ihi)
    return st.one_of(floats, ints, lits().filter(lambda v: conforms(node, v)))


# --- conversations that mistral-common's serving validator accepts -----------------------------------------

truthy_content = st.one_of(nonempty_text, st.lists(ref("ContentChunk"), min_size=1, max_size=2))


def _assistant_text(prefix: bool):
    return obj(
        "AssistantMessage",
        {
            "role": Always(st.just("assistant")),
            "content": Always(truthy_content),
            "tool_calls": Maybe(st.sampled_from([None, ()]).map(lambda v: v if v is None else [])),
            "prefix": Always(st.just(True)) if prefix else Maybe(st.just(False)),
        },
    )


USER_MSG = obj("UserMessage", {"role": Always(st.just("user"))})
SYSTEM_MSG = obj("SystemMessage", {"role": Always(st.just("system"))})
ASSISTANT_TEXT = _assistant_text(prefix=False)
ASSISTANT_PREFIX = _assistant_text(prefix=True)
ASSISTANT_CALLS = obj(
    "AssistantMessage", {"role": Always(st.just("assistant")), "tool_calls": NEVER, "prefix": Maybe(st.just(False))}
)
TOOL_CALL = obj("ToolCall", {"id": NEVER})
TOOL_MSG = obj(
    "ToolMessage", {"role": Always(st.just("tool")), "tool_call_id": NEVER, "name": Maybe(st.none() | function_names)}
)
_CALL_IDS = st.lists(valid_ids, min_size=1, max_size=3, unique=True)
_BOOLS = st.booleans()


@st.composite
def tool_round(draw, min_results: int):
    """An assistant message with tool calls, then results for some of them (in any order)."""
    ids = draw(_CALL_IDS)
    calls = [{**draw(TOOL_CALL), "id": i} for i in ids]
    assistant = {**draw(ASSISTANT_CALLS), "tool_calls": calls}
    answered = draw(st.permutations(ids))
    keep = max(min_results, draw(st.integers(0, len(ids))))
    return [assistant] + [{**draw(TOOL_MSG), "tool_call_id": i} for i in answered[:keep]]


_ONE = lambda m: [m]  # noqa: E731
_MIDDLE = st.lists(
    st.one_of(USER_MSG.map(_ONE), SYSTEM_MSG.map(_ONE), ASSISTANT_TEXT.map(_ONE), tool_round(0)), max_size=3
)
_FINAL = st.one_of(USER_MSG.map(_ONE), SYSTEM_MSG.map(_ONE), tool_round(1))
_FINAL_AFTER = st.one_of(_FINAL, ASSISTANT_PREFIX.map(_ONE))


@st.composite
def conversation(draw):
    """Messages Mistral serves: non-empty; a lone message is user/system; the last is user, system, tool or an
    assistant prefix; tool results answer the latest assistant's calls, once; ids and names are well formed."""
    flat = [m for b in draw(_MIDDLE) for m in b]
    return flat + draw(_FINAL_AFTER if flat else _FINAL)


def valid_body(endpoint: str, loose: bool = False) -> st.SearchStrategy:
    """Valid bodies; loose: chat moderation/classification inputs with any messages the schema takes (Mistral
    applies the conversation rules to chat and agents completions only)."""
    if loose and endpoint == "chat/moderations":
        return obj("ChatModerationRequest", {"input": st.one_of(LOOSE_MESSAGES, st.lists(LOOSE_MESSAGES, max_size=2))})
    if loose and endpoint == "chat/classifications":
        instruct = obj("InstructRequest", {"messages": LOOSE_MESSAGES})
        return obj("ChatClassificationRequest", {"input": st.one_of(instruct, st.lists(instruct, max_size=2))})
    return valid(ENDPOINTS[endpoint])


LOOSE_MESSAGES = st.lists(
    st.one_of(
        USER_MSG,
        SYSTEM_MSG,
        obj("AssistantMessage", {"role": Always(st.just("assistant"))}),
        obj("ToolMessage", {"role": Always(st.just("tool"))}),
    ),
    max_size=4,
)


# ---------------------------------------------------------------------------------------------------------
# Dirtying a valid body the way OpenAI-compatible clients do


class Dirt:
    """What a dirty_case draw recorded: where tool-call ids are, per messages array (expected coordinates)."""

    def __init__(self, draw, conversation: bool = True) -> None:
        self.draw = draw
        self.conversation = conversation  # an endpoint where the conversation rules apply
        # messages-array path -> ([id paths], {clean ids that were replaced by OpenAI-style ids})
        self.ids: dict[tuple, tuple[list, set]] = {}

    def chance(self, p: float) -> bool:
        return self.draw(_PERMILLE) < p * 1000

    def below(self, n: int) -> int:
        """An integer in [0, n)."""
        return self.draw(_NATURALS) % n


_PERMILLE = st.integers(0, 999)
_NATURALS = st.integers(0, 2**16)


@functools.lru_cache(maxsize=None)
def _subsets(options: tuple, max_size: int) -> st.SearchStrategy:
    return st.lists(st.sampled_from(options), max_size=max_size, unique=True) if options else st.just([])


def _can_be_object(node: Any) -> bool:
    node, _ = resolve(node)
    return (
        node == "any"
        or "object" in node
        or "union" in node
        or node.get("type") == "object"
        or ("anyof" in node and any(_can_be_object(o) for o in node["anyof"]))
    )


def walk(
    cx: Dirt, node: Any, value: Any, path: tuple, name: str | None = None, fragile: bool = False
) -> tuple[Any, Any]:
    """(dirty, expected) for a valid value at path. fragile: an object told apart from other object branches
    of an anyOf only by its keys."""
    node, name = resolve(node, name)
    if node == "any":
        return value, value
    if "object" in node:
        if not isinstance(value, dict):
            return value, value
        return _walk_object(cx, node, name, value, path, fragile and "type" not in value)
    if "array" in node:
        if not isinstance(value, list):
            return value, value
        pairs = [walk(cx, node["array"], v, path + (i,)) for i, v in enumerate(value)]
        dirty, expected = [p[0] for p in pairs], [p[1] for p in pairs]
        if is_messages(node["array"]):
            dirty = _dirty_messages(cx, dirty, expected, path)
        return dirty, expected
    if "union" in node:
        return walk(cx, node["map"][value[node["union"]]], value, path)
    if "anyof" in node:
        fragile = sum(_can_be_object(o) for o in node["anyof"]) > 1
        for o in node["anyof"]:
            if conforms(o, value):
                return walk(cx, o, value, path, fragile=fragile)
        raise AssertionError(f"strategy bug: {value!r} fits no branch of {node!r} at {path}")
    return value, value


JUNK_KEYS = st.lists(st.one_of(st.sampled_from(OPENAI_MISC + OPENAI_MESSAGE), text), max_size=2, unique=True)
UNKNOWN_ENUM_VALUES = st.one_of(st.sampled_from(["flex", "priority", "original", "default", "bogus", ""]), text)


def _walk_object(
    cx: Dirt, node: dict, name: str | None, value: dict, path: tuple, fragile: bool = False
) -> tuple[dict, dict]:
    props = node["object"]
    required = set(node.get("required", ()))
    dirty: dict = {}
    expected: dict = {}
    for k, v in value.items():
        if k in props:
            dirty[k], expected[k] = walk(cx, props[k], v, path + (k,))
        else:  # an open object's own key
            dirty[k] = expected[k] = v
    hook = HOOKS.get(name or "")
    if hook is not None:
        hook(cx, node, dirty, expected)
    draw = cx.draw
    absent = [
        k for k in props if k not in required and k not in dirty and k not in expected and k not in ("type", "role")
    ]
    # null where Mistral takes no null: dropped (also a null "type" where only the keys tell the branch)
    nullable = absent + ["type"] if fragile and "type" in props and "type" not in dirty else absent
    for k in nullable:
        if not accepts_null(props[k]) and cx.chance(0.08):
            dirty[k] = None
    # an enum value Mistral lacks, on an optional field: dropped (ReasoningEffort's alias is translated)
    for k in absent:
        e = enum_only(props[k])
        if e and k not in dirty and cx.chance(0.08):
            enum_name, values = e
            aliases = translate.ENUM_ALIASES.get(enum_name or "", {})
            alias = next(iter(aliases), None)
            if alias is not None and cx.chance(0.5):
                dirty[k], expected[k] = alias, aliases[alias]
            else:
                v = draw(UNKNOWN_ENUM_VALUES)
                if v not in values and v not in aliases:
                    dirty[k] = v
    # unknown keys with any JSON value: dropped from closed objects
    if node.get("closed") and cx.chance(0.25):
        for k in draw(JUNK_KEYS):
            if k not in dirty and k not in props and k not in SPECIAL_KEYS:
                dirty[k] = draw(json_values(max_leaves=4))
    return dirty, expected


# --- per-schema dirt ----------------------------------------------------------------------------------


_INT_DELTAS = st.integers(1, 10**6)
_DELTAS = st.one_of(st.integers(1, 1000), st.floats(min_value=1e-9, max_value=1e6))


def _out_of_range(cx: Dirt, key: str, s: dict) -> tuple[Any, Any]:
    """A value outside s's bounds and what Mistral's limit makes of it (ABSENT: the key is dropped)."""
    draw = cx.draw
    integer = s["type"] == "integer"
    sides = [side for side, keys in (("low", ("min", "xmin")), ("high", ("max", "xmax"))) if any(k in s for k in keys)]
    side = sides[cx.below(len(sides))]
    delta = draw(_INT_DELTAS if integer else _DELTAS)
    step = 1 if integer else translate.EXCLUSIVE_STEP
    if side == "low":
        if "min" in s:
            bound, exclusive = s["min"], False
        else:
            bound, exclusive = s["xmin"], True
        v = bound - delta if not exclusive or draw(_BOOLS) else bound
        if key in translate.UNSET_BELOW_MINIMUM:
            return v, ABSENT
        return v, (bound + step if exclusive else bound)
    if "max" in s:
        bound, exclusive = s["max"], False
    else:
        bound, exclusive = s["xmax"], True
    v = bound + delta if not exclusive or draw(_BOOLS) else bound
    return v, (bound - step if exclusive else bound)


def _as_renamed(key: str, node: Any, v: Any) -> Any:
    """What v sent under an OpenAI name of key becomes when key itself is absent, null or dropped: v (valid),
    Mistral's limit (out of range), or ABSENT (dropped: below a minimum that means "no limit", or not valid)."""
    if v is None:
        return None if accepts_null(node) else ABSENT
    if conforms(node, v):
        return v
    s = bounded_scalar(node)
    n = _num(v)
    if s is None or n is None or not conforms({"type": s["type"]}, v):
        return ABSENT
    step = 1 if s["type"] == "integer" else translate.EXCLUSIVE_STEP
    new = n
    if "min" in s and n < s["min"]:
        new = s["min"]
    elif "xmin" in s and n <= s["xmin"]:
        new = s["xmin"] + step
    if "max" in s and n > s["max"]:
        new = s["max"]
    elif "xmax" in s and n >= s["xmax"]:
        new = s["xmax"] - step
    return ABSENT if new > n and key in translate.UNSET_BELOW_MINIMUM else new


def _request(cx: Dirt, node: dict, dirty: dict, expected: dict) -> None:
    draw = cx.draw
    props = node["object"]
    # OpenAI-only top-level fields
    for k in draw(_subsets(tuple(k for k in OPENAI_TOP if k not in props), 4)):
        if k not in dirty:
            dirty[k] = draw(json_values(max_leaves=4))
    # out-of-range values: clamped to Mistral's limit (max_tokens/min_tokens below 0: dropped)
    for k, child in props.items():
        s = bounded_scalar(child)
        if s is not None and cx.chance(0.15):
            v, e = _out_of_range(cx, k, s)
            dirty[k] = v
            if e is ABSENT:
                expected.pop(k, None)
            else:
                expected[k] = e
    # OpenAI names of Mistral fields: renamed. The value sent under Mistral's name wins when Mistral takes it
    # (after its repair); when it is dropped (max_tokens below 0) or null, the renamed value takes its place.
    for src, target in translate.RENAMES.items():
        if target not in props or not cx.chance(0.4):
            continue
        if dirty.get(target) is not None:
            if draw(_BOOLS):
                dirty[src] = dirty.pop(target)
            else:
                v = dirty[src] = draw(json_values(max_leaves=3))
                if target not in expected:  # the Mistral key is dropped: the renamed value may take its place
                    e = _as_renamed(target, props[target], v)
                    if e is not ABSENT:
                        expected[target] = e
        else:
            s = bounded_scalar(props[target])
            if s is not None and draw(_BOOLS):
                v, e = _out_of_range(cx, target, s)
            else:
                v = e = draw(valid(props[target]))
                if v is None:
                    continue
            dirty[src] = v
            if e is not ABSENT:
                expected[target] = e
            elif target not in dirty:  # dropped (a null sent under Mistral's name stays)
                expected.pop(target, None)
    # OpenAI's deprecated functions/function_call
    if "tools" in props and cx.chance(0.3):
        tools = dirty.get("tools")
        if isinstance(tools, list) and all(
            isinstance(t, dict) and set(t) == {"type", "function"} and t["type"] == "function" for t in tools
        ):
            dirty["functions"] = [t["function"] for t in dirty.pop("tools")]
        choice = expected.get("tool_choice", ABSENT)
        if choice in ("auto", "none"):
            dirty.pop("tool_choice")
            dirty["function_call"] = choice
        elif (
            isinstance(choice, dict)
            and set(choice) == {"type", "function"}
            and choice["type"] == "function"
            and set(choice["function"]) == {"name"}
        ):
            dirty.pop("tool_choice")
            dirty["function_call"] = {"name": choice["function"]["name"]}


_EXTRA_VALUES: dict[str, st.SearchStrategy] = {
    "name": function_names,
    "refusal": st.one_of(st.none(), st.just("")),  # a refusal is only kept when the message said nothing
    "audio": st.one_of(st.none(), st.fixed_dictionaries({"id": text})),
    "function_call": st.one_of(st.none(), st.fixed_dictionaries({"name": function_names, "arguments": text})),
    "annotations": st.lists(json_values(max_leaves=3), max_size=2),
}
_REFUSALS_AFTER_CONTENT = st.one_of(_EXTRA_VALUES["refusal"], nonempty_text)


def _message(cx: Dirt, node: dict, dirty: dict, expected: dict) -> None:
    draw = cx.draw
    props = node["object"]
    for k in draw(_subsets(tuple(k for k in OPENAI_MESSAGE if k not in props), 3)):
        strategy = _EXTRA_VALUES.get(k)
        if k == "refusal" and expected.get("content"):
            strategy = _REFUSALS_AFTER_CONTENT  # content wins over a refusal
        dirty[k] = draw(strategy if strategy is not None else json_values(max_leaves=4))


def _system(cx: Dirt, node: dict, dirty: dict, expected: dict) -> None:
    if cx.chance(0.4):
        dirty["role"] = "developer"
    _message(cx, node, dirty, expected)


def _audio_chunk(cx: Dirt, node: dict, dirty: dict, expected: dict) -> None:
    if isinstance(dirty.get("input_audio"), str) and cx.chance(0.5):
        dirty["input_audio"] = {"data": dirty["input_audio"], "format": ("wav", "mp3")[cx.below(2)]}


def _file_chunk(cx: Dirt, node: dict, dirty: dict, expected: dict) -> None:
    if "file_id" in dirty and cx.chance(0.5):
        file = {"file_id": dirty.pop("file_id")}
        if cx.draw(_BOOLS):
            file["filename"] = cx.draw(text)
        dirty["file"] = file


def _function(cx: Dirt, node: dict, dirty: dict, expected: dict) -> None:
    if expected.get("parameters") == EMPTY_PARAMETERS and cx.chance(0.5):
        if cx.draw(_BOOLS):
            del dirty["parameters"]
        else:
            dirty["parameters"] = None


_CUTS = st.lists(st.integers(0, 8), max_size=3)


def _prediction(cx: Dirt, node: dict, dirty: dict, expected: dict) -> None:
    content = dirty.get("content")
    if isinstance(content, str) and cx.chance(0.5):
        cuts = sorted(min(c, len(content)) for c in cx.draw(_CUTS))
        bounds = [0, *cuts, len(content)]
        dirty["content"] = [{"type": "text", "text": content[a:b]} for a, b in zip(bounds, bounds[1:])]


def _reasoning_effort_alias(cx: Dirt, node: dict, dirty: dict, expected: dict) -> None:
    for k, child in node["object"].items():
        e = enum_only(child)
        if e and dirty.get(k) in translate.ENUM_ALIASES.get(e[0] or "", {}).values() and cx.chance(0.5):
            dirty[k] = next(a for a, m in translate.ENUM_ALIASES[e[0]].items() if m == dirty[k])


def _both(*hooks):
    def run(cx, node, dirty, expected):
        for h in hooks:
            h(cx, node, dirty, expected)

    return run


HOOKS = {
    "ChatCompletionRequest": _both(_request, _reasoning_effort_alias),
    "AgentsCompletionRequest": _both(_request, _reasoning_effort_alias),
    "FIMCompletionRequest": _request,
    "EmbeddingRequest": _request,
    "ClassificationRequest": _request,
    "ChatModerationRequest": _request,
    "ChatClassificationRequest": _request,
    "OCRRequest": _request,
    "SystemMessage": _system,
    "UserMessage": _message,
    "AssistantMessage": _message,
    "ToolMessage": _message,
    "AudioChunk": _audio_chunk,
    "FileChunk": _file_chunk,
    "Function": _function,
    "Prediction": _prediction,
}


def _id_positions(messages: list, path: tuple):
    for i, m in enumerate(messages):
        if m.get("role") == "assistant" and isinstance(m.get("tool_calls"), list):
            for j, call in enumerate(m["tool_calls"]):
                if "id" in call:
                    yield (i, "tool_calls", j, "id"), call["id"]
        if m.get("role") == "tool" and isinstance(m.get("tool_call_id"), str):
            yield (i, "tool_call_id"), m["tool_call_id"]


def _set(obj: Any, sub: tuple, value: Any) -> None:
    for p in sub[:-1]:
        obj = obj[p]
    obj[sub[-1]] = value


def _dirty_messages(cx: Dirt, dirty: list, expected: list, path: tuple) -> list:
    """OpenAI-style tool-call ids and assistant messages that said nothing: mapped and removed where the
    conversation rules apply, and otherwise (moderation, classification) kept as Mistral accepts them there."""
    draw = cx.draw
    positions = list(_id_positions(expected, path))
    clean_ids = sorted({v for _, v in positions})
    mapping: dict = {}
    for old in clean_ids:
        if draw(_BOOLS):
            new = draw(openai_ids)
            while new in mapping.values():
                new += "_"
            mapping[old] = new
    for sub, old in positions:
        if old in mapping:
            _set(dirty, sub, mapping[old])
            if not cx.conversation:
                _set(expected, sub, mapping[old])
    if cx.conversation:
        cx.ids[path] = ([path + sub for sub, _ in positions], set(mapping))
    # assistant messages that said nothing (openai-python's message dumped back)
    out = list(dirty)
    for _ in range(cx.below(3) if cx.chance(0.3) else 0):
        empty = {"role": "assistant", "content": [None, "", []][cx.below(3)]}
        for k, choices in (
            ("refusal", [None, ""]),
            ("tool_calls", [None, []]),
            ("audio", [None]),
            ("function_call", [None]),
            ("annotations", [[]]),
            ("prefix", [False]),
        ):
            if draw(_BOOLS):
                empty[k] = choices[cx.below(len(choices))]
        at = cx.below(len(out) + 1)
        out.insert(at, empty)
        if not cx.conversation:  # kept, without the keys Mistral does not know
            expected.insert(at, {k: v for k, v in empty.items() if k in ("role", "content", "tool_calls", "prefix")})
    return out


class Case(NamedTuple):
    endpoint: str
    clean: Any
    dirty: Any
    expected: Any
    ids: dict


@st.composite
def dirty_case(draw, endpoint: str):
    conversation = endpoint in CONVERSATION_ENDPOINTS
    clean = draw(valid_body(endpoint, loose=not conversation))
    cx = Dirt(draw, conversation)
    dirty, expected = walk(cx, ENDPOINTS[endpoint], clean, ())
    return Case(endpoint, clean, dirty, expected, cx.ids)


# ---------------------------------------------------------------------------------------------------------
# Fuzz: the spec's names, OpenAI-only names and arbitrary JSON, and valid bodies with a part replaced

_SURROGATES = st.sampled_from(["\ud800", "\udfff", "\ud83d", "\ude00\ud83d"])
fuzz_text = st.one_of(text, st.tuples(text, _SURROGATES, text).map("".join))
FUZZ_KEYS = st.one_of(st.sampled_from(PROPERTY_NAMES + OPENAI_TOP + OPENAI_MESSAGE + sorted(SPECIAL_KEYS)), fuzz_text)
fuzz_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        fuzz_text,
        st.sampled_from(TAGS + CALL_IDS + VALID_IDS),
        lits(finite=False),
    ),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(FUZZ_KEYS, c, max_size=5)),
    max_leaves=25,
)


def fuzz_body() -> st.SearchStrategy:
    return st.dictionaries(FUZZ_KEYS, fuzz_values, max_size=8)


@st.composite
def mutated_body(draw, endpoint: str):
    """A valid body with a few places replaced, removed or added (with values of any JSON type)."""
    body = copy.deepcopy(draw(valid_body(endpoint)))  # drawn values may share objects: never mutate them
    for _ in range(draw(st.integers(1, 4))):
        containers = []

        def collect(x):
            if isinstance(x, (dict, list)):
                containers.append(x)
                for v in x.values() if isinstance(x, dict) else x:
                    collect(v)

        collect(body)
        target = draw(st.sampled_from(containers))
        action = draw(st.sampled_from(["set", "del", "add"]))
        if isinstance(target, dict):
            if action == "add" or not target:
                target[draw(FUZZ_KEYS)] = draw(fuzz_values)
            else:
                key = draw(st.sampled_from(sorted(target)))
                if action == "del":
                    del target[key]
                else:
                    target[key] = draw(fuzz_values)
        else:
            if action == "add" or not target:
                target.insert(draw(st.integers(0, len(target))), draw(fuzz_values))
            else:
                i = draw(st.integers(0, len(target) - 1))
                if action == "del":
                    del target[i]
                else:
                    target[i] = draw(fuzz_values)
    return body


# ---------------------------------------------------------------------------------------------------------
# Comparing the rewriter's output with what was expected


def canon(x: Any) -> Any:
    """Expected value -> the form json.loads(..., parse_float=Decimal) gives."""
    if isinstance(x, Lit):
        return Decimal(x.text)
    if isinstance(x, float):
        return Decimal(repr(x))
    if isinstance(x, dict):
        return {k: canon(v) for k, v in x.items()}
    if isinstance(x, list):
        return [canon(v) for v in x]
    return x


def _kind(x: Any) -> str:
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int):
        return "int"
    return type(x).__name__


def diff(expected: Any, got: Any, ids: dict) -> list[str]:
    """Differences between expected and got (got parsed with parse_float=Decimal); tool-call ids may be mapped
    consistently to valid ids where the dirty body had an OpenAI-style id."""
    problems: list[str] = []
    at_ids = {p: arr for arr, (paths, _) in ids.items() for p in paths}
    pairs: dict[tuple, list] = {arr: [] for arr in ids}

    def go(e: Any, g: Any, path: tuple) -> None:
        if path in at_ids:
            pairs[at_ids[path]].append((e, g, path))
            return
        if _kind(e) != _kind(g):
            problems.append(f"{path}: expected {e!r}, got {g!r}")
        elif isinstance(e, dict):
            if set(e) != set(g):
                problems.append(f"{path}: keys {sorted(e)} != {sorted(g)}")
            for k in e:
                if k in g:
                    go(e[k], g[k], path + (k,))
        elif isinstance(e, list):
            if len(e) != len(g):
                problems.append(f"{path}: {len(e)} items, got {len(g)}: {g!r}")
            else:
                for i, (a, b) in enumerate(zip(e, g)):
                    go(a, b, path + (i,))
        elif e != g:
            problems.append(f"{path}: expected {e!r}, got {g!r}")

    go(canon(expected), got, ())
    for arr, found in pairs.items():
        replaced = ids[arr][1]
        forward: dict = {}
        backward: dict = {}
        for e, g, path in found:
            if e not in replaced and g != e:
                problems.append(f"{path}: valid tool-call id {e!r} changed to {g!r}")
            if not toolids.is_valid(g):
                problems.append(f"{path}: tool-call id {g!r} is not valid")
            if forward.setdefault(e, g) != g:
                problems.append(f"{path}: id {e!r} mapped to both {forward[e]!r} and {g!r}")
            if backward.setdefault(g, e) != e:
                problems.append(f"{path}: ids {backward[g]!r} and {e!r} both became {g!r}")
    return problems
