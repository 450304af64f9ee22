"""Pace requests per API key (issue 15): Mistral's free tier allows one request per second per key.

- parse_rate(): the `mistral_rate_limit` option, "N/s" or "N/min" -> Rate (None: no pacing).
- key_id() / key_from_headers(): a short id for an API key, a keyed hash that is never the key; requests
  without a key share one bucket, ANONYMOUS.
- parse_retry_after(): a 429's Retry-After (seconds or an HTTP date) -> seconds to hold the key.
- Pacer: one FIFO queue per key, released no closer than the rate's interval (plus a safety margin);
  hold() after a 429; a bound on the wait (QueueFull); clients that gave up are dropped (cancellation or
  gone()).

Pure asyncio, no mitmproxy. Everything runs on the one event loop (mitmproxy's): no locks, no threads.

How a queue works. A key's lane remembers when it last released a request (`last`) and how long it is
held after a 429 (`hold_until`). A request may go at `max(last + rate.spacing, hold_until)`; when that
time has passed and nobody is queued, acquire() returns at once without awaiting anything. Otherwise the
request joins the lane's FIFO queue, and one timer per lane (loop.call_later) releases the head of the
queue when its time comes, then re-arms itself for the next one. A timer that fires early (coarse clocks)
re-arms for the rest: there is no polling and no busy loop.

Dropped waiters. A waiter leaves the queue without using a slot when
- its task is cancelled while queued (mitmproxy cancels it, or the addon does when the client goes away):
  acquire() re-raises CancelledError; if the cancellation races with its release (the slot was granted
  but the task had not resumed yet), the slot is given back and the next waiter goes in its place;
- its gone() returns True when its turn comes (or when the queue is pruned because it looks full):
  acquire() raises ClientGone, the slot goes to the next waiter at once.
Note for the addon: mitmproxy 11/12 do not cancel a running hook when the client disconnects (the hook
task is only kept in a set, mitmproxy/proxy/server.py), so pass a gone() that looks at the flow, e.g.
`lambda: flow.error is not None or not flow.live`, or cancel the waiting task from the `error` hook.

Memory. Lanes of idle keys (nobody queued, interval and hold passed) carry no information, so they are
dropped by a sweep that runs every SWEEP_PERIOD seconds while any lane exists: one loop timer, not a task,
that stops when no lane is left. A burst of requests on a million different keys costs one small lane
per key for at most a few seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Optional

# ---------------------------------------------------------------------------
# The option

MAX_PER_SECOND = 100        # "N/s" above this is not pacing (and 10 ms is about the timer resolution that matters)
MAX_INTERVAL = 3600.0       # slower than one request an hour: surely a typo (and every second request would be refused)
MARGIN_RATIO = 0.05         # safety margin: 5 % of the interval...
MARGIN_MAX = 0.05           # ...at most 50 ms

_UNITS = {"s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
          "m": "min", "min": "min", "mins": "min", "minute": "min", "minutes": "min"}
_SECONDS_PER = {"s": 1.0, "min": 60.0}
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_UNIT = re.compile(r"[A-Za-z]+\Z")
EXAMPLES = "e.g. 1/s (Mistral's free tier), 0.5/s or 60/min"


@dataclass(frozen=True)
class Rate:
    """N requests per second ("s") or per minute ("min"). str() is the canonical text: "1/s", "60/min"."""

    number: str   # N as written canonically: "1", "0.5", "60"
    unit: str     # "s" or "min"

    @property
    def per_second(self) -> float:
        return float(Decimal(self.number)) / _SECONDS_PER[self.unit]

    @property
    def interval(self) -> float:
        """Seconds between two requests on one key: 1.0 for 1/s, 2.0 for 0.5/s, 1.0 for 60/min."""
        return _SECONDS_PER[self.unit] / float(Decimal(self.number))

    @property
    def spacing(self) -> float:
        """The interval the Pacer keeps between two releases: the interval plus a safety margin, 5 % of it
        and at most 50 ms (1/s -> 1.05 s, 10/s -> 0.105 s, 1/min -> 60.05 s). Two requests leaving the
        proxy exactly one interval apart can reach Mistral closer together than that: the first may need a
        new connection (TCP and TLS handshakes) that the second reuses, and networks jitter."""
        interval = self.interval
        return interval + min(MARGIN_MAX, MARGIN_RATIO * interval)

    def __str__(self) -> str:
        return f"{self.number}/{self.unit}"


def _shown(text: str) -> str:
    text = text if len(text) <= 40 else text[:40] + "..."
    return repr(text)


def parse_rate(text: str) -> Optional[Rate]:
    """The `mistral_rate_limit` option: "" (or blanks) -> None, no pacing; "N/s" or "N/min" -> Rate.

    N is a positive decimal number ("1", "0.5", ".5", "60"); blanks around the parts are allowed and the
    unit may be written s, sec, second(s), m, min, minute(s), in any case. Accepted range: at most
    MAX_PER_SECOND requests per second, at least one an hour. Anything else raises ValueError with a
    message that says what is accepted.
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
        raise ValueError(f"{shown} would let no request through; leave the option empty to turn pacing off, "
                         f"or use N/s or N/min with N above 0, {EXAMPLES}")
    per_second = number / Decimal(int(_SECONDS_PER[unit]))
    if per_second > MAX_PER_SECOND:
        raise ValueError(f"{shown} is faster than {MAX_PER_SECOND}/s, the most the proxy paces; use at most "
                         f"{MAX_PER_SECOND}/s ({MAX_PER_SECOND * 60}/min), {EXAMPLES}, or leave it empty "
                         f"for no pacing")
    if per_second * Decimal(int(MAX_INTERVAL)) < 1:
        raise ValueError(f"{shown} is slower than one request an hour, the least the proxy paces; use at "
                         f"least 0.0167/min, {EXAMPLES}")
    canonical = format(number.normalize(), "f")
    return Rate(canonical, unit)


# ---------------------------------------------------------------------------
# Keys

ANONYMOUS = "anonymous"  # the one bucket shared by every request that carries no API key
_SALT = os.urandom(16)   # per process: ids cannot be matched against a list of hashes of known keys


def key_id(secret: str) -> str:
    """A short, stable (for this process) id for an API key: "key-" + 8 hex digits of HMAC-SHA256 with a
    random per-process salt. The key itself is never kept. Two different keys share an id with odds of
    one in four billion (they would then share a queue, nothing worse)."""
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
    -> "x"; a value without a scheme is taken whole), else `x-api-key`. `headers` is anything with
    .get(name) and .items() (mitmproxy's Headers, a dict). The value is for key_id() only: do not keep it."""
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
    """The queue a request belongs to: key_id() of its API key, or ANONYMOUS when it carries none (such
    requests share one queue; Mistral answers them 401 anyway, so pacing them costs nobody anything)."""
    secret = secret_from_headers(headers)
    return key_id(secret) if secret is not None else ANONYMOUS


# ---------------------------------------------------------------------------
# Retry-After

DEFAULT_HOLD = 1.0        # a 429 without a usable Retry-After holds the key for 1 s
MAX_RETRY_AFTER = 600.0   # and a Retry-After is honoured up to 10 minutes
_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?\Z")


def parse_retry_after(value: Optional[str], now: float) -> float:
    """Seconds to hold a key after a 429: `Retry-After` as delay seconds ("2", also "1.5") or an HTTP date
    (`now` is the current unix time, time.time()); a date in the past gives 0.0. Missing or unreadable ->
    DEFAULT_HOLD (1 s). Clamped to MAX_RETRY_AFTER (10 minutes): long enough for per-minute token quotas,
    short enough that a wild value does not lock a key out for hours. A hold longer than the Pacer's
    max_wait makes requests on the key get a local 429 at once (QueueFull, reason "hold") with the rest of
    the hold as their Retry-After, rather than wait."""
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
# The pacer

SWEEP_PERIOD = 5.0  # how often lanes of idle keys are forgotten (only while some lane exists)
_DUE = 1e-6         # a release this close to its time is due (float rounding of timer deadlines)
_MIN_RETRY = 0.001  # a timer that fired early (coarse clocks) re-arms at least this far ahead: no spinning


class QueueFull(Exception):
    """A request would wait more than max_wait: answer it with a local 429 and Retry-After.

    retry_after: seconds until the request could go without waiting (ceil it for the header,
    retry_after_header()); reason: "queue" (too many queued ahead at the rate) or "hold" (the key is held
    after a 429 from Mistral for longer than max_wait); queued: how many were queued on the key."""

    def __init__(self, retry_after: float, reason: str = "queue", queued: int = 0, key: str = ""):
        self.retry_after = retry_after
        self.reason = reason
        self.queued = queued
        self.key = key
        what = ("held after a 429 from Mistral" if reason == "hold"
                else f"{queued} request(s) already queued")
        super().__init__(f"queue for {key or 'this key'} full: {what}, it would wait {retry_after:.1f} s")

    def retry_after_header(self) -> str:
        """Retry-After value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class ClientGone(Exception):
    """Raised by acquire() when the waiter's gone() said True: do not send the request."""


class Wait(float):
    """Seconds a request waited (a float), with `reason`: "" (it went at once), "rate" (it waited for the
    key's rate or behind others queued on it) or "hold" (it waited for a 429's Retry-After)."""

    __slots__ = ("reason",)

    def __new__(cls, seconds: float = 0.0, reason: str = "") -> "Wait":
        obj = super().__new__(cls, seconds)
        obj.reason = reason
        return obj

    def __repr__(self) -> str:
        return f"Wait({float(self)!r}, {self.reason!r})"


NO_WAIT = Wait(0.0, "")


def wait_note(wait: float, rate: Optional[Rate], option: str = "mistral_rate_limit") -> str:
    """The per-request log text: "waited 2.0 s for mistral_rate_limit 1/s", "waited 2.0 s for a 429's
    Retry-After", or "" when the request did not wait."""
    reason = getattr(wait, "reason", "rate")
    if not wait or not reason:
        return ""
    if reason == "hold" or rate is None:
        return f"waited {float(wait):.1f} s for a 429's Retry-After"
    return f"waited {float(wait):.1f} s for {option} {rate}"


@dataclass
class KeyStats:
    """Counts for one key (Pacer.stats) or for all keys since the start (Pacer.totals)."""

    waits: int = 0          # requests that waited
    waited: float = 0.0     # seconds waited, all together
    holds: int = 0          # hold() calls (429s from Mistral)
    full: int = 0           # requests refused with QueueFull
    dropped: int = 0        # waiters dropped: cancelled, or gone() when their turn came


class _Waiter:
    __slots__ = ("future", "gone", "granted_at", "previous_last", "reason", "dropped")

    def __init__(self, future: asyncio.Future, gone: Optional[Callable[[], bool]]):
        self.future = future
        self.gone = gone
        self.dropped = False
        self.granted_at: Optional[float] = None
        self.previous_last: Optional[float] = None
        self.reason = ""


class _Lane:
    __slots__ = ("last", "hold_until", "waiters", "timer", "stats")

    def __init__(self):
        self.last: Optional[float] = None      # when the last request was released
        self.hold_until = -math.inf            # held after a 429 until then
        self.waiters: deque = deque()
        self.timer: Optional[asyncio.TimerHandle] = None
        self.stats = KeyStats()


class Pacer:
    """Per-key FIFO pacing on the running asyncio loop. See the module docstring."""

    def __init__(self, rate: Optional[Rate], max_wait: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self._rate = rate
        self._spacing = rate.spacing if rate is not None else 0.0
        self.max_wait = max_wait
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._sweeper: Optional[asyncio.TimerHandle] = None
        self.totals = KeyStats()

    # -- state ----------------------------------------------------------------

    @property
    def rate(self) -> Optional[Rate]:
        return self._rate

    @property
    def active(self) -> bool:
        """False when there is no rate and no key is held (nor remembered): acquire() would return 0.0 for
        any key, so a caller may skip finding the request's key (hashing it) altogether."""
        return self._rate is not None or bool(self._lanes)

    def set_rate(self, rate: Optional[Rate]) -> None:
        """A new rate (the option changed at run time). Queued requests stay in their order and go at the
        new rate, counted from the last release; with None they go as soon as any hold has passed."""
        self._rate = rate
        self._spacing = rate.spacing if rate is not None else 0.0
        for lane in self._lanes.values():
            if lane.waiters:
                self._schedule(lane)

    def stats(self, key: str) -> Optional[KeyStats]:
        """The key's counts, or None when the key has no lane (never seen, or idle and forgotten)."""
        lane = self._lanes.get(key)
        return lane.stats if lane is not None else None

    def queued(self, key: str) -> int:
        lane = self._lanes.get(key)
        return len(lane.waiters) if lane is not None else 0

    def held_for(self, key: str) -> float:
        """Seconds left of the key's hold after a 429 (0.0 when it is not held)."""
        lane = self._lanes.get(key)
        return max(0.0, lane.hold_until - self._clock()) if lane is not None else 0.0

    def __len__(self) -> int:
        """How many keys have a lane now (idle ones are forgotten by the sweep)."""
        return len(self._lanes)

    def _next_time(self, lane: _Lane) -> float:
        """When the lane may release its next request."""
        if self._rate is not None and lane.last is not None:
            return max(lane.last + self._spacing, lane.hold_until)
        return lane.hold_until

    def _new_lane(self, key: str) -> _Lane:
        lane = self._lanes[key] = _Lane()
        self._arm_sweeper()
        return lane

    def _running_loop(self) -> Optional[asyncio.AbstractEventLoop]:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        return self._loop

    # -- acquire ------------------------------------------------------------------

    async def acquire(self, key: str, gone: Optional[Callable[[], bool]] = None) -> Wait:
        """Wait for the key's turn; return the seconds waited (a Wait, 0.0 when it went at once).

        Without a rate and without a hold on the key this returns at once, awaiting nothing (no future,
        no task, no timer): it runs for every request. Raises QueueFull at once, without queueing, when
        the expected wait (the hold, plus one spacing per request queued ahead) would pass max_wait;
        ClientGone when gone() returned True at its turn; CancelledError when cancelled while queued
        (in both cases it used no slot)."""
        lane = self._lanes.get(key)
        if lane is None:
            if self._rate is None:
                return NO_WAIT
            lane = self._new_lane(key)
            lane.last = self._clock()
            return NO_WAIT
        now = self._clock()
        if not lane.waiters and self._next_time(lane) - now <= _DUE:
            lane.last = now
            return NO_WAIT
        expected = self._expected_wait(lane, now)
        if expected > self.max_wait:
            self._prune(lane)
            expected = self._expected_wait(lane, now)
            if expected > self.max_wait:
                lane.stats.full += 1
                self.totals.full += 1
                reason = "hold" if lane.hold_until - now > self.max_wait else "queue"
                raise QueueFull(expected, reason, len(lane.waiters), key)
        loop = self._running_loop()
        waiter = _Waiter(loop.create_future(), gone)
        lane.waiters.append(waiter)
        if lane.timer is None:
            self._schedule(lane)
        try:
            await waiter.future
        except asyncio.CancelledError:
            self._cancelled(lane, waiter)
            raise
        waited = Wait(max(0.0, self._clock() - now), waiter.reason)
        lane.stats.waits += 1
        lane.stats.waited += waited
        self.totals.waits += 1
        self.totals.waited += waited
        return waited

    def _expected_wait(self, lane: _Lane, now: float) -> float:
        start = max(now, self._next_time(lane))
        return start + len(lane.waiters) * self._spacing - now

    def _cancelled(self, lane: _Lane, waiter: _Waiter) -> None:
        """A queued task was cancelled: leave the queue, or give back the slot if it had been granted."""
        self._count_dropped(lane, waiter)
        if waiter.granted_at is None:
            try:
                lane.waiters.remove(waiter)
            except ValueError:
                pass
            return
        if lane.last == waiter.granted_at:  # nobody went since: the slot is free again
            lane.last = waiter.previous_last
        if lane.waiters:
            self._schedule(lane)

    def _count_dropped(self, lane: _Lane, waiter: _Waiter) -> None:
        if not waiter.dropped:
            waiter.dropped = True
            lane.stats.dropped += 1
            self.totals.dropped += 1

    def _is_gone(self, waiter: _Waiter) -> bool:
        """Calls gone(); an exception it raises goes to the waiter (and drops it)."""
        if waiter.gone is None:
            return False
        try:
            return bool(waiter.gone())
        except Exception as exc:
            waiter.future.set_exception(exc)
            return True

    def _drop_gone(self, lane: _Lane, waiter: _Waiter) -> bool:
        if waiter.future.done():  # cancelled: its task removes it when it resumes
            return True
        if self._is_gone(waiter):
            if not waiter.future.done():
                waiter.future.set_exception(ClientGone())
            self._count_dropped(lane, waiter)
            return True
        return False

    def _prune(self, lane: _Lane) -> None:
        """Drop the waiters whose client is gone (before refusing a request for a full queue)."""
        if any(w.gone is not None or w.future.done() for w in lane.waiters):
            lane.waiters = deque(w for w in lane.waiters if not self._drop_gone(lane, w))

    # -- releasing ----------------------------------------------------------------

    def _schedule(self, lane: _Lane, min_delay: float = 0.0) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        if not lane.waiters:
            return
        loop = self._loop if self._loop is not None else self._running_loop()
        delay = max(min_delay, self._next_time(lane) - self._clock())
        lane.timer = loop.call_later(delay, self._release, lane)

    def _release(self, lane: _Lane) -> None:
        """The lane's timer: release the head of its queue (every waiter when there is no rate)."""
        lane.timer = None
        now = self._clock()
        released = False
        while lane.waiters and self._next_time(lane) - now <= _DUE:
            waiter = lane.waiters.popleft()
            if self._drop_gone(lane, waiter):
                continue
            rate_time = lane.last + self._spacing if (self._rate is not None and lane.last is not None) else -math.inf
            waiter.reason = "hold" if lane.hold_until > rate_time else "rate"
            waiter.previous_last, waiter.granted_at = lane.last, now
            lane.last = now
            waiter.future.set_result(None)
            released = True
        if lane.waiters:
            # nothing released: the timer fired early (or the hold grew); re-arm for the rest, not sooner
            # than _MIN_RETRY, so that a coarse clock cannot make it spin
            self._schedule(lane, 0.0 if released else _MIN_RETRY)

    # -- holds --------------------------------------------------------------------

    def hold(self, key: str, seconds: float) -> None:
        """After a 429 from Mistral: the key's following requests wait until `seconds` have passed (also
        without a rate). A shorter hold never shortens a longer one."""
        self._running_loop()
        lane = self._lanes.get(key) or self._new_lane(key)
        lane.hold_until = max(lane.hold_until, self._clock() + max(0.0, seconds))
        lane.stats.holds += 1
        self.totals.holds += 1
        if lane.waiters:
            self._schedule(lane)

    # -- forgetting idle keys -----------------------------------------------------------

    def _arm_sweeper(self) -> None:
        if self._sweeper is None:
            loop = self._running_loop()
            if loop is not None:
                self._sweeper = loop.call_later(SWEEP_PERIOD, self.sweep)

    def sweep(self) -> int:
        """Forget the lanes of idle keys (nobody queued, interval and hold passed); returns how many.
        Runs by itself every SWEEP_PERIOD seconds while lanes exist."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        now = self._clock()
        idle = [key for key, lane in self._lanes.items()
                if not lane.waiters and lane.timer is None and now >= self._next_time(lane)]
        for key in idle:
            del self._lanes[key]
        if self._lanes:
            self._arm_sweeper()
        return len(idle)

    def close(self) -> None:
        """Stop the timers and cancel every queued request (at shutdown)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
                lane.timer = None
            for waiter in lane.waiters:
                waiter.future.cancel()
            lane.waiters.clear()
        self._lanes.clear()
