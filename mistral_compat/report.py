"""Change records -> what people read: the log line, the flow comment, the before/after view and the
shutdown summary. Pure: no mitmproxy, no I/O."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from .changes import DROPPED, RENAMED, Change, summarize
from .redact import redact_json

_INDEX = re.compile(r"\[\d+\]")


def log_line(endpoint: str, client: str, changes: list[Change], dry_run: bool = False) -> str:
    prefix = "mistral-compat (dry run, not applied)" if dry_run else "mistral-compat"
    return f"{prefix} {endpoint} [{client}]: {summarize(changes)}"


def comment(changes: list[Change], dry_run: bool = False) -> str:
    """The flow comment shown in mitmweb and the console: one change per line."""
    head = f"mistral-compat {'would change' if dry_run else 'changed'} this request ({len(changes)}):"
    return "\n".join([head] + [f"- {c.kind} {c}" for c in changes])


def answer_line(endpoint: str, client: str, notes: list[str], dry_run: bool = False) -> str:
    """'mistral-compat chat/completions [client]: answer: content chunks -> text + reasoning_content; ...'"""
    prefix = "mistral-compat (dry run, not applied)" if dry_run else "mistral-compat"
    return f"{prefix} {endpoint} [{client}]: answer: {'; '.join(notes)}"


def answer_comment(notes: list[str], dry_run: bool = False) -> str:
    head = f"mistral-compat {'would translate' if dry_run else 'translated'} the answer for OpenAI clients:"
    return "\n".join([head] + [f"- {n}" for n in notes])


def answer_before_after(original: bytes, translated: bytes, notes: list[str]) -> str:
    """The text of the content view of a translated answer (secrets masked, long strings shortened)."""
    return "\n".join([answer_comment(notes), "", "--- sent by Mistral", _pretty(original), "",
                      "+++ forwarded to the client", _pretty(translated)])


def _pretty(body: bytes) -> str:
    try:
        return json.dumps(redact_json(json.loads(body)), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return body[:2000].decode("utf-8", "replace")


def before_after(original: bytes, rewritten: bytes | None, changes: list[Change]) -> str:
    """The text of the before/after content view (secrets masked, long strings shortened)."""
    parts = [comment(changes, dry_run=rewritten is None), "",
             "--- sent by the client", _pretty(original), ""]
    if rewritten is not None:
        parts += ["+++ forwarded to Mistral", _pretty(rewritten)]
    else:
        parts += ["(dry run: forwarded unchanged)"]
    return "\n".join(parts)


def field_name(change: Change) -> str:
    """messages[3].tool_calls[0].name -> messages[].tool_calls[].name (for counting)."""
    return _INDEX.sub("[]", change.path)


@dataclass
class ClientStats:
    matched: int = 0
    changed: int = 0
    rejected: int = 0
    answered: int = 0
    fields: Counter = field(default_factory=Counter)


OTHER_CLIENTS = "(other clients)"


class Summary:
    """Per client: requests matched, changed, answered 400, answers translated, and how often each field
    was touched (answers: each kind of translation).

    At most max_clients distinct User-Agents are kept apart (memory stays bounded whatever clients
    send); the rest are counted together.
    """

    def __init__(self, max_clients: int = 100) -> None:
        self.clients: dict[str, ClientStats] = {}
        self.max_clients = max_clients

    def _stats(self, client: str) -> ClientStats:
        s = self.clients.get(client)
        if s is None:
            if len(self.clients) >= self.max_clients:
                client = OTHER_CLIENTS
                s = self.clients.get(client)
                if s is not None:
                    return s
            s = self.clients[client] = ClientStats()
        return s

    def matched(self, client: str) -> None:
        self._stats(client).matched += 1

    def rejected(self, client: str) -> None:
        self._stats(client).rejected += 1

    def changed(self, client: str, changes: list[Change]) -> None:
        s = self._stats(client)
        s.changed += 1
        for c in changes:
            if c.kind == RENAMED:
                s.fields[f"{field_name(c)} -> {c.detail}"] += 1
            elif c.kind == DROPPED:
                s.fields[f"dropped {field_name(c)}"] += 1
            else:
                s.fields[f"{c.kind} {field_name(c)}"] += 1

    def answered(self, client: str, notes: list[str]) -> None:
        s = self._stats(client)
        s.answered += 1
        for note in notes:
            s.fields[f"answer: {note}"] += 1

    def table(self, top: int = 40) -> str:
        """A compact table for a bug report; empty when nothing was matched."""
        if not self.clients:
            return ""
        lines = ["mistral-compat summary",
                 f"{'client':<48} {'matched':>7} {'changed':>7} {'400':>5} {'answers':>7}"]
        for client, s in sorted(self.clients.items(), key=lambda kv: -kv[1].matched):
            lines.append(f"{client[:48]:<48} {s.matched:>7} {s.changed:>7} {s.rejected:>5} {s.answered:>7}")
            for name, n in s.fields.most_common(top):
                lines.append(f"    {n:>6}x  {name}")
            if len(s.fields) > top:
                lines.append(f"    ... and {len(s.fields) - top} more")
        return "\n".join(lines)
