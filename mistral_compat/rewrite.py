"""The rewriter: (endpoint, body) -> what to forward and what changed. Pure: no I/O, no mitmproxy.

rewrite() takes the body's bytes (a request sent to a rewritten endpoint); rewrite_doc() a body already
parsed (the Responses bridge's chat body), so that a body is parsed once and written once.
"""

from __future__ import annotations

from typing import NamedTuple

from .changes import VALUE, Change
from .jsonio import BodyError, Document, parse
from .models import ModelMap, rename_model
from .rules import Rules
from .schema import TOO_DEEP, Drop
from .translate import CONVERSATION_ENDPOINTS, Fixer


class Result(NamedTuple):
    body: bytes | None  # the new body, or None when the original is fine as it is
    changes: list[Change]
    error: str | None = None  # set when the body cannot be sent: answer 400 with this message


def rewrite(rules: Rules, endpoint: str, body: bytes, model_map: ModelMap | None = None) -> Result:
    """A request body sent to endpoint (a key of rules.endpoints) -> Result."""
    try:
        doc = parse(body)
    except BodyError as e:
        return Result(None, [], str(e))
    return rewrite_doc(rules, endpoint, doc, model_map=model_map)


def rewrite_doc(
    rules: Rules, endpoint: str, doc: Document, *, write: bool = False, model_map: ModelMap | None = None
) -> Result:
    """A parsed request body, repaired in place -> Result. Result.body is None when nothing changed, unless
    write: then it is the body's bytes in any case (a body that was never sent as it is). model_map: the
    model names to replace (mistral_model_map), first of all."""
    fx = Fixer(conversation=endpoint in CONVERSATION_ENDPOINTS)
    if model_map is not None and model_map.size:  # (not bool(): a call)
        renamed = rename_model(doc.data, model_map)
        if renamed is not None:
            fx.add(VALUE, ("model",), f"{renamed[0]} -> {renamed[1]}")
    try:
        out = rules.endpoints[endpoint].fix(doc.data, fx, ())
    except RecursionError:  # a last safety net: rules that chain hundreds of schemas per level of the body
        return Result(None, fx.changes, TOO_DEEP)
    if isinstance(out, Drop):  # pragma: no cover - a request object is never dropped
        return Result(None, fx.changes, out.reason)
    if not fx.changes and not write:
        return Result(None, [])
    try:
        # (tuple.__new__ is Result(...) without the NamedTuple's Python-level __new__: this runs per request)
        return tuple.__new__(Result, (doc.dumps(), fx.changes, None))
    except BodyError as e:
        return Result(None, fx.changes, str(e))
