"""Which destination hosts are Mistral: the defaults plus what the user configures."""

from __future__ import annotations

import ipaddress
import re

DEFAULT_HOSTS = ("api.mistral.ai", "codestral.mistral.ai")

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*\.?")
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")  # a host name, no wildcard

# Characters that IDNA 2003 (Python's idna codec) maps away but browsers (UTS #46, nontransitional) keep:
# the same name would become two different ASCII names.
_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")  # ß, final sigma, zero-width non-joiner and joiner


def ascii_host(host: str, spec: str) -> str:
    """A host name as clients send it (Host, Origin): internationalised labels in their ASCII (punycode)
    form, bücher.example -> xn--bcher-kva.example. ValueError (naming spec) when it has no such form."""
    if host.isascii():
        return host
    odd = sorted(c for c in set(host) if c in _DEVIATIONS)
    if odd:
        chars = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in odd)
        raise ValueError(
            f"{spec!r} has {chars}, which browsers and other clients encode in two different ways; "
            f"give the host in its xn-- (punycode) form, as your client sends it"
        )
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{spec!r} is not a valid internationalised host name") from None


def is_host_name(host: str) -> bool:
    """An ASCII host name (labels of letters, digits, '-' and '_'), or an IP address."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return bool(_NAME.fullmatch(host))


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
    if h.startswith("*."):
        h = "*." + ascii_host(h[2:], spec)
    else:
        h = ascii_host(h, spec)
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
