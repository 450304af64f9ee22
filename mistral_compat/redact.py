"""Keep secrets and forged lines out of logs.

redact_text masks credentials in any text printed: API keys in header lines (`x-api-key: ...`, mitmdump's
header tables, raw request bytes as proxy_debug prints them, with literal `\\r\\n` between headers), Bearer
and Basic tokens, key-like query parameters (names percent-decoded), and JSON `"name": value` pairs under
a key-like name (mitmproxy's body views). Coloured terminal output is matched without its colour codes.
Every pattern runs in linear time, whatever the text: it is client-controlled.

redact_json masks any value under a key-like name in a parsed body (the debug before/after dump).

printable makes a piece of client-controlled text safe to print on one line: control characters,
newlines, ESC, DEL, C1 controls, lone surrogates, line separators and bidi controls shown as escapes
(\\n, \\x1b, \\u2028), and cut to a length with a marker.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

MASK = "[REDACTED]"

# A name is key-like when its normalised form (lower case, percent-decoded, without - _ . and spaces)
# contains one of these. Errs on the side of masking ("monkey" is masked too).
SECRET_WORDS = (
    "key",
    "token",
    "secret",
    "passw",
    "pwd",
    "auth",
    "credential",
    "cookie",
    "signature",
    "session",
    "private",
    "bearer",
    "jwt",
    "csrf",
    "xsrf",
)
# and in query strings also "sig" (as in ?sig=... of signed URLs)
_QUERY_WORDS = SECRET_WORDS + ("sig",)
# cheap gate for the line patterns: nothing to do unless one of these occurs (lower case; the most
# frequent first)
_TRIGGERS = (
    "key",
    "auth",
    "token",
    "bearer",
    "cookie",
    "basic",
    "secret",
    "passw",
    "pwd",
    "credential",
    "signature",
    "session",
    "private",
    "jwt",
    "csrf",
    "xsrf",
)
_NAME_DROP = str.maketrans("", "", "-_. ")

# "authorization: Bearer sk-...", "x-api-key: ...", "api-key = ..." anywhere in a line
_HEADER = r"((?:proxy-)?authorization|x-api-key|api-key|x-goog-api-key|cookie|set-cookie)(\s*[:=]\s*)"
_HEADER_LINE = re.compile(r"(?i)\b" + _HEADER + r"([^\r\n]*)")
# "    x-goog-api-key: ..." at the start of a line (mitmdump's header tables): a line whose name (the part
# before its first colon) names a secret; the name is judged in Python
_TABLE_LINE = re.compile(r"(?m)^([ \t]*([\w.-]+)[ \t]*:[ \t]*)([^\r\n]*)")
_NEXT_TABLE_LINE = re.compile(r"\n([ \t]*([\w.-]+)[ \t]*:[ \t]*)([^\r\n]*)")  # the same, after its newline
# The same two for text holding escaped bytes (proxy_debug prints raw requests so: a header follows the
# two characters \r\n): a line also starts after a literal \r or \n, and its value ends before one.
# Table lines are tried only at line starts, and their name class holds no line break, so each character
# is looked at a bounded number of times.
_VALUE = r"((?:[^\r\n\\]|\\(?![rn]))*)"
_HEADER_LINE_ESCAPED = re.compile(r"(?i)(?:\b|(?<=\\n)|(?<=\\r))" + _HEADER + _VALUE)
_TABLE_LINE_ESCAPED = re.compile(r"(?m)(?:^|(?<=\\n)|(?<=\\r))([ \t]*([\w.-]+)[ \t]*:[ \t]*)" + _VALUE)
# Bearer/Basic credentials anywhere (not inside a word), after any whitespace, real or escaped (\t in
# proxy_debug's bytes)
_SCHEME_TOKEN = re.compile(r"(?i)(?:(?<![a-z0-9])|(?<=\\[tnr]))(bearer|basic)((?:\s|\\t)+)[A-Za-z0-9._~+/=\-]{4,}")
# ?name=value in URLs, and name=value after a space, a comma or "(" (a form body in a hex view, a repr). No
# class holds a character that can start a match, so every character is looked at a bounded number of
# times, and a value never swallows the next pair (the name is judged in Python).
_QUERY = re.compile(r"(?:^|[?&;\s,(])([^=?&;,(#\s\"'\\<>]+)=([^?&;,(#\s\"']*)")
# a JSON member name followed by its colon: "api_key": (the value is found in Python). Never from a
# quote after a backslash: each string is then scanned once, from its opening quote.
_JSON_NAME = re.compile(r'(?<!\\)"((?:[^"\\\r\n]|\\.)*)"[ \t]*:[ \t]*')
_JSON_STRING = re.compile(r'"(?:[^"\\\r\n]|\\.)*"')
_JSON_SCALAR = re.compile(r"[^,}\]\s]*")
# terminal control sequences (mitmdump colours header names, URLs and body views on a terminal)
_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def secret_name(name: str, words: tuple[str, ...] = SECRET_WORDS) -> bool:
    """Whether a header, query or JSON name looks like it holds a credential: 'api_key', 'X-Goog-Api-Key',
    'api%5Fkey', 'privateKey', 'passwd', ... ('author' and token counts like 'max_tokens' are not)."""
    n = name.lower()
    if "%" in n:
        for _ in range(3):  # %255F: encoded twice
            decoded = unquote(n).lower()
            if decoded == n:
                break
            n = decoded
    n = n.translate(_NAME_DROP)
    if "author" in n:
        n = n.replace("authoriz", "auth").replace("authoris", "auth").replace("author", "")
    for w in words:
        if w in n:
            return True
    return False


def _count_name(name: str) -> bool:
    """'max_tokens', 'prompt_tokens': a number of tokens (key-like only through 'tokens')."""
    n = name.lower().translate(_NAME_DROP)
    return "tokens" in n and not secret_name(n.replace("tokens", ""))


# -- text ------------------------------------------------------------------------------------------------


def redact_text(text: str) -> str:
    """Mask credentials in text about to be printed (a log line, a flow line, a body view)."""
    if len(text) < 3:  # "" and the "\n" print() writes on its own
        return text
    if "\x1b" in text:
        return _redact_coloured(text)
    if "=" not in text and not any(map(text.lower().__contains__, _TRIGGERS)):
        return text  # _redact_plain would find nothing to look at (most lines: no call to find that out)
    return _redact_plain(text)


def _redact_plain(text: str) -> str:
    lowered = text.lower()
    if any(map(lowered.__contains__, _TRIGGERS)):  # each pattern only where its words occur (speed)
        if '"' in text and ":" in text:
            text = _mask_json_pairs(text)
        escaped = "\\" in text and ("\\n" in text or "\\r" in text)  # (one character is found faster than two)
        if "authorization" in lowered or "api-key" in lowered or "cookie" in lowered:
            text = (_HEADER_LINE_ESCAPED if escaped else _HEADER_LINE).sub(_mask_header, text)
        if ":" in text:
            text = _TABLE_LINE_ESCAPED.sub(_mask_table_line, text) if escaped else _mask_table_lines(text)
        if "bearer" in lowered or "basic" in lowered:
            text = _SCHEME_TOKEN.sub(_mask_scheme, text)
    if "=" in text:
        text = _QUERY.sub(_mask_query, text)
    return text


def _mask_header(m: re.Match) -> str:
    return m.group(1) + m.group(2) + MASK if m.group(3) else m.group(0)


def _mask_scheme(m: re.Match) -> str:
    return m.group(1) + m.group(2) + MASK


def _mask_table_lines(text: str) -> str:
    """'    x-api-key: sk-...' -> '    x-api-key: [REDACTED]', for every line whose name names a secret. The first
    line is looked at where it starts, every other one from the newline before it: a pattern that starts with
    a newline is only tried at newlines, where `(?m)^` is tried at every character (a batch of log lines is
    many kilobytes)."""
    m = _TABLE_LINE.match(text)
    if m is not None:
        text = _mask_table_line(m) + text[m.end() :]
    return _NEXT_TABLE_LINE.sub(_mask_table_line, text) if "\n" in text else text


def _mask_table_line(m: re.Match) -> str:
    if not m.group(3).strip() or not secret_name(m.group(2)):
        return m.group(0)
    return m.group(0)[: m.start(1) - m.start()] + m.group(1) + MASK  # (what comes before the name: a newline)


def _redact_coloured(text: str) -> str:
    """Redact the text without its colour codes; lines that needed a mask lose their colours."""
    plain = _CSI.sub("", text)
    clean = _redact_plain(plain)
    if clean == plain:
        return text
    lines, plain_lines, clean_lines = text.split("\n"), plain.split("\n"), clean.split("\n")
    if len(clean_lines) != len(lines):  # a masked value spanned lines
        return clean
    return "\n".join(line if c == p else c for line, p, c in zip(lines, plain_lines, clean_lines))


def _mask_query(m: re.Match) -> str:
    if not m.group(2) or not secret_name(m.group(1), _QUERY_WORDS):
        return m.group(0)
    return m.group(0)[: m.start(2) - m.start()] + MASK


def _json_name(raw: str) -> str:
    if "\\" in raw:
        try:
            return json.loads(f'"{raw}"')
        except ValueError:
            pass
    return raw


def _mask_json_pairs(text: str) -> str:
    """'"api_key": "sk-..."' -> '"api_key": [REDACTED]' (any value: string, number, list, object), in a
    body as mitmproxy's views print it, pretty or compact. One pass: a masked value is not searched again."""
    out: list[str] = []
    pos = 0
    search = _JSON_NAME.search
    while True:
        m = search(text, pos)
        if m is None:
            break
        name = m.group(1)
        start = m.end()
        if not secret_name(_json_name(name)):
            out.append(text[pos:start])
            pos = start
            continue
        end = _json_value_end(text, start)
        value = text[start:end]
        if end == start or (_count_name(_json_name(name)) and _is_number(value)):
            out.append(text[pos:end])
        else:
            out.append(text[pos:start])
            out.append(MASK)
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _is_number(value: str) -> bool:
    v = value.strip()
    return v == "null" or v.lstrip("-").replace(".", "", 1).isdigit()


def _json_value_end(text: str, start: int) -> int:
    """Where the JSON value starting at start ends (the end of the text when it is cut off)."""
    if start >= len(text):
        return start
    c = text[start]
    if c == '"':
        m = _JSON_STRING.match(text, start)
        if m:
            return m.end()
        nl = text.find("\n", start)
        return len(text) if nl < 0 else nl
    if c in "[{":
        depth, i, n = 0, start, len(text)
        while i < n:
            c = text[i]
            if c == '"':
                m = _JSON_STRING.match(text, i)
                if m is None:  # cut off inside a string
                    return n
                i = m.end()
                continue
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return n
    scalar = _JSON_SCALAR.match(text, start)
    assert scalar is not None  # the pattern matches the empty string too: it always matches
    return scalar.end()


# -- parsed bodies ---------------------------------------------------------------------------------------


def redact_json(value: Any, max_string: int = 200) -> Any:
    """A copy of a parsed body for display: any value under a key-like name masked (whatever its type;
    token counts such as max_tokens shown), long strings and names shortened."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = k
            if isinstance(k, str):
                if len(k) > max_string:
                    key = f"{k[: max_string // 2]}...<{len(k)} characters>"
                if secret_name(k) and not (
                    _count_name(k)
                    and (  # usage counts: max_tokens, prompt_tokens_details
                        v is None
                        or (isinstance(v, dict) and k.lower().endswith("details"))
                        or (isinstance(v, (int, float)) and not isinstance(v, bool))
                    )
                ):
                    out[key] = MASK
                    continue
            out[key] = redact_json(v, max_string)
        return out
    if isinstance(value, list):
        return [redact_json(v, max_string) for v in value]
    if isinstance(value, str) and len(value) > max_string:
        return f"{value[: max_string // 2]}...<{len(value)} characters>"
    return value


# -- client-controlled text in our own lines -------------------------------------------------------------

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    if c in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[c]
    o = ord(c)
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def _escaped(text: str, limit: int, reverse: bool = False) -> tuple[str, int]:
    """(the escaped text, at most limit characters long, how many characters of text it holds)."""
    out: list[str] = []
    size = 0
    used = 0
    for c in reversed(text) if reverse else text:
        e = c if c.isprintable() else _escape(c)
        if size + len(e) > limit:
            break
        out.append(e)
        size += len(e)
        used += 1
    if reverse:
        out.reverse()
    return "".join(out), used


def printable(text: str, limit: int = 200, tail: int = 0) -> str:
    """Client-controlled text made safe for one log line: every character str.isprintable() refuses
    (control characters, newlines, ESC, DEL, C1 controls, lone surrogates, U+2028, bidi controls, ...)
    shown as an escape (\\n, \\x1b, \\u2028), and cut to about limit characters with a marker giving the
    original length, '...(1048576 chars)'. With tail, the last tail characters are kept too:
    'head...(1048576 chars)...tail'."""
    if not isinstance(text, str):
        text = str(text)
    if len(text) <= limit and text.isprintable():
        return text  # the common case: one C-speed check
    if tail and len(text) > limit:
        head, _ = _escaped(text[: limit - tail], limit - tail)
        end, _ = _escaped(text[-tail:], tail, reverse=True)
        return f"{head}...({len(text)} chars)...{end}"
    out, used = _escaped(text[:limit], limit)
    return out if used == len(text) else f"{out}...({len(text)} chars)"


# characters json.dumps(ensure_ascii=False) passes through that a terminal may act on or that can make a
# line look like something else: DEL, C1 controls, line/paragraph separators, bidi controls, surrogates
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def escape_json_text(text: str) -> str:
    """Pretty-printed JSON (json.dumps(..., ensure_ascii=False)) safe to print: the characters above
    as \\uXXXX escapes (inside JSON strings, where they can only be, that is still the same JSON)."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
