"""Change records -> what people read: the log line, the flow comment, the before/after view and the
shutdown summary. Pure: no mitmproxy, no I/O.

Everything a client controls (key names, tool-call ids, values, the User-Agent, a path, the reason a
body was refused) is escaped and cut before it is printed (redact.printable), and every line and the
summary are bounded, whatever the client sends."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from .changes import DROPPED, RENAMED, Change, summarize
from .redact import escape_json_text, printable, redact_json

_INDEX = re.compile(r"\[\d+\]")

LINE_LIMIT = 4096  # characters of one log line (the changes that do not fit are counted)
MESSAGE_LIMIT = 600  # characters of the reason a body was refused (its start and its end are kept)
COMMENT_CHANGES = 100  # changes listed in a flow comment
DUMP_LIMIT = 100_000  # characters of each body in the before/after view and the debug dump
SUMMARY_LIMIT = 65_536  # characters of the shutdown summary
MAX_FIELDS = 200  # distinct fields counted apart per client in the summary


def _head(endpoint: str, client: str, dry_run: bool) -> str:
    prefix = "mistral-compat (dry run, not applied)" if dry_run else "mistral-compat"
    # (printable's common case inline: this runs for every changed request)
    endpoint = endpoint if len(endpoint) <= 200 and endpoint.isprintable() else printable(endpoint)
    client = client if len(client) <= 200 and client.isprintable() else printable(client)
    return f"{prefix} {endpoint} [{client}]: "


def log_line(endpoint: str, client: str, changes: list[Change], dry_run: bool = False) -> str:
    head = _head(endpoint, client, dry_run)
    return head + summarize(changes, LINE_LIMIT - len(head))


def wait_line(endpoint: str, client: str, note: str, dry_run: bool = False) -> str:
    """'mistral-compat chat/completions [client]: waited 2.0 s for mistral_rate_limit 1/s'"""
    return _head(endpoint, client, dry_run) + note


def rejected_line(endpoint: str, client: str, status: int, message: str, dry_run: bool = False) -> str:
    """'mistral-compat chat/completions [client]: answered 400: the body is not JSON (...)'; the message
    may repeat what the client sent: escaped, and cut in the middle when long."""
    verb = "would answer" if dry_run else "answered"
    return (
        f"mistral-compat {printable(endpoint)} [{printable(client)}]: {verb} {status}: "
        f"{printable(message, MESSAGE_LIMIT, tail=MESSAGE_LIMIT // 3)}"
    )


def comment(changes: list[Change], dry_run: bool = False, wait_note: str = "") -> str:
    """The flow comment shown in mitmweb and the console: one change per line (at most COMMENT_CHANGES),
    then how long the request waited for its turn, if it did."""
    head = f"mistral-compat {'would change' if dry_run else 'changed'} this request ({len(changes)}):"
    text = _bulleted(head, [f"{c.kind} {c}" for c in changes[:COMMENT_CHANGES]], len(changes), " changes")
    return f"{text}\n\nmistral-compat: {wait_note}" if wait_note else text


def _bulleted(head: str, shown: list[str], total: int, what: str = "") -> str:
    """head, then one '- ' line per item shown, and how many more there were."""
    lines = [head] + [f"- {item}" for item in shown]
    if total > len(shown):
        lines.append(f"- ... and {total - len(shown)} more{what}")
    return "\n".join(lines)


def answer_line(endpoint: str, client: str, notes: list[str], dry_run: bool = False) -> str:
    """'mistral-compat chat/completions [client]: answer: content chunks -> text + reasoning_content; ...'"""
    head = _head(endpoint, client, dry_run) + "answer: "
    out: list[str] = []
    size = len(head)
    for i, note in enumerate(notes):
        piece = ("; " if out else "") + printable(note)
        if size + len(piece) > LINE_LIMIT:
            out.append(f" ... and {len(notes) - i} more")
            break
        out.append(piece)
        size += len(piece)
    return head + "".join(out)


def answer_comment(notes: list[str], dry_run: bool = False) -> str:
    head = f"mistral-compat {'would translate' if dry_run else 'translated'} the answer for OpenAI clients:"
    return _bulleted(head, [printable(n) for n in notes[:COMMENT_CHANGES]], len(notes))


def answer_before_after(original: bytes, translated: bytes, notes: list[str]) -> str:
    """The text of the content view of a translated answer (secrets masked, long strings shortened)."""
    return "\n".join(
        [
            answer_comment(notes),
            "",
            "--- sent by Mistral",
            _pretty(original),
            "",
            "+++ forwarded to the client",
            _pretty(translated),
        ]
    )


def _pretty(body: bytes) -> str:
    """A body for the view and the debug dump: pretty JSON, secrets masked, long strings shortened, the
    characters a terminal could act on escaped, at most DUMP_LIMIT characters; not JSON: its start, escaped."""
    try:
        text = escape_json_text(json.dumps(redact_json(json.loads(body)), indent=2, ensure_ascii=False))
    except (ValueError, RecursionError):
        return printable(body[:2000].decode("utf-8", "replace"), 2000) + (
            f"...({len(body)} bytes)" if len(body) > 2000 else ""
        )
    if len(text) > DUMP_LIMIT:
        text = f"{text[:DUMP_LIMIT]}\n...(cut at {DUMP_LIMIT} of {len(text)} characters)"
    return text


def before_after(original: bytes, rewritten: bytes | None, changes: list[Change]) -> str:
    """The text of the before/after content view (secrets masked, long strings shortened)."""
    parts = [comment(changes, dry_run=rewritten is None), "", "--- sent by the client", _pretty(original), ""]
    if rewritten is not None:
        parts += ["+++ forwarded to Mistral", _pretty(rewritten)]
    else:
        parts += ["(dry run: forwarded unchanged)"]
    return "\n".join(parts)


def field_name(change: Change) -> str:
    """messages[3].tool_calls[0].name -> messages[].tool_calls[].name (for counting; escaped and cut)."""
    return _INDEX.sub("[]", printable(change.path))


def field_label(change: Change) -> str:
    """What the summary counts for a change: 'dropped messages[].name', 'seed -> random_seed'."""
    if change.kind == RENAMED:
        return f"{field_name(change)} -> {printable(change.detail)}"
    if change.kind == DROPPED:
        return f"dropped {field_name(change)}"
    return f"{change.kind} {field_name(change)}"


# The same changes come again and again (a client sends the same fields with every request): the labels of
# a request's changes are kept, as long as they are short (a path can be a client's megabyte-long key name)
# and few (when the table is full it starts again: a client sending ever new names cannot fill it for good).
_LABELS: dict[tuple[Change, ...], tuple[str, ...]] = {}
_LABELS_MAX = 256
_LABEL_SOURCE_MAX = 1024  # characters of paths and details of a request's changes whose labels are kept


def field_labels(changes: list[Change]) -> tuple[str, ...]:
    """field_label of each change."""
    key = tuple(changes)
    labels = _LABELS.get(key)
    if labels is None:
        labels = tuple(field_label(c) for c in changes)
        if len(changes) <= 64 and sum(len(c.path) + len(c.detail) for c in changes) <= _LABEL_SOURCE_MAX:
            if len(_LABELS) >= _LABELS_MAX:
                _LABELS.clear()
            _LABELS[key] = labels
    return labels


@dataclass
class ClientStats:
    matched: int = 0
    changed: int = 0
    rejected: int = 0
    answered: int = 0
    waits: int = 0  # requests that waited for their turn (mistral_rate_limit, a 429's Retry-After)
    waited: float = 0.0  # seconds waited, all together
    limited: int = 0  # 429s: Mistral's, and the proxy's own when its queue was full
    fields: Counter = field(default_factory=Counter)


OTHER_CLIENTS = "(other clients)"
OTHER_FIELDS = "(other fields)"


class Summary:
    """Per client: requests matched, changed, answered 400, answers translated, and how often each field
    was touched (answers: each kind of translation).

    Memory stays bounded whatever clients send: at most max_clients distinct User-Agents are kept apart
    (the rest are counted together), and per client at most max_fields distinct fields (the rest are
    counted as one, OTHER_FIELDS); names are escaped and cut (a path or detail to 200 characters).
    """

    def __init__(self, max_clients: int = 100, max_fields: int = MAX_FIELDS) -> None:
        self.pacing = False  # show the pacing columns (waits, waited, 429) even when nothing waited
        self.clients: dict[str, ClientStats] = {}
        self.max_clients = max_clients
        self.max_fields = max_fields

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
        (self.clients.get(client) or self._stats(client)).matched += 1

    def rejected(self, client: str) -> None:
        self._stats(client).rejected += 1

    def waited(self, client: str, seconds: float) -> None:
        s = self._stats(client)
        s.waits += 1
        s.waited += seconds

    def limited(self, client: str) -> None:
        self._stats(client).limited += 1

    def _count(self, s: ClientStats, names) -> None:
        """Count each of names for the client: at most max_fields names apart, the rest as OTHER_FIELDS."""
        fields = s.fields
        if len(fields) + len(names) <= self.max_fields:  # room for every name, even if all are new
            fields.update(names)  # (Counter.update: one C loop)
            return
        room = len(fields) < self.max_fields
        for name in names:
            if room or name in fields:
                fields[name] += 1
                room = len(fields) < self.max_fields
            else:
                fields[OTHER_FIELDS] += 1

    def changed(self, client: str, changes: list[Change]) -> None:
        s = self.clients.get(client) or self._stats(client)
        s.changed += 1
        self._count(s, field_labels(changes))

    def answered(self, client: str, notes: list[str]) -> None:
        s = self._stats(client)
        s.answered += 1
        self._count(s, [f"answer: {printable(note)}" for note in notes])

    def table(self, top: int = 40) -> str:
        """A compact table for a bug report; empty when nothing was matched."""
        if not self.clients:
            return ""
        # the pacing columns when mistral_rate_limit is set or something waited
        pacing = self.pacing or any(s.waits for s in self.clients.values())
        head = f"{'client':<48} {'matched':>7} {'changed':>7} {'400':>5} {'answers':>7}"
        lines = ["mistral-compat summary", head + (f" {'waits':>6} {'waited':>8} {'429':>5}" if pacing else "")]
        size = 0
        ranked = sorted(self.clients.items(), key=lambda kv: -kv[1].matched)
        for i, (client, s) in enumerate(ranked):
            row = f"{printable(client)[:48]:<48} {s.matched:>7} {s.changed:>7} {s.rejected:>5} {s.answered:>7}"
            if pacing:
                row += f" {s.waits:>6} {s.waited:>7.1f}s {s.limited:>5}"
            block = [row]
            for name, n in s.fields.most_common(top):
                block.append(f"    {n:>6}x  {printable(name, 1000)}")  # (escaped and cut when counted)
            if len(s.fields) > top:
                block.append(f"    ... and {len(s.fields) - top} more")
            size += sum(len(line) + 1 for line in block)
            if size > SUMMARY_LIMIT and i:
                lines.append(
                    f"... and {len(ranked) - i} more clients (the summary is cut at {SUMMARY_LIMIT} characters)"
                )
                break
            lines += block
        return "\n".join(lines)
