"""Pace requests per API key (issue 15): one FIFO queue per key, released no closer than the rate's spacing.

Mistral's free tier allows one request per second per key. Pacer.acquire() waits for the key's turn;
hold() after a 429 (also without a rate); a bound on the wait (QueueFull); clients that gave up are
dropped (cancellation or gone()). What it reads (the option, key ids, Retry-After) is in ratelimit.py;
its names are re-exported here. Pure asyncio, no mitmproxy; everything runs on the one event loop
(mitmproxy's): no locks, no threads.

A queue. A key's lane remembers its last release (`last`) and its hold after a 429 (`hold_until`). A
request may go at `max(last + rate.spacing, hold_until)`; if that has passed and nobody is queued,
acquire() returns without awaiting anything. Otherwise it joins the lane's FIFO queue, and one timer per
lane (loop.call_later) releases the head when its time comes, then re-arms for the next. A timer that
fires early (coarse clocks) re-arms for the rest: no polling, no busy loop.

Dropped waiters leave the queue without using a slot:
- cancelled while queued (by mitmproxy, or by the addon when the client goes away): acquire() re-raises
  CancelledError; if the cancellation races with the release (slot granted, task not resumed yet), the
  slot is given back and the next waiter goes in its place;
- gone() returns True at its turn (or when a full-looking queue is pruned): acquire() raises ClientGone
  and the slot goes to the next waiter at once.
For the addon: mitmproxy 11/12 do not cancel a running hook when the client disconnects (the hook task
is only kept in a set, mitmproxy/proxy/server.py), so pass a gone() that looks at the flow, e.g.
`lambda: flow.error is not None or not flow.live`, or cancel the waiting task from the `error` hook.

Memory. Lanes of idle keys (nobody queued, interval and hold passed) carry no information: a sweep every
SWEEP_PERIOD seconds drops them, one loop timer (not a task) that runs only while some lane exists. A
burst on a million different keys costs one small lane per key for a few seconds at most.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

from .ratelimit import (  # re-exported: callers import them from here
    ANONYMOUS,
    DEFAULT_HOLD,
    EXAMPLES,
    MARGIN_MAX,
    MARGIN_RATIO,
    MAX_INTERVAL,
    MAX_PER_SECOND,
    MAX_RETRY_AFTER,
    Rate,
    key_from_headers,
    key_id,
    parse_rate,
    parse_retry_after,
    secret_from_headers,
    wait_note,
)

__all__ = [
    "ANONYMOUS",
    "DEFAULT_HOLD",
    "EXAMPLES",
    "MARGIN_MAX",
    "MARGIN_RATIO",
    "MAX_INTERVAL",
    "MAX_PER_SECOND",
    "MAX_RETRY_AFTER",
    "NO_WAIT",
    "SWEEP_PERIOD",
    "ClientGone",
    "KeyStats",
    "Pacer",
    "QueueFull",
    "Rate",
    "Wait",
    "key_from_headers",
    "key_id",
    "parse_rate",
    "parse_retry_after",
    "secret_from_headers",
    "wait_note",
]

# ---------------------------------------------------------------------------
# The pacer

SWEEP_PERIOD = 5.0  # how often lanes of idle keys are forgotten (only while some lane exists)
_DUE = 1e-6  # a release this close to its time is due (float rounding of timer deadlines)
_MIN_RETRY = 0.001  # a timer that fired early (coarse clocks) re-arms at least this far ahead: no spinning


class QueueFull(Exception):
    """A request would wait more than max_wait: answer it with a local 429 and Retry-After.

    retry_after: seconds until it could go without waiting (retry_after_header() rounds it up); reason:
    "queue" (too many queued ahead at the rate) or "hold" (the key is held after a 429 from Mistral for
    longer than max_wait); queued: how many were queued on the key."""

    def __init__(self, retry_after: float, reason: str = "queue", queued: int = 0, key: str = ""):
        self.retry_after = retry_after
        self.reason = reason
        self.queued = queued
        self.key = key
        what = "held after a 429 from Mistral" if reason == "hold" else f"{queued} request(s) already queued"
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
    reason: str

    def __new__(cls, seconds: float = 0.0, reason: str = "") -> "Wait":
        obj = super().__new__(cls, seconds)
        obj.reason = reason
        return obj

    def __repr__(self) -> str:
        return f"Wait({float(self)!r}, {self.reason!r})"


NO_WAIT = Wait(0.0, "")


@dataclass
class KeyStats:
    """Counts for one key (Pacer.stats) or for all keys since the start (Pacer.totals)."""

    waits: int = 0  # requests that waited
    waited: float = 0.0  # seconds waited, all together
    holds: int = 0  # hold() calls (429s from Mistral)
    full: int = 0  # requests refused with QueueFull
    dropped: int = 0  # waiters dropped: cancelled, or gone() when their turn came


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

    def __init__(self) -> None:
        self.last: Optional[float] = None  # when the last request was released
        self.hold_until = -math.inf  # held after a 429 until then
        self.waiters: deque[_Waiter] = deque()
        self.timer: Optional[asyncio.TimerHandle] = None
        self.stats = KeyStats()


class Pacer:
    """Per-key FIFO pacing on the running asyncio loop. See the module docstring."""

    def __init__(self, rate: Optional[Rate], max_wait: float = 60.0, clock: Callable[[], float] = time.monotonic):
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
        """False without a rate and without any lane (no key held): acquire() would return 0.0 for any
        key, so a caller may skip finding (hashing) the request's key."""
        return self._rate is not None or bool(self._lanes)

    def set_rate(self, rate: Optional[Rate]) -> None:
        """The option changed at run time. Queued requests keep their order and go at the new rate,
        counted from the last release; with None, as soon as any hold has passed."""
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

        Runs for every request: without a rate and a hold on the key it returns at once, awaiting nothing
        (no future, task or timer). Raises QueueFull at once, unqueued, when the expected wait (the hold,
        plus one spacing per request queued ahead) would pass max_wait; ClientGone when gone() returned
        True at its turn, CancelledError when cancelled while queued (neither uses a slot)."""
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
        assert loop is not None  # (acquire() runs on the loop)
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
        assert loop is not None  # (waiters are queued by acquire(), which remembered the loop)
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
            rate_time = lane.last + self._spacing if self._rate is not None and lane.last is not None else -math.inf
            waiter.reason = "hold" if lane.hold_until > rate_time else "rate"
            waiter.previous_last, waiter.granted_at = lane.last, now
            lane.last = now
            waiter.future.set_result(None)
            released = True
        if lane.waiters:
            # re-arm for the rest; when nothing went (the timer fired early, or the hold grew), at least
            # _MIN_RETRY ahead, so that a coarse clock cannot make it spin
            self._schedule(lane, 0.0 if released else _MIN_RETRY)

    # -- holds --------------------------------------------------------------------

    def hold(self, key: str, seconds: float) -> None:
        """After a 429 from Mistral: the key's next requests wait `seconds` (also without a rate). A
        shorter hold never shortens a longer one."""
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
        idle = [
            key
            for key, lane in self._lanes.items()
            if not lane.waiters and lane.timer is None and now >= self._next_time(lane)
        ]
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
