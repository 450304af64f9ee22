"""Parse and serialise request bodies without losing a value.

- Big integers round-trip (Python ints are exact).
- A float literal that a double cannot hold exactly (1.0000000000000001, 1e400) is kept as its
  original text: it parses to a RawNumber placeholder that serialisation writes back verbatim.
- NaN, Infinity and -Infinity are not JSON: they are rejected.
- Output is compact UTF-8, with non-ASCII text kept as text.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal, InvalidOperation


class BodyError(ValueError):
    """The body is not a JSON object Mistral could read; the message says what is wrong."""


class RawNumber(str):
    """A number literal kept as text; .value is its nearest float (for range checks)."""

    value: float
    literal: str


class _Parse:
    def __init__(self) -> None:
        self.raw: dict[str, str] = {}
        self.nonce = ""

    def parse_float(self, s: str):
        f = float(s)
        if repr(f) == s:
            return f
        try:
            if f not in (float("inf"), float("-inf")) and Decimal(repr(f)) == Decimal(s):
                return f
        except InvalidOperation:  # pragma: no cover - json only hands us valid literals
            return f
        if not self.nonce:
            self.nonce = uuid.uuid4().hex
        token = RawNumber(f"\x00{self.nonce}:{len(self.raw)}")
        token.value = f
        token.literal = s
        self.raw[str(token)] = s
        return token


def _reject_constant(name: str):
    raise BodyError(f"{name} is not valid JSON (Mistral rejects NaN and Infinity)")


class Document:
    """A parsed body, with what serialisation needs to write it back exactly."""

    __slots__ = ("data", "_raw")

    def __init__(self, data: dict, raw: dict[str, str]) -> None:
        self.data = data
        self._raw = raw

    def dumps(self) -> bytes:
        try:
            text = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except RecursionError:
            raise BodyError("the JSON body is nested too deeply") from None
        for token, literal in self._raw.items():
            text = text.replace(json.dumps(token), literal)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from \ud800 escapes: keep them escaped
            text = json.dumps(self.data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
            for token, literal in self._raw.items():
                text = text.replace(json.dumps(token), literal)
            return text.encode("ascii")


def parse(body: bytes) -> Document:
    """bytes -> Document, or BodyError with a message a user can act on."""
    if not body.strip():
        raise BodyError("the request body is empty; Mistral expects a JSON object")
    p = _Parse()
    try:
        data = json.loads(body, parse_float=p.parse_float, parse_constant=_reject_constant)
    except BodyError:
        raise
    except RecursionError:
        raise BodyError("the JSON body is nested too deeply to parse") from None
    except UnicodeDecodeError as e:
        raise BodyError(f"the body is not valid UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise BodyError(f"the body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        raise BodyError(f"the body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        kind = {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(data), "number")
        raise BodyError(f"the body is a JSON {kind}, but Mistral expects a JSON object")
    return Document(data, p.raw)
