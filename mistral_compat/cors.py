"""CORS for browser apps: which headers a request's answer gets under a policy. Pure."""

from __future__ import annotations

import re
from functools import lru_cache
from operator import itemgetter
from typing import Callable
from urllib.parse import urlsplit

from .hosts import ascii_host, is_host_name

MAX_AGE = "86400"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Response headers a browser can read without being told (CORS-safelisted), and ones not to expose.
_SAFELISTED = frozenset(
    {"cache-control", "content-language", "content-length", "content-type", "expires", "last-modified", "pragma"}
)
_NOT_EXPOSED = frozenset(
    {
        "set-cookie",
        "set-cookie2",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "proxy-authenticate",
        "upgrade",
        "trailer",
        "te",
    }
)
# Always exposed, so an app can rely on them even when a given answer lacks some.
_ALWAYS_EXPOSED = ("content-type", "x-request-id", "mistral-correlation-id", "retry-after")


def parse_origin(spec: str) -> str:
    """Validate one allowed origin ('https://chat.example.com', 'http://localhost:3000'); ValueError says why.
    An internationalised host is given in the ASCII form browsers send in Origin (https://bücher.example ->
    https://xn--bcher-kva.example)."""
    s = spec.strip()
    try:
        parts = urlsplit(s)
    except ValueError:
        raise ValueError(
            f"{spec!r} is not an origin; use scheme://host[:port], e.g. https://chat.example.com"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{spec!r} is not an origin; use scheme://host[:port], e.g. https://chat.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{spec!r} has more than scheme://host[:port]; an origin has no path")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{spec!r} has an invalid port") from None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = ascii_host(parts.hostname, spec)
    if not is_host_name(host):
        raise ValueError(f"{spec!r} does not have a valid host name")
    host = host if ":" not in host else f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


@lru_cache(maxsize=256)  # an upstream answers with the same header names again and again
def _expose(present: tuple[str, ...]) -> str:
    """The Access-Control-Expose-Headers value for an answer with these header names."""
    exposed = list(_ALWAYS_EXPOSED)
    for name in present:
        n = name.lower()
        if n not in _SAFELISTED and n not in _NOT_EXPOSED and not n.startswith("access-control-") and n not in exposed:
            exposed.append(n)
    return ", ".join(exposed)


def _tokens(value: str) -> list[str]:
    return [t for t in (p.strip() for p in value.split(",")) if _TOKEN.fullmatch(t)]


class CorsPolicy:
    """Empty origins: any origin, answered with '*'. Otherwise only the listed origins, echoed."""

    def __init__(self, origins=()) -> None:
        self.origins = frozenset(parse_origin(o) for o in origins)

    def allow_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for a request from origin, or None for no grant."""
        if not self.origins:
            return "*"
        if origin and origin.rstrip("/") in self.origins:
            return origin.rstrip("/")
        return None

    def headers(
        self, origin: str | None, present: list[str], preflight: tuple[str, str] | None = None
    ) -> dict[str, str]:
        """CORS headers for an answer. present: the answer's header names (to expose them);
        preflight: (Access-Control-Request-Method, Access-Control-Request-Headers) for a preflight."""
        allowed = self.allow_origin(origin)
        if allowed is None:
            return {}
        out = {"access-control-allow-origin": allowed}
        if preflight is not None:
            method, req_headers = preflight
            methods = _tokens(method)
            out["access-control-allow-methods"] = methods[0].upper() if methods else "GET, POST, OPTIONS"
            names = _tokens(req_headers)
            if names:
                out["access-control-allow-headers"] = ", ".join(names)
            out["access-control-max-age"] = MAX_AGE
        else:
            out["access-control-expose-headers"] = _expose(tuple(present))
        return out

    def vary(self, preflight: bool) -> list[str]:
        """Request headers the answer depends on (for Vary)."""
        names = ["Origin"] if self.origins else []
        if preflight:
            names += ["Access-Control-Request-Method", "Access-Control-Request-Headers"]
        return names

    def answer_fields(self, fields: Fields, origin: str | None, preflight: tuple[str, str] | None = None) -> Fields:
        """An answer's header fields (raw (name, value) bytes, as mitmproxy keeps them) with this policy's CORS
        headers: the upstream's own access-control-* replaced (never duplicated), Vary completed, and for a
        preflight no Content-Length (a 204 has none)."""
        if preflight is None and not self.origins:  # the common case: any origin, an ordinary answer
            keep, added = _wildcard(tuple(map(_name, fields)))
            return (*(fields if keep is None else keep(fields)), *added)
        others: list[tuple[bytes, bytes]] = []  # the fields kept: all but the upstream's own CORS ones
        vary: list[str] = []
        for f in fields:
            name = f[0].lower()
            if name.startswith(b"access-control-") or (preflight is not None and name == b"content-length"):
                continue
            if name == b"vary":
                vary.append(f[1].decode("latin-1"))
            others.append(f)
        cors = self.headers(origin, [f[0].decode("latin-1") for f in others], preflight)
        out = [*others, *((k.encode("latin-1"), v.encode("utf-8", "surrogateescape")) for k, v in cors.items())]
        missing = self.vary(preflight is not None)
        if missing:
            present = {v.strip().lower() for value in vary for v in value.split(",")}
            missing = [v for v in missing if v.lower() not in present]
        if missing:  # one Vary field, where the first one was (or last)
            merged = (b"vary", ", ".join(vary + missing).encode("latin-1"))
            at = next((i for i, f in enumerate(out) if f[0].lower() == b"vary"), len(out))
            out = out[:at] + [merged] + [f for f in out[at:] if f[0].lower() != b"vary"]
        return tuple(out)


Fields = tuple[tuple[bytes, bytes], ...]
_name = itemgetter(0)  # a field's name


@lru_cache(maxsize=256)  # an upstream answers with the same header names again and again
def _wildcard(names: tuple[bytes, ...]) -> tuple[Callable[[Fields], Fields] | None, Fields]:
    """For an ordinary answer under the any-origin policy, with these header names: what picks the fields to
    keep (all but the upstream's own CORS headers; None: all of them), and the fields to add."""
    lower = [n.lower() for n in names]
    drop = frozenset(n for n in lower if n.startswith(b"access-control-"))
    present = tuple(n.decode("latin-1") for n in lower if n not in drop)
    keep = None if not drop else _picker([i for i, n in enumerate(lower) if n not in drop])
    return keep, (
        (b"access-control-allow-origin", b"*"),
        (b"access-control-expose-headers", _expose(present).encode("latin-1")),
    )


def _picker(at: list[int]) -> Callable[[Fields], Fields]:
    """fields -> the tuple of the fields at these indexes (an itemgetter: one C call, no loop over the fields)."""
    if len(at) > 1:
        return itemgetter(*at)
    if at:
        i = at[0]
        return lambda fields: (fields[i],)
    return lambda fields: ()
