"""A change the rewriter made: made once, read by the log line, the flow comment and the summary."""

from __future__ import annotations

from typing import NamedTuple

# kinds
DROPPED = "dropped"        # a key Mistral does not accept (detail says why when not simply unknown)
RENAMED = "renamed"        # OpenAI name -> Mistral name (detail: new name)
VALUE = "value"            # a value moved into Mistral's range or vocabulary (detail: "old -> new")
TOOL_ID = "tool_call_id"   # a tool-call id mapped to Mistral's 9-character form (detail: "old -> new")
ADDED = "added"            # a key Mistral requires, filled in (detail: what)
REMOVED = "removed"        # a list item removed (detail: why)


class Change(NamedTuple):
    kind: str
    path: str
    detail: str = ""

    def __str__(self) -> str:
        if self.kind == RENAMED:
            return f"{self.path} -> {self.detail}"
        if self.detail:
            return f"{self.path} ({self.detail})"
        return self.path


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


def summarize(changes: list[Change]) -> str:
    """One line: 'dropped stream_options, messages[2].refusal; renamed seed -> random_seed'."""
    groups: dict[str, list[str]] = {}
    for c in changes:
        groups.setdefault(c.kind, []).append(str(c))
    return "; ".join(f"{kind} {', '.join(items)}" for kind, items in groups.items())
