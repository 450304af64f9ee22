"""Keep secrets out of logs: API keys in header lines, bearer tokens, key-like query parameters, and
secret-looking keys in JSON bodies shown at debug level."""

from __future__ import annotations

import re
from typing import Any

MASK = "[REDACTED]"
_TRIGGERS = ("auth", "key", "bearer", "basic", "cookie", "token", "secret", "passw", "signature")

# "authorization: Bearer sk-...", "x-api-key: ...", "api-key = ..." anywhere in a line
_HEADER_LINE = re.compile(
    r"(?im)\b((?:proxy-)?authorization|x-api-key|api-key|x-goog-api-key|cookie|set-cookie)(\s*[:=]\s*)([^\r\n]+)")
# "    key: ..." / "    access_token: ..." at the start of a line (mitmdump's header and query tables):
# the part of a line before its first colon, when it names a secret
_TABLE_NAME = re.compile(r"(?i)\s*[\w.-]*(?:key|token|secret|passw|auth|signature)[\w.-]*\s*")
# Bearer/Basic credentials anywhere
_SCHEME_TOKEN = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=\-]{4,}")
# ?api_key=...&token=... in URLs
_QUERY = re.compile(
    r"(?i)([?&;](?:[a-z0-9_\-]*(?:key|token|secret|password|passwd|auth|signature|sig)[a-z0-9_\-]*)=)[^&#\s\"']+")

_SECRET_KEY = re.compile(r"(?i)(authorization|api[-_]?key|token|secret|password|passwd|credential|cookie)")


def redact_text(text: str) -> str:
    """Mask credentials in one log line."""
    if not text:
        return text
    lowered = text.lower()
    if any(word in lowered for word in _TRIGGERS):  # each pattern only where its words occur (speed)
        if "authorization" in lowered or "api-key" in lowered or "cookie" in lowered:
            text = _HEADER_LINE.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
        if ":" in text:
            text = _mask_table_lines(text)
        if "bearer" in lowered or "basic" in lowered:
            text = _SCHEME_TOKEN.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    if "=" in text:
        text = _QUERY.sub(lambda m: m.group(1) + MASK, text)
    return text


def _mask_table_lines(text: str) -> str:
    """'    x-api-key: sk-...' -> '    x-api-key: [REDACTED]', for every line whose name names a secret."""
    lines = text.split("\n")
    changed = False
    for i, line in enumerate(lines):
        name, colon, rest = line.partition(":")
        if not colon or not _TABLE_NAME.fullmatch(name):
            continue
        value = rest.lstrip()
        if value.rstrip("\r"):
            lines[i] = name + colon + rest[:len(rest) - len(value)] + MASK + ("\r" if value.endswith("\r") else "")
            changed = True
    return "\n".join(lines) if changed else text


def redact_json(value: Any, max_string: int = 200) -> Any:
    """A copy of a parsed body for display: secret-looking keys masked, long strings shortened."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and _SECRET_KEY.search(k) and isinstance(v, (str, int, float))
                    else redact_json(v, max_string)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, max_string) for v in value]
    if isinstance(value, str) and len(value) > max_string:
        return f"{value[:max_string // 2]}...<{len(value)} characters>"
    return value
