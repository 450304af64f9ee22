"""Pacing per API key through a real mitmdump, against a fake Mistral that allows one request per second per
key (429 otherwise), as the free tier does: mistral_rate_limit, a 429's Retry-After, the queue bound."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from tests.fake_mistral import FakeMistral

CHAT = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hi"}], "user": "u"}
KEY1, KEY2 = "sk-pacing-key-one-1234567890", "sk-pacing-key-two-0987654321"


@pytest.fixture
def limited_fake():
    with FakeMistral(rate_limit=1) as f:
        yield f


@pytest.fixture
def paced(mitmdump, limited_fake):
    return mitmdump(
        "--mode", f"reverse:{limited_fake.url}", "--set", "connection_strategy=lazy", "--set", "mistral_rate_limit=1/s"
    )


async def burst(url: str, key: str, n: int, body=CHAT, **headers) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as c:
        return await asyncio.gather(
            *(
                c.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}", **headers})
                for _ in range(n)
            )
        )


def test_a_burst_on_one_key_all_succeed_at_least_a_second_apart(paced, limited_fake):
    start = time.monotonic()
    rs = asyncio.run(burst(paced.url, KEY1, 5))
    took = time.monotonic() - start
    assert [r.status_code for r in rs] == [200] * 5, [r.text for r in rs]
    gaps = limited_fake.gaps(KEY1)
    assert len(gaps) == 4 and min(gaps) >= 1.0, gaps
    assert limited_fake.limited() == 0
    assert 4.0 <= took < 8.0
    assert paced.wait_for(r"waited \d\.\d s for mistral_rate_limit 1/s", timeout=5)
    paced.stop()
    assert KEY1 not in paced.output and KEY1[3:] not in paced.output  # no key in any log line
    summary = paced.output[paced.output.index("mistral-compat summary") :].splitlines()
    assert summary[1].split()[-3:] == ["waits", "waited", "429"]
    row = next(line for line in summary if line.startswith("python-httpx"))
    assert row.split()[-3] == "4" and float(row.split()[-2].rstrip("s")) >= 1.0 + 2 + 3  # 1+2+3+4 s, roughly


def test_without_the_option_the_same_burst_is_refused_by_the_fake(mitmdump, limited_fake):
    """The fake does enforce the limit: without pacing a burst meets 429s (what the tests above avoid)."""
    p = mitmdump("--mode", f"reverse:{limited_fake.url}", "--set", "connection_strategy=lazy")
    rs = asyncio.run(burst(p.url, KEY1, 3))
    assert sorted(r.status_code for r in rs) == [200, 429, 429]
    assert all(r.json()["error"]["message"] for r in rs if r.status_code == 429)  # OpenAI's error object too


def test_a_second_key_is_not_held_behind_the_first(paced, limited_fake):
    async def both():
        first = asyncio.ensure_future(burst(paced.url, KEY1, 4))
        await asyncio.sleep(0.3)
        start = time.monotonic()
        (other,) = await burst(paced.url, KEY2, 1)
        waited = time.monotonic() - start
        return await first, other, waited

    first, other, waited = asyncio.run(both())
    assert [r.status_code for r in first] == [200] * 4 and other.status_code == 200
    assert waited < 0.8  # while KEY1's requests wait their turns (up to 3 s)


def test_a_preflight_during_a_burst_is_answered_at_once(paced):
    async def go():
        task = asyncio.ensure_future(burst(paced.url, KEY1, 4))
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(timeout=10) as c:
            start = time.monotonic()
            pre = await c.options(
                paced.url + "/v1/chat/completions",
                headers={
                    "origin": "http://localhost:3000",
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "authorization, content-type",
                },
            )
            took = time.monotonic() - start
        return pre, took, await task

    pre, took, rs = asyncio.run(go())
    assert pre.status_code == 204 and took < 0.5
    assert [r.status_code for r in rs] == [200] * 4


def test_streaming_answers_still_stream(paced, limited_fake):
    limited_fake.stream_interval = 0.3

    async def go():
        async with httpx.AsyncClient(timeout=30) as c:
            arrivals = []
            async with c.stream(
                "POST",
                paced.url + "/v1/chat/completions",
                json=dict(CHAT, stream=True),
                headers={"authorization": f"Bearer {KEY1}"},
            ) as r:
                assert r.status_code == 200
                start = time.monotonic()
                async for line in r.aiter_lines():
                    if line.startswith("data: {"):
                        arrivals.append(time.monotonic() - start)
            return arrivals

    first = asyncio.run(go())
    second = asyncio.run(go())  # paced: waits for its turn, then streams as it comes
    for arrivals in (first, second):
        assert len(arrivals) >= 3 and arrivals[-1] - arrivals[0] >= 0.5  # spread out, not buffered
    assert min(limited_fake.gaps(KEY1)) >= 1.0


def test_a_queued_client_that_disconnects_is_never_sent(paced, limited_fake):
    body = json.dumps(CHAT).encode()

    def raw_request(marker: str) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", paced.port))
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            + f"authorization: Bearer {KEY1}\r\nx-marker: {marker}\r\n".encode()
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        return s

    first = raw_request("first")
    time.sleep(0.2)
    quitter = raw_request("quitter")  # queued behind the first for about a second
    time.sleep(0.2)
    last = raw_request("last")  # queued behind the quitter
    time.sleep(0.2)
    quitter.close()  # gives up while queued
    for s in (first, last):
        s.settimeout(10)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.close()
    markers = [dict((k.lower(), v) for k, v in r.headers).get("x-marker") for r in limited_fake.received]
    assert markers == ["first", "last"]
    gaps = limited_fake.gaps(KEY1)
    assert len(gaps) == 1 and 1.0 <= gaps[0] < 1.8  # the last took the quitter's turn
    assert paced.wait_for(r"the client left before its turn: not sent", timeout=5)


def test_after_a_429_with_retry_after_the_next_request_waits(mitmdump, limited_fake):
    """Without mistral_rate_limit: Mistral's 429 holds the key for its Retry-After (2 s)."""
    p = mitmdump("--mode", f"reverse:{limited_fake.url}", "--set", "connection_strategy=lazy")
    with httpx.Client(timeout=30) as c:
        auth = {"authorization": f"Bearer {KEY1}"}
        r = c.post(
            p.url + "/v1/chat/completions",
            json=CHAT,
            headers={**auth, "x-fake-status": "429", "x-fake-retry-after": "2"},
        )
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        assert r.json()["error"]  # the 429 reaches the client with OpenAI's error object
        start = time.monotonic()
        r = c.post(p.url + "/v1/chat/completions", json=CHAT, headers=auth)
        waited = time.monotonic() - start
        assert r.status_code == 200  # the fake refuses the key for 2 s: it was held, not refused
        assert 1.7 <= waited < 3.5
        other = c.post(p.url + "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {KEY2}"})
        assert other.status_code == 200
    assert p.wait_for(r"waited \d\.\d s for a 429's Retry-After", timeout=5)
    p.stop()
    assert KEY1 not in p.output


def test_a_request_that_would_wait_too_long_gets_a_local_429(mitmdump, limited_fake):
    p = mitmdump(
        "--mode",
        f"reverse:{limited_fake.url}",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "mistral_rate_limit=1/min",
    )
    with httpx.Client(timeout=10) as c:
        auth = {"authorization": f"Bearer {KEY1}"}
        assert c.post(p.url + "/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
        start = time.monotonic()
        r = c.post(p.url + "/v1/chat/completions", json=CHAT, headers=auth)  # would wait 60 s: more than 60 s
        assert time.monotonic() - start < 2
    assert r.status_code == 429 and 55 <= int(r.headers["retry-after"]) <= 61
    message = r.json()["error"]["message"]
    assert "queue" in message and "full" in message and "mistral_rate_limit 1/min" in message
    assert r.headers["access-control-allow-origin"] == "*"
    assert len(limited_fake.received) == 1  # the refused one never reached Mistral


@pytest.mark.parametrize(
    "value,needle",
    [
        ("0/s", "would let no request through"),
        ("abc", "N/s or N/min"),
        ("1/h", "unknown unit 'h'"),
        ("-1/s", ""),
        ("1/s/s", ""),
    ],
)
def test_bad_values_stop_the_proxy_with_a_clear_message(value, needle, tmp_path):
    from tests.conftest import Mitmdump

    p = Mitmdump(tmp_path, "--set", f"mistral_rate_limit={value}")
    try:
        assert p.proc.wait(timeout=15) == 1
    finally:
        p.stop()
    assert "OptionsError: mistral_rate_limit: " in p.output and needle in p.output
    assert "Traceback" not in p.output


def test_the_limit_is_stated_at_start_up(mitmdump):
    p = mitmdump("--set", "mistral_rate_limit=0.5/s")
    assert p.wait_for(r"pacing requests to Mistral to 0\.5/s per API key \(mistral_rate_limit\)", timeout=10)
