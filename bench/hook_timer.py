"""addon.py under mitmdump with every hook of every mistral-compat addon timed in CPU time.

    mitmdump -s bench/hook_timer.py ...          (instead of -s addon.py; same options)

It imports addon.py's `addons` list, wraps each hook method of each addon object (requestheaders,
request, responseheaders, response, ..., and the lifecycle hooks) with `time.process_time_ns`
accounting, and hands the same objects to mitmproxy as its own `addons`, so mitmproxy registers their
options and calls them exactly as with `-s addon.py`. Also timed, because they are the addon's code
running per request outside its hooks: the log filter that redacts every log record
(`_RedactingFilter.filter`), the wrapper around the dumper's output (`_RedactingWriter.write`) and
the content view (`_view_text`, used only at flow_detail >= 3).

Everything the addon does synchronously inside a hook is counted, including mitmproxy's log handler
(formatting and printing) run by the addon's logger.info/warning calls: that is part of its cost.
Nested timed regions (the redacting filter inside a hook's log call) are counted once in the total
and shown inclusively per region.

Reading the numbers:
  GET /__bench__/stats            the totals since the last reset, as JSON
  GET /__bench__/stats?reset=1    the same, then start again from zero
Such control requests go through the hooks untimed and are not counted.

Environment:
  BENCH_HOOK_STATS=file.json   done() writes the totals there when mitmdump stops
  BENCH_PROFILE=file.pstats    also run cProfile inside the timed regions only (inflates the timings;
                               use for attribution, not for the numbers); written on every stats
                               request and at done(), reset with the totals
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

import addon as target  # noqa: E402  (the project's addon.py)
from mitmproxy import hooks, http  # noqa: E402

clock = time.process_time_ns
CONTROL = "/__bench__/"
FLAG = "bench_control"  # flow.metadata key of control requests
LIFECYCLE = {"load", "configure", "running", "done"}

# Hook names: whatever mitmproxy has registered, plus the common ones in case a module is not loaded yet.
HOOK_NAMES = set(hooks.all_hooks) | {
    "load", "configure", "running", "done", "update",
    "client_connected", "client_disconnected", "server_connect", "server_connected",
    "server_disconnected", "server_connect_error",
    "requestheaders", "request", "responseheaders", "response", "error", "http_connect",
    "http_connect_upstream", "http_connected", "http_connect_error",
    "websocket_start", "websocket_message", "websocket_end",
    "tcp_start", "tcp_message", "tcp_end", "tcp_error",
    "udp_start", "udp_message", "udp_end", "udp_error",
    "dns_request", "dns_response", "dns_error",
    "tls_clienthello", "tls_start_client", "tls_start_server", "tls_established_client",
    "tls_established_server", "tls_failed_client", "tls_failed_server",
}


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total_ns = 0          # per-request code: outermost timed regions only, nothing counted twice
        self.lifecycle_ns = 0      # load/configure/running/done
        self.regions: dict[str, list[int]] = {}  # "Class.hook" -> [calls, inclusive ns]
        self.requests = 0          # non-control flows seen by the request hook
        self.since = time.monotonic()

    def snapshot(self) -> dict:
        return {
            "clock": "time.process_time_ns",
            "requests": self.requests,
            "total_ns": self.total_ns,
            "lifecycle_ns": self.lifecycle_ns,
            "seconds": round(time.monotonic() - self.since, 3),
            "regions": {k: {"calls": c, "ns": ns} for k, (c, ns) in sorted(self.regions.items())},
            "untimed_async_hooks": sorted(UNTIMED),
            "timer_overhead_ns": TIMER_OVERHEAD_NS,
        }


STATS = Stats()
UNTIMED: set[str] = set()
_depth = 0
_profile_path = os.environ.get("BENCH_PROFILE")
_profiler = cProfile.Profile() if _profile_path else None


def _is_control(args) -> bool:
    meta = getattr(args[0], "metadata", None) if args else None
    return isinstance(meta, dict) and FLAG in meta


def timed(key: str, fn, lifecycle: bool = False):
    """fn wrapped with CPU-time accounting under `key`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _depth
        if _is_control(args):
            return fn(*args, **kwargs)
        outer = _depth == 0
        if outer and _profiler is not None and not lifecycle:
            _profiler.enable()
        _depth += 1
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            dt = clock() - t0
            _depth -= 1
            if outer:
                if _profiler is not None and not lifecycle:
                    _profiler.disable()
                if lifecycle:
                    STATS.lifecycle_ns += dt
                else:
                    STATS.total_ns += dt
            region = STATS.regions.get(key)
            if region is None:
                region = STATS.regions[key] = [0, 0]
            region[0] += 1
            region[1] += dt

    return wrapper


def _calibrate() -> int:
    """CPU cost of the accounting around one hook call (an empty hook), in ns."""
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
    STATS.reset()
    return max(0, ((t1 - t0) - (t2 - t1)) // n)


def instrument(objs) -> None:
    for obj in objs:
        cls = type(obj).__name__
        for name in sorted(HOOK_NAMES):
            fn = getattr(obj, name, None)
            if fn is None or not callable(fn):
                continue
            if inspect.iscoroutinefunction(fn):
                UNTIMED.add(f"{cls}.{name}")  # the loop time of an async hook is not the hook's CPU
                continue
            setattr(obj, name, timed(f"{cls}.{name}", fn, lifecycle=name in LIFECYCLE))
    # The addon's code that mitmproxy runs per log record and per flow line, outside any hook.
    if hasattr(target, "_RedactingFilter"):
        target._RedactingFilter.filter = timed("Redaction.log_filter", target._RedactingFilter.filter)
    if hasattr(target, "_RedactingWriter"):
        target._RedactingWriter.write = timed("Redaction.flow_line_write", target._RedactingWriter.write)
    if hasattr(target, "_view_text"):
        target._view_text = timed("BeforeAfterView.render", target._view_text)


def _write_profile() -> None:
    if _profiler is not None and _profile_path:
        _profiler.create_stats()
        _profiler.dump_stats(_profile_path)


class HookTimer:
    """Counts requests and answers /__bench__/stats; never timed itself."""

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        global _profiler
        url = urlsplit(flow.request.path)
        if not url.path.startswith(CONTROL):
            return
        flow.metadata[FLAG] = True
        query = parse_qs(url.query)
        body = json.dumps(STATS.snapshot()).encode()
        _write_profile()
        if query.get("reset", ["0"])[0] == "1":
            STATS.reset()
            if _profiler is not None:
                _profiler = cProfile.Profile()
        flow.response = http.Response.make(200, body, {"content-type": "application/json"})

    def request(self, flow: http.HTTPFlow) -> None:
        if FLAG not in flow.metadata:
            STATS.requests += 1

    def done(self) -> None:
        path = os.environ.get("BENCH_HOOK_STATS")
        if path:
            Path(path).write_text(json.dumps(STATS.snapshot(), indent=1))
        _write_profile()


TIMER_OVERHEAD_NS = _calibrate()
instrument(target.addons)
addons = [HookTimer(), *target.addons]
