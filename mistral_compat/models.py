"""Model names for requests redirected to Mistral (issue 16): the `mistral_model_map` option, the built-in
default map for requests redirected from api.openai.com, the renaming of a request body's `model`, and the
OpenAI names added to Mistral's `GET /v1/models` list. Pure: no I/O, no mitmproxy.

Matching rules (ModelMap.map):
- A `from` without `*` or `?` is an exact name; with them it is a glob: `*` is any run of characters
  (also none), `?` exactly one; every other character stands for itself (names may hold only letters,
  digits and - . _ : / @ +, so there are no `[...]` classes). Matching is case-sensitive, as OpenAI's and
  Mistral's model names are.
- Exact names are looked up first, then the globs in the order given: the first glob that matches wins,
  so put the narrower globs (`gpt-4o-mini*`) before the wider ones (`gpt-4o*`). An exact name is always
  narrower than any glob, so where it stands in the list does not matter.
- A combined map (user entries, then the defaults) asks each map in turn: any user entry that matches,
  exact or glob, wins over every default entry. `gpt-4o=gpt-4o` (a name mapped to itself) therefore
  switches a default off: the name is left unchanged.
- map() answers None when the name stays as it is (no entry matches, or the entry maps it to itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from .errors import json_bytes
from .redact import printable

MAX_NAME = 256  # characters of one model name or pattern; a longer name in a request is never mapped
MAX_ENTRIES = 1000  # from=to pairs in one mistral_model_map
MAX_OPTION_TEXT = 1 << 20  # characters of the whole option (its entries together)
MAX_MODEL_LIST = 16 << 20  # bytes of a /v1/models answer merge_models() reads; a larger one is left as it is

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:/@+")
_GLOB_CHARS = frozenset("*?")


class Entry(NamedTuple):
    """One `from=to` pair; why is the reason shown in the README table (built-in entries only)."""

    pattern: str
    target: str
    why: str = ""

    @property
    def is_glob(self) -> bool:
        return "*" in self.pattern or "?" in self.pattern


def _glob_match(pattern: str, name: str) -> bool:
    """`*`/`?` glob matching without regular expressions: at most len(pattern) * len(name) steps whatever
    the pattern (a regex made of several `.*` can take exponential time on a hostile name)."""
    p = s = 0
    star = -1
    mark = 0
    while s < len(name):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == name[s]):
            p += 1
            s += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, s
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            s = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


class _Layer:
    """The entries of one map: exact names in a dict, globs in order (each with its literal prefix, a
    quick test that skips most of them)."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = tuple(entries)
        self.exact: dict[str, str] = {}
        self.globs: list[tuple[str, str, str]] = []  # (literal prefix, pattern, target)
        for e in self.entries:
            if e.is_glob:
                cut = min(i for i in (e.pattern.find("*"), e.pattern.find("?")) if i >= 0)
                self.globs.append((e.pattern[:cut], e.pattern, e.target))
            else:
                self.exact.setdefault(e.pattern, e.target)

    def lookup(self, name: str) -> str | None:
        target = self.exact.get(name)
        if target is not None:
            return target
        for prefix, pattern, target in self.globs:
            if name.startswith(prefix) and _glob_match(pattern, name):
                return target
        return None


class ModelMap:
    """Model names to replace: ModelMap.map('gpt-4o') -> 'mistral-medium-latest' (None: unchanged)."""

    def __init__(self, entries: Iterable[Entry] = (), *, _layers: tuple[_Layer, ...] | None = None) -> None:
        self._layers = _layers if _layers is not None else (_Layer(tuple(entries)),)
        self._cache: dict[str, str | None] = {}
        self.size = sum(len(layer.entries) for layer in self._layers)  # read-only; asked for on every request

    @property
    def entries(self) -> tuple[Entry, ...]:
        """Every entry, in the order they are asked (each map's own order; the user's map first)."""
        return tuple(e for layer in self._layers for e in layer.entries)

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0

    def __repr__(self) -> str:
        return f"ModelMap({len(self)} entries)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelMap) and [lay.entries for lay in self._layers] == [
            lay.entries for lay in other._layers
        ]

    __hash__ = None  # type: ignore[assignment]

    def map(self, name: Any) -> str | None:
        """The Mistral name for a requested model name; None when it stays as it is (no entry matches, the
        entry maps it to itself, or it is not a plain string of a sensible length)."""
        if not isinstance(name, str) or not name or len(name) > MAX_NAME:
            return None
        if name in self._cache:
            return self._cache[name]
        found = None
        for layer in self._layers:
            target = layer.lookup(name)
            if target is not None:
                found = None if target == name else target
                break
        if len(self._cache) >= 512:  # names come from clients: keep the cache bounded
            self._cache.clear()
        self._cache[name] = found
        return found

    def with_defaults(self, defaults: "ModelMap | None" = None) -> "ModelMap":
        """This map with the built-in defaults (or the given map) behind it: this map's entries win."""
        return combine(self, DEFAULT_MAP if defaults is None else defaults)

    def concrete_names(self) -> list[tuple[str, str]]:
        """(name, Mistral name) for every exact (non-glob) name, in order, once each, with the Mistral name
        map() gives it (a user entry may override a default one); names that stay unchanged are left out.
        Glob patterns name no one model, so they are not listed."""
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for e in self.entries:
            if e.is_glob or e.pattern in seen:
                continue
            seen.add(e.pattern)
            target = self.map(e.pattern)
            if target is not None:
                out.append((e.pattern, target))
        return out


def combine(*maps: ModelMap) -> ModelMap:
    """One map asking each given map in turn: combine(user, DEFAULT_MAP) lets every user entry win."""
    return ModelMap(_layers=tuple(layer for m in maps for layer in m._layers))


def _check_name(text: str, entry: str, glob_ok: bool) -> None:
    where = f"mistral_model_map entry {printable(entry, 80)}"
    side = "the name before '='" if glob_ok else "the model after '='"
    if len(text) > MAX_NAME:
        raise ValueError(f"{where}: {side} is {len(text)} characters long (at most {MAX_NAME})")
    if not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError(f"{where}: {side} has whitespace or control characters")
    bad = sorted(set(text) - _NAME_CHARS - (_GLOB_CHARS if glob_ok else frozenset()))
    if bad:
        globs = [c for c in bad if c in _GLOB_CHARS]
        if globs and not glob_ok:
            raise ValueError(
                f"{where}: the model after '=' must be a plain model name: {''.join(globs)!r} "
                f"(glob patterns are allowed only before '=')"
            )
        chars = " ".join(printable(repr(c)) for c in bad[:10])
        raise ValueError(
            f"{where}: {side} has characters model names do not use: {chars} "
            f"(letters, digits and - . _ : / @ + only" + (", with * and ? as wildcards)" if glob_ok else ")")
        )
    if not glob_ok and not (text[0].isascii() and text[0].isalnum()):
        raise ValueError(f"{where}: the model after '=' must start with a letter or a digit")


def parse_entry(item: str, why: str = "") -> Entry:
    """One 'from=to' (whitespace around either side ignored) -> Entry; ValueError says what is wrong."""
    where = f"mistral_model_map entry {printable(item, 80)}"
    if "=" not in item:
        raise ValueError(f"{where} has no '=': write it as from=to, e.g. gpt-4o*=mistral-medium-latest")
    left, _, right = item.partition("=")
    left, right = left.strip(), right.strip()
    if not left:
        raise ValueError(f"{where} has nothing before '=' (the model name or glob pattern to replace)")
    if not right:
        raise ValueError(f"{where} has nothing after '=' (the Mistral model to use instead)")
    if "=" in right:
        raise ValueError(f"{where} has more than one '='")
    _check_name(left, item, glob_ok=True)
    _check_name(right, item, glob_ok=False)
    return Entry(left, right, why)


def parse_model_map(entries: Sequence[str]) -> ModelMap:
    """The `mistral_model_map` option -> ModelMap. Each entry is 'from=to'; one entry may also hold several
    separated by commas ('gpt-4o=mistral-medium-latest,gpt-4o-mini=mistral-small-latest'); blank entries
    are skipped. ValueError (naming the entry) for anything that is not a valid pair, for a `from` given
    twice, and for more than MAX_ENTRIES pairs."""
    if isinstance(entries, str):
        entries = [entries]
    elif isinstance(entries, (bytes, bytearray)) or not isinstance(entries, Sequence):
        raise ValueError(f"mistral_model_map must be a list of from=to entries, not {type(entries).__name__}")
    out: list[Entry] = []
    seen: dict[str, str] = {}
    total = 0
    for raw in entries:
        if not isinstance(raw, str):
            raise ValueError(f"mistral_model_map entries must be text (from=to), not {type(raw).__name__}")
        total += len(raw)
        if total > MAX_OPTION_TEXT:
            raise ValueError(f"mistral_model_map is longer than {MAX_OPTION_TEXT} characters")
        for item in raw.split(","):
            if not item.strip():
                continue
            entry = parse_entry(item.strip())
            if entry.pattern in seen:
                raise ValueError(
                    f"mistral_model_map: {printable(entry.pattern, 80)} is given twice (mapped to "
                    f"{printable(seen[entry.pattern], 80)} and to {printable(entry.target, 80)})"
                )
            seen[entry.pattern] = entry.target
            out.append(entry)
            if len(out) > MAX_ENTRIES:
                raise ValueError(f"mistral_model_map has more than {MAX_ENTRIES} entries")
    return ModelMap(out)


# ---------------------------------------------------------------------------------------------------------
# The built-in map, used only for requests redirected from api.openai.com (mistral_redirect_openai).
#
# Mistral's line-up as of 2026-08 (Mistral's OpenAPI spec of 2026-08-13 and model pages): `-latest` aliases
# follow each family's newest model. Mistral Medium 3.5 (2026-04) and Mistral Small 4 (2026-03) are
# "merged" models: instruction following, reasoning (formerly the separate Magistral line) and agentic
# coding (formerly Devstral) in one model each, with reasoning switched per request by `reasoning_effort`
# (Mistral takes none, minimal, low, medium, high, xhigh: all of OpenAI's values but `max`). Mistral's model
# pages give Mistral Medium 3.5 as the replacement of the retired Magistral Medium models, and third-party
# migration notes list magistral-medium/-small (-latest included) as deprecated in 2026: mapping OpenAI's
# reasoning models to Magistral would point them at a model being withdrawn, so they go to the merged
# models instead. mistral-large-latest (Mistral Large 3, 2025-12) is older than Medium 3.5 and has no
# configurable reasoning; no default maps to it (map to it yourself if you prefer it).
#
# Groups are in matching order: within each map exact names are looked up first, then globs in order, so
# the small-tier globs (`gpt-*-mini*`) come before the wider ones (`gpt-4o*`). Every exact name here is also
# listed in GET /v1/models on the redirected host; the globs catch dated snapshots (gpt-4o-2024-08-06) and
# variants (gpt-4.1-mini-2025-04-14, gpt-5.1-codex-mini). No catch-all `gpt-*`: a name no entry knows
# (gpt-image-1, gpt-audio, a future model) reaches Mistral unchanged and fails there visibly; add your
# own entry for it.
_SMALL = "mistral-small-latest"
_MEDIUM = "mistral-medium-latest"
_EMBED = "mistral-embed"
_MODERATION = "mistral-moderation-latest"

DEFAULT_GROUPS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    # OpenAI's small/cheap chat tier -> Mistral Small: the cheap, fast tier, with vision, tools and structured
    # output like gpt-4o-mini/gpt-4.1-mini, and reasoning on request like gpt-5-mini/-nano.
    (
        (
            "gpt-4o-mini",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-3.5-turbo",
            "gpt-*-mini*",
            "gpt-*-nano*",
            "gpt-3.5*",
        ),
        _SMALL,
        "OpenAI's small, cheap tier (mini, nano, GPT-3.5). Mistral Small is Mistral's cheap, fast tier, with "
        "vision, tools, structured output, and reasoning when `reasoning_effort` asks for it",
    ),
    # OpenAI's small reasoning models (and the small Codex model) -> Mistral Small, which reasons when
    # `reasoning_effort` asks for it (it replaces Magistral Small).
    (
        ("o1-mini", "o3-mini", "o4-mini", "o1-mini*", "o3-mini*", "o4-mini*", "codex-mini*"),
        _SMALL,
        "OpenAI's small reasoning models. Mistral Small reasons when `reasoning_effort` asks for it; it "
        "replaces Magistral Small, Mistral's former small reasoning model",
    ),
    # OpenAI's general multimodal chat models -> Mistral Medium: Mistral's flagship multimodal model (vision,
    # tools, structured output, long context), the closest match for gpt-4o/gpt-4.1 in quality and features.
    (
        (
            "gpt-4o",
            "chatgpt-4o-latest",
            "gpt-4.1",
            "gpt-4-turbo",
            "gpt-4",
            "gpt-4o*",
            "gpt-4.1*",
            "gpt-4*",
            "chatgpt-*",
        ),
        _MEDIUM,
        "OpenAI's general chat models (GPT-4o, GPT-4.1, GPT-4). Mistral Medium is Mistral's flagship "
        "multimodal model, with vision, tools and structured output",
    ),
    # GPT-5 models reason by default and are used for coding agents (gpt-5-codex): Mistral Medium 3.5 has
    # both (it absorbed Magistral and Devstral); Mistral takes OpenAI's `reasoning_effort` values up to xhigh.
    (
        ("gpt-5", "gpt-5-chat-latest", "gpt-5.1", "gpt-5.2", "gpt-5*"),
        _MEDIUM,
        "GPT-5 reasons and codes. Mistral Medium reasons when `reasoning_effort` asks for it (OpenAI's values "
        "up to `xhigh`) and took over from Mistral's coding models (Devstral)",
    ),
    # The o-series reasoning models -> Mistral Medium with reasoning, the replacement Mistral names for the
    # retired Magistral Medium (see above). An `o*` glob would also catch omni-moderation-*: o1/o3/o4 only.
    (
        ("o1", "o3", "o1*", "o3*", "o4*"),
        _MEDIUM,
        "OpenAI's reasoning models. Mistral Medium reasons when `reasoning_effort` asks for it; Mistral names it "
        "as the replacement of Magistral Medium, its former reasoning model",
    ),
    # Embeddings -> mistral-embed, Mistral's general text embedding model (codestral-embed is for code).
    # Its vectors have 1024 dimensions (OpenAI's: 1536, or 3072 for -3-large) and live in another space:
    # vectors stored from OpenAI cannot be compared with Mistral's and must be computed again.
    (
        ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002", "text-embedding-*"),
        _EMBED,
        "Mistral's text embedding model. Its vectors have 1024 dimensions (OpenAI's: 1536 or 3072) and cannot "
        "be compared with OpenAI's: vectors stored from OpenAI must be computed again",
    ),
    # Moderation -> Mistral's moderation classifier (its categories differ from OpenAI's).
    (
        (
            "omni-moderation-latest",
            "text-moderation-latest",
            "text-moderation-stable",
            "omni-moderation-*",
            "text-moderation-*",
        ),
        _MODERATION,
        "Mistral's moderation model (its categories are not OpenAI's)",
    ),
)


def _defaults() -> ModelMap:
    entries = []
    for names, target, why in DEFAULT_GROUPS:
        entries += [parse_entry(f"{name}={target}", why) for name in names]
    return ModelMap(entries)


DEFAULT_MAP = _defaults()


def markdown_table(groups: Sequence[tuple[Sequence[str], str, str]] = DEFAULT_GROUPS) -> str:
    """The default map as a Markdown table (for the README; a test keeps the two in sync)."""
    lines = ["| OpenAI model | Mistral model | why |", "|---|---|---|"]
    for names, target, why in groups:
        cell = ", ".join(f"`{n}`" for n in names)
        lines.append(f"| {cell} | `{target}` | {why.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Requests and the model list


def rename_model(body: Any, mm: ModelMap) -> tuple[str, str] | None:
    """Replace body["model"] when the map has another name for it: (old, new), else None (body untouched)."""
    if not isinstance(body, dict):
        return None
    old = body.get("model")
    if not isinstance(old, str):  # (map() renames only strings)
        return None
    new = mm.map(old)
    if new is None:
        return None
    body["model"] = new
    return old, new


OWNED_BY = "mistral-compat"


def model_object(name: str, target: str, card: dict | None = None) -> dict:
    """An OpenAI model object (id, object, created, owned_by: all that openai-python's and openai-node's
    Model type require) for an OpenAI name served by a Mistral model. owned_by says which one
    ('mistral-compat -> mistral-medium-latest'), as does `mistral_model`; Mistral's card for the target,
    when given, adds its `created`, `capabilities` and `max_context_length` (extra fields both SDKs keep)."""
    created = card.get("created") if isinstance(card, dict) else None
    obj: dict[str, Any] = {
        "id": name,
        "object": "model",
        "created": created if isinstance(created, int) and not isinstance(created, bool) else 0,
        "owned_by": f"{OWNED_BY} -> {target}",
        "mistral_model": target,
    }
    if isinstance(card, dict):
        for key in ("capabilities", "max_context_length"):
            if key in card:
                obj[key] = card[key]
    return obj


def _cards(data: list) -> dict[str, dict]:
    cards: dict[str, dict] = {}
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            cards.setdefault(item["id"], item)
    return cards


def merge_models(mistral_list: bytes, mm: ModelMap) -> bytes | None:
    """Mistral's GET /v1/models answer plus one OpenAI model object per exact name in the map (glob
    patterns name no one model and are skipped; the default map lists the common names exactly), after
    Mistral's own entries. A name Mistral already lists is not added again. None means "leave the answer
    as it is": not JSON, not {"data": [...]}, larger than MAX_MODEL_LIST, or nothing to add."""
    if not isinstance(mistral_list, (bytes, bytearray)) or len(mistral_list) > MAX_MODEL_LIST:
        return None
    try:
        doc = json.loads(mistral_list)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        return None
    cards = _cards(doc["data"])
    added = [model_object(name, target, cards.get(target)) for name, target in mm.concrete_names() if name not in cards]
    if not added:
        return None
    doc["data"] = doc["data"] + added
    try:
        return json_bytes(doc)
    except (RecursionError, ValueError):
        return None


def retrieve_model(name: str, mm: ModelMap, card: dict | None = None) -> bytes | None:
    """The answer to GET /v1/models/{name} for a mapped OpenAI name (the proxy can answer it itself, since
    Mistral knows no such model): the model object as JSON; None when the name is not mapped."""
    target = mm.map(name)
    return None if target is None else json_bytes(model_object(name, target, card))
