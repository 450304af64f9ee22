"""What pacing reads and says (issue 15): the `mistral_rate_limit` option, API-key ids, Retry-After.

- parse_rate(): "N/s" or "N/min" -> Rate (None: no pacing).
- key_id() / key_from_headers(): a short id for an API key, a keyed hash that is never the key; requests
  without a key share one bucket, ANONYMOUS.
- parse_retry_after(): a 429's Retry-After (seconds or an HTTP date) -> seconds to hold the key.
- wait_note(): the log text for a request that waited.

The queues themselves are in pacing.py (which re-exports every name here).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Optional

# ---------------------------------------------------------------------------
# The option

MAX_PER_SECOND = 100  # "N/s" above this is not pacing (and 10 ms is about the timer resolution that matters)
MAX_INTERVAL = 3600.0  # slower than one request an hour: surely a typo (and every second request would be refused)
MARGIN_RATIO = 0.05  # safety margin: 5 % of the interval...
MARGIN_MAX = 0.05  # ...at most 50 ms

_UNITS = {
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "m": "min",
    "min": "min",
    "mins": "min",
    "minute": "min",
    "minutes": "min",
}
_SECONDS_PER = {"s": 1.0, "min": 60.0}
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
EXAMPLES = "e.g. 1/s (Mistral's free tier), 0.5/s or 60/min"


@dataclass(frozen=True)
class Rate:
    """N requests per second ("s") or per minute ("min"). str() is the canonical text: "1/s", "60/min"."""

    number: str  # N as written canonically: "1", "0.5", "60"
    unit: str  # "s" or "min"

    @property
    def per_second(self) -> float:
        return float(Decimal(self.number)) / _SECONDS_PER[self.unit]

    @property
    def interval(self) -> float:
        """Seconds between two requests on one key: 1.0 for 1/s, 2.0 for 0.5/s, 1.0 for 60/min."""
        return _SECONDS_PER[self.unit] / float(Decimal(self.number))

    @property
    def spacing(self) -> float:
        """The gap the Pacer keeps between releases: the interval plus 5 % of it, at most 50 ms (1/s ->
        1.05 s, 10/s -> 0.105 s, 1/min -> 60.05 s). Requests leaving exactly one interval apart can reach
        Mistral closer together: the first may pay for a new connection (TCP, TLS) that the second
        reuses, and networks jitter."""
        interval = self.interval
        return interval + min(MARGIN_MAX, MARGIN_RATIO * interval)

    def __str__(self) -> str:
        return f"{self.number}/{self.unit}"


def _shown(text: str) -> str:
    text = text if len(text) <= 40 else text[:40] + "..."
    return repr(text)


def parse_rate(text: str) -> Optional[Rate]:
    """The `mistral_rate_limit` option: "" (or blanks) -> None, no pacing; "N/s" or "N/min" -> Rate.

    N is a positive plain decimal ("1", "0.5", ".5", "60"); blanks around the parts are allowed; the unit
    may be s, sec, second(s), m, min, minute(s), in any case. From one request an hour up to
    MAX_PER_SECOND a second. Anything else: ValueError saying what is accepted.
    """
    if text is None or not text.strip():
        return None
    usage = f"use N/s or N/min with a number N above 0, {EXAMPLES}, or leave it empty for no pacing"
    shown = _shown(text)
    if len(text) > 100:
        raise ValueError(f"{shown} is too long to be a rate; {usage}")
    parts = text.split("/")
    if len(parts) != 2:
        raise ValueError(f"cannot read {shown} as a rate; {usage}")
    number_text, unit_text = parts[0].strip(), parts[1].strip()
    if not _NUMBER.match(number_text):
        what = f"{_shown(number_text)} is not" if number_text else "it lacks"
        raise ValueError(f"{shown}: {what} a number above 0 written as plain decimals (like 1 or 0.5); {usage}")
    unit = _UNITS.get(unit_text.lower())
    if unit is None:
        what = f"unknown unit {_shown(unit_text)}" if unit_text else "the unit is missing"
        raise ValueError(f"{shown}: {what}, only per second (/s) and per minute (/min) are known; {usage}")
    number = Decimal(number_text)
    if number == 0:
        raise ValueError(
            f"{shown} would let no request through; leave the option empty to turn pacing off, "
            f"or use N/s or N/min with N above 0, {EXAMPLES}"
        )
    per_second = number / Decimal(int(_SECONDS_PER[unit]))
    if per_second > MAX_PER_SECOND:
        raise ValueError(
            f"{shown} is faster than {MAX_PER_SECOND}/s, the most the proxy paces; use at most "
            f"{MAX_PER_SECOND}/s ({MAX_PER_SECOND * 60}/min), {EXAMPLES}, or leave it empty "
            f"for no pacing"
        )
    if per_second * Decimal(int(MAX_INTERVAL)) < 1:
        raise ValueError(
            f"{shown} is slower than one request an hour, the least the proxy paces; use at "
            f"least 0.0167/min, {EXAMPLES}"
        )
    canonical = format(number.normalize(), "f")
    return Rate(canonical, unit)


# ---------------------------------------------------------------------------
# Keys

ANONYMOUS = "anonymous"  # the one bucket shared by every request that carries no API key
_SALT = os.urandom(16)  # per process: ids cannot be matched against a list of hashes of known keys


def key_id(secret: str) -> str:
    """A short id for an API key, stable within this process: "key-" + 8 hex digits of HMAC-SHA256 with a
    random per-process salt. The key itself is never kept. Two keys share an id with odds of one in four
    billion (they would then share a queue, nothing worse)."""
    digest = hmac.new(_SALT, secret.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return "key-" + digest[:8]


def _header(headers: Any, name: str) -> Optional[str]:
    """headers.get(name), case-insensitive also for a plain dict (mitmproxy's Headers already is)."""
    value = headers.get(name)
    if value is None:
        for field, field_value in headers.items():
            if isinstance(field, str) and field.lower() == name:
                return field_value
    return value


def secret_from_headers(headers: Any) -> Optional[str]:
    """The API key a request carries, or None: the credential of `Authorization` (any scheme: "Bearer x"
    -> "x"; a value without a scheme is taken whole), else `x-api-key`. `headers`: anything with .get()
    and .items() (mitmproxy's Headers, a dict). For key_id() only: do not keep it."""
    value = _header(headers, "authorization")
    if value:
        scheme, _, credential = value.strip().partition(" ")
        credential = credential.strip() if credential else scheme
        if credential:
            return credential
    value = _header(headers, "x-api-key")
    if value and value.strip():
        return value.strip()
    return None


def key_from_headers(headers: Any) -> str:
    """A request's queue: key_id() of its API key, or ANONYMOUS when it has none (one shared queue; Mistral
    answers those 401 anyway, so pacing them costs nobody anything)."""
    secret = secret_from_headers(headers)
    return key_id(secret) if secret is not None else ANONYMOUS


# ---------------------------------------------------------------------------
# Retry-After

DEFAULT_HOLD = 1.0  # a 429 without a usable Retry-After holds the key for 1 s
MAX_RETRY_AFTER = 600.0  # and a Retry-After is honoured up to 10 minutes
_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?\Z")


def parse_retry_after(value: Optional[str], now: float) -> float:
    """Seconds to hold a key after a 429, from `Retry-After`: delay seconds ("2", also "1.5") or an HTTP
    date (`now`: the current unix time, time.time(); a past date gives 0.0). Missing or unreadable ->
    DEFAULT_HOLD (1 s). At most MAX_RETRY_AFTER (10 minutes): enough for per-minute token quotas, and a
    wild value cannot lock a key out for hours. A hold longer than the Pacer's max_wait gets the key's
    requests a local 429 at once (pacing.QueueFull, reason "hold") with the rest of the hold as their
    Retry-After."""
    if value is None:
        return DEFAULT_HOLD
    value = value.strip()
    if not value or len(value) > 64:
        return DEFAULT_HOLD
    if _SECONDS.match(value):
        seconds = float(value)
    else:
        try:
            date = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return DEFAULT_HOLD
        if date is None:  # pragma: no cover - Python < 3.10 returned None
            return DEFAULT_HOLD
        try:
            seconds = date.timestamp() - now  # a date without a zone is taken as UTC (RFC 9110 says GMT)
        except (OverflowError, OSError, ValueError):  # pragma: no cover
            return DEFAULT_HOLD
    if not math.isfinite(seconds):
        return DEFAULT_HOLD
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


# ---------------------------------------------------------------------------
# The log line


def wait_note(wait: float, rate: Optional[Rate], option: str = "mistral_rate_limit") -> str:
    """The per-request log text for what acquire() returned (a pacing.Wait; a plain float counts as a
    wait for the rate): "waited 2.0 s for mistral_rate_limit 1/s", "waited 2.0 s for a 429's
    Retry-After", or "" when the request did not wait."""
    reason = getattr(wait, "reason", "rate")
    if not wait or not reason:
        return ""
    if reason == "hold" or rate is None:
        return f"waited {float(wait):.1f} s for a 429's Retry-After"
    return f"waited {float(wait):.1f} s for {option} {rate}"
