"""mistral_compat.pacing: the per-key FIFO Pacer (issue 15); the rate, key ids and Retry-After are in
test_ratelimit.py.

Most tests run on a virtual-time event loop (VirtualLoop): its clock only moves when the loop would
otherwise sleep, jumping straight to the next timer, so waits are exact and a 60 s queue takes no time.
A few run on the real loop with short intervals (10/s) to show real spacing.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from mistral_compat import pacing, ratelimit
from mistral_compat.pacing import SWEEP_PERIOD, ClientGone, Pacer, QueueFull, parse_rate

# ---------------------------------------------------------------------------
# A virtual-time loop


class _VirtualSelector:
    """Wraps the loop's selector: instead of sleeping `timeout` seconds, advance the virtual clock."""

    def __init__(self, selector, loop):
        self._selector = selector
        self._loop = loop
        self.selects = 0

    def select(self, timeout=None):
        self.selects += 1
        events = self._selector.select(0)
        if events:
            return events
        if timeout is None:
            raise RuntimeError("deadlock: the loop would wait forever (nothing scheduled)")
        self._loop.now += timeout
        return events

    def __getattr__(self, name):
        return getattr(self._selector, name)


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self):
        self.now = 1000.0
        super().__init__()
        self._selector = _VirtualSelector(self._selector, self)

    def time(self) -> float:
        return self.now


def virtual(test):
    """Run `async def test(loop)` on a fresh VirtualLoop (a sync test for pytest)."""

    def run():
        loop = VirtualLoop()
        try:
            loop.run_until_complete(test(loop))
        finally:
            loop.close()

    run.__name__ = test.__name__
    return run


def at(loop, start: float, value: float) -> float:
    """A time relative to the test's start, rounded for comparison."""
    return round(value - start, 6)


async def settle():
    """Let started tasks run up to their first real wait (no virtual time passes)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def burst(loop, pacer, key: str, count: int, **kwargs):
    """`count` concurrent acquire() on one key, started in order; -> [(index, release time, Wait)]."""
    start = loop.time()
    done = []

    async def one(index):
        waited = await pacer.acquire(key, **kwargs)
        done.append((index, at(loop, start, loop.time()), waited))

    await asyncio.gather(*(one(i) for i in range(count)))
    return done


ONE = parse_rate("1/s")
S = ONE.spacing  # 1.05
TEN = parse_rate("10/s")


# ---------------------------------------------------------------------------
# The names callers import from here


def test_ratelimit_names_are_reexported():
    # addon.py and settings.py import these from mistral_compat.pacing
    for name in (
        "Rate",
        "parse_rate",
        "key_id",
        "key_from_headers",
        "secret_from_headers",
        "ANONYMOUS",
        "parse_retry_after",
        "MAX_RETRY_AFTER",
        "DEFAULT_HOLD",
        "wait_note",
    ):
        assert getattr(pacing, name) is getattr(ratelimit, name), name
    for name in pacing.__all__:
        assert hasattr(pacing, name), name


# ---------------------------------------------------------------------------
# Pacer: the fast path


def finishes_without_awaiting(coro):
    """Run a coroutine one step: return its value if it finished without awaiting anything."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("acquire() awaited")


def test_no_rate_no_hold_returns_at_once_and_keeps_nothing():
    pacer = Pacer(None)
    assert not pacer.active  # the addon may skip hashing the key
    for i in range(1000):
        assert finishes_without_awaiting(pacer.acquire(f"key-{i}")) == 0.0
    assert len(pacer) == 0 and pacer._sweeper is None  # no lane, no timer: nothing to forget
    assert not pacer.active and Pacer(ONE).active


@virtual
async def test_active_while_a_key_is_held(loop):
    pacer = Pacer(None, clock=loop.time)
    pacer.hold("a", 1.0)
    assert pacer.active
    await asyncio.sleep(SWEEP_PERIOD + 1)
    assert not pacer.active  # the hold passed and the key was forgotten


@virtual
async def test_first_request_of_a_key_goes_at_once(loop):
    pacer = Pacer(ONE, clock=loop.time)
    waited = finishes_without_awaiting(pacer.acquire("a"))
    assert waited == 0.0 and waited.reason == ""
    assert finishes_without_awaiting(pacer.acquire("b")) == 0.0  # another key
    await asyncio.sleep(S)
    assert finishes_without_awaiting(pacer.acquire("a")) == 0.0  # the interval has passed
    assert pacer.totals.waits == 0


@virtual
async def test_an_expired_hold_costs_no_await(loop):
    pacer = Pacer(None, clock=loop.time)
    pacer.hold("a", 1.0)
    await asyncio.sleep(1.0)
    assert finishes_without_awaiting(pacer.acquire("a")) == 0.0


# ---------------------------------------------------------------------------
# Pacer: order and spacing


@virtual
async def test_burst_goes_in_arrival_order_spaced_by_the_interval(loop):
    pacer = Pacer(ONE, clock=loop.time)
    done = await burst(loop, pacer, "a", 6)
    assert [index for index, _, _ in done] == list(range(6))
    assert [t for _, t, _ in done] == pytest.approx([0, S, 2 * S, 3 * S, 4 * S, 5 * S])
    assert [float(w) for _, _, w in done] == pytest.approx([0, S, 2 * S, 3 * S, 4 * S, 5 * S])
    assert [w.reason for _, _, w in done] == ["", "rate", "rate", "rate", "rate", "rate"]
    stats = pacer.stats("a")
    assert stats.waits == 5 and stats.waited == pytest.approx(15 * S)
    assert pacer.totals.waits == 5


@virtual
async def test_no_busy_loop_while_waiting(loop):
    pacer = Pacer(parse_rate("1/min"), max_wait=600, clock=loop.time)
    selects = loop._selector.selects
    await burst(loop, pacer, "a", 5)  # four minutes of waiting
    turns = loop._selector.selects - selects
    # a few loop turns per release, and the idle-key sweep every SWEEP_PERIOD; nothing that spins
    assert turns <= 4 * 5 + 240 / SWEEP_PERIOD + 5, turns


@virtual
async def test_a_request_arriving_after_the_burst_queues_behind_it(loop):
    pacer = Pacer(ONE, clock=loop.time)
    start = loop.time()
    first = asyncio.ensure_future(burst(loop, pacer, "a", 3))
    await asyncio.sleep(0.5)
    late = await pacer.acquire("a")
    assert at(loop, start, loop.time()) == pytest.approx(3 * S)
    assert late == pytest.approx(3 * S - 0.5)
    await first


@virtual
async def test_keys_are_independent(loop):
    pacer = Pacer(ONE, clock=loop.time)
    start = loop.time()
    a = asyncio.ensure_future(burst(loop, pacer, "a", 5))
    await settle()
    assert pacer.queued("a") == 4
    b = await burst(loop, pacer, "b", 2)
    assert [t for _, t, _ in b] == pytest.approx([0, S])  # not behind a's four
    assert at(loop, start, loop.time()) == pytest.approx(S)
    assert [t for _, t, _ in await a] == pytest.approx([0, S, 2 * S, 3 * S, 4 * S])


@virtual
async def test_a_coarse_clock_neither_spins_nor_releases_early(loop):
    def coarse():  # a clock that ticks every 16 ms, like Windows' default timer
        return (loop.time() // 0.016) * 0.016

    pacer = Pacer(TEN, clock=coarse)
    selects = loop._selector.selects
    released = []

    async def client():
        await pacer.acquire("a")
        released.append(loop.time())

    await asyncio.gather(*(client() for _ in range(4)))
    gaps = [b - a for a, b in zip(released, released[1:])]
    assert all(gap >= TEN.interval for gap in gaps), gaps
    assert loop._selector.selects - selects < 4 * 40  # a few re-arms of at least 1 ms per release at most


# ---------------------------------------------------------------------------
# Pacer: clients that give up


@virtual
async def test_cancelled_waiter_is_skipped_without_using_a_slot(loop):
    pacer = Pacer(ONE, clock=loop.time)
    start = loop.time()
    released = []

    async def client(name):
        await pacer.acquire("a")
        released.append((name, at(loop, start, loop.time())))

    tasks = [asyncio.ensure_future(client(n)) for n in "ABCD"]
    await asyncio.sleep(0.5)
    tasks[1].cancel()  # B gives up while queued (mitmproxy or the addon cancels its hook)
    await asyncio.gather(*tasks, return_exceptions=True)
    assert tasks[1].cancelled()
    assert released == [("A", 0), ("C", pytest.approx(S)), ("D", pytest.approx(2 * S))]
    assert pacer.stats("a").dropped == 1 and pacer.totals.dropped == 1


@virtual
async def test_client_timing_out_with_wait_for_leaves_the_queue(loop):
    pacer = Pacer(ONE, clock=loop.time)
    await pacer.acquire("a")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(pacer.acquire("a"), 0.5)
    assert pacer.queued("a") == 0
    start = loop.time()
    await pacer.acquire("a")  # goes at the slot the quitter did not use
    assert at(loop, start, loop.time()) == pytest.approx(S - 0.5)


@virtual
async def test_cancelled_just_after_its_turn_gives_the_slot_back(loop):
    pacer = Pacer(ONE, clock=loop.time)
    start = loop.time()
    await pacer.acquire("a")
    holder = {}

    def cancel_me_as_i_am_released():
        # called at A's turn, just before its slot is granted: the cancellation lands after the grant,
        # before A's task resumes (a client disconnecting at that very moment)
        loop.call_soon(holder["A"].cancel)
        return False

    holder["A"] = asyncio.ensure_future(pacer.acquire("a", gone=cancel_me_as_i_am_released))
    b = asyncio.ensure_future(pacer.acquire("a"))
    with pytest.raises(asyncio.CancelledError):
        await holder["A"]
    await b
    assert at(loop, start, loop.time()) == pytest.approx(S)  # B took A's slot, not the one after
    assert pacer.totals.dropped == 1


@virtual
async def test_gone_waiter_is_dropped_at_its_turn(loop):
    pacer = Pacer(ONE, clock=loop.time)
    start = loop.time()
    await pacer.acquire("a")
    calls = []

    def gone():
        calls.append(at(loop, start, loop.time()))
        return True

    a = asyncio.ensure_future(pacer.acquire("a", gone=lambda: False))
    b = asyncio.ensure_future(pacer.acquire("a", gone=gone))
    c = asyncio.ensure_future(pacer.acquire("a"))
    await a
    assert at(loop, start, loop.time()) == pytest.approx(S)
    with pytest.raises(ClientGone):
        await b
    await c
    assert at(loop, start, loop.time()) == pytest.approx(2 * S)  # C went in B's place
    assert calls == [pytest.approx(2 * S)]  # gone() asked once, when B's turn came
    assert pacer.stats("a").dropped == 1


@virtual
async def test_gone_raising_goes_to_its_waiter_only(loop):
    pacer = Pacer(ONE, clock=loop.time)
    await pacer.acquire("a")

    def broken():
        raise KeyError("flow")

    b = asyncio.ensure_future(pacer.acquire("a", gone=broken))
    c = asyncio.ensure_future(pacer.acquire("a"))
    with pytest.raises(KeyError):
        await b
    assert await c == pytest.approx(S)


# ---------------------------------------------------------------------------
# Pacer: the bound


@virtual
async def test_queue_full_is_raised_at_once_with_retry_after(loop):
    pacer = Pacer(ONE, max_wait=5.0, clock=loop.time)
    await pacer.acquire("a")
    queued = [asyncio.ensure_future(pacer.acquire("a")) for _ in range(4)]  # waits 1.05 ... 4.2
    await settle()
    start = loop.time()
    with pytest.raises(QueueFull) as info:
        await pacer.acquire("a")  # would wait 5.25 s
    assert loop.time() == start  # at once
    full = info.value
    assert full.retry_after == pytest.approx(5 * S)
    assert full.retry_after_header() == "6"
    assert (full.reason, full.queued, full.key) == ("queue", 4, "a")
    assert "full" in str(full) and "5.2 s" in str(full)
    assert pacer.queued("a") == 4  # not queued
    assert pacer.stats("a").full == 1 and pacer.totals.full == 1
    assert await pacer.acquire("b") == 0.0  # other keys unaffected
    await asyncio.sleep(0.5)
    fits = asyncio.ensure_future(pacer.acquire("a"))  # 0.5 s later it fits again (4.75 s)
    await settle()
    assert pacer.queued("a") == 5
    await asyncio.gather(*queued)
    assert await fits == pytest.approx(5 * S - 0.5)


@virtual
async def test_queue_full_checks_for_gone_clients_first(loop):
    pacer = Pacer(ONE, max_wait=3.0, clock=loop.time)
    await pacer.acquire("a")
    flags = [False, False]
    queued = [asyncio.ensure_future(pacer.acquire("a", gone=lambda i=i: flags[i])) for i in range(2)]
    await settle()
    with pytest.raises(QueueFull):
        await pacer.acquire("a")  # 3.15 s
    flags[0] = True  # the first one's client went away
    late = asyncio.ensure_future(pacer.acquire("a"))
    with pytest.raises(ClientGone):
        await queued[0]
    await queued[1]
    assert await late == pytest.approx(2 * S)


@virtual
async def test_max_wait_counts_a_hold(loop):
    pacer = Pacer(None, max_wait=60.0, clock=loop.time)
    pacer.hold("a", 90)
    with pytest.raises(QueueFull) as info:
        await pacer.acquire("a")
    assert info.value.reason == "hold" and info.value.retry_after == pytest.approx(90)
    assert "held after a 429" in str(info.value)
    await asyncio.sleep(31)
    assert await pacer.acquire("a") == pytest.approx(59)  # now within max_wait: it waits


# ---------------------------------------------------------------------------
# Pacer: holds after a 429


@virtual
async def test_hold_without_a_rate(loop):
    pacer = Pacer(None, clock=loop.time)
    pacer.hold("a", 2.0)
    assert pacer.held_for("a") == pytest.approx(2.0)
    assert await pacer.acquire("b") == 0.0  # only that key
    done = await burst(loop, pacer, "a", 3)
    assert [t for _, t, _ in done] == pytest.approx([2.0, 2.0, 2.0])  # no rate: all go when it ends
    assert [index for index, _, _ in done] == [0, 1, 2]
    assert [w.reason for _, _, w in done] == ["hold"] * 3
    assert pacer.stats("a").holds == 1 and pacer.totals.holds == 1
    assert pacer.held_for("a") == 0.0


@virtual
async def test_hold_with_a_rate(loop):
    pacer = Pacer(ONE, clock=loop.time)
    start = loop.time()
    await pacer.acquire("a")
    await asyncio.sleep(0.5)
    pacer.hold("a", 3.0)  # a 429 came back for the first request
    done = await burst(loop, pacer, "a", 3)
    assert [t + 0.5 for _, t, _ in done] == pytest.approx([3.5, 3.5 + S, 3.5 + 2 * S])
    assert [w.reason for _, _, w in done] == ["hold", "rate", "rate"]
    assert at(loop, start, loop.time()) == pytest.approx(3.5 + 2 * S)


@virtual
async def test_hold_moves_requests_already_queued(loop):
    pacer = Pacer(ONE, clock=loop.time)
    start = loop.time()
    await pacer.acquire("a")
    queued = asyncio.ensure_future(pacer.acquire("a"))  # due at 1.05
    await asyncio.sleep(0.2)
    pacer.hold("a", 2.0)
    assert await queued == pytest.approx(2.2)
    assert at(loop, start, loop.time()) == pytest.approx(2.2)


@virtual
async def test_a_shorter_hold_never_shortens_a_longer_one(loop):
    pacer = Pacer(None, clock=loop.time)
    pacer.hold("a", 5.0)
    pacer.hold("a", 1.0)
    assert await pacer.acquire("a") == pytest.approx(5.0)
    assert pacer.stats("a").holds == 2


@virtual
async def test_zero_hold_costs_nothing(loop):
    pacer = Pacer(None, clock=loop.time)
    pacer.hold("a", 0.0)
    assert finishes_without_awaiting(pacer.acquire("a")) == 0.0


# ---------------------------------------------------------------------------
# Pacer: set_rate


@virtual
async def test_set_rate_applies_to_queued_requests(loop):
    pacer = Pacer(ONE, clock=loop.time)
    start = loop.time()
    times = []

    async def client():
        await pacer.acquire("a")
        times.append(at(loop, start, loop.time()))

    tasks = [asyncio.ensure_future(client()) for _ in range(4)]
    await asyncio.sleep(0.5)
    ten = parse_rate("10/s")
    pacer.set_rate(ten)
    assert pacer.rate == ten
    await asyncio.gather(*tasks)
    # the second was due at 1.05; under 10/s it is due at once (0.105 after the first has passed)
    assert times == pytest.approx([0, 0.5, 0.5 + ten.spacing, 0.5 + 2 * ten.spacing])


@virtual
async def test_set_rate_to_none_releases_the_queue(loop):
    pacer = Pacer(ONE, clock=loop.time)
    done = asyncio.ensure_future(burst(loop, pacer, "a", 4))
    await asyncio.sleep(0.3)
    pacer.set_rate(None)
    assert [t for _, t, _ in await done] == pytest.approx([0, 0.3, 0.3, 0.3])


@virtual
async def test_set_rate_from_none(loop):
    pacer = Pacer(None, clock=loop.time)
    assert await pacer.acquire("a") == 0.0
    pacer.set_rate(ONE)
    assert [t for _, t, _ in await burst(loop, pacer, "a", 3)] == pytest.approx([0, S, 2 * S])


# ---------------------------------------------------------------------------
# Pacer: memory


@virtual
async def test_idle_keys_are_forgotten(loop):
    pacer = Pacer(ONE, clock=loop.time)
    for i in range(10_000):  # a hostile page with ten thousand keys
        await pacer.acquire(f"k{i}")
    pacer.hold("held", 30.0)
    busy = asyncio.ensure_future(burst(loop, pacer, "busy", 3))
    await settle()
    assert len(pacer) == 10_002
    await asyncio.sleep(SWEEP_PERIOD + 0.01)
    assert len(pacer) == 1 and pacer.stats("held") is not None  # the held key is remembered
    await busy
    await asyncio.sleep(30)
    assert len(pacer) == 0
    assert pacer._sweeper is None and not loop._scheduled  # no timer left behind when idle
    assert pacer.totals.holds == 1 and pacer.totals.waits == 2  # totals outlive forgotten keys


@virtual
async def test_sweep_by_hand(loop):
    pacer = Pacer(ONE, clock=loop.time)
    await pacer.acquire("a")
    assert pacer.sweep() == 0  # within its interval: kept
    await asyncio.sleep(S)
    assert pacer.sweep() == 1 and len(pacer) == 0 and pacer._sweeper is None


@virtual
async def test_close_cancels_the_queue(loop):
    pacer = Pacer(ONE, clock=loop.time)
    await pacer.acquire("a")
    queued = asyncio.ensure_future(pacer.acquire("a"))
    await settle()
    pacer.close()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert len(pacer) == 0 and not loop._scheduled


# ---------------------------------------------------------------------------
# Real time: short intervals on the real loop


async def real_burst(pacer, key, count, started=None):
    start = started if started is not None else time.monotonic()
    times = []

    async def one(index):
        await pacer.acquire(key)
        times.append((index, time.monotonic() - start))

    await asyncio.gather(*(one(i) for i in range(count)))
    return times


async def test_real_spacing_at_10_per_second():
    pacer = Pacer(TEN)
    times = await real_burst(pacer, "a", 6)
    assert [i for i, _ in times] == list(range(6))
    gaps = [b - a for (_, a), (_, b) in zip(times, times[1:])]
    assert all(gap >= TEN.interval for gap in gaps), gaps  # never closer than 100 ms
    assert times[-1][1] < 5 * TEN.spacing + 0.25  # and not much later than needed
    assert times[-1][1] >= 5 * TEN.spacing - 0.001


async def test_real_keys_in_parallel():
    pacer = Pacer(TEN)
    start = time.monotonic()
    a, b = await asyncio.gather(real_burst(pacer, "a", 4, start), real_burst(pacer, "b", 4, start))
    assert a[-1][1] < 3 * TEN.spacing + 0.15 and b[-1][1] < 3 * TEN.spacing + 0.15  # side by side
    assert b[-1][1] >= 3 * TEN.spacing - 0.001


async def test_real_cancelled_waiter_does_not_use_a_slot():
    pacer = Pacer(TEN)
    start = time.monotonic()
    await pacer.acquire("a")
    second = asyncio.ensure_future(pacer.acquire("a"))
    third = asyncio.ensure_future(pacer.acquire("a"))
    await asyncio.sleep(0.03)
    second.cancel()
    await third
    elapsed = time.monotonic() - start
    assert TEN.spacing - 0.001 <= elapsed < TEN.spacing + 0.08  # the second slot, not the third
    assert second.cancelled()


async def test_real_hold():
    pacer = Pacer(None)
    pacer.hold("a", 0.3)
    start = time.monotonic()
    waited = await pacer.acquire("a")
    assert 0.3 - 0.001 <= time.monotonic() - start < 0.45
    assert waited.reason == "hold" and waited == pytest.approx(0.3, abs=0.1)
    assert finishes_without_awaiting(pacer.acquire("a")) == 0.0
