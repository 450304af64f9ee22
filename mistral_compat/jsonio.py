"""The one JSON reader and writer of the package: parse request bodies and write any JSON value back
without losing a value; plus the one deep-copy helper and the one table of JSON type names.

- The body must be UTF-8 JSON, as Mistral requires: UTF-16/UTF-32 bodies, a UTF-8 byte order mark and
  invalid UTF-8 (lone surrogates encoded as bytes included) are rejected with a message saying so.
- Big integers round-trip (Python ints are exact).
- A float literal that a double cannot hold exactly (1.0000000000000001, 1e400) is kept as its
  original text: it parses to a RawNumber (a float, never a string) that serialisation writes back verbatim.
- NaN, Infinity and -Infinity are not JSON: they are rejected.
- Output is compact UTF-8, with non-ASCII text kept as text (dumps(), for every body and answer the
  package writes); a large parsed body keeps the client's own text where it did not change (splice()).
- copy() deep-copies parsed JSON without recursion; kind_of() names a value's JSON type.
"""

from __future__ import annotations

import codecs
import itertools
import json
import json.decoder
import json.encoder
import json.scanner
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, NamedTuple


class BodyError(ValueError):
    """The body is not a JSON object Mistral could read; the message says what is wrong."""


# The largest request body (decoded) the proxy takes by default. Mistral documents no request size limit;
# its largest legitimate bodies carry base64 inside JSON: a 50 MB document for OCR is about 67 MB. 64 MiB
# (67.1 MB) holds that, and is a few times any chat request (images are sent by URL or a few MB each).
DEFAULT_MAX_BODY = 64 << 20

_SIZE = re.compile(r"\s*(\d+)\s*(?:([kmg])(?:i?b)?|b)?\s*", re.IGNORECASE | re.ASCII)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """'64m', '10M', '512k', '1g', '64MiB', '100mb' or a number of bytes -> bytes (k, m, g are 1024-based,
    as in mitmproxy's own body_size_limit). ValueError says why."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a size; use e.g. 64m, 512k, 1g or a number of bytes")
    size = int(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    if size <= 0:
        raise ValueError(f"{text!r} is not a size above 0")
    return size


def format_size(size: int) -> str:
    """67108864 -> '64 MiB', 67108865 -> '67,108,865 bytes': exact, so that a size just over a limit never
    reads as the limit itself."""
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size:,} bytes"


class RawNumber(float):
    """A number literal kept as written. As a float it is the nearest double (for range checks and
    comparisons; 1e400 is inf), so code that takes strings never takes it; .literal is the text."""

    __slots__ = ("literal",)
    literal: str

    def __new__(cls, literal: str) -> "RawNumber":
        self = super().__new__(cls, literal)
        self.literal = literal
        return self

    def __repr__(self) -> str:  # change details show the number as the client wrote it
        return self.literal

    __str__ = __repr__


# Counts the RawNumbers made, so that dumps() looks for them only in a document where some were made.
# next() on an itertools.count is atomic, so concurrent parses can only cause a needless look, never a miss.
_made = itertools.count()


def _parse_float(s: str) -> float:
    if len(s) < 16 and "e" not in s and "E" not in s:
        return float(s)  # at most 15 digits, no exponent: a double holds it exactly (DBL_DIG is 15)
    f = float(s)
    if repr(f) == s:
        return f
    try:
        if f not in (float("inf"), float("-inf")) and Decimal(repr(f)) == Decimal(s):
            return f
    except InvalidOperation:  # pragma: no cover - json only hands us valid literals
        return f
    next(_made)
    return RawNumber(s)


def _reject_constant(name: str):
    raise BodyError(f"{name} is not valid JSON (Mistral rejects NaN and Infinity)")


# Made once: building a decoder or encoder per request (as json.dumps with options does) costs more than
# parsing a small body. The strict pair writes request bodies (Mistral rejects NaN and Infinity); the other
# writes what json.dumps would (answers and error bodies, which may echo a client's 1e400 as Infinity).
_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_constant=_reject_constant)
_ENCODERS = {
    strict: (
        json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=not strict),
        json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=not strict),
    )
    for strict in (False, True)
}


def _c_encoder(encoder: json.JSONEncoder, c: Callable[[Any, int], list[str]] | None) -> Callable[[Any], str]:
    """encoder.encode, done by c, its C encoder made once (_c_make); encoder.encode itself where there is none."""
    return encoder.encode if c is None else lambda value: "".join(c(value, 0))


def _c_make(encoder: json.JSONEncoder) -> Callable[[Any, int], list[str]] | None:
    """The C encoder that does what encoder.encode does, made once: JSONEncoder.encode makes a new one on every
    call, which costs about as much as writing a small body. It takes (value, 0) and returns the pieces of the
    text. Without a check for circular references: what is written is parsed JSON, and a cycle still ends in
    RecursionError. None where the C encoder is missing or takes other arguments (another Python)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    try:
        c = make(  # type: ignore[misc]
            None,
            encoder.default,
            json.encoder.encode_basestring_ascii if encoder.ensure_ascii else json.encoder.encode_basestring,
            None,
            encoder.key_separator,
            encoder.item_separator,
            False,
            False,
            encoder.allow_nan,
        )
        sample = {"a": [1, 2.5, "\u00e9\n", None, True, {}], "b": 1e300}
        if "".join(c(sample, 0)) != encoder.encode(sample):
            raise ValueError("not the same")
    except Exception:  # noqa: BLE001 - any doubt: the encoder's own way
        return None
    return c


_PIECES = {strict: (_c_make(text), _c_make(ascii_text)) for strict, (text, ascii_text) in _ENCODERS.items()}
_ENCODE = {
    strict: (_c_encoder(text, _PIECES[strict][0]), _c_encoder(ascii_text, _PIECES[strict][1]))
    for strict, (text, ascii_text) in _ENCODERS.items()
}
_STRICT_PIECES = _PIECES[True][0]  # request bodies (strict, non-ASCII kept as text): the pieces of the text


def dumps(value: Any, *, raw: bool = False, strict: bool = False) -> bytes:
    """Any JSON value -> compact JSON bytes: UTF-8 with non-ASCII text kept as text; text holding lone
    surrogates (an escaped half of an emoji, which UTF-8 cannot hold) is written all escaped instead.
    raw: the value may hold RawNumbers, written back as their literal. strict: NaN and infinities raise
    ValueError. RecursionError when it nests deeper than the encoder can go. Leaves value as it was."""
    text, ascii_text = _ENCODE[strict]
    if raw and isinstance(value, RawNumber):
        return value.literal.encode("ascii")
    swapped = _swap_raw_numbers(value) if raw and isinstance(value, (dict, list)) else None
    try:
        try:
            return _dump(text, value, swapped).encode("utf-8")
        except UnicodeEncodeError:
            return _dump(ascii_text, value, swapped).encode("ascii")
    finally:
        if swapped is not None:  # leave the data as parsed
            for container, key, number in swapped[1]:
                container[key] = number


class Document:
    """A parsed body, with what serialisation needs to write it back exactly: whether it may hold RawNumbers,
    and the text it was parsed from (a large body is written back spliced from it, see splice())."""

    __slots__ = ("data", "_raw", "text", "source")

    def __init__(self, data: dict, raw: bool = False, text: str | None = None, source: bytes = b"") -> None:
        self.data = data
        self._raw = raw  # whether the body may hold RawNumbers
        self.text = text  # the JSON text data was parsed from (None: made, not parsed)
        self.source = source  # the bytes text was decoded from

    @property
    def raw(self) -> bool:
        """Whether the body may hold RawNumbers (a document made from its data must say so too)."""
        return self._raw

    def dumps(self) -> bytes:
        """The body as JSON bytes, every number as the client wrote it; BodyError when too deep to write.
        A body parsed from SPLICE_MIN characters or more is spliced: what is unchanged is copied from the text
        it was parsed from, as the client wrote it, and only what changed is written anew."""
        try:
            if self.text is not None and len(self.text) >= SPLICE_MIN:
                return splice(self.data, self.text, self._raw, self.source)
            if not self._raw and _STRICT_PIECES is not None:  # (dumps' common case, without its Python frames)
                try:
                    return "".join(_STRICT_PIECES(self.data, 0)).encode("utf-8")
                except UnicodeEncodeError:
                    pass
            return dumps(self.data, raw=self._raw, strict=True)
        except RecursionError:
            raise BodyError("the JSON body is nested too deeply") from None


# Splicing: writing a large body back costs far more than reading it (json.dumps of an 8 MiB string takes
# about 3x its json.loads), and what a client sends big (an image as a base64 data URL, a long document) is
# seldom what needs repair. So a large body is written back from its own text: each member of the top-level
# object (and, where a large member changed inside, each member of that, and so on) is read again from the
# text, with its position, and copied as it was where it is the same as it is now; the rest is written anew.
# Whether a member is unchanged is decided by comparing values (_same: equal, and of the same JSON types all
# the way down, so that true is not 1 nor 2.0 is 2), never by what the repairs say they did, so nothing that
# changed can be copied stale; an object whose text gives a key twice is never copied (the repairs saw only
# the last). The reading again is bounded: the top level once, then at most SPLICE_BUDGET times the text's
# length, SPLICE_DEPTH levels deep and SPLICE_MEMBERS members in all (each one a step in Python, where
# writing anew is a step in C: a container of many small members is written anew); beyond that a member is
# written anew (as without splicing).
SPLICE_MIN = 64 << 10  # characters: smaller bodies (and members) are simply written anew
SPLICE_DEPTH = 8
SPLICE_BUDGET = 2
SPLICE_MEMBERS = 4096
_SCAN = json.scanner.make_scanner(_DECODER)  # type: ignore[arg-type]  # (C) a JSON value at a position -> (value, end)


class _Repeated(dict):
    """An object read again whose text gives a key twice: never the same as the repaired one (_same)."""


def _object(pairs: list) -> dict:
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else _Repeated(obj)


# (C) what _SCAN reads, with objects that give a key twice told apart, for reading members again
_RESCAN = json.scanner.make_scanner(
    json.JSONDecoder(parse_float=_parse_float, parse_constant=_reject_constant, object_pairs_hook=_object)  # type: ignore[arg-type]
)
_SCAN_STRING = json.decoder.scanstring  # type: ignore[attr-defined]  # (C) a string's rest -> (str, end)
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip(text: str, pos: int) -> int:
    """The position of the first character at or after pos that is not JSON whitespace."""
    m = _SPACE.match(text, pos)
    return m.end() if m is not None else pos


class _Splice(NamedTuple):
    text: str
    source: bytes | memoryview | None  # text's UTF-8 bytes, when a character is a byte (offsets are the same)
    raw: bool  # the data may hold RawNumbers


def splice(data: Any, text: str, raw: bool = False, source: bytes = b"") -> bytes:
    """data (a body parsed from text, then repaired) as JSON bytes: what equals its text is copied from it
    (from source, text's UTF-8 bytes, where given and all ASCII)."""
    sp = _Splice(text, memoryview(source) if len(source) == len(text) else None, raw)
    out: list[bytes | memoryview] = []
    budget = [SPLICE_BUDGET * len(text), SPLICE_MEMBERS]  # (characters, members) that may be read again
    if len(data) > SPLICE_MEMBERS or not _splice(data, sp, _skip(text, 0), out, budget, 0):
        return dumps(data, raw=raw, strict=True)
    return b"".join(out)


def _splice(value: Any, sp: _Splice, pos: int, out: list, budget: list[int], depth: int) -> bool:
    # budget: [characters, members] that may still be read again
    """Write value (a dict or list), which was parsed from the container at text[pos], to out; False (and out
    untouched) when that container is not of value's kind or the budget does not allow reading it again."""
    if sp.text[pos] != ("{" if value.__class__ is dict else "["):
        return False
    members = _members(sp.text, pos, budget)  # (below the top level, the caller charged the characters)
    if members is None:
        return False
    if value.__class__ is dict:
        out.append(b"{")
        for i, (key, v) in enumerate(value.items()):
            if i:
                out.append(b",")
            out.append(dumps(key))
            out.append(b":")
            _member(v, members.get(key), sp, out, budget, depth)
        out.append(b"}")
    else:
        out.append(b"[")
        for i, v in enumerate(value):
            if i:
                out.append(b",")
            _member(v, members.get(i), sp, out, budget, depth)
        out.append(b"]")
    return True


def _member(v: Any, was: tuple | None, sp: _Splice, out: list, budget: list[int], depth: int) -> None:
    if was is not None:
        old, start, end = was
        if _same(old, v):  # unchanged: copied as the client wrote it
            # (the text was decoded from UTF-8, so it encodes back)
            out.append(sp.text[start:end].encode("utf-8") if sp.source is None else sp.source[start:end])
            return
        size = end - start
        if (
            v.__class__ in (dict, list)
            and size >= SPLICE_MIN
            and depth < SPLICE_DEPTH
            and budget[0] >= size
            and budget[1] >= len(v)
            and old.__class__ is v.__class__
        ):
            budget[0] -= size
            if _splice(v, sp, start, out, budget, depth + 1):
                return
    out.append(dumps(v, raw=sp.raw, strict=True))


def _same(a: Any, b: Any) -> bool:
    """a == b, and the same JSON all the way down: the same types (true is not 1, 2 is not 2.0), the same
    zero (-0.0 is not 0.0), the same number literals, no key given twice. Iterative."""
    if a.__class__ is not b.__class__ or a != b:
        return False
    stack = [(a, b)]
    while stack:
        a, b = stack.pop()
        cls = a.__class__
        if cls is not b.__class__:
            return False
        if cls is dict:
            stack.extend((v, b[k]) for k, v in a.items())
        elif cls is list:
            stack.extend(zip(a, b))
        elif cls is float:
            if a == 0 and str(a) != str(b):
                return False
        elif cls is RawNumber:
            if a.literal != b.literal:
                return False
    return True


def _members(text: str, pos: int, budget: list[int]) -> dict | None:
    """The members of the object or array at text[pos] (text known to be valid JSON there): {key or index:
    (value, start, end)}, value parsed anew, text[start:end] its JSON text; for a key given twice, the last.
    Each member read is taken from budget[1]; None (stopped) when it runs out."""
    members: dict = {}
    closing = "}" if text[pos] == "{" else "]"
    pos = _skip(text, pos + 1)
    if text[pos] == closing:
        return members
    index = 0
    while True:
        if closing == "}":
            key, pos = _SCAN_STRING(text, pos + 1)
            pos = _skip(text, _skip(text, pos) + 1)  # past the ':'
        else:
            key, index = index, index + 1
        budget[1] -= 1
        if budget[1] < 0:
            return None
        value, end = _RESCAN(text, pos)
        members[key] = (value, pos, end)
        pos = _skip(text, end)
        if text[pos] == closing:
            return members
        pos = _skip(text, pos + 1)  # past the ','


def _dump(encode: Callable[[Any], str], data: Any, swapped: tuple[re.Pattern, list] | None) -> str:
    text = encode(data)
    if swapped is not None and swapped[1]:
        pattern, literals = swapped[0], [number.literal for _, _, number in swapped[1]]
        text = pattern.sub(lambda m: literals[int(m.group(1))], text)
    return text


def _swap_raw_numbers(data: Any) -> tuple[re.Pattern, list]:
    """Replace every RawNumber in data by a unique placeholder string, for the JSON encoder (which writes any
    float as its double). Returns (the placeholders' pattern in JSON text, [(container, key, RawNumber)])
    for putting them back. Iterative: bodies may nest deeper than the recursion limit."""
    nonce = uuid.uuid4().hex
    swapped: list = []
    stack = [data]
    while stack:
        node = stack.pop()
        for key, item in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(item, RawNumber):
                node[key] = f"\x00{nonce}:{len(swapped)}"
                swapped.append((node, key, item))
            elif isinstance(item, (dict, list)):
                stack.append(item)
    return re.compile(r'"\\u0000' + nonce + r':(\d+)"'), swapped


_NOT_UTF8 = "the body must be UTF-8 JSON"


def _decode(body: bytes) -> str:
    """bytes -> text, strictly as UTF-8 (Mistral's server decodes nothing else)."""
    if body.startswith(codecs.BOM_UTF8):
        raise BodyError(f"the body starts with a UTF-8 byte order mark, which Mistral rejects: {_NOT_UTF8} without one")
    # (json.detect_encoding looks at the first 4 bytes only; a body starting with "{" and no NUL byte cannot
    # be UTF-16 or UTF-32, with or without a byte order mark)
    encoding = "utf-8" if body[:1] == b"{" and body[1:2] != b"\x00" else json.detect_encoding(body)
    if encoding != "utf-8":
        raise BodyError(f"{_NOT_UTF8}; this one looks {encoding.upper()}-encoded")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BodyError(f"the body is not valid UTF-8 (byte {e.start})") from None


def parse(body: bytes) -> Document:
    """bytes -> Document, or BodyError with a message a user can act on."""
    if not body or body.isspace():
        raise BodyError("the request body is empty; Mistral expects a JSON object")
    # (json.detect_encoding looks at the first 4 bytes only; a body starting with "{" and no NUL byte cannot be
    # UTF-16 or UTF-32, with or without a byte order mark: the common case is decoded here, any doubt by _decode)
    try:
        text = body.decode("utf-8") if body[:1] == b"{" and body[1:2] != b"\x00" else _decode(body)
    except UnicodeDecodeError:
        text = _decode(body)  # (raises, saying where)
    before = next(_made)
    try:
        # The common case, a JSON object from the first character to the last, is read by the C scanner
        # directly, without the decoder's two Python frames; any other case, and any error, is the decoder's
        # own (so are its messages).
        end = -1
        if text[:1] == "{" and text[-1:] == "}":
            try:
                data, end = _SCAN(text, 0)
            except Exception:  # noqa: BLE001 - the decoder says what is wrong
                end = -1
        if end != len(text):
            data = _DECODER.decode(text)
    except BodyError:
        raise
    except RecursionError:
        raise BodyError("the JSON body is nested too deeply to parse") from None
    except json.JSONDecodeError as e:
        raise BodyError(f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        raise BodyError(f"the body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        kind = kind_of(data)
        raise BodyError(
            f"the body is a JSON {'number' if kind == 'integer' else kind}, but Mistral expects a JSON object"
        )
    return Document(data, next(_made) != before + 1, text, body)


# The JSON type names (those of JSON Schema) of the Python values a parse gives.
KINDS: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def kind_of(value: Any) -> str:
    """The JSON type name of a parsed value ("integer" for an int, "number" for a float, RawNumbers
    included); "unknown" for what no JSON text gives."""
    k = KINDS.get(type(value))
    if k is None:
        for t, name in KINDS.items():  # subclasses, e.g. RawNumber (a float)
            if isinstance(value, t):
                return name
    return k or "unknown"


def copy(value: Any) -> Any:
    """A deep copy of parsed JSON without recursion: bodies may nest deeper than Python's recursion limit
    (free-form values such as metadata or a JSON schema). Scalars (RawNumbers included) are shared."""
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack = [(value, root)]
    while stack:
        src, dst = stack.pop()
        for key, item in src.items() if isinstance(src, dict) else enumerate(src):
            if isinstance(item, (dict, list)):
                new: Any = {} if isinstance(item, dict) else []
                stack.append((item, new))
            else:
                new = item
            if isinstance(dst, dict):
                dst[key] = new
            else:
                dst.append(new)
    return root
