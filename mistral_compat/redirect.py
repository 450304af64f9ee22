"""Apps locked to api.openai.com, served by Mistral (issue 16): the pure core. Pure: no I/O, no mitmproxy.

- parse_target(): the `mistral_redirect_to` option (`http(s)://host[:port]`) -> Target;
- openai_only(): whether a request path on the redirected host is an OpenAI feature Mistral has no
  counterpart for (answered locally with not_found_body(), status NOT_FOUND_STATUS; Mistral is not
  contacted);
- origin_refused(): whether a request to the redirected host from a web page (it carries an Origin) is
  refused (answered locally with refused_body(), status FORBIDDEN_STATUS): the Mistral key is not lent to
  web pages unless mistral_cors_origins lists their origin;
- the model names (mistral_compat/models.py, re-exported here): parse_model_map(), ModelMap, DEFAULT_MAP,
  rename_model(), merge_models(), markdown_table().
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import unquote

from .errors import PREFIX, ErrorInfo, openai_error
from .hosts import ascii_host
from .models import (
    DEFAULT_GROUPS,
    DEFAULT_MAP,
    MAX_ENTRIES,
    MAX_NAME,
    Entry,
    ModelMap,
    combine,
    markdown_table,
    merge_models,
    model_object,
    parse_entry,
    parse_model_map,
    rename_model,
    retrieve_model,
)
from .redact import printable

__all__ = [
    "OPENAI_HOST",
    "DEFAULT_TARGET",
    "NOT_FOUND_STATUS",
    "FEATURES",
    "Target",
    "parse_target",
    "route",
    "openai_only",
    "not_found_body",
    "model_id",
    "FORBIDDEN_STATUS",
    "origin_refused",
    "refused_body",
    # the model names (mistral_compat/models.py)
    "DEFAULT_GROUPS",
    "DEFAULT_MAP",
    "MAX_ENTRIES",
    "MAX_NAME",
    "Entry",
    "ModelMap",
    "combine",
    "markdown_table",
    "merge_models",
    "model_object",
    "parse_entry",
    "parse_model_map",
    "rename_model",
    "retrieve_model",
]

OPENAI_HOST = "api.openai.com"
DEFAULT_TARGET = "https://api.mistral.ai"
NOT_FOUND_STATUS = 404
FORBIDDEN_STATUS = 403

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
MAX_TARGET = 2048


# ---------------------------------------------------------------------------------------------------------
# mistral_redirect_to


class Target(NamedTuple):
    """Where redirected requests go: scheme ('http' or 'https'), host (lower case, punycode; an IPv6
    address without brackets) and port (the scheme's default filled in)."""

    scheme: str
    host: str
    port: int

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        """The Host header value: host, with the port when it is not the scheme's default; IPv6 in []."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}"

    def __str__(self) -> str:
        return self.url


def parse_target(text: str) -> Target:
    """`http(s)://host[:port]` (one trailing '/' allowed) -> Target. ValueError, saying why, for anything
    else: another scheme, a path, query, fragment or user:password@, a bad port, a host that is not a host
    name or IP address (IPv6 in brackets), and OpenAI's own hosts (the Mistral key would go to OpenAI)."""
    if not isinstance(text, str):
        raise ValueError(f"mistral_redirect_to must be text, not {type(text).__name__}")
    spec = text.strip()
    shown = printable(spec, 100)
    if not spec:
        raise ValueError(f"mistral_redirect_to is empty; give a URL like {DEFAULT_TARGET}")
    if len(spec) > MAX_TARGET:
        raise ValueError(f"mistral_redirect_to is {len(spec)} characters long (at most {MAX_TARGET})")
    if not spec.isprintable() or any(c.isspace() for c in spec):
        raise ValueError(f"mistral_redirect_to {shown} has whitespace or control characters")
    scheme, sep, rest = spec.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(
            f"mistral_redirect_to {shown} is not a URL; give e.g. {DEFAULT_TARGET} or http://127.0.0.1:8080"
        )
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"mistral_redirect_to {shown}: the scheme must be http or https")
    if "?" in rest or "#" in rest:
        raise ValueError(f"mistral_redirect_to {shown} has a query or fragment; give only {scheme}://host[:port]")
    netloc, slash, path = rest.partition("/")
    if not netloc:
        raise ValueError(f"mistral_redirect_to {shown} has no host")
    if "@" in netloc:
        raise ValueError(
            f"mistral_redirect_to {shown} has a user name or password (user@host); give only "
            f"{scheme}://host[:port] (the Mistral key comes from MISTRAL_API_KEY)"
        )
    if path:
        raise ValueError(
            f"mistral_redirect_to {shown} has a path (/{printable(path, 60)}); give only "
            f"{scheme}://host[:port]: each request keeps its own path (/v1/chat/completions)"
        )
    host, port = _split_netloc(netloc, shown)
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    if host == "openai.com" or host.endswith(".openai.com"):
        raise ValueError(
            f"mistral_redirect_to {shown} is OpenAI: requests redirected from OpenAI must go to "
            f"Mistral (or a server in front of it), and the Mistral key must never reach OpenAI"
        )
    return Target(scheme, host, port)


def _split_netloc(netloc: str, shown: str) -> tuple[str, int | None]:
    if not netloc:
        raise ValueError(f"mistral_redirect_to {shown} has no host")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise ValueError(f"mistral_redirect_to {shown}: the IPv6 address has no closing ']'")
        raw, after = netloc[1:end], netloc[end + 1 :]
        try:
            if "%" in raw:  # a zone (fe80::1%eth0) names an interface of this machine, not a server
                raise ValueError
            host = str(ipaddress.IPv6Address(raw))
        except ValueError:
            raise ValueError(
                f"mistral_redirect_to {shown}: {printable(raw, 60)!s} in [] is not an IPv6 address"
            ) from None
        if after and not after.startswith(":"):
            raise ValueError(f"mistral_redirect_to {shown}: only ':port' may follow the IPv6 address")
        return host, _port(after[1:], shown) if after else None
    if netloc.count(":") > 1:
        raise ValueError(f"mistral_redirect_to {shown}: an IPv6 address must be in brackets, e.g. http://[::1]:8080")
    name, colon, port_text = netloc.partition(":")
    port = _port(port_text, shown) if colon else None
    name = name.lower()
    if name.endswith("."):  # a fully qualified name: the same host (and the name its certificate has)
        name = name[:-1]
    if not name:
        raise ValueError(f"mistral_redirect_to {shown} has no host")
    if all(part.isdigit() for part in name.split(".")):
        try:
            return str(ipaddress.IPv4Address(name)), port
        except ValueError:
            raise ValueError(f"mistral_redirect_to {shown}: {printable(name, 60)} is not an IPv4 address") from None
    try:
        host = ascii_host(name, netloc).lower()  # internationalised names in punycode, as hosts.py does
    except ValueError as e:
        raise ValueError(f"mistral_redirect_to: {e}") from None
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"mistral_redirect_to {shown}: {printable(name, 60)} is not a host name")
    return host, port


def _port(text: str, shown: str) -> int:
    if not text:
        raise ValueError(f"mistral_redirect_to {shown} has ':' but no port after it")
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 0 < int(text) < 65536:
        raise ValueError(f"mistral_redirect_to {shown}: the port must be a number from 1 to 65535")
    return int(text)


# ---------------------------------------------------------------------------------------------------------
# OpenAI-only endpoints
#
# Every path of OpenAI's API (openai-python's api.md, 2026) was compared with Mistral's spec (2026-08-13).
# Forwarded (None): chat/completions (POST), embeddings, moderations, models, models/{id}, responses and
# everything under it (the Responses bridge answers those), and any path OpenAI does not define (Mistral
# answers it, usually 404). Answered locally (the feature name): the families below. Where Mistral has a
# path of the same name, the reason it is still not forwarded is given: its request or answer differs so
# much that forwarding would only produce a confusing Mistral error, or worse, do something else.
FEATURES: dict[str, str] = {
    "images": "image generation and editing (images)",
    # Mistral has /v1/audio/transcriptions and /v1/audio/speech, but: OpenAI's transcription requests are
    # multipart forms naming whisper-1/gpt-4o-transcribe (the model map renames JSON bodies only), with
    # response_format text/srt/vtt Mistral does not produce; Mistral's speech answer is JSON with base64
    # audio where OpenAI's clients expect the audio bytes (they would save the JSON as an .mp3); OpenAI's
    # /audio/voices (custom voices with a consent recording) is not Mistral's voice library.
    # /audio/translations has no counterpart at all.
    "audio": "audio (speech, transcription, translation, voices)",
    # Mistral has /v1/files, but its purposes are fine-tune, batch and ocr; OpenAI apps upload files for
    # assistants, vision, user_data, evals, or for batches and fine-tuning jobs, all answered 404 here: the
    # user's documents would be stored at Mistral for nothing. Listing would show the Mistral account's files.
    "files": "files",
    "uploads": "uploads (large file uploads)",
    # Mistral's batch API is /v1/batch/jobs with another request shape; OpenAI's /v1/batches has no twin.
    "batches": "batches",
    "assistants": "Assistants",
    "threads": "Assistants threads and runs",
    "vector_stores": "vector stores",
    # Mistral's spec has only /v1/fine_tuning/models/{id}; OpenAI's jobs, checkpoints and graders (and the
    # retired /v1/fine-tunes) have no counterpart, and their training files could not be uploaded anyway.
    "fine_tuning": "fine-tuning",
    "realtime": "Realtime (speech-to-speech, WebRTC and WebSocket sessions)",
    "evals": "evals",
    "containers": "containers (code interpreter)",
    "videos": "video generation (Sora)",
    "skills": "skills",
    "chatkit": "ChatKit",
    # Mistral's /v1/conversations is its Agents API (inputs, agent_id, stored on Mistral): OpenAI's
    # Conversations API (items for the Responses API) would create something else or fail validation.
    "conversations": "Conversations (stored Responses state)",
    # OpenAI's beta Agents API (/v1/agents, agents/sessions, ...) shares only its name with Mistral's
    # /v1/agents (Mistral agents have other required fields): forwarding would create Mistral agents or fail.
    "agents": "Agents (beta)",
    "organization": "administration (organization, projects, usage, costs, audit logs)",
    "billing": "billing dashboard (legacy /dashboard/billing)",
    # /v1/completions (gpt-3.5-turbo-instruct) has no Mistral counterpart: Mistral's /v1/fim/completions
    # takes prompt + suffix for code and would answer in another shape.
    "completions": "legacy text completions (/v1/completions)",
    # GET /v1/chat/completions and /v1/chat/completions/{id}[/messages]: chat completions OpenAI stored with
    # store=true. Mistral stores none (`store` is dropped before the request reaches it).
    "stored_completions": "stored chat completions",
    # Endpoints OpenAI itself retired (engines, edits, answers, classifications): OpenAI answers
    # them 404 too. Mistral's /v1/classifications is an unrelated classifier API.
    "legacy": "retired legacy",
}

_FAMILIES = {
    "images": "images",
    "audio": "audio",
    "files": "files",
    "uploads": "uploads",
    "batches": "batches",
    "assistants": "assistants",
    "threads": "threads",
    "vector_stores": "vector_stores",
    "fine_tuning": "fine_tuning",
    "fine-tunes": "fine_tuning",
    "realtime": "realtime",
    "evals": "evals",
    "containers": "containers",
    "videos": "videos",
    "skills": "skills",
    "chatkit": "chatkit",
    "conversations": "conversations",
    "agents": "agents",
    "organization": "organization",
    "dashboard": "billing",
    "usage": "organization",
    "completions": "completions",
    "engines": "legacy",
    "edits": "legacy",
    "answers": "legacy",
    "classifications": "legacy",
}

MAX_PATH = 8192  # characters of a path examined (a longer one is judged by its start)


def route(path: str) -> tuple[str, ...]:
    """A request path as the server would route it: query and fragment cut, percent-escapes decoded (a
    few rounds: %2566 is %66 is 'f'), empty and '.' segments dropped, '..' applied, lower case, and a
    leading 'v1' removed. '/v1//Images/./generations?x' -> ('images', 'generations')."""
    if not isinstance(path, str):
        return ()
    text = path[:MAX_PATH].split("?", 1)[0].split("#", 1)[0]
    for _ in range(3):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    text = text.split("?", 1)[0].split("#", 1)[0]  # an escaped '?' is a query to the server too
    segments: list[str] = []
    for seg in text.replace("\\", "/").split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if segments:
                segments.pop()
            continue
        segments.append(seg.lower())
    if segments[:1] == ["v1"]:
        segments = segments[1:]
    return tuple(segments)


def openai_only(path: str, method: str | None = None) -> str | None:
    """For a request path on the redirected host (with or without '/v1', query ignored): the short name of
    the OpenAI feature it belongs to when Mistral has no counterpart for it (a key of FEATURES), else None
    (forward it). With the method, GET /v1/chat/completions (listing stored completions) is recognised
    too; an OPTIONS request (a CORS preflight) is never answered here, so the CORS layer can answer it."""
    if isinstance(method, str) and method.upper() == "OPTIONS":
        return None
    segs = route(path)
    if not segs:
        return None
    first = segs[0]
    if first == "chat":
        if segs[1:2] == ("completions",):
            if len(segs) > 2:
                return "stored_completions"
            if isinstance(method, str) and method.upper() == "GET":
                return "stored_completions"
        return None
    return _FAMILIES.get(first)


def not_found_body(path: str, feature: str, method: str | None = None) -> bytes:
    """The local answer's body (status NOT_FOUND_STATUS) in OpenAI's shape for an unknown URL
    ({"error": {"message", "type": "invalid_request_error", "param": null, "code": "unknown_url"}}),
    saying that the endpoint has no Mistral counterpart and that nothing was sent to Mistral."""
    label = FEATURES.get(feature, printable(feature, 60))
    where = printable(path.split("?", 1)[0] if isinstance(path, str) else "", 200)
    if isinstance(method, str) and method:
        where = f"{printable(method.upper(), 20)} {where}"
    message = (
        f"{PREFIX}{where} belongs to OpenAI's {label} API, which has no counterpart at Mistral. "
        f"This proxy sends requests for {OPENAI_HOST} to Mistral instead, so it answered this one itself: "
        f"the request was sent neither to Mistral nor to OpenAI."
    )
    return openai_error(ErrorInfo(message, "invalid_request_error", None, "unknown_url"))


# ---------------------------------------------------------------------------------------------------------
# Web pages
#
# A browser that uses the system proxy and trusts mitmproxy's CA lets every web page it shows call
# api.openai.com, and so Mistral with the user's key (the proxy puts the key on whatever the page sends).
# Browsers put an Origin header on a page's cross-origin requests and on their CORS preflights; apps
# locked to api.openai.com (desktop programs, scripts, SDKs) send none. So a request with an Origin is
# answered here, unless the user listed that origin in mistral_cors_origins.


def origin_refused(origin: str | None, allowed: frozenset[str] | set[str] = frozenset()) -> str | None:
    """For a request to the redirected host: None when it may go on (no Origin header, or an origin in
    `allowed`, mistral_cors_origins as parsed), else the message of the local FORBIDDEN_STATUS answer."""
    if origin is None:
        return None
    if not isinstance(origin, str) or origin.strip().rstrip("/") not in allowed:
        shown = printable(origin if isinstance(origin, str) else repr(origin), 100)
        return (
            f"{PREFIX}a web page (Origin: {shown}) asked for {OPENAI_HOST}, which this proxy serves from "
            f"Mistral with your Mistral key; web pages may do so only from an origin listed in "
            f"mistral_cors_origins, so it answered this request itself and sent it nowhere"
        )
    return None


def refused_body(message: str) -> bytes:
    """The body of the local FORBIDDEN_STATUS answer, in OpenAI's error shape."""
    return openai_error(ErrorInfo(message, "permission_error", None, "origin_not_allowed"))


_MODEL_PATH = re.compile(r"/(?:v1/)?models/(.+?)/?")


def model_id(path: str) -> str | None:
    """The model id of a GET /v1/models/{id} path (percent-escapes decoded, case kept: model ids are
    case-sensitive), else None. With retrieve_model() the proxy can answer it for a mapped OpenAI name."""
    if not isinstance(path, str) or len(path) > MAX_PATH:
        return None
    m = _MODEL_PATH.fullmatch(unquote(path.split("?", 1)[0].split("#", 1)[0]))
    if m is None or len(m.group(1)) > MAX_NAME or "/" in m.group(1):
        return None
    return m.group(1)
