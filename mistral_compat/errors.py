"""Error bodies in both shapes: Mistral's ({"object": "error", "message", "type", "param", "code"}, or FastAPI's
{"detail": ...}) and OpenAI's ({"error": {"message", "type", "param", "code"}}), from one description.

- describe(): any error answer Mistral sends -> one readable ErrorInfo (a 422 `detail` list becomes one line,
  `param` its first location);
- with_openai_error(): Mistral's error body with OpenAI's `error` object added beside its own fields, so that
  OpenAI clients show the reason and Mistral-native clients keep reading theirs;
- proxy_error(): the proxy's own error answers, in both shapes at once;
- openai_error(): the OpenAI shape alone (the Responses bridge).
Pure: no I/O, no mitmproxy.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from .changes import format_path
from .jsonio import dumps as json_bytes  # the one JSON writer; json_bytes kept as the name addon.py imports

PREFIX = "mistral-compat: "  # the proxy's own messages start with it
MAX_ERROR_BODY = 1 << 20  # larger error bodies are passed on as they are (never seen from Mistral)
MAX_DETAILS = 20  # 422 detail entries put into the one-line message

_TYPES_BY_STATUS = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class ErrorInfo(NamedTuple):
    message: str
    type: str
    param: str | None = None
    code: str | None = None

    def openai(self) -> dict:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}


def default_type(status: int) -> str:
    return _TYPES_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")


def own(status: int, message: str, param: str | None = None, code: str | None = None) -> ErrorInfo:
    """The description of one of the proxy's own error answers."""
    text = message if message.startswith(PREFIX) else PREFIX + message
    return ErrorInfo(text, default_type(status), param, code)


def proxy_error(status: int, message: str, param: str | None = None, code: str | None = None) -> bytes:
    """The proxy's own error body, readable by both kinds of client: Mistral's top-level fields and OpenAI's
    `error` object, with the same message."""
    info = own(status, message, param, code)
    return json_bytes(
        {
            "object": "error",
            "message": info.message,
            "type": info.type,
            "param": info.param,
            "code": info.code,
            "error": info.openai(),
        }
    )


def openai_error(info: ErrorInfo) -> bytes:
    return json_bytes({"error": info.openai()})


def _loc(loc: Any) -> str:
    if not isinstance(loc, list):
        return ""
    parts = tuple(p for p in loc[1:] if isinstance(p, (str, int))) if loc[:1] == ["body"] else tuple(loc)
    return format_path(parts) if parts else "body"


def _detail_message(detail: Any) -> tuple[str, str | None]:
    """A 422 detail list -> (one readable line, param = the first entry's location)."""
    if isinstance(detail, str):
        return detail, None
    if not isinstance(detail, list):
        return json.dumps(detail, ensure_ascii=False)[:2000], None
    lines, param = [], None
    for entry in detail[:MAX_DETAILS]:
        if not isinstance(entry, dict):
            continue
        where = _loc(entry.get("loc"))
        param = param or where or None
        msg = entry.get("msg", "")
        lines.append(f"{where}: {msg}" if where else str(msg))
    if len(detail) > MAX_DETAILS:
        lines.append(f"and {len(detail) - MAX_DETAILS} more")
    return "; ".join(lines) or "invalid request", param


def describe_data(status: int, data: Any, detail_suffix: str = "") -> ErrorInfo:
    """Mistral's parsed error body -> ErrorInfo. detail_suffix is appended to the message made from a
    validation error's detail list."""
    etype = default_type(status)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):  # already OpenAI-shaped
        data = data["error"]
    if not isinstance(data, dict):
        return ErrorInfo(f"Mistral answered HTTP {status}: {json.dumps(data, ensure_ascii=False)[:500]}", etype)
    if isinstance(data.get("type"), str) and data["type"]:
        etype = data["type"]
    code = str(data["code"]) if isinstance(data.get("code"), (str, int)) and data["code"] != "" else None
    msg = data.get("message")
    param = data["param"] if isinstance(data.get("param"), str) else None
    if isinstance(msg, dict) and "detail" in msg:
        text, where = _detail_message(msg["detail"])
        text += detail_suffix
        param = param or where
    elif msg is None and "detail" in data:
        text, where = _detail_message(data["detail"])
        param = param or where
    elif isinstance(msg, str) and msg:
        text = msg
    elif msg is None and isinstance(data.get("error"), str) and data["error"]:
        text = data["error"]
    elif msg is not None and msg != "":
        text = json.dumps(msg, ensure_ascii=False)[:2000]
    else:
        text = f"Mistral answered HTTP {status}"
    return ErrorInfo(text, etype, param, code)


def describe(status: int, upstream: bytes, detail_suffix: str = "") -> ErrorInfo:
    """Any error body Mistral sends (JSON in its shapes, or HTML, text, nothing) -> ErrorInfo."""
    try:
        data = json.loads(upstream[:MAX_ERROR_BODY])
    except (ValueError, UnicodeDecodeError, RecursionError):
        text = upstream[:500].decode("utf-8", "replace").strip()
        return ErrorInfo(f"Mistral answered HTTP {status}" + (f": {text}" if text else ""), default_type(status))
    return describe_data(status, data, detail_suffix)


def needs_openai_error(data: Any) -> bool:
    """Whether a parsed error body lacks OpenAI's `error` object (and is an object we can add it to)."""
    return isinstance(data, dict) and not isinstance(data.get("error"), dict)


def with_openai_error(status: int, body: bytes) -> bytes | None:
    """Mistral's JSON error body with OpenAI's `error` object added beside its own fields; None when the body
    needs nothing (it has one already) or is not a JSON object (HTML, text, empty: passed on as it is)."""
    if len(body) > MAX_ERROR_BODY or not body.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not needs_openai_error(data):
        return None
    data["error"] = describe_data(status, data).openai()
    try:
        return json_bytes(data)
    except RecursionError:
        return None
