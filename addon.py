"""mistral-compat: make OpenAI-compatible requests acceptable to Mistral's API.

    mitmdump -s addon.py                                   # as an HTTP(S) proxy
    mitmdump -s addon.py --mode reverse:https://api.mistral.ai --set connection_strategy=lazy

This file is the entry point of the thin mitmproxy layer: it builds the one registered addon from its parts
(mitmlayer/, one part per concern), which declare the options (mistral_compat/settings.py), read and write
flows, and apply what the pure core (the mistral_compat package beside it) decides. Each flow bound for
Mistral carries a FlowState (mistral_compat/state.py) under flow.metadata[META]: the Matcher writes it when the
request's headers arrive, and every other part reads it.
"""

from __future__ import annotations

from mistral_compat import answers, responses, settings
from mistral_compat.rules import load as load_rules
from mitmlayer import logger
from mitmlayer.answers import Answers
from mitmlayer.composite import FLOW_HOOKS, MistralCompat
from mitmlayer.cors import Cors
from mitmlayer.flows import MARKER, META, header, set_body
from mitmlayer.matching import InterceptScope, Matcher
from mitmlayer.options import Options, RulesLoader
from mitmlayer.pacing import Pacing
from mitmlayer.redirect import KeyInjector, Redirect
from mitmlayer.report import BeforeAfterView, Redaction, Report, RequestLog, _view_text, redact
from mitmlayer.requests import ResponsesBridge, Rewriter

# The names tests and the benchmark reach through this module (addon.X), besides build and addons.
__all__ = [
    "FLOW_HOOKS",
    "MARKER",
    "META",
    "Answers",
    "BeforeAfterView",
    "Cors",
    "InterceptScope",
    "KeyInjector",
    "Matcher",
    "MistralCompat",
    "Options",
    "Pacing",
    "Redaction",
    "Redirect",
    "Report",
    "RequestLog",
    "ResponsesBridge",
    "Rewriter",
    "RulesLoader",
    "_view_text",
    "addons",
    "answers",
    "build",
    "header",
    "load_rules",
    "logger",
    "redact",
    "responses",
    "set_body",
]


def build() -> MistralCompat:
    """The addon: its parts sharing one Settings, in the order they act on a flow."""
    conf = settings.Settings()
    return MistralCompat(
        Matcher(conf),
        Options(conf),
        RulesLoader(conf),
        Redaction(),
        InterceptScope(conf),
        Cors(conf),
        Redirect(conf),
        ResponsesBridge(conf),
        Rewriter(conf),
        Answers(conf),
        Pacing(conf),
        Report(conf),
    )


addons = [build()]
