"""The addon's options: each one's declaration (name, type, default, help) and how its value is parsed
into `Settings`, the one object every part of the addon reads. Pure: no mitmproxy import (the addon
declares these with mitmproxy's loader and turns a ValueError into mitmproxy's OptionsError).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from .cors import CorsPolicy
from .hosts import HostSet
from .jsonio import DEFAULT_MAX_BODY, parse_size
from .models import ModelMap, parse_model_map
from .pacing import Rate, parse_rate
from .redirect import DEFAULT_TARGET, OPENAI_HOST, Target, parse_target
from .rules import Rules, builtin

ANSWER_MODES = ("auto", "openai", "mistral")


class Option(NamedTuple):
    name: str
    typespec: Any
    default: Any
    help: str
    choices: Sequence[str] | None = None


OPTIONS: tuple[Option, ...] = (
    Option(
        "mistral_hosts",
        Sequence[str],
        [],
        "Extra hosts to treat as Mistral, besides api.mistral.ai and codestral.mistral.ai "
        "(repeat the option for several; '*.example.com' matches every subdomain). "
        "In reverse mode every request is treated as bound for Mistral.",
    ),
    Option(
        "mistral_intercept_all",
        bool,
        False,
        "In forward-proxy mode, TLS-intercept every host (to look at all traffic in mitmweb), "
        "not only the Mistral hosts. Other hosts' requests are still never rewritten.",
    ),
    Option(
        "mistral_cors_origins",
        Sequence[str],
        [],
        "Browser origins allowed to call the API through the proxy, e.g. https://chat.example.com "
        "(repeat the option for several). Empty: any origin ('*').",
    ),
    Option(
        "mistral_rate_limit",
        str,
        "",
        "Pace the requests bound for Mistral to N per second or per minute per API key, e.g. 1/s (Mistral's "
        "free tier), 0.5/s or 60/min: a request that would go too soon waits in a first-come first-served "
        "queue for its key; one that would wait more than 60 s is answered 429 by the proxy. Keys are told "
        "apart by a keyed hash, never kept or logged. Empty: no pacing. Whatever this is, after a 429 from "
        "Mistral the key's next requests wait for its Retry-After (1 s without one).",
    ),
    Option(
        "mistral_redirect_openai",
        bool,
        False,
        "Serve apps locked to api.openai.com from Mistral: as the system or app proxy, TLS-intercept "
        "api.openai.com too and send its requests to mistral_redirect_to (path kept), with the Mistral key "
        "from the environment variable MISTRAL_API_KEY instead of the app's own key, OpenAI model names "
        "mapped (mistral_model_map and a built-in map), and OpenAI-only endpoints answered 404 locally.",
    ),
    Option(
        "mistral_redirect_to",
        str,
        DEFAULT_TARGET,
        "Where mistral_redirect_openai sends api.openai.com's requests: http(s)://host[:port], "
        "e.g. https://api.mistral.ai (the default) or a reverse proxy.",
    ),
    Option(
        "mistral_model_map",
        Sequence[str],
        [],
        "Model names to replace in requests bound for Mistral, as from=to (repeat the option, or separate "
        "with commas); '*' and '?' match in from, e.g. gpt-4o*=mistral-medium-latest. Requests redirected "
        "from api.openai.com also get a built-in map of OpenAI's names; these entries win over it.",
    ),
    Option("mistral_dry_run", bool, False, "Log what would be changed, but forward every body unchanged."),
    Option(
        "mistral_openapi",
        str,
        "",
        "Path of a Mistral OpenAPI spec (YAML or JSON) to take the rules from instead of the "
        "built-in ones; reloaded when the file changes. Endpoints it lacks keep the built-in rules.",
    ),
    Option(
        "mistral_max_body",
        str,
        "64m",
        "The largest request body bound for Mistral that the proxy takes, once decoded (a compressed "
        "body is decoded no further than this, so a few KB that decode to gigabytes cost no more); "
        "larger ones are answered 413 without being parsed or forwarded. A size such as 64m, 512k, 1g "
        "or a number of bytes. Mistral documents no limit; its largest bodies carry base64 documents "
        "(a 50 MB OCR document is about 67 MB), which the default holds. mitmproxy's body_size_limit "
        "still limits the raw bytes of every body.",
    ),
    Option(
        "mistral_answers",
        str,
        "auto",
        "How Mistral's answers reach clients. auto: translated into the shapes OpenAI clients read "
        "(text content with reasoning_content, tool-call type and index, finish_reason length, "
        "OpenAI's error object), except for Mistral-native clients (the mistralai SDKs and "
        "mistral_native_clients); openai: always translated; mistral: never.",
        ANSWER_MODES,
    ),
    Option(
        "mistral_native_clients",
        Sequence[str],
        [],
        "User-Agent substrings (case-insensitive) of clients that read Mistral's own answer shapes, "
        "besides the mistralai SDKs; with mistral_answers=auto their answers are left as they are.",
    ),
)

NAMES = frozenset(o.name for o in OPTIONS)


def _answer_mode(value: str) -> str:
    if value not in ANSWER_MODES:  # (a value set before the addon loaded is not checked by mitmproxy)
        raise ValueError(f"{value!r} is not one of {', '.join(ANSWER_MODES)}")
    return value


def _host_specs(specs: Sequence[str]) -> tuple[str, ...]:
    HostSet.parse(specs)  # (ValueError for a bad one)
    return tuple(specs)


def _native(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(s.strip().lower() for s in values if s.strip())


# option -> (Settings field, parser). Options not here are kept as given (bools), or read by one part
# (mistral_openapi: the rules loader; mistral_intercept_all: the TLS scope).
PARSERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "mistral_hosts": ("host_specs", _host_specs),
    "mistral_redirect_openai": ("redirect_openai", bool),
    "mistral_cors_origins": ("cors", CorsPolicy),
    "mistral_dry_run": ("dry_run", bool),
    "mistral_max_body": ("max_body", parse_size),
    "mistral_answers": ("answer_mode", _answer_mode),
    "mistral_native_clients": ("native_clients", _native),
    "mistral_rate_limit": ("rate", parse_rate),
    "mistral_redirect_to": ("redirect_to", parse_target),
    "mistral_model_map": ("model_map", parse_model_map),
}


@dataclass(slots=True)
class Settings:  # (one field per parser above; hosts and redirected_map derive from others)
    """The parsed options every part reads (and the rules in force), shared by reference."""

    hosts: HostSet = field(default_factory=HostSet)
    cors: CorsPolicy = field(default_factory=CorsPolicy)
    dry_run: bool = False
    max_body: int = DEFAULT_MAX_BODY
    answer_mode: str = "auto"
    native_clients: tuple[str, ...] = ()
    rules: Rules = field(default_factory=builtin)
    rate: Rate | None = None
    host_specs: tuple[str, ...] = ()  # mistral_hosts as given (hosts: with the defaults, and api.openai.com)
    redirect_openai: bool = False
    redirect_to: Target = field(default_factory=lambda: parse_target(DEFAULT_TARGET))
    model_map: ModelMap = field(default_factory=ModelMap)  # for every request bound for Mistral
    api_key: str | None = field(default=None, repr=False)  # MISTRAL_API_KEY, for mistral_redirect_openai
    redirected_map: ModelMap = field(default_factory=lambda: ModelMap().with_defaults())  # redirected from OpenAI

    def set(self, option: str, value: Any) -> bool:
        """Parse one option's value into its field; ValueError (the message, without the option's name) when
        it is invalid, leaving the field as it was. False for an option that has no field here."""
        if option not in PARSERS:
            return False
        name, parse = PARSERS[option]
        setattr(self, name, parse(value))
        if name in ("host_specs", "redirect_openai"):
            self.hosts = HostSet.parse([*self.host_specs, *([OPENAI_HOST] if self.redirect_openai else [])])
        elif name == "model_map":
            self.redirected_map = self.model_map.with_defaults()
        return True
