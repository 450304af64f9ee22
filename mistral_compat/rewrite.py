"""The rewriter: (endpoint, body bytes) -> what to forward and what changed. Pure: no I/O, no mitmproxy."""

from __future__ import annotations

from typing import NamedTuple

from .changes import Change
from .jsonio import BodyError, parse
from .rules import Rules
from .schema import Drop
from .translate import CONVERSATION_ENDPOINTS, Fixer


class Result(NamedTuple):
    body: bytes | None          # the new body, or None when the original is fine as it is
    changes: list[Change]
    error: str | None = None    # set when the body cannot be sent: answer 400 with this message


def rewrite(rules: Rules, endpoint: str, body: bytes) -> Result:
    node = rules.endpoints[endpoint]
    try:
        doc = parse(body)
    except BodyError as e:
        return Result(None, [], str(e))
    fx = Fixer(conversation=endpoint in CONVERSATION_ENDPOINTS)
    out = node.fix(doc.data, fx, ())
    if isinstance(out, Drop):  # pragma: no cover - a request object is never dropped
        return Result(None, fx.changes, out.reason)
    if not fx.changes:
        return Result(None, [])
    try:
        return Result(doc.dumps(), fx.changes)
    except BodyError as e:
        return Result(None, fx.changes, str(e))
