#!/usr/bin/env python3
"""The addon's hook chain in-process, with about 1 ms of other Python work between two flows: the CPU caches
as cold as inside a busy mitmdump, without mitmdump's noise. For A/B work on the addon's per-request cost.

    .venv/bin/python bench/cold.py                           # this checkout
    .venv/bin/python bench/cold.py /tmp/old-checkout .       # A/B: checkouts in alternating runs
    .venv/bin/python bench/cold.py --rounds 6 --flows 300    # more of each

Each run is a process of its own that imports the checkout's addon.py, builds `--flows` flows of the
openai-python chat request the benchmark uses (tests/fixtures/clients/openai-python__chat_openai_params.json,
7 fields dropped or renamed) with a 200 JSON chat answer, and runs requestheaders, request, responseheaders
and response of the addon on each, timing only the hooks and, every 100 flows, the writing of the batched
log lines (time.process_time_ns), with json.loads of a 200 KB document and 500 random lookups in a large
dict before each flow. It prints the median CPU per flow of each run. Inside mitmdump the same chain costs about 1.5x as much (mitmproxy's own work between hooks is larger
and varied); a tight loop would cost about a third. Not a target: make bench judges those.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BATCH = 100  # log lines per batch written (see worker)
FIXTURE = HERE / "tests" / "fixtures" / "clients" / "openai-python__chat_openai_params.json"
ANSWER = json.dumps(
    {
        "id": "abc",
        "object": "chat.completion",
        "created": 1,
        "model": "mistral-small-latest",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
).encode()


def worker(root: str, flows: int) -> float:
    """In a process of its own: the median of 5 passes over `flows` flows, in microseconds of CPU per flow."""
    sys.path.insert(0, root)
    import asyncio

    from mitmproxy import http
    from mitmproxy.test import taddons, tflow

    import addon  # the checkout's

    fixture = json.loads(FIXTURE.read_text())
    body = fixture["body"].encode()
    headers = [(k.encode(), v.encode()) for k, v in fixture["headers"].items()]
    answer_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
    rng = random.Random(1)
    junk = json.dumps(
        [{"k%d" % i: [rng.random() for _ in range(5)], "s": "x" * rng.randint(1, 300)} for i in range(600)]
    )
    table = {("key", i): i for i in range(200_000)}
    keys = list(table)

    def other_work() -> None:  # about 1 ms: mitmproxy's share between two requests, roughly
        json.loads(junk)
        for k in rng.sample(keys, 500):
            table[k]

    def flow():
        f = tflow.tflow()
        f.request = http.Request(
            "api.mistral.ai", 443, b"POST", b"https", b"api.mistral.ai", b"/v1/chat/completions",
            b"HTTP/1.1", http.Headers(headers), body, http.Headers(), 0, 0,
        )  # fmt: skip
        return f, http.Response(b"HTTP/1.1", 200, b"OK", http.Headers(answer_headers), ANSWER, None, 0, 0)

    mc = addon.build()
    clock = time.process_time_ns
    # The batched log lines (RequestLog, on the part that has one): written here every BATCH flows and timed
    # with the hooks, as mitmdump's timer would every 0.2 s (about 100 requests at this benchmark's rate).
    log = next((p.log for p in getattr(mc, "parts", ()) if hasattr(getattr(p, "log", None), "flush")), None)

    async def run() -> float:
        with taddons.context(mc):
            mc.running()
            passes = []
            for _ in range(5):
                total = 0
                for f, answer in [flow() for _ in range(flows)]:
                    other_work()
                    t0 = clock()
                    mc.requestheaders(f)
                    mc.request(f)
                    f.response = answer
                    mc.responseheaders(f)
                    mc.response(f)
                    if log is not None and len(log.pending) >= BATCH:
                        log.flush()
                    total += clock() - t0
                    if json.loads(f.request.content).get("random_seed") != 42:
                        raise SystemExit("the request was not rewritten: not the chain this measures")
                passes.append(total / flows / 1000)
            mc.done()
            return statistics.median(passes)

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="*", default=[str(HERE)], help="checkouts to compare (default: this one)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each checkout, alternating (default 3)")
    ap.add_argument("--flows", type=int, default=300, help="flows per pass (default 300)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.flows)))
        return
    roots = [str(Path(r).resolve()) for r in args.roots]
    results: dict[str, list[float]] = {r: [] for r in roots}
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for i in range(args.rounds):
        for root in roots if i % 2 == 0 else roots[::-1]:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", root, "--flows", str(args.flows)],
                check=True,
                capture_output=True,
                text=True,
                env=env,
                cwd=root,
            )
            results[root].append(json.loads(out.stdout.strip().splitlines()[-1]))
    for root, runs in results.items():
        print(f"{statistics.median(runs):7.1f} us per flow (runs: {', '.join(f'{r:.1f}' for r in runs)})  {root}")


if __name__ == "__main__":
    main()
