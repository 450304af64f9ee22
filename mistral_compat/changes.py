"""A change made to a request: made once, read by the log line, the flow comment and the summary.

Change is the value; Collector is the one place changes are recorded (the schema walker's translate.Fixer
and the Responses bridge both record through it); format_path and summarize write them for people.
"""

from __future__ import annotations

from typing import NamedTuple

from .redact import printable

# kinds
DROPPED = "dropped"  # a key Mistral does not accept (detail says why when not simply unknown)
RENAMED = "renamed"  # OpenAI name -> Mistral name (detail: new name)
VALUE = "value"  # a value moved into Mistral's range or vocabulary (detail: "old -> new")
TOOL_ID = "tool_call_id"  # a tool-call id mapped to Mistral's 9-character form (detail: "old -> new")
ADDED = "added"  # a key Mistral requires, filled in (detail: what)
REMOVED = "removed"  # a list item removed (detail: why)


class Change(NamedTuple):
    kind: str
    path: str
    detail: str = ""

    def __str__(self) -> str:
        """For a log line: path and detail hold client text (key names, ids, values), so each is escaped
        and cut (redact.printable)."""
        if self.kind == RENAMED:
            return f"{printable(self.path)} -> {printable(self.detail)}"
        if self.detail:
            return f"{printable(self.path)} ({printable(self.detail)})"
        return printable(self.path)


class Collector:
    """The changes made to one request, in the order made. add() takes the path as a tuple of keys and
    indexes (formatted once, here)."""

    __slots__ = ("changes",)

    def __init__(self) -> None:
        self.changes: list[Change] = []

    def add(self, kind: str, path: tuple, detail: str = "") -> None:
        # tuple.__new__ is Change(...) without the NamedTuple's Python-level __new__ (this runs per change); a
        # top-level key, most changes' path, is its own name (format_path's first case, without the call)
        key = path[0] if len(path) == 1 else None
        name = key if key.__class__ is str and key else format_path(path)
        self.changes.append(tuple.__new__(Change, (kind, name, detail)))


def format_path(path: tuple) -> str:
    """('messages', 2, 'refusal') -> 'messages[2].refusal'"""
    if len(path) == 1 and isinstance(path[0], str) and path[0]:  # most changes are to a top-level key
        return path[0]
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else str(p)
    return out or "$"


# A client sends the same extra fields with every request, so the same lines come again and again: short
# ones are kept (a bounded table, started again when full, so ever new names cannot fill it for good).
_LINES: dict[tuple, str] = {}
_LINES_MAX = 256
_LINE_SOURCE_MAX = 1024  # characters of paths and details of a kept line's changes


def summarize(changes: list[Change], limit: int | None = None) -> str:
    """One line: 'dropped stream_options, messages[2].refusal; renamed seed -> random_seed'. With limit, at
    most about limit characters: the changes that do not fit are counted, '... and 9999 more changes'."""
    if len(changes) > 64:
        return _summarize(changes, limit)
    key = (limit, *changes)
    line = _LINES.get(key)
    if line is None:
        line = _summarize(changes, limit)
        if sum(len(c.path) + len(c.detail) for c in changes) <= _LINE_SOURCE_MAX:
            if len(_LINES) >= _LINES_MAX:
                _LINES.clear()
            _LINES[key] = line
    return line


def _summarize(changes: list[Change], limit: int | None) -> str:
    groups: dict[str, list[Change]] = {}
    for c in changes:
        groups.setdefault(c.kind, []).append(c)
    out: list[str] = []
    size = shown = 0
    for kind, items in groups.items():
        sep = f"; {kind} " if out else f"{kind} "
        for c in items:
            piece = sep + str(c)
            if limit is not None and size + len(piece) > limit:
                out.append(f" ... and {len(changes) - shown} more changes")
                return "".join(out)
            out.append(piece)
            size += len(piece)
            shown += 1
            sep = ", "
    return "".join(out)
