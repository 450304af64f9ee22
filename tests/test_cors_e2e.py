"""CORS through a real mitmdump: local preflights, headers on every answer, origin policy."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import dead_port

ORIGIN = "http://localhost:5173"
STAINLESS = (
    "authorization,content-type,x-stainless-arch,x-stainless-lang,x-stainless-os,"
    "x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,"
    "x-stainless-runtime-version"
)
PREFLIGHT = {"origin": ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": STAINLESS}
CHAT = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hi"}], "user": "u"}


def options(url, headers=PREFLIGHT, **kw):
    with httpx.Client(timeout=10, **kw) as c:
        return c.request("OPTIONS", url, headers=headers)


def header_values(r, name):
    return r.headers.get_list(name)


def assert_preflight_ok(r):
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-allow-methods"] == "POST"
    assert r.headers["access-control-allow-headers"].split(", ") == STAINLESS.split(",")
    assert r.headers["access-control-max-age"] == "86400"
    assert "access-control-allow-credentials" not in r.headers
    assert r.content == b""


def test_preflight_answered_locally_reverse(mitmdump, fake):
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", "connection_strategy=lazy")
    assert_preflight_ok(options(p.url + "/v1/chat/completions"))
    assert fake.received == []


def test_preflight_answered_with_upstream_down(mitmdump):
    p = mitmdump("--mode", f"reverse:http://127.0.0.1:{dead_port()}", "--set", "connection_strategy=lazy")
    assert_preflight_ok(options(p.url + "/v1/chat/completions"))


def test_preflight_answered_locally_forward(mitmdump, fake):
    p = mitmdump("--set", "mistral_hosts=localhost")
    url = fake.url.replace("127.0.0.1", "localhost")
    assert_preflight_ok(options(url + "/v1/chat/completions", proxy=p.url))
    assert fake.received == []


def test_unmatched_options_passes_through(mitmdump, fake):
    p = mitmdump("--set", "mistral_hosts=localhost")
    r = options(fake.url + "/v1/chat/completions", proxy=p.url)  # 127.0.0.1 is not matched
    assert [x.method for x in fake.received] == ["OPTIONS"]
    assert r.headers.get("server", "").startswith("FakeMistral")


@pytest.fixture
def reverse(mitmdump, fake):
    return mitmdump("--mode", f"reverse:{fake.url}", "--set", "connection_strategy=lazy")


def post(proxy, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    with httpx.Client(timeout=20) as c:
        return c.post(
            proxy.url + "/v1/chat/completions",
            content=data,
            headers={
                "origin": ORIGIN,
                "content-type": "application/json",
                "authorization": "Bearer sk-x",
                **(headers or {}),
            },
        )


def assert_cors(r):
    assert header_values(r, "access-control-allow-origin") == ["*"]  # replaced, never duplicated
    exposed = r.headers["access-control-expose-headers"].split(", ")
    assert "x-request-id" in exposed and "content-type" in exposed
    return exposed


def test_cors_on_json_answer(reverse):
    r = post(reverse, CHAT)
    assert r.status_code == 200
    exposed = assert_cors(r)
    assert any(h.startswith("x-ratelimit") for h in exposed), exposed


def test_cors_on_streamed_answer(reverse):
    with httpx.Client(timeout=20) as c:
        with c.stream(
            "POST", reverse.url + "/v1/chat/completions", json=dict(CHAT, stream=True), headers={"origin": ORIGIN}
        ) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert_cors(r)
            assert "data: [DONE]" in list(r.iter_lines())


@pytest.mark.parametrize("status", [401, 422, 429, 500])
def test_cors_on_upstream_errors(reverse, status):
    r = post(reverse, CHAT, {"x-fake-status": str(status)})
    assert r.status_code == status
    assert_cors(r)


def test_cors_on_addons_own_400(reverse, fake):
    r = post(reverse, b"{oops")
    assert r.status_code == 400 and fake.received == []
    assert_cors(r)


def test_listed_origins(mitmdump, fake):
    p = mitmdump(
        "--mode",
        f"reverse:{fake.url}",
        "--set",
        f"mistral_cors_origins={ORIGIN}",
        "--set",
        "mistral_cors_origins=https://chat.example.com",
    )
    r = post(p, CHAT)
    assert header_values(r, "access-control-allow-origin") == [ORIGIN]
    assert "Origin" in r.headers["vary"]
    r = post(p, CHAT, {"origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    r = options(p.url + "/v1/chat/completions", headers=dict(PREFLIGHT, origin="https://chat.example.com"))
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "https://chat.example.com"
    r = options(p.url + "/v1/chat/completions", headers=dict(PREFLIGHT, origin="https://evil.example"))
    assert r.status_code == 204 and "access-control-allow-origin" not in r.headers
    assert fake.received and all(x.method == "POST" for x in fake.received)


def test_bad_origin_option_stops_start_up(tmp_path):
    from conftest import Mitmdump

    p = Mitmdump(tmp_path, "--set", "mistral_cors_origins=chat.example.com")
    assert p.proc.wait(timeout=15) == 1
    assert "mistral_cors_origins: 'chat.example.com' is not an origin" in p.output


def test_unreachable_upstream_is_mitmproxys_502_without_cors(mitmdump):
    """Documented limit: mitmproxy's own error page bypasses the response hooks."""
    p = mitmdump("--mode", f"reverse:http://127.0.0.1:{dead_port()}", "--set", "connection_strategy=lazy")
    r = post(p, CHAT)
    assert r.status_code == 502
    assert "access-control-allow-origin" not in r.headers
