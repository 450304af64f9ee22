#!/usr/bin/env python3
"""mistral-compat benchmark: the proxy's latency, CPU and throughput cost, side by side in one run.

    .venv/bin/python bench/run.py                       # full run, about 105 s
    .venv/bin/python bench/run.py --quick               # a short run, about 25 s
    python3 bench/run.py --venv .venv-3.12              # another mitmproxy (that venv's python and mitmdump)
    .venv/bin/python bench/run.py --quick --profile     # also cProfile inside the addon's hooks

Everything runs on 127.0.0.1 against tests/fake_mistral.py (its own process), with every mitmdump in
reverse mode (`--mode reverse:http://127.0.0.1:<fake> --set connection_strategy=lazy`) and the same
options (flow_detail=1 by default, mitmdump's own default), its output going to a file line by line as
on a terminal. This process is the client (raw keep-alive sockets, requests prebuilt). With 2+ CPUs, for
the CPU and throughput measurements (not the latency one), the mitmdumps are pinned to one CPU and the
fake and the clients to another (--no-pin turns that off).

Measured:
  1. time to the first streamed event (the fake sends one every 200 ms): straight to the fake vs
     through mitmdump -s addon.py, fresh connections, median and gap;
  2. the addon's own CPU per request, timed inside its hooks: bench/hook_timer.py loads addon.py under
     mitmdump and times every hook with time.process_time_ns; for a small chat request with fields to
     drop (8 clients) and for a chat request carrying an 8 MiB base64 image plus fields to drop (one
     client). Beside it: bare mitmdump's whole-process CPU per request (from /proc), json.loads +
     json.dumps of the same body (the floor for any rewriter that parses) and the core
     mistral_compat.rewrite.rewrite(), both in-process under the venv's Python, and both again inside
     mitmdump (the floor in the hook timer, alternately before and after the addon's hooks);
  3. requests per second with 8 concurrent clients, bare mitmdump vs mitmdump -s addon.py, median of
     alternating rounds, with each one's whole-process CPU per request.

Each kind of mitmdump (bare, -s addon.py, the hook timer) runs as several processes (--processes, default
3) and the small request's throughput and hook-timer rounds are spread over them: two processes of the same
code measure up to 15% apart (see servers()), so one process of each would make those figures that much a
draw. The 8 MiB request, the in-situ floor and the first-event test use the first process of each kind.

Prints a table, the addon's CPU per hook region (every part of the addon, found by bench/hook_timer.py)
and the targets block (issue 14's targets, each figure beside its target), and writes it all as JSON to
bench/results/latest.json and bench/results/mitmproxy-<version>.json (mitmdump logs in
bench/results/logs/). Not part of the tests.

The code: a function per phase (in_process, servers, first_event, throughput, small_hooks, image_8mb,
profile), each taking what it needs and returning its measurements; *_figures() and targets() turn them
into the result; run() calls them in order.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FIXTURES = ROOT / "tests" / "fixtures" / "clients"
CHAT = "/v1/chat/completions"
IMAGE_B64_CHARS = 8 * 1024 * 1024  # the image as base64 text: 8 MiB
STREAM_INTERVAL = 0.2
STREAM_EVENTS = 5

# The targets (issue 14; judged on a quiet machine, on both mitmproxy versions)
TARGET_SMALL_PCT = 7.0  # the addon's hook CPU per small request, % of bare mitmdump's CPU per request
TARGET_RPS_X = 0.92  # requests per second through mitmdump -s addon.py, x bare mitmdump's
TARGET_BIG_X = 1.10  # the addon's hook CPU for the 8 MiB request, x json.loads+dumps measured inside mitmdump
TARGET_GAP_MS = 10.0  # first-event gap, for a plain stream and for one the addon translates

_LISTEN = re.compile(rb"listening at (?:http://)?127\.0\.0\.1:(\d+)")
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")
_CHUNKED = re.compile(rb"(?im)^transfer-encoding:\s*chunked\s*$")


# ---------------------------------------------------------------------------------------------------
# Request bodies (built identically here and in the in-process worker)


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def bodies() -> dict[str, bytes]:
    """small: openai-python's capture with OpenAI-only params (5 drops, 2 renames).
    stream: openai-python's streamed chat with stream_options (dropped) and renames.
    image_8mb: a user message with a text part and an 8 MiB base64 PNG data URL, plus fields to drop,
    so the addon must parse and re-serialise it."""
    small = _fixture("openai-python__chat_openai_params")["body"].encode("utf-8")
    stream = _fixture("openai-python__chat_stream_usage")["body"].encode("utf-8")
    raw = random.Random(0).randbytes(IMAGE_B64_CHARS // 4 * 3)
    image = "data:image/png;base64," + base64.b64encode(raw).decode("ascii")
    big = {
        "model": "mistral-small-latest",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": image, "detail": "high"}},
                ],
            }
        ],
        "max_completion_tokens": 64,
        "seed": 42,
        "store": True,
        "user": "user-1234",
    }
    reasoning = dict(json.loads(stream), reasoning_effort="high")  # the fake answers with thinking chunks
    return {
        "small": small,
        "stream": stream,
        "reasoning_stream": json.dumps(reasoning).encode("utf-8"),
        "image_8mb": json.dumps(big, separators=(",", ":")).encode("utf-8"),
    }


def as_forwarded(body: bytes) -> bytes:
    """What the addon forwards for `body` (mistral_compat is pure Python: no mitmproxy needed)."""
    sys.path.insert(0, str(ROOT))
    from mistral_compat.rewrite import rewrite
    from mistral_compat.rules import builtin

    result = rewrite(builtin(), "chat/completions", body)
    return result.body if result.body is not None else body


def client_headers() -> list[tuple[str, str]]:
    """openai-python's headers as captured, with a fake API key (the addon's redaction sees it)."""
    skip = {"host", "content-length", "authorization"}
    headers = [
        (k, v) for k, v in _fixture("openai-python__chat_openai_params")["headers"].items() if k.lower() not in skip
    ]
    return headers + [("Authorization", "Bearer sk-bench-0000000000000000000000000000")]


def http_request(port: int, path: str, body: bytes | None = None, method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if body is not None:
        lines += [f"{k}: {v}" for k, v in client_headers()] + [f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


# ---------------------------------------------------------------------------------------------------
# In-process worker: the floor and the core, under the venv's Python


def worker() -> None:
    sys.path.insert(0, str(ROOT))
    import mitmproxy.version

    from mistral_compat.rewrite import rewrite
    from mistral_compat.rules import builtin

    rules = builtin()
    clock = time.process_time_ns
    out = {"python": platform.python_version(), "mitmproxy": mitmproxy.version.VERSION}
    quick = "--quick" in sys.argv
    for name, loops, reps in (("small", 200, 7 if quick else 15), ("image_8mb", 1, 3 if quick else 7)):
        body = bodies()[name]
        result = rewrite(rules, "chat/completions", body)
        if result.body is None or result.error:
            raise SystemExit(f"bench body {name!r} is not rewritten: {result}")

        def floor():
            json.dumps(json.loads(body))

        def core():
            rewrite(rules, "chat/completions", body)

        samples = {"floor": [], "core": []}
        floor(), core()  # warm
        for _ in range(reps):
            for label, fn in (("floor", floor), ("core", core)):
                t0 = clock()
                for _ in range(loops):
                    fn()
                samples[label].append((clock() - t0) / loops)
        out[name] = {
            "body_bytes": len(body),
            "changes": [list(c) for c in result.changes],
            "floor_ns": statistics.median(samples["floor"]),
            "core_ns": statistics.median(samples["core"]),
        }
    out["stream_events"] = _stream_event_costs(7 if quick else 15)
    print(json.dumps(out))


def _stream_event_costs(reps: int) -> dict:
    """The core's CPU per streamed event: one needing translation (thinking chunks, Mistral's whole tool
    calls) and one passed on byte for byte (a plain text delta)."""
    from mistral_compat.answers import StreamTranslator

    def event(delta: dict) -> bytes:
        chunk = {
            "id": "0123456789abcdef0123456789abcdef",
            "object": "chat.completion.chunk",
            "created": 1764500000,
            "model": "mistral-small-latest",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    kinds = {
        "thinking": event(
            {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Let me see. " * 3}]}]}
        ),
        "tool_calls": event(
            {
                "content": None,
                "tool_calls": [
                    {"id": "gSIMJiOkT", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                    {"id": "h7TRjw9Qa", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}},
                ],
            }
        ),
        "plain": event({"content": "Paris is the capital of France. "}),
    }
    loops = 2000
    out = {}
    for name, data in kinds.items():
        samples = []
        for _ in range(reps):
            t = StreamTranslator()
            t0 = time.process_time_ns()
            for _ in range(loops):
                t.feed(data)
            samples.append((time.process_time_ns() - t0) / loops)
        out[name] = {"bytes": len(data), "us": statistics.median(samples) / 1000}
    return out


# ---------------------------------------------------------------------------------------------------
# Processes


def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONUNBUFFERED"] = "1"  # output line by line, as on a terminal; also lets us see start-up
    env.update(extra or {})
    return env


# CPU pinning for the CPU and throughput measurements (when the machine has 2+ CPUs): every mitmdump on
# one CPU, the upstream and this client on another, so the proxy under test has a CPU to itself and is
# the bottleneck of the throughput test. Not for the latency test: there a proxy would not be confined.
PIN = {"proxy": None, "rest": None}


def set_affinity(pid: int, cpus: set[int]) -> None:
    """All threads of process `pid` (threads it starts later inherit it from theirs)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # a thread that just ended
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid: int) -> float:
    """CPU time of the whole process (all its threads): the sum of /proc/<pid>/task/*/schedstat (ns),
    or utime+stime from /proc/<pid>/stat (clock ticks) where schedstat is missing."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def own_cpu_seconds() -> float:
    """This process and its children that have ended (the worker, the stopped servers)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def system_busy_seconds() -> dict[str, float]:
    """Busy (non-idle) CPU time of the whole machine and of each CPU, from /proc/stat."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu"):
                    break
                name, *vals = line.split()
                v = [int(x) for x in vals]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                busy = sum(v[:8]) - idle  # user nice system idle iowait irq softirq steal
                out["all" if name == "cpu" else name] = busy / os.sysconf("SC_CLK_TCK")
    except OSError:
        pass
    return out


class Fake:
    def __init__(self, python: str) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [
                python,
                str(ROOT / "tests" / "fake_mistral.py"),
                "--port",
                str(self.port),
                "--stream-events",
                str(STREAM_EVENTS),
                "--stream-interval",
                str(STREAM_INTERVAL),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_env(),
            cwd=str(ROOT),
        )
        line = self.proc.stdout.readline()
        if not line.startswith(b"http://"):
            self.stop()
            raise RuntimeError(f"fake_mistral did not start: {line!r}")

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        _stop(self.proc)


class Mitmdump:
    def __init__(
        self,
        name: str,
        mitmdump: str,
        upstream_port: int,
        tmp: Path,
        logdir: Path,
        flow_detail: int,
        script: str | None = None,
        env: dict | None = None,
    ) -> None:
        self.name = name
        self.log = logdir / f"{name}.log"
        cmd = [
            mitmdump,
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--mode",
            f"reverse:http://127.0.0.1:{upstream_port}",
            "--set",
            "connection_strategy=lazy",
            "--set",
            f"confdir={tmp / ('conf-' + name)}",
            "--set",
            f"flow_detail={flow_detail}",
        ]
        if script:
            cmd += ["-s", script]
        self.cmd = cmd
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(env), cwd=str(ROOT))
        self.port = 0

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = _LISTEN.search(self.log.read_bytes())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mitmdump ({self.name}) did not start:\n{self.log.read_text(errors='replace')}")

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def stats(self, reset: bool = True, extra: str = "") -> dict:
        """The hook timer's totals (bench/hook_timer.py), then (reset) start again from zero."""
        return get_json(self.port, f"/__bench__/stats?reset={int(reset)}{extra}")

    def stop(self) -> None:
        _stop(self.proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------------
# Clients: raw keep-alive sockets, requests prebuilt, so the client stays cheap


class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def roundtrip(self, request: bytes) -> tuple[int, bytes]:
        s = self.sock
        s.sendall(request)
        buf = b""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response headers")
            buf += chunk
        head, body = buf[:end], buf[end + 4 :]
        status = int(head[9:12])
        m = _CONTENT_LENGTH.search(head)
        if m:
            need = int(m.group(1))
            while len(body) < need:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed in the response body")
                body += chunk
        elif _CHUNKED.search(head):
            while not body.endswith(b"0\r\n\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed in the response body")
                body += chunk
        return status, body

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def get_json(port: int, path: str) -> dict:
    with Conn(port) as c:
        status, body = c.roundtrip(http_request(port, path, method="GET"))
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    return json.loads(body)


def first_event_ms(port: int, request: bytes, needle: bytes = b"data:") -> float:
    """Fresh connection (settled before the clock starts), request sent -> first `data:` line (or the first
    time `needle` is seen)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        time.sleep(0.01)
        t0 = time.perf_counter()
        s.sendall(request)
        buf = b""
        while needle not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before the first event: {buf[:300]!r}")
            buf += chunk
        dt = time.perf_counter() - t0
        if not buf.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"stream answered {buf[:300]!r}")
        return dt * 1000
    finally:
        s.close()


def load_round(
    port: int,
    request: bytes,
    clients: int,
    seconds: float,
    warmup: float,
    cpu: dict | None = None,
    at_start=None,
    at_end=None,
) -> dict:
    """`clients` threads on keep-alive connections, each sending `request` back to back. Counts the
    requests completed in a window of `seconds` after `warmup`, and the CPU each of `cpu` (name ->
    function returning CPU seconds) used in that window."""
    cpu = cpu or {}
    conns = [Conn(port) for _ in range(clients)]
    counts = [0] * clients
    statuses: list[dict] = [{} for _ in range(clients)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def run(i: int) -> None:
        c, st = conns[i], statuses[i]
        try:
            while not stop.is_set():
                status, _ = c.roundtrip(request)
                st[status] = st.get(status, 0) + 1
                counts[i] += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    start = at_start() if at_start else None
    n0, c0, s0, t0 = sum(counts), {k: f() for k, f in cpu.items()}, system_busy_seconds(), time.perf_counter()
    time.sleep(seconds)
    n1, c1, s1, t1 = sum(counts), {k: f() for k, f in cpu.items()}, system_busy_seconds(), time.perf_counter()
    end = at_end() if at_end else None
    stop.set()
    for t in threads:
        t.join(timeout=30)
    for c in conns:
        c.close()
    if errors:
        raise RuntimeError(f"client error: {errors[0]!r}")
    n, wall = n1 - n0, t1 - t0
    merged: dict = {}
    for st in statuses:
        for k, v in st.items():
            merged[k] = merged.get(k, 0) + v
    ours = sum(c1[k] - c0[k] for k in cpu)
    other = {"all": (s1["all"] - s0["all"] - ours) / wall} if "all" in s0 else {}
    if PIN["proxy"] is not None and "mitmdump" in cpu and f"cpu{PIN['proxy']}" in s0:
        name = f"cpu{PIN['proxy']}"  # other processes on the CPU the proxy has been given
        other["proxy_cpu"] = (s1[name] - s0[name] - (c1["mitmdump"] - c0["mitmdump"])) / wall
    return {
        "requests": n,
        "seconds": wall,
        "rps": n / wall,
        "cpu_us_per_request": {k: (c1[k] - c0[k]) / n * 1e6 for k in cpu},
        "cores_busy": {k: (c1[k] - c0[k]) / wall for k in cpu},
        "other_processes_cores": {k: max(0.0, v) for k, v in other.items()},
        "statuses": merged,
        "start": start,
        "end": end,
    }


# ---------------------------------------------------------------------------------------------------
# Machine


def machine_info(loadavg: list[float]) -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(), "loadavg_at_start": loadavg}


# ---------------------------------------------------------------------------------------------------
# The run: one function per phase, each taking what it needs and returning its figures; run() in order


HOOK_TIMER = str(ROOT / "bench" / "hook_timer.py")
med = statistics.median


class Plan(NamedTuple):
    """What to run, from the command line."""

    python: str
    mitmdump: str
    quick: bool
    clients: int
    rounds: int  # throughput rounds per proxy
    seconds: float  # per round
    hook_rounds: int  # hook-timer rounds, small request
    fe_runs: int  # first-event runs each way
    big_n: int  # 8 MiB requests per measurement
    flow_detail: int
    processes: int  # mitmdump processes of each kind (the rounds are spread over them)


def plan(args) -> Plan:
    mitmdump = str(Path(args.python).with_name("mitmdump"))
    if not Path(mitmdump).exists():
        raise SystemExit(f"no mitmdump beside {args.python}")
    processes = args.processes if args.processes is not None else (2 if args.quick else 3)
    if processes < 1:
        raise SystemExit("--processes: at least 1")
    rounds = args.rounds or (4 if args.quick else 6)
    rounds = -(-rounds // processes) * processes  # as many on each pair of processes
    return Plan(
        args.python,
        mitmdump,
        args.quick,
        args.clients,
        rounds,
        seconds=args.seconds or (1.0 if args.quick else 3.0),
        hook_rounds=-(-max(2, rounds - 2) // processes) * processes,  # as many on each timer process
        fe_runs=args.first_event_runs or (5 if args.quick else 15),
        big_n=args.image_requests or (3 if args.quick else 7),
        flow_detail=args.flow_detail,
        processes=processes,
    )


def choose_pinning(enabled: bool) -> None:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if enabled and len(cpus) >= 2:
        PIN["proxy"], PIN["rest"] = cpus[0], cpus[1]


def pin(mitmdumps, fake: Fake | None = None) -> None:
    """The mitmdumps on the proxy's CPU; the fake and this process (the clients) on the other one."""
    if PIN["proxy"] is None:
        return
    for p in mitmdumps:
        set_affinity(p.proc.pid, {PIN["proxy"]})
    if fake is not None:
        set_affinity(fake.proc.pid, {PIN["rest"]})
        os.sched_setaffinity(0, {PIN["rest"]})  # this thread; the client threads started later inherit it


def cpu_meters(p: Mitmdump, fake: Fake) -> dict:
    """What load_round measures the CPU of."""
    return {"mitmdump": p.cpu, "upstream": fake.cpu, "client": self_cpu_seconds}


def cpu_snapshot() -> tuple[dict[str, float], float, float]:
    return system_busy_seconds(), own_cpu_seconds(), time.monotonic()


def other_processes_cores(before: tuple, after: tuple) -> float | None:
    """Cores busy on average between two cpu_snapshot()s with anything but this process and its children."""
    (busy0, own0, t0), (busy1, own1, t1) = before, after
    if "all" not in busy0:
        return None
    return max(0.0, (busy1["all"] - busy0["all"] - (own1 - own0)) / (t1 - t0))


def _hook_us(stats: dict) -> float:
    """The addon's CPU per request in µs, net of the timer's own cost (a few hundred ns per hook call)."""
    return stats["net_total_ns"] / max(1, stats["requests"]) / 1000


def _regions_per_request(stats: dict) -> dict[str, float]:
    n = max(1, stats["requests"])
    return {
        k: v["net_ns"] / n / 1000
        for k, v in stats["regions"].items()
        if k.rsplit(".", 1)[-1] not in {"load", "configure", "running", "done"}
    }


def _regions_median(stats: list[dict], scale: float = 1.0) -> dict[str, float]:
    """Per timed region (whatever the hook timer reports), the median over `stats` of its CPU per request,
    in µs / scale."""
    per = [_regions_per_request(st) for st in stats]
    return {k: med(r.get(k, 0.0) / scale for r in per) for k in sorted({k for r in per for k in r})}


def _round_med(rounds: list, key: str, who: str = "mitmdump") -> float:
    return med(r[key][who] for r in rounds)


# ---- the phases, in the order run() takes them


def in_process(python: str, quick: bool) -> dict:
    """The floor, the core rewrite() and the stream translation, in a worker process under `python`."""
    print(f"in-process floor and core rewrite under {python} ...", flush=True)
    w = subprocess.run(
        [python, str(Path(__file__).resolve()), "--_worker"] + (["--quick"] if quick else []),
        capture_output=True,
        env=_env(),
        cwd=str(ROOT),
        check=False,
    )
    if w.returncode != 0:
        raise SystemExit(f"worker failed:\n{w.stderr.decode(errors='replace')}")
    return json.loads(w.stdout)


class Servers(NamedTuple):
    fake: Fake
    bares: list[Mitmdump]  # `processes` of each kind (see servers())
    addons: list[Mitmdump]
    timers: list[Mitmdump]
    start: Callable[..., Mitmdump]  # start(name, script=None, env=None): one more mitmdump like these

    @property
    def bare(self) -> Mitmdump:
        return self.bares[0]

    @property
    def addon(self) -> Mitmdump:
        return self.addons[0]

    @property
    def timer(self) -> Mitmdump:
        return self.timers[0]


@contextlib.contextmanager
def servers(python: str, mitmdump: str, flow_detail: int, logdir: Path, processes: int = 1) -> Iterator[Servers]:
    """The fake upstream and, `processes` times each, three mitmdumps in front of it (bare, -s addon.py,
    -s bench/hook_timer.py), each stopped on the way out, with any started later by Servers.start.

    Several processes of each, because two processes of the same code measure differently: in alternating
    rounds, two hook timers of the same addon differed by 8-15% per request and three bare mitmdumps by up to
    7% in requests per second, the same one ahead in (nearly) every round (how each process's memory happens
    to be laid out). A figure from one process of each kind is that much a draw; the rounds are spread over
    the processes instead."""
    tmp = Path(tempfile.mkdtemp(prefix="mistral-compat-bench-"))  # confdirs (mitmproxy's CA)
    procs: list = []
    try:
        print(
            f"starting the fake upstream and {processes} x three mitmdumps (bare, -s addon.py, "
            "-s bench/hook_timer.py) ...",
            flush=True,
        )
        fake = Fake(python)
        procs.append(fake)

        def start(name: str, script: str | None = None, env: dict | None = None) -> Mitmdump:
            procs.append(Mitmdump(name, mitmdump, fake.port, tmp, logdir, flow_detail, script=script, env=env))
            return procs[-1]

        bares, addons, timers = [], [], []
        for i in range(processes):
            n = "" if i == 0 else str(i + 1)  # bare, bare2, ...: the first ones keep their names (and logs)
            bares.append(start(f"bare{n}"))
            addons.append(start(f"addon{n}", str(ROOT / "addon.py")))
            stats = logdir / f"hook_stats_at_exit{n}.json"
            timers.append(start(f"hooktimer{n}", HOOK_TIMER, env={"BENCH_HOOK_STATS": str(stats)}))
        for p in (*bares, *addons, *timers):
            p.wait_ready()
        yield Servers(fake, bares, addons, timers, start)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def check_statuses(requests: dict[str, bytes], expected) -> None:
    """Sanity: through the addon the strict fake accepts the body; bare mitmdump forwards it as is (422)."""
    for p, want in expected:
        with Conn(p.port) as c:
            status, body = c.roundtrip(requests[p.name])
        if status != want:
            raise RuntimeError(f"{p.name}: expected {want}, got {status}: {body[:300]!r}")


def _first_events(
    upstream_port: int,
    addon_port: int,
    body: bytes,
    runs: int,
    upstream_needle: bytes = b"data:",
    addon_needle: bytes = b"data:",
) -> tuple[list, list]:
    """Times to the first event (ms), `runs` each way, alternating, after one to warm up: straight to the
    upstream, sending what the addon would forward (the fake is strict), and through mitmdump -s addon.py."""
    direct_req = http_request(upstream_port, CHAT, as_forwarded(body))
    proxied_req = http_request(addon_port, CHAT, body)
    first_event_ms(upstream_port, direct_req, upstream_needle), first_event_ms(addon_port, proxied_req, addon_needle)
    direct, proxied = [], []
    for _ in range(runs):
        direct.append(first_event_ms(upstream_port, direct_req, upstream_needle))
        proxied.append(first_event_ms(addon_port, proxied_req, addon_needle))
    return direct, proxied


def first_event(upstream_port: int, addon_port: int, b: dict, runs: int) -> dict:
    """1. Time to the first streamed event, and to the first one the addon translates (thinking chunks ->
    reasoning_content)."""
    print(f"time to first event: {runs} runs each way ...", flush=True)
    direct, proxied = _first_events(upstream_port, addon_port, b["stream"], runs)
    fe = {
        "direct_ms": med(direct),
        "proxied_ms": med(proxied),
        "direct_samples_ms": [round(x, 3) for x in direct],
        "proxied_samples_ms": [round(x, 3) for x in proxied],
        "stream_interval_s": STREAM_INTERVAL,
        "runs": runs,
    }
    fe["gap_ms"] = fe["proxied_ms"] - fe["direct_ms"]
    direct, proxied = _first_events(
        upstream_port, addon_port, b["reasoning_stream"], runs, b'"thinking"', b"reasoning_content"
    )
    fe["translated"] = {"direct_ms": med(direct), "proxied_ms": med(proxied)}
    fe["translated"]["gap_ms"] = fe["translated"]["proxied_ms"] - fe["translated"]["direct_ms"]
    return fe


def throughput(
    pairs: list[tuple[Mitmdump, Mitmdump]],
    requests: dict[str, bytes],
    fake: Fake,
    clients: int,
    rounds: int,
    seconds: float,
) -> dict[str, list]:
    """2. Requests per second and whole-process CPU, small request, `clients` clients: a round of bare and one of
    addon.py, round r on pairs[r % len(pairs)] (one process of each), which goes first alternating on each
    visit to a pair; each kind's load_round results, under "bare" and "addon"."""
    print(f"throughput: {rounds} rounds x {seconds:g} s each for bare and addon, {clients} clients ...", flush=True)
    out: dict[str, list] = {"bare": [], "addon": []}
    for r in range(rounds):
        pair = pairs[r % len(pairs)]
        for p in pair if (r // len(pairs)) % 2 == 0 else pair[::-1]:
            out["bare" if p is pair[0] else "addon"].append(
                load_round(p.port, requests[p.name], clients, seconds, warmup=0.3, cpu=cpu_meters(p, fake))
            )
    return out


def small_hooks(
    timers: list[Mitmdump], requests: dict[str, bytes], fake: Fake, clients: int, rounds: int, seconds: float
) -> tuple[list[dict], list[dict], dict]:
    """3. The addon's own CPU in its hooks under the same load: `rounds` load_round results timing only the
    outermost regions (the total: nested=0), and as many, alternating with them, timing every part's hooks
    too (the rows by hook: nested=1); each with the hook stats in "end". Each pair of rounds on the next of
    `timers`. Then one more round, on the first, with json.loads+json.dumps of the body inside the mitmdump
    (alternately before and after the addon's hooks), whose hook stats come third."""
    print(f"hook timings, small request: 2 x {rounds} rounds x {seconds:g} s ...", flush=True)
    outer: list[dict] = []
    nested: list[dict] = []
    for r in range(2 * rounds):
        timer = timers[(r // 2) % len(timers)]
        flag = (r + 1) % 2  # nested first, then outer only, ...
        timer.stats(extra=f"&nested={flag}")
        (nested if flag else outer).append(
            load_round(
                timer.port,
                requests[timer.name],
                clients,
                seconds,
                warmup=0.3,
                cpu=cpu_meters(timer, fake),
                at_start=timer.stats,
                at_end=timer.stats,
            )
        )
    timer = timers[0]
    timer.stats(extra="&nested=1&insitu=1")
    insitu = load_round(
        timer.port,
        requests[timer.name],
        clients,
        seconds,
        warmup=0.3,
        at_start=timer.stats,
        at_end=lambda: timer.stats(extra="&insitu=0"),
    )["end"]
    return outer, nested, insitu


def _one_at_a_time(c: Conn, p: Mitmdump, request: bytes, n: int, then=None) -> tuple[list, set, list]:
    """`n` requests on `c`: p's whole-process CPU (ms) for each, the statuses, and then() after each."""
    cpu_ms, statuses, after = [], set(), []
    for _ in range(n):
        c0 = p.cpu()
        statuses.add(c.roundtrip(request)[0])
        cpu_ms.append((p.cpu() - c0) * 1e3)
        if then is not None:
            after.append(then())
    return cpu_ms, statuses, after


def image_8mb(bare: Mitmdump, timer: Mitmdump, requests: dict[str, bytes], n: int) -> dict:
    """4. The 8 MiB image request, one client, one request at a time, after one to warm up: bare
    mitmdump's CPU; the addon's hooks (stats per request); then the same with the floor inside mitmdump."""
    print(f"8 MiB image request: {n} requests to bare mitmdump, {2 * n} to the hook timer ...", flush=True)
    with Conn(bare.port) as c:
        c.roundtrip(requests["bare"])
        bare_ms, bare_statuses, _ = _one_at_a_time(c, bare, requests["bare"], n)
    with Conn(timer.port) as c:
        c.roundtrip(requests["hooktimer"])
        timer.stats()
        timer_ms, timer_statuses, hooks = _one_at_a_time(c, timer, requests["hooktimer"], n, then=timer.stats)
        timer.stats(extra="&insitu=1")
        insitu, paired = [], []
        for _ in range(n):
            c.roundtrip(requests["hooktimer"])
            st = timer.stats()
            insitu += [ns / 1e6 for ns in st["insitu_floor_ns"]]
            paired.append(_hook_us(st) / 1000)
        timer.stats(extra="&insitu=0")
    return {
        "bare_ms": bare_ms,
        "bare_statuses": bare_statuses,
        "hooks": hooks,
        "timer_ms": timer_ms,
        "timer_statuses": timer_statuses,
        "insitu_ms": insitu,
        "paired_hooks_ms": paired,
    }


def print_profile(path: Path, title: str, top: int) -> str:
    import io
    import pstats

    buf = io.StringIO()
    st = pstats.Stats(str(path), stream=buf)
    st.strip_dirs()
    hide = r"^(?!.*(_lsprof|hook_timer\.py|process_time_ns))"  # the timer's and profiler's own calls
    buf.write(f"==== {title}: by own time\n")
    st.sort_stats("tottime").print_stats(hide, top)
    buf.write(f"==== {title}: by cumulative time\n")
    st.sort_stats("cumulative").print_stats(hide, top)
    return buf.getvalue()


def profile(sv: Servers, version: str, b: dict, clients: int, logdir: Path) -> dict:
    """5 (--profile). cProfile inside the addon's hooks only (bench/hook_timer.py with BENCH_PROFILE), in
    a mitmdump of its own with the others stopped: where its time goes. Timings under the profiler are
    inflated; only the attribution counts."""
    print("profiling inside the addon's hooks (cProfile) ...", flush=True)
    for p in (*sv.bares, *sv.addons, *sv.timers):
        p.stop()
    prof = sv.start("profile", HOOK_TIMER, env={"BENCH_PROFILE": str(logdir / "profile-at-exit.pstats")})
    small_path = RESULTS / f"profile-small-mitmproxy-{version}.pstats"
    big_path = RESULTS / f"profile-image_8mb-mitmproxy-{version}.pstats"
    try:
        prof.wait_ready()
        pin([prof])
        small = http_request(prof.port, CHAT, b["small"])
        big = http_request(prof.port, CHAT, b["image_8mb"])
        load_round(
            prof.port,
            small,
            clients,
            2.0,
            warmup=0.3,
            at_start=prof.stats,
            at_end=lambda: prof.stats(extra=f"&profile={small_path}"),
        )
        with Conn(prof.port) as c:
            c.roundtrip(big)
            prof.stats()
            for _ in range(3):
                c.roundtrip(big)
            prof.stats(extra=f"&profile={big_path}")
    finally:
        prof.stop()
    return {"small": str(small_path), "image_8mb": str(big_path)}


# ---- the figures


def config_figures(pl: Plan, timer_bias_ns: int | None) -> dict:
    return {
        "quick": pl.quick,
        "clients": pl.clients,
        "rounds": pl.rounds,
        "round_seconds": pl.seconds,
        "hook_rounds": pl.hook_rounds,
        "processes_of_each_kind": pl.processes,
        "image_requests": pl.big_n,
        "flow_detail": pl.flow_detail,
        "mode": "reverse:http://127.0.0.1:<fake>, connection_strategy=lazy",
        "mitmdump_output": "a file, line by line (PYTHONUNBUFFERED=1), as on a terminal",
        "upstream": f"tests/fake_mistral.py, stream_events={STREAM_EVENTS}, stream_interval={STREAM_INTERVAL}",
        "cpu_source": "sum of /proc/<pid>/task/*/schedstat",
        "pinning": (
            {"mitmdump": PIN["proxy"], "upstream_and_client": PIN["rest"]} if PIN["proxy"] is not None else None
        ),
        "hook_clock": "time.process_time_ns around each hook (bench/hook_timer.py), net of the timer's own cost",
        "timer_bias_ns_per_hook_call": timer_bias_ns,
    }


def small_figures(
    inproc: dict, outer_rounds: list[dict], nested_rounds: list[dict], insitu: dict, rps_rounds: dict[str, list]
) -> dict:
    outer = [r["end"] for r in outer_rounds]
    hooks = [r["end"] for r in nested_rounds]
    hook_us = med(_hook_us(st) for st in outer)
    regions = _regions_median(hooks)
    bare_cpu_us = _round_med(rps_rounds["bare"], "cpu_us_per_request")
    addon_cpu_us = _round_med(rps_rounds["addon"], "cpu_us_per_request")
    return {
        "body_bytes": inproc["small"]["body_bytes"],
        "changes": inproc["small"]["changes"],
        "addon_hooks_us": hook_us,
        "addon_hooks_rounds_us": [round(_hook_us(st), 1) for st in outer],
        "addon_hooks_nested_timers_us": med(_hook_us(st) for st in hooks),
        "addon_hooks_nested_timers_rounds_us": [round(_hook_us(st), 1) for st in hooks],
        "addon_hooks_by_region_us": regions,
        "addon_hooks_calls_per_request": {
            k: round(v["calls"] / max(1, hooks[-1]["requests"]), 3) for k, v in hooks[-1]["regions"].items()
        },
        "bare_mitmdump_cpu_us": bare_cpu_us,
        "addon_vs_bare_pct": 100 * hook_us / bare_cpu_us,
        "floor_us": inproc["small"]["floor_ns"] / 1000,
        "core_rewrite_us": inproc["small"]["core_ns"] / 1000,
        "insitu_floor_us": med(insitu["insitu_floor_ns"]) / 1000,
        "core_rewrite_in_mitmdump_us": regions.get("(in hooks) core rewrite()"),
        "mitmdump_addon_cpu_us": addon_cpu_us,
        "mitmdump_hooktimer_cpu_us": _round_med(outer_rounds, "cpu_us_per_request"),
        "whole_process_ratio": addon_cpu_us / bare_cpu_us,
    }


def image_figures(inproc: dict, n: int, big: dict) -> dict:
    hooks_ms = med(_hook_us(st) / 1000 for st in big["hooks"])
    regions = _regions_median(big["hooks"], scale=1000)
    floor_ms = inproc["image_8mb"]["floor_ns"] / 1e6
    insitu = big["insitu_ms"]
    return {
        "body_bytes": inproc["image_8mb"]["body_bytes"],
        "changes": inproc["image_8mb"]["changes"],
        "requests": n,
        "addon_hooks_ms": hooks_ms,
        "addon_hooks_samples_ms": [round(_hook_us(st) / 1000, 2) for st in big["hooks"]],
        "addon_hooks_by_region_ms": regions,
        "floor_ms": floor_ms,
        "addon_vs_floor_x": hooks_ms / floor_ms,
        "core_rewrite_ms": inproc["image_8mb"]["core_ns"] / 1e6,
        "core_rewrite_in_mitmdump_ms": regions.get("(in hooks) core rewrite()"),
        "insitu_floor_ms": med(insitu),
        "insitu_floor_samples_ms": [round(x, 2) for x in insitu],
        "addon_hooks_with_insitu_floor_ms": med(big["paired_hooks_ms"]),
        "addon_vs_insitu_floor_x": hooks_ms / med(insitu),
        "bare_mitmdump_cpu_ms": med(big["bare_ms"]),
        "bare_mitmdump_cpu_samples_ms": [round(x, 2) for x in big["bare_ms"]],
        "mitmdump_hooktimer_cpu_ms": med(big["timer_ms"]),
        "bare_statuses": sorted(big["bare_statuses"]),
        "addon_statuses": sorted(big["timer_statuses"]),
    }


def throughput_figures(rps_rounds: dict[str, list], clients: int) -> dict:
    bare, addon = rps_rounds["bare"], rps_rounds["addon"]
    bare_rps, addon_rps = med(r["rps"] for r in bare), med(r["rps"] for r in addon)
    return {
        "clients": clients,
        "bare_rps": bare_rps,
        "addon_rps": addon_rps,
        "addon_vs_bare_x": addon_rps / bare_rps,
        "bare_rounds_rps": [round(r["rps"], 1) for r in bare],
        "addon_rounds_rps": [round(r["rps"], 1) for r in addon],
        "bare_mitmdump_cores_busy": _round_med(bare, "cores_busy"),
        "addon_mitmdump_cores_busy": _round_med(addon, "cores_busy"),
        "bare_upstream_cpu_us": _round_med(bare, "cpu_us_per_request", "upstream"),
        "addon_upstream_cpu_us": _round_med(addon, "cpu_us_per_request", "upstream"),
        "bare_client_cpu_us": _round_med(bare, "cpu_us_per_request", "client"),
        "addon_client_cpu_us": _round_med(addon, "cpu_us_per_request", "client"),
        "other_processes_cores": med(r["other_processes_cores"].get("all", 0.0) for r in bare + addon),
        "other_processes_on_proxy_cpu_cores": (
            med(r["other_processes_cores"]["proxy_cpu"] for r in bare + addon)
            if "proxy_cpu" in bare[0]["other_processes_cores"]
            else None
        ),
        "bare_statuses": [r["statuses"] for r in bare],
        "addon_statuses": [r["statuses"] for r in addon],
    }


def _target(key: str, name: str, value: float, unit: str, op: str, limit: float) -> dict:
    met = {"<": value < limit, "<=": value <= limit, ">=": value >= limit}[op]
    shown = f"{limit:.2f}x" if unit == "x" else f"{limit:g} {unit}"
    return {"key": key, "name": name, "value": value, "unit": unit, "target": f"{op} {shown}", "met": met}


def targets(r: dict) -> list[dict]:
    """Issue 14's four targets, the first-event gap for both kinds of stream."""
    s, g, t, fe = r["small"], r["image_8mb"], r["throughput"], r["first_event"]
    return [
        _target(
            "small_cpu",
            "addon hook CPU per small request / bare mitmdump CPU",
            s["addon_vs_bare_pct"],
            "%",
            "<=",
            TARGET_SMALL_PCT,
        ),
        _target(
            "throughput",
            f"throughput addon / bare, {t['clients']} clients",
            t["addon_vs_bare_x"],
            "x",
            ">=",
            TARGET_RPS_X,
        ),
        _target(
            "image_8mb",
            "8 MiB request: addon hook CPU / floor inside mitmdump",
            g["addon_vs_insitu_floor_x"],
            "x",
            "<=",
            TARGET_BIG_X,
        ),
        _target("first_event_gap", "first-event gap", fe["gap_ms"], "ms", "<", TARGET_GAP_MS),
        _target(
            "translated_gap",
            "first-event gap, translated answer stream",
            fe["translated"]["gap_ms"],
            "ms",
            "<",
            TARGET_GAP_MS,
        ),
    ]


def run(args) -> dict:
    pl = plan(args)
    t_start, loadavg = time.monotonic(), list(os.getloadavg())
    choose_pinning(args.pin)
    b = bodies()
    before = cpu_snapshot()
    inproc = in_process(pl.python, pl.quick)
    logdir = RESULTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    profiles = None
    with servers(pl.python, pl.mitmdump, pl.flow_detail, logdir, pl.processes) as sv:
        every = (*sv.bares, *sv.addons, *sv.timers)
        small = {p.name: http_request(p.port, CHAT, b["small"]) for p in every}
        big = {p.name: http_request(p.port, CHAT, b["image_8mb"]) for p in (sv.bare, sv.timer)}
        check_statuses(small, [(p, 422) for p in sv.bares] + [(p, 200) for p in (*sv.addons, *sv.timers)])
        fe = first_event(sv.fake.port, sv.addon.port, b, pl.fe_runs)
        pin(every, sv.fake)
        pairs = list(zip(sv.bares, sv.addons))
        rps_rounds = throughput(pairs, small, sv.fake, pl.clients, pl.rounds, pl.seconds)
        outer_rounds, nested_rounds, small_insitu = small_hooks(
            sv.timers, small, sv.fake, pl.clients, pl.hook_rounds, pl.seconds
        )
        image = image_8mb(sv.bare, sv.timer, big, pl.big_n)
        if args.profile:
            profiles = profile(sv, inproc["mitmproxy"], b, pl.clients, logdir)
    other = other_processes_cores(before, cpu_snapshot())

    result = {
        "machine": dict(machine_info(loadavg), other_processes_cores_during_run=other),
        "python": inproc["python"],
        "mitmproxy": inproc["mitmproxy"],
        "config": config_figures(pl, image["hooks"][0].get("timer_bias_ns") if image["hooks"] else None),
        "first_event": fe,
        "stream_events": inproc["stream_events"],
        "small": small_figures(inproc, outer_rounds, nested_rounds, small_insitu, rps_rounds),
        "image_8mb": image_figures(inproc, pl.big_n, image),
        "throughput": throughput_figures(rps_rounds, pl.clients),
        "profiles": profiles,
        "seconds": round(time.monotonic() - t_start, 1),
        "mitmdump_logs": str(logdir),
    }
    result["targets"] = targets(result)
    return result


# ---------------------------------------------------------------------------------------------------
# Output


def table(r: dict) -> str:
    m, s, g, t, fe = r["machine"], r["small"], r["image_8mb"], r["throughput"], r["first_event"]
    judged = {x["key"]: x for x in r["targets"]}
    rows: list[tuple[str, ...]] = []

    def row(name, value="", target="", status=""):
        rows.append((name, value, target, status))

    def row_judged(name, value, key):
        row(name, value, judged[key]["target"], "met" if judged[key]["met"] else "MISSED")

    row(
        f"Time to first streamed event (upstream sends one every {fe['stream_interval_s'] * 1000:.0f} ms), "
        f"median of {fe['runs']}"
    )
    row("  straight to the upstream", f"{fe['direct_ms']:.2f} ms")
    row("  through mitmdump -s addon.py", f"{fe['proxied_ms']:.2f} ms")
    row_judged("  gap", f"{fe['gap_ms']:.2f} ms", "first_event_gap")
    tr = fe["translated"]
    row("First translated event of a reasoning stream (thinking chunks -> reasoning_content), median")
    row("  straight to the upstream (untranslated)", f"{tr['direct_ms']:.2f} ms")
    row("  through mitmdump -s addon.py (translated)", f"{tr['proxied_ms']:.2f} ms")
    row_judged("  gap", f"{tr['gap_ms']:.2f} ms", "translated_gap")
    row("Core answer translation, CPU per streamed event, in-process")
    for name, label in (
        ("thinking", "thinking chunks -> reasoning_content"),
        ("tool_calls", "two whole tool calls -> type + index"),
        ("plain", "plain text delta, passed byte for byte"),
    ):
        ev = r["stream_events"][name]
        row(f"  {label} ({ev['bytes']} B)", f"{ev['us']:.1f} us")
    row(
        f"Small chat request ({s['body_bytes']} B, {len(s['changes'])} fields dropped/renamed), "
        f"{t['clients']} clients, CPU per request"
    )
    row("  addon, timed inside its hooks", f"{s['addon_hooks_us']:.0f} us")
    if s.get("addon_hooks_nested_timers_us") is not None:
        row("  the same, each part's hooks timed too", f"{s['addon_hooks_nested_timers_us']:.0f} us", "not judged")
    row("  bare mitmdump, whole process (OS)", f"{s['bare_mitmdump_cpu_us']:.0f} us")
    row_judged("  addon / bare mitmdump", f"{s['addon_vs_bare_pct']:.1f} %", "small_cpu")
    row("  json.loads+json.dumps floor, in-process", f"{s['floor_us']:.1f} us")
    row("  core rewrite(), in-process", f"{s['core_rewrite_us']:.1f} us")
    row("  json.loads+json.dumps floor, inside mitmdump", f"{s['insitu_floor_us']:.1f} us")
    if s.get("core_rewrite_in_mitmdump_us") is not None:
        row("  core rewrite(), inside mitmdump (part of the hooks)", f"{s['core_rewrite_in_mitmdump_us']:.1f} us")
    row("  mitmdump -s addon.py, whole process (OS)", f"{s['mitmdump_addon_cpu_us']:.0f} us", "not judged")
    row("  whole-process ratio addon.py / bare", f"{s['whole_process_ratio']:.2f}x", "not judged")
    row(
        f"Chat request with an 8 MiB base64 image ({g['body_bytes'] / 2**20:.2f} MiB, "
        f"{len(g['changes'])} changes), CPU per request, median of {g['requests']}"
    )
    row("  addon, timed inside its hooks", f"{g['addon_hooks_ms']:.1f} ms")
    row("  json.loads+json.dumps floor, in-process", f"{g['floor_ms']:.1f} ms")
    row("  addon / floor", f"{g['addon_vs_floor_x']:.2f}x", "not judged")
    row("  core rewrite(), in-process", f"{g['core_rewrite_ms']:.1f} ms")
    row("  json.loads+json.dumps floor, inside mitmdump", f"{g['insitu_floor_ms']:.1f} ms")
    if g.get("core_rewrite_in_mitmdump_ms") is not None:
        row("  core rewrite(), inside mitmdump (part of the hooks)", f"{g['core_rewrite_in_mitmdump_ms']:.1f} ms")
    row_judged("  addon / floor inside mitmdump", f"{g['addon_vs_insitu_floor_x']:.2f}x", "image_8mb")
    row("  bare mitmdump, whole process (OS)", f"{g['bare_mitmdump_cpu_ms']:.1f} ms")
    row("  mitmdump + addon (hook timer), whole process (OS)", f"{g['mitmdump_hooktimer_cpu_ms']:.1f} ms", "not judged")
    row(f"Requests per second, {t['clients']} concurrent clients, median of {len(t['bare_rounds_rps'])} rounds")
    row("  bare mitmdump", f"{t['bare_rps']:.0f} req/s", f"mitmdump busy {t['bare_mitmdump_cores_busy']:.2f} core")
    row(
        "  mitmdump -s addon.py",
        f"{t['addon_rps']:.0f} req/s",
        f"mitmdump busy {t['addon_mitmdump_cores_busy']:.2f} core",
    )
    row_judged("  addon / bare", f"{t['addon_vs_bare_x']:.2f}x", "throughput")
    if t.get("other_processes_on_proxy_cpu_cores") is not None:
        row(
            "  other processes on mitmdump's CPU meanwhile",
            f"{t['other_processes_on_proxy_cpu_cores']:.2f} core",
            "(0 on a quiet machine)",
        )

    w0 = max(len(x[0]) for x in rows if x[1])
    w1 = max(len(x[1]) for x in rows)
    w2 = max(len(x[2]) for x in rows)
    lines = [
        f"mistral-compat benchmark: mitmproxy {r['mitmproxy']}, Python {r['python']}",
        f"machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, "
        f"load average {m['loadavg_at_start'][0]:.2f} at start; other processes used "
        f"{m.get('other_processes_cores_during_run') or 0:.2f} cores on average during the run",
        f"all on 127.0.0.1; reverse mode, flow_detail={r['config']['flow_detail']}; "
        + (
            f"for CPU and throughput, mitmdump pinned to CPU {r['config']['pinning']['mitmdump']}, "
            f"upstream and clients to CPU {r['config']['pinning']['upstream_and_client']}; "
            if r["config"]["pinning"]
            else ""
        )
        + f"{r['config'].get('processes_of_each_kind', 1)} processes of each mitmdump, the rounds spread over them; "
        + f"{'quick run' if r['config']['quick'] else 'full run'}, {r['seconds']:g} s",
        "",
    ]
    lines.append(f"{'':<{w0}}  {'value':>{w1}}  {'target':<{w2}}  met?")
    for name, value, target, status in rows:
        lines.append(name if not value else f"{name:<{w0}}  {value:>{w1}}  {target:<{w2}}  {status}".rstrip())
    lines += [
        "",
        "Addon CPU per request by hook (net; a region includes any region it calls, e.g. the log",
        "filter inside a hook's log call, so the rows add up to more than the total):",
    ]
    keys = sorted(
        set(s["addon_hooks_by_region_us"]) | set(g["addon_hooks_by_region_ms"]), key=lambda k: (k.startswith("("), k)
    )
    kw = max([len(k) for k in keys] + [10])
    lines.append(f"  {'':<{kw}}  {'small':>9}  {'8 MiB image':>11}")
    for k in keys:
        lines.append(
            f"  {k:<{kw}}  {s['addon_hooks_by_region_us'].get(k, 0):>6.1f} us  "
            f"{g['addon_hooks_by_region_ms'].get(k, 0):>8.2f} ms"
        )
    lines.append(
        f"  {'total (each counted once)':<{kw}}  {s['addon_hooks_us']:>6.1f} us  {g['addon_hooks_ms']:>8.2f} ms"
    )
    lines += ["", *targets_block(r["targets"])]
    for warning in disturbance(r):
        lines += ["", warning]
    return "\n".join(lines)


def targets_block(judged: list[dict]) -> list[str]:
    """Each target's figure beside the target, one line each (ratios to 3 places: 1.104x is not 1.10x)."""
    fmt = {"%": "{:.1f} %", "x": "{:.3f}x", "ms": "{:.2f} ms"}
    cells = [
        (x["name"], fmt[x["unit"]].format(x["value"]), x["target"], "met" if x["met"] else "MISSED") for x in judged
    ]
    w = [max(len(c[i]) for c in cells) for i in range(3)]
    return ["Targets (quiet machine, both mitmproxy versions):"] + [
        f"  {name:<{w[0]}}  {value:>{w[1]}}  {target:<{w[2]}}  {status}" for name, value, target, status in cells
    ]


def disturbance(r: dict) -> list[str]:
    """Warnings when other processes' load makes the numbers unreliable."""
    other = r["machine"].get("other_processes_cores_during_run") or 0
    t = r["throughput"]
    on_proxy_cpu = t.get("other_processes_on_proxy_cpu_cores")
    if on_proxy_cpu is None:
        if other > 0.15:
            return [
                f"WARNING: other processes used {other:.2f} cores on average during this run; CPU and "
                f"throughput numbers are disturbed. Re-run on a quiet machine."
            ]
        return []
    out = []
    if on_proxy_cpu > 0.1:
        out.append(
            f"WARNING: other processes used {on_proxy_cpu:.2f} of mitmdump's CPU during the throughput "
            f"rounds; CPU and throughput numbers are disturbed. Re-run on a quiet machine."
        )
    if min(t["bare_mitmdump_cores_busy"], t["addon_mitmdump_cores_busy"]) < 0.9:
        out.append(
            "WARNING: mitmdump was not the bottleneck of the throughput test (busy < 0.9 of its CPU): "
            "the requests-per-second ratio does not measure the addon. Re-run on a quiet machine."
        )
    if not out and other > 0.15:
        out.append(
            f"Note: other processes used {other:.2f} cores on average during the run, on the other CPU "
            f"(mitmdump's stayed free: {on_proxy_cpu:.2f} core); the latency numbers may be disturbed."
        )
    return out


def main(argv=None) -> int:
    if "--_worker" in (argv or sys.argv[1:]):
        worker()
        return 0
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a short run (fewer, shorter rounds)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--venv", help="the virtualenv whose python and mitmdump to use (default: .venv)")
    g.add_argument("--python", help="the python whose mitmdump (beside it) to use")
    ap.add_argument("--json", help="where to write the results (default: bench/results/latest.json)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument(
        "--rounds", type=int, help="throughput rounds per proxy, a multiple of --processes (default 6, quick 4)"
    )
    ap.add_argument("--seconds", type=float, help="seconds per round (default 3, quick 1)")
    ap.add_argument(
        "--processes",
        type=int,
        help="mitmdump processes of each kind (bare, addon, hook timer), the rounds spread over them (default 3, "
        "quick 2)",
    )
    ap.add_argument("--first-event-runs", type=int, help="runs per side (default 15, quick 5)")
    ap.add_argument("--image-requests", type=int, help="8 MiB requests per measurement (default 7, quick 3)")
    ap.add_argument("--flow-detail", type=int, default=1, help="mitmdump's flow_detail for every proxy (default 1)")
    ap.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin mitmdump to one CPU and the upstream and clients to another",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also run cProfile inside the addon's hooks and print where the time goes "
        "(writes bench/results/profile-*.pstats)",
    )
    ap.add_argument("--profile-top", type=int, default=30, help="lines of profile to print (default 30)")
    args = ap.parse_args(argv)
    if args.python:
        args.python = str(Path(args.python).absolute())
    else:
        venv = Path(args.venv) if args.venv else ROOT / ".venv"
        if not venv.is_absolute():
            venv = Path.cwd() / venv if (Path.cwd() / venv).exists() else ROOT / venv
        args.python = str(venv / "bin" / "python")
    if not Path(args.python).exists():
        raise SystemExit(f"no python at {args.python} (make test creates .venv)")

    result = run(args)
    result["warnings"] = disturbance(result)
    result["table"] = text = table(result)
    print()
    print(text)
    out = Path(args.json) if args.json else RESULTS / "latest.json"
    paths = [out] if args.json else [out, RESULTS / f"mitmproxy-{result['mitmproxy']}.json"]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
    if result.get("profiles"):
        for name, path in result["profiles"].items():
            print()
            print(print_profile(Path(path), f"cProfile inside the addon's hooks, {name}", args.profile_top))
    missed = [x["name"] for x in result["targets"] if not x["met"]]
    print()
    print(f"written: {', '.join(str(p) for p in paths)}  ({result['seconds']} s)")
    print("targets: all met" if not missed else f"targets missed: {'; '.join(missed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
