"""addon.py under mitmdump with every hook of every mistral-compat addon timed in CPU time.

    mitmdump -s bench/hook_timer.py ...          (instead of -s addon.py; same options)

It imports addon.py's `addons` list, wraps each hook method of each addon object (requestheaders,
request, responseheaders, response, ..., and the lifecycle hooks) with `time.process_time_ns`
accounting, and hands the same objects to mitmproxy as its own `addons`, so mitmproxy registers their
options and calls them exactly as with `-s addon.py`. Nothing here names the addon's parts: every
object reachable from `addons` through `.parts` (addon.MistralCompat's parts, to which it hands each
hook) or `.addons` (mitmproxy's own nesting) is timed, each hook as its own region "Class.hook", so a
part added to the addon shows up in the breakdown by itself. An async hook (`async def`, e.g. one that
waits) is timed step by step: the CPU of its own code between awaits, not the time it spends waiting
while the event loop runs other work. Also timed, because they are the addon's code
running per request outside its hooks: the log filter that redacts every log record
(`_RedactingFilter.filter`), the redaction of each flow line the dumper prints (`redact_text`), the
batched log lines (`RequestLog.flush`) and
the content view (`_view_text`, used only at flow_detail >= 3). For diagnosis, also the core rewrite()
and the addon's logger calls as made from the hooks (nested regions, inside the hooks' time). These
are looked up by name in addon.py and in the modules of the mitmproxy layer it is built from
(mitmlayer/), wherever they are defined or called from.

Everything the addon does synchronously inside a hook is counted, including mitmproxy's log handler
(formatting and printing) run by the addon's logger.info/warning calls: that is part of its cost.
Nested timed regions (the redacting filter inside a hook's log call) are counted once in the total
and shown inclusively per region.

Reading the numbers:
  GET /__bench__/stats            the totals since the last reset, as JSON
  GET /__bench__/stats?reset=1    the same, then start again from zero
      &insitu=1 / &insitu=0       turn on/off json.loads+json.dumps of each request's original body
                                  inside mitmdump (the floor in situ; see InSituFloor)
      &nested=0 / &nested=1       time only the outermost regions (each hook mitmproxy calls, and the
                                  code it runs outside them), or every region inside them too (the
                                  default: the per-part rows; see NESTED)
      &profile=<file>             write the cProfile data there (with BENCH_PROFILE)
Such control requests go through the hooks untimed and are not counted.

Environment:
  BENCH_ADDON=path/to/addon.py an alternative addon file to load instead of the repo's addon.py
  BENCH_HOOK_STATS=file.json   done() writes the totals there when mitmdump stops
  BENCH_PROFILE=file.pstats    also run cProfile inside the timed regions only (inflates the timings;
                               use for attribution, not for the numbers); written on every stats
                               request (or to ?profile=<file>) and at done(), reset with the totals
"""

from __future__ import annotations

import cProfile
import functools
import inspect
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if os.environ.get("BENCH_ADDON"):  # time another version of addon.py (an experiment kept outside the repo)
    import importlib.util

    _spec = importlib.util.spec_from_file_location("addon", os.environ["BENCH_ADDON"])
    target = importlib.util.module_from_spec(_spec)
    sys.modules["addon"] = target
    _spec.loader.exec_module(target)
else:
    import addon as target  # noqa: E402  (the project's addon.py)
from mitmproxy import hooks, http  # noqa: E402

clock = time.process_time_ns
CONTROL = "/__bench__/"
FLAG = "bench_control"  # flow.metadata key of control requests
LIFECYCLE = {"load", "configure", "running", "done"}

# Hook names: whatever mitmproxy has registered, plus the common ones in case a module is not loaded yet.
HOOK_NAMES = set(hooks.all_hooks) | {
    "load",
    "configure",
    "running",
    "done",
    "update",
    "client_connected",
    "client_disconnected",
    "server_connect",
    "server_connected",
    "server_disconnected",
    "server_connect_error",
    "requestheaders",
    "request",
    "responseheaders",
    "response",
    "error",
    "http_connect",
    "http_connect_upstream",
    "http_connected",
    "http_connect_error",
    "websocket_start",
    "websocket_message",
    "websocket_end",
    "tcp_start",
    "tcp_message",
    "tcp_end",
    "tcp_error",
    "udp_start",
    "udp_message",
    "udp_end",
    "udp_error",
    "dns_request",
    "dns_response",
    "dns_error",
    "tls_clienthello",
    "tls_start_client",
    "tls_start_server",
    "tls_established_client",
    "tls_established_server",
    "tls_failed_client",
    "tls_failed_server",
}


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total_ns = 0  # per-request code: outermost timed regions only, nothing counted twice
        self.outer_calls = 0  # how many regions total_ns adds up
        self.nested_calls = 0  # timed regions inside another (their timer cost is inside the outer's)
        self.lifecycle_ns = 0  # load/configure/running/done
        self.regions: dict[str, list[int]] = {}  # "Class.hook" -> [calls, inclusive ns, timed spans]
        self.requests = 0  # non-control flows seen by the request hook
        self.since = time.monotonic()
        self.insitu_floor_ns: list[int] = []  # see InSituFloor

    def snapshot(self) -> dict:
        return {
            "clock": "time.process_time_ns",
            "requests": self.requests,
            "total_ns": self.total_ns,
            "outer_calls": self.outer_calls,
            # total_ns less the timer's own cost inside the measured interval (timer_bias_ns per call)
            "nested_calls": self.nested_calls,
            "net_total_ns": max(
                0, self.total_ns - TIMER_BIAS_NS * self.outer_calls - TIMER_OVERHEAD_NS * self.nested_calls
            ),
            "lifecycle_ns": self.lifecycle_ns,
            "seconds": round(time.monotonic() - self.since, 3),
            "regions": {
                k: {"calls": c, "ns": ns, "net_ns": max(0, ns - TIMER_BIAS_NS * spans)}
                for k, (c, ns, spans) in sorted(self.regions.items())
            },
            "nested": NESTED,  # whether regions inside others were timed (see NESTED)
            "async_hooks": sorted(ASYNC),  # timed per step (see _Steps)
            "timer_bias_ns": TIMER_BIAS_NS,
            "timer_overhead_ns": TIMER_OVERHEAD_NS,
            "insitu_floor_ns": self.insitu_floor_ns,
        }


STATS = Stats()
ASYNC: set[str] = set()
_depth = 0
# Whether regions inside another are timed too. Each timed region costs two clock reads (system calls:
# about 0.7 us here) and disturbs the caches for the code after them, more than the calibration (an empty
# function in a tight loop) can subtract, so the nested rows make the total a few microseconds per
# region larger than the addon's real cost. The total is best judged with them off; the rows need them on.
NESTED = True
_profile_path = os.environ.get("BENCH_PROFILE")
_profiler = cProfile.Profile() if _profile_path else None


def _is_control(args) -> bool:
    meta = getattr(args[0], "metadata", None) if args else None
    return isinstance(meta, dict) and FLAG in meta


def _account(key: str, dt: int, outer: bool, lifecycle: bool, call: int = 1) -> None:
    """One timed span of `key`: `dt` ns; `call` is 0 for an async hook's later steps."""
    if outer:
        if lifecycle:
            STATS.lifecycle_ns += dt
        else:
            STATS.total_ns += dt
            STATS.outer_calls += 1
    elif not lifecycle:
        STATS.nested_calls += 1
    region = STATS.regions.get(key)
    if region is None:
        region = STATS.regions[key] = [0, 0, 0]
    region[0] += call
    region[1] += dt
    region[2] += 1


def timed(key: str, fn, lifecycle: bool = False):
    """fn wrapped with CPU-time accounting under `key` (an async fn: each of its steps, see _Steps)."""
    if inspect.iscoroutinefunction(fn):
        ASYNC.add(key)

        @functools.wraps(fn)
        async def async_wrapper(*args, **kwargs):
            if _is_control(args):
                return await fn(*args, **kwargs)
            return await _Steps(fn(*args, **kwargs), key, lifecycle)

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _depth
        if _is_control(args):
            return fn(*args, **kwargs)
        outer = _depth == 0
        if not outer and not NESTED:
            return fn(*args, **kwargs)  # (inside a timed region, which counts it)
        if outer and _profiler is not None and not lifecycle:
            _profiler.enable()
        _depth += 1
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = clock() - t0
            _depth -= 1
            if outer and _profiler is not None and not lifecycle:
                _profiler.disable()
            _account(key, dt, outer, lifecycle)

    return wrapper


class _Steps:
    """Awaits an async hook's coroutine, timing each step of it (from being resumed to its next await)
    like a sync hook: a step run from the event loop is an outer region, one run inside another timed
    region (an async part awaited by an async composite hook) a nested one. The waits are not counted."""

    __slots__ = ("coro", "key", "lifecycle")

    def __init__(self, coro, key: str, lifecycle: bool) -> None:
        self.coro, self.key, self.lifecycle = coro, key, lifecycle

    def __await__(self):
        global _depth
        coro, value, error, call = self.coro, None, None, 1
        while True:
            outer = _depth == 0
            timing = outer or NESTED  # (a step inside a timed region is counted by that region)
            profiling = timing and outer and _profiler is not None and not self.lifecycle
            if profiling:
                _profiler.enable()
            _depth += 1
            t0 = clock() if timing else 0
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                return done.value
            finally:
                dt = clock() - t0 if timing else 0
                _depth -= 1
                if profiling:
                    _profiler.disable()
                if timing:
                    _account(self.key, dt, outer, self.lifecycle, call)
                    call = 0
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as e:  # thrown into the awaiting task (a cancellation): into the hook
                value, error = None, e


def _calibrate() -> tuple[int, int]:
    """(bias, overhead) in ns per hook call, from timing an empty hook: bias is what the timer itself
    adds to the time it records (subtracted in net_ns), overhead its whole cost per call."""
    global _profiler
    saved, _profiler = _profiler, None

    def empty(flow):
        return None

    wrapped = timed("_calibration", empty)
    n = 20000
    t0 = clock()
    for _ in range(n):
        wrapped(None)
    t1 = clock()
    for _ in range(n):
        empty(None)
    t2 = clock()
    bias = min(STATS.regions["_calibration"][1] // n, 10_000)
    STATS.reset()
    _profiler = saved
    return bias, max(0, ((t1 - t0) - (t2 - t1)) // n)


def addon_objects(objs) -> list:
    """Every object in `objs` and, recursively, in their `.parts` (a composite addon such as
    addon.MistralCompat, handing each hook to its parts) and `.addons` (mitmproxy's own nesting), each
    once, the innermost first (so a composite can look its parts' hooks up after they are wrapped)."""
    seen: set[int] = set()
    out: list = []

    def visit(obj) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        for attr in ("parts", "addons"):
            children = getattr(obj, attr, None)
            if isinstance(children, (list, tuple)):
                for child in children:
                    visit(child)
        out.append(obj)

    for obj in objs:
        visit(obj)
    return out


def layer_modules() -> list:
    """Where the addon's code lives: addon.py (`target`) and the modules of the mitmproxy layer it is built
    from (the mitmlayer package, as far as it is loaded). An addon file that holds everything itself (an
    older or experimental one) is simply the only module."""
    layer = sorted(
        (name, mod)
        for name, mod in sys.modules.items()
        if mod is not None and (name == "mitmlayer" or name.startswith("mitmlayer."))
    )
    return [target, *(mod for _, mod in layer)]


def _time_function(name: str, key: str) -> dict[int, object]:
    """Time the function `name` as the addon calls it: the global of that name in each module of the layer
    that has one (where it is defined, and where it is imported to be called), one wrapper per function.
    Returns {id(original): wrapper}."""
    wrapped: dict[int, object] = {}
    for mod in layer_modules():
        fn = vars(mod).get(name)
        if callable(fn) and not isinstance(fn, type):
            if id(fn) not in wrapped:
                wrapped[id(fn)] = timed(key, fn)
            setattr(mod, name, wrapped[id(fn)])
    return wrapped


def _time_method(cls_name: str, method: str, key: str) -> None:
    """Time `method` of the class `cls_name` of the layer (wherever it is defined or re-exported), once."""
    seen: set[int] = set()
    for mod in layer_modules():
        cls = vars(mod).get(cls_name)
        if isinstance(cls, type) and id(cls) not in seen and callable(getattr(cls, method, None)):
            seen.add(id(cls))
            setattr(cls, method, timed(key, getattr(cls, method)))


def instrument(objs) -> None:
    # Each hook of each object is a region "Class.hook"; a part's hook called from its composite's hook
    # is a nested region (the per-part rows), the composite's the outer one (the total).
    for obj in addon_objects(objs):
        cls = type(obj).__name__
        for name in sorted(HOOK_NAMES):
            fn = getattr(obj, name, None)
            if fn is None or not callable(fn):
                continue
            setattr(obj, name, timed(f"{cls}.{name}", fn, lifecycle=name in LIFECYCLE))
    # The addon's code that mitmproxy runs per log record and per flow line, outside any hook.
    _time_method("_RedactingFilter", "filter", "Redaction.log_filter")
    # The wrapper around the dumper's output: its own cost is the redaction of each flow line (the write
    # itself is mitmdump's, paid by bare mitmdump too). Inside the log filter the same call is nested.
    _time_function("redact_text", "Redaction.redact_text")
    _time_method("RequestLog", "flush", "RequestLog.flush")  # the batched per-request log lines, outside any hook
    views = _time_function("_view_text", "BeforeAfterView.render")
    # The content view objects were built (holding the function itself, as .text) when addon.py built the
    # addon, before this ran: theirs is timed too.
    for obj in addon_objects(objs):
        for value in list(getattr(obj, "__dict__", {}).values()):
            if id(getattr(value, "text", None)) in views:
                value.text = views[id(value.text)]
    # Diagnostics, nested inside the hooks above (so not added to the total twice): the core rewrite as
    # called by the addon, and each call of the addon's logger (with mitmproxy's handlers behind it; the
    # layer's one logger, shared by all its modules).
    _time_function("rewrite", "(in hooks) core rewrite()")
    log = getattr(target, "logger", None)
    if log is not None:
        for level in ("debug", "info", "warning", "error", "log"):
            setattr(log, level, timed(f"(in hooks) logger.{level}", getattr(log, level)))


def _write_profile(path: str | None = None) -> None:
    path = path or _profile_path
    if _profiler is not None and path:
        _profiler.create_stats()
        _profiler.dump_stats(path)


class InSituFloor:
    """json.loads + json.dumps of each request's original body, timed inside mitmdump, so the floor
    sees the same process, heap and cache state as the addon. Off unless turned on with
    /__bench__/stats?insitu=1. Alternates: odd requests before the addon's hooks, even ones after
    (the first one to touch a fresh body pays for the cold cache, so neither side always does)."""

    on = False
    count = 0

    @staticmethod
    def measure(body: bytes) -> None:
        t0 = clock()
        json.dumps(json.loads(body))
        STATS.insitu_floor_ns.append(clock() - t0)


class HookTimer:
    """Counts requests and answers /__bench__/stats; never timed itself."""

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        global _profiler, NESTED
        url = urlsplit(flow.request.path)
        if not url.path.startswith(CONTROL):
            return
        flow.metadata[FLAG] = True
        query = parse_qs(url.query)
        body = json.dumps(STATS.snapshot()).encode()
        _write_profile(query.get("profile", [None])[0])
        if "insitu" in query:
            InSituFloor.on = query["insitu"][0] == "1"
        if "nested" in query:
            NESTED = query["nested"][0] == "1"
        if query.get("reset", ["0"])[0] == "1":
            STATS.reset()
            if _profiler is not None:
                _profiler = cProfile.Profile()
        flow.response = http.Response.make(200, body, {"content-type": "application/json"})

    def request(self, flow: http.HTTPFlow) -> None:
        if FLAG in flow.metadata:
            return
        STATS.requests += 1
        if InSituFloor.on and flow.request.method == "POST" and flow.request.raw_content:
            InSituFloor.count += 1
            flow.metadata["bench_original"] = flow.request.raw_content
            if InSituFloor.count % 2 == 1:
                InSituFloor.measure(flow.request.raw_content)


class HookTimerLast:
    """After every addon: the in-situ floor of even requests."""

    def request(self, flow: http.HTTPFlow) -> None:
        body = flow.metadata.get("bench_original")
        if body is not None and InSituFloor.count % 2 == 0:
            InSituFloor.measure(body)

    def done(self) -> None:
        path = os.environ.get("BENCH_HOOK_STATS")
        if path:
            Path(path).write_text(json.dumps(STATS.snapshot(), indent=1))
        _write_profile()


TIMER_BIAS_NS = TIMER_OVERHEAD_NS = 0
TIMER_BIAS_NS, TIMER_OVERHEAD_NS = _calibrate()
instrument(target.addons)
addons = [HookTimer(), *target.addons, HookTimerLast()]
