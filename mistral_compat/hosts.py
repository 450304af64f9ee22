"""Which destination hosts are Mistral: the defaults plus what the user configures."""

from __future__ import annotations

import ipaddress
import re

DEFAULT_HOSTS = ("api.mistral.ai", "codestral.mistral.ai")

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?")


def parse_host(spec: str) -> str:
    """Validate one host pattern ('llm.example.com', '*.example.com', '10.0.0.5'); ValueError says why."""
    h = spec.strip().lower()
    if not h:
        raise ValueError("an empty host name")
    if "://" in h or "/" in h:
        raise ValueError(f"{spec!r} looks like a URL; give the host name only, e.g. llm.example.com")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        return str(ipaddress.ip_address(h))
    except ValueError:
        pass
    if ":" in h:
        raise ValueError(f"{spec!r} has a port; give the host name only (every port of it is matched)")
    if not _HOSTNAME.fullmatch(h):
        raise ValueError(f"{spec!r} is not a host name; use e.g. llm.example.com or *.example.com")
    return h.rstrip(".")


class HostSet:
    """Exact names plus '*.suffix' wildcards (a wildcard does not match the bare suffix)."""

    def __init__(self, patterns=DEFAULT_HOSTS) -> None:
        self.exact: frozenset[str] = frozenset(p for p in patterns if not p.startswith("*."))
        self.suffixes: tuple[str, ...] = tuple(p[1:] for p in patterns if p.startswith("*."))
        self.patterns = tuple(patterns)

    @classmethod
    def parse(cls, specs) -> "HostSet":
        patterns = list(DEFAULT_HOSTS)
        for s in specs:
            p = parse_host(s)
            if p not in patterns:
                patterns.append(p)
        return cls(patterns)

    def __contains__(self, host: str) -> bool:
        if host in self.exact:
            return True
        host = host.lower().rstrip(".")
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))


def allow_patterns(hosts: HostSet) -> list[str]:
    """mitmproxy allow_hosts regexes (matched against 'host:port') for exactly these hosts."""
    out = []
    for p in hosts.patterns:
        if p.startswith("*."):
            out.append(rf"^(?:[^.:/\[\]]+\.)+{re.escape(p[2:])}\.?:\d+$")
        elif ":" in p:  # IPv6
            out.append(rf"^\[?{re.escape(p)}\]?:\d+$")
        else:
            out.append(rf"^{re.escape(p)}\.?:\d+$")
    return out
