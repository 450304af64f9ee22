"""The bridge's entry points, one per step of a flow: which path a request is (match_path), the request made
into the chat completion to forward (bridge_request), and Mistral's whole answer made into the Responses
answer (translate_answer). Streamed answers go through stream.StreamTranslator. Pure: no I/O, no mitmproxy.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from .. import jsonio
from ..changes import Change
from ..models import ModelMap
from ..rewrite import rewrite_doc
from ..rules import Rules, split_path
from .answer import chat_to_response
from .errors import BridgeError, error_body
from .request import request_to_chat
from .stream import StreamTranslator

_RESPONSES_PATH = re.compile(r"(?:^|/)v1/responses(/.*)?$")

STORED_MESSAGE = (
    "Mistral stores no responses, so a stored response cannot be retrieved, listed, cancelled or "
    "deleted; keep the output of each response on the client and send it back in `input`"
)


def match_path(path: str) -> tuple[str, str] | None:
    """Which Responses API path this is: ('create', chat completions path) for POST .../v1/responses,
    ('stored', '') for .../v1/responses/{id}[/...] (stored responses), None for any other path."""
    route, query = split_path(path)
    m = _RESPONSES_PATH.search(route)
    if m is None:
        return None
    if m.group(1) and m.group(1).strip("/"):
        return "stored", ""
    chat = route[m.start() :].rstrip("/").replace("v1/responses", "v1/chat/completions", 1)
    return "create", route[: m.start()] + chat + query


class Bridged(NamedTuple):
    """A Responses request made into a chat completions request (or the reason it cannot be)."""

    body: bytes | None  # the chat completions body to forward; None when it cannot be sent
    changes: list[Change]  # the bridge's translations, then the chat rewrite's repairs
    request: dict | None  # the Responses request as the client sent it (the answer echoes parts of it)
    error: str | None = None  # why it cannot be sent (answer 400 with error_body(400, None, error, param, code))
    param: str | None = None
    code: str | None = None


def bridge_request(rules: Rules, body: bytes, model_map: ModelMap | None = None) -> Bridged:
    """A Responses request body -> the Mistral chat completions body to forward, through the same rewrite
    as a chat completion sent directly (tool-call ids, ranges, unknown keys). The body is parsed once and the
    chat body written once; the parsed request is kept as it came, for the answer's echo."""
    try:
        doc = jsonio.parse(body)
    except jsonio.BodyError as e:
        return Bridged(None, [], None, str(e))
    request = doc.data
    try:
        chat, changes = request_to_chat(request)
    except BridgeError as e:
        return Bridged(None, [], request, e.message, e.param or None, e.code)
    result = rewrite_doc(rules, "chat/completions", jsonio.Document(chat, doc.raw), write=True, model_map=model_map)
    if result.error:
        return Bridged(None, changes + result.changes, request, result.error)
    return Bridged(result.body, changes + result.changes, request)


def translate_answer(status: int, content_type: str, content: bytes, request: dict) -> tuple[int, str, bytes]:
    """Mistral's whole answer to the chat completion -> (status, content type, body) of the Responses answer:
    a response object, the event stream (when Mistral's stream had to be buffered), or an error."""
    if not 200 <= status < 300:
        return status, "application/json", error_body(status, content)
    problem = "is not a JSON object"
    try:
        if content_type.startswith("text/event-stream"):
            translator = StreamTranslator(request)
            return status, "text/event-stream", translator.feed(content) + translator.close()
        chat = json.loads(content)
        if isinstance(chat, dict):
            return status, "application/json", jsonio.dumps(chat_to_response(chat, request))
    except ValueError:
        pass
    except RecursionError:  # an echoed schema nested too deeply to write back
        problem = "could not be translated"
    return 502, "application/json", error_body(502, None, f"Mistral's answer to the chat completion {problem}")
