"""Tool-call ids: Mistral takes exactly 9 characters of [a-zA-Z0-9] (mistral-common's validator).

OpenAI-style ids (`call_` + 24 characters, `toolu_...`, UUIDs) are mapped to such an id
deterministically: the same id maps to the same 9 characters in every request, because clients
resend the whole history each turn. Valid ids are kept, and no two distinct ids share one.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .changes import TOOL_ID

VALID = re.compile(r"[a-zA-Z0-9]{9}")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def is_valid(tool_id: object) -> bool:
    return isinstance(tool_id, str) and VALID.fullmatch(tool_id) is not None


def derive(tool_id: str, attempt: int = 0) -> str:
    """The 9-character id for tool_id (attempt > 0 only on a collision)."""
    seed = tool_id if attempt == 0 else f"{tool_id}\x00{attempt}"
    n = int.from_bytes(hashlib.sha256(seed.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    out = []
    for _ in range(9):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(out)


# Where a tool-call id is: (the dict holding it, its key, its path in the message list).
_Reference = tuple[dict, str, tuple[int | str, ...]]


def _references(messages: list) -> list[_Reference]:
    """[(container, key, path)] for every tool-call id in a message list."""
    refs: list[_Reference] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            continue
        role = msg.get("role")
        if role == "tool" and isinstance(msg.get("tool_call_id"), str):
            refs.append((msg, "tool_call_id", (i, "tool_call_id")))
        elif role == "assistant":
            calls = msg.get("tool_calls")
            if isinstance(calls, list):
                for j, call in enumerate(calls):
                    if isinstance(call, dict) and isinstance(call.get("id"), str):
                        refs.append((call, "id", (i, "tool_calls", j, "id")))
    return refs


def repair(messages: Any, fx, path: tuple) -> None:
    """Map every invalid tool-call id in messages (a list; anything else is left alone), the same way in
    calls and tool results; fx collects the changes (changes.Collector)."""
    if messages.__class__ is not list:
        return
    for msg in messages:  # most requests: no tool calls at all (found here without the call to _references)
        if msg.__class__ is dict and (msg.get("role") == "tool" or msg.get("tool_calls")):
            break
    else:
        return
    refs = _references(messages)
    if not refs:
        return
    fullmatch = VALID.fullmatch  # (the ids found are all strings)
    valid = [fullmatch(c[k]) is not None for c, k, _ in refs]
    if all(valid):
        return
    taken = {c[k] for (c, k, _), ok in zip(refs, valid) if ok}
    mapping: dict[str, str] = {}
    for (container, key, sub), ok in zip(refs, valid):
        if ok:
            continue
        old = container[key]
        new = mapping.get(old)
        if new is None:
            attempt = 0
            new = derive(old)
            while new in taken:
                attempt += 1
                new = derive(old, attempt)
            mapping[old] = new
            taken.add(new)
        container[key] = new
        fx.add(TOOL_ID, path + sub, f"{old} -> {new}")
