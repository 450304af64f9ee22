"""What the proxy knows and decides about one flow: a typed record, kept under one flow.metadata key.

The matcher decides once, when a request's headers arrive, what kind of flow it is (`classify`); every
other part reads that and writes only its own fields. Pure: no mitmproxy import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .changes import Change

# What a matched flow is (FlowState.kind).
REWRITE = "rewrite"  # a POST to an endpoint with rules: its body is rewritten to what Mistral accepts
BRIDGE = "bridge"  # OpenAI's Responses API (POST .../v1/responses), served from chat completions
STORED = "stored"  # .../v1/responses/{id}...: Mistral stores no responses; answered 404 locally
PREFLIGHT = "preflight"  # a CORS preflight (OPTIONS): answered by the proxy itself
PASSED = "passed"  # any other request to a matched host: forwarded as it is (CORS and answers still apply)

# What is done to the answer (FlowState.answers).
CHAT_ANSWERS = "chat"  # chat-shaped answers (JSON or event stream) and error bodies translated for OpenAI clients
ERROR_ANSWERS = "errors"  # only error bodies given OpenAI's error object


@dataclass(slots=True, eq=False)
class FlowState:
    """One matched flow. Live flows hold this object; a saved or copied flow (mitmproxy's get_state deep-copies
    metadata, then writes it as tnetstring) holds `saved()`, a plain dict, which `from_saved` reads back."""

    client: str  # the User-Agent as shown in log lines and the summary
    kind: str = PASSED
    endpoint: str | None = None  # the rules' endpoint name ("chat/completions"), or "responses"
    dry_run: bool = False  # decided when the request arrived (the option may change meanwhile)
    changes: list[Change] = field(default_factory=list)
    rejected: tuple[int, str] | None = None  # (status, message): answered by the proxy (or would be, in a dry run)
    original: bytes | None = None  # the request body as the client sent it, when it was changed
    bridge: dict | None = None  # the Responses request, while its answer is being translated
    answers: str | None = None  # CHAT_ANSWERS, ERROR_ANSWERS or None (left as Mistral sends them)
    answer_stream: Any = None  # the stream translator, while an event stream passes
    answer_notes: list[str] = field(default_factory=list)
    answer_original: bytes | None = None  # a translated JSON answer as Mistral sent it
    key: str | None = None  # the API key's id (pacing.key_id), never the key
    waited: float = 0.0  # seconds the request waited for its turn (mistral_rate_limit, a 429)
    wait_note: str = ""  # "waited 2.0 s for mistral_rate_limit 1/s" (pacing.wait_note), or ""
    gone: bool = False  # the client left while its request waited: it was not sent
    limited: bool = False  # Mistral answered 429 (rate limited)
    redirected: bool = False  # bound for api.openai.com, sent to Mistral (mistral_redirect_openai)
    user_agent: str = ""  # as the client sent it (client: escaped and cut, for people)
    origin: str | None = None  # the Origin header as the client sent it (a web page's), if any

    SAVED = (
        "client",
        "kind",
        "endpoint",
        "dry_run",
        "original",
        "answer_original",
        "answer_notes",
        "waited",
        "wait_note",
        "redirected",
    )

    def saved(self) -> dict:
        """Plain data for a saved flow: what the content view and a reader of the file need."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.SAVED}
        out["changes"] = [tuple(c) for c in self.changes]
        if self.rejected is not None:
            out["rejected"], out["reject_status"] = self.rejected[1], self.rejected[0]
        return out

    def __deepcopy__(self, memo) -> dict:
        return self.saved()

    @classmethod
    def from_saved(cls, data: Any) -> FlowState | None:
        """The state of a saved flow (a dict from `saved`), or None when it holds none."""
        if isinstance(data, FlowState):
            return data
        if not isinstance(data, dict):
            return None
        known = {k: data[k] for k in cls.SAVED if k in data}
        state = cls(**{"client": "", **known})
        state.changes = [Change(*c) for c in data.get("changes") or ()]
        if "rejected" in data:
            state.rejected = (data.get("reject_status", 400), data["rejected"])
        return state


_KINDS: dict[tuple, tuple[str, str | None]] = {}  # (method, path, rules) -> classify(): paths come again and again
_KINDS_MAX = 256
_KINDS_PATH_MAX = 256  # characters of a path whose answer is kept (a path is client text: it can be long)


def classify(method: str, path: str, rules) -> tuple[str, str | None]:
    """(kind, endpoint) of a request to a matched host, from its method and path (query ignored)."""
    key = (method, path, rules)
    kind = _KINDS.get(key)
    if kind is None:
        kind = _classify(method, path, rules)
        if len(path) <= _KINDS_PATH_MAX:
            if len(_KINDS) >= _KINDS_MAX:
                _KINDS.clear()
            _KINDS[key] = kind
    return kind


def _classify(method: str, path: str, rules) -> tuple[str, str | None]:
    from .responses import match_path  # (the bridge's paths; imported here to keep this module light)

    if method == "OPTIONS":
        return PREFLIGHT, None
    match = match_path(path)
    if match is not None:
        if match[0] == "stored":
            return STORED, "responses"
        return (BRIDGE, "responses") if method == "POST" else (PASSED, None)
    if method == "POST":
        endpoint = rules.endpoint(path)
        if endpoint is not None:
            return REWRITE, endpoint
    return PASSED, None
