"""End to end: a real `mitmdump -s addon.py` in front of the strict fake Mistral, forward and reverse."""

from __future__ import annotations

import json
import ssl
import time

import clients
import httpx
import pytest
from conftest import Mitmdump
from fake_mistral import encode_content

from mistral_compat.rules import builtin

RULES = builtin()
KEY = "sk-test-0123456789abcdefSECRET"
AUTH = {"authorization": f"Bearer {KEY}"}
DIRTY = {
    "model": "mistral-small-latest",
    "messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi", "name": "bob"}],
    "stream_options": {"include_usage": True},
    "user": "u-1",
    "seed": 42,
    "max_completion_tokens": 64,
}
CLEAN = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.3}


@pytest.fixture(scope="module")
def reverse(module_reverse):
    return module_reverse


@pytest.fixture(scope="module")
def forward(module_fake, tmp_path_factory):
    p = Mitmdump(tmp_path_factory.mktemp("mitm"), "--set", "mistral_hosts=localhost")
    yield p
    p.stop()


def post(base, path, body, headers=None, **kw):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    h = {"content-type": "application/json", **AUTH, **(headers or {})}
    with httpx.Client(timeout=20, **kw) as c:
        return c.post(base + path, content=data, headers=h)


def last_body(fake):
    return json.loads(fake.received[-1].body)


# --- reverse mode -----------------------------------------------------------------------------


def test_reverse_rewrites_and_upstream_accepts(reverse, module_fake):
    module_fake.clear()
    r = post(reverse.url, "/v1/chat/completions", DIRTY)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion"
    assert last_body(module_fake) == {
        "model": "mistral-small-latest",
        "random_seed": 42,
        "max_tokens": 64,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    }


def test_reverse_without_addon_upstream_rejects(module_fake):
    """The control: the fake really is strict, so the 200 above is the addon's doing."""
    r = post(module_fake.url, "/v1/chat/completions", DIRTY)
    assert r.status_code == 422
    assert "Extra inputs are not permitted" in r.text


def test_clean_body_forwarded_byte_identical(reverse, module_fake):
    raw = (
        b'{ "model" : "mistral-small-latest",\n  "messages": [{"role": "user", "content": "h\\u00e9 \xc3\xa9"}],'
        b'\n  "temperature": 0.70, "random_seed": 123456789012345678901234567890 }'
    )
    module_fake.clear()
    r = post(reverse.url, "/v1/chat/completions", raw)
    assert r.status_code == 200, r.text
    assert module_fake.received[-1].raw_body == raw


def test_rewritten_body_keeps_values(reverse, module_fake):
    raw = (
        '{"model":"mistral-small-latest","user":"x","messages":[{"role":"user","content":"\u4e2d\u6587 \U0001f600"}],'
        '"temperature":1.0000000000000001,"random_seed":123456789012345678901234567890}'
    ).encode()
    module_fake.clear()
    r = post(reverse.url, "/v1/chat/completions", raw)
    assert r.status_code == 200, r.text
    got = module_fake.received[-1].raw_body.decode()
    assert '"temperature":1.0000000000000001' in got and "123456789012345678901234567890" in got
    assert "\u4e2d\u6587 \U0001f600" in got and '"user":"x"' not in got


CAPTURED = [c for c in clients.load_all() if RULES.endpoint(c["path"])]
UNFIXABLE = {"langchain-openai__embeddings_default"}  # token-id arrays: no text to send


@pytest.mark.parametrize("capture", CAPTURED, ids=[c["name"] for c in CAPTURED])
def test_captured_clients_through_reverse_proxy(capture, reverse, module_fake):
    module_fake.clear()
    headers = {"content-type": "application/json"}
    ua = next((v for k, v in capture["headers"].items() if k.lower() == "user-agent"), None)
    if ua:
        headers["user-agent"] = ua
    r = post(reverse.url, capture["path"], capture["raw"], headers)
    if capture["name"] in UNFIXABLE:
        assert r.status_code == 422
        return
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "endpoint,body,expected",
    [
        (
            "fim/completions",
            {"model": "codestral-latest", "prompt": "def f(", "suffix": ")", "seed": 1, "user": "u"},
            {"model": "codestral-latest", "prompt": "def f(", "suffix": ")", "random_seed": 1},
        ),
        (
            "agents/completions",
            {"agent_id": "ag_1", "messages": [{"role": "user", "content": "x"}], "model": "m", "temperature": 0.2},
            {"agent_id": "ag_1", "messages": [{"role": "user", "content": "x"}]},
        ),
        (
            "embeddings",
            {"model": "mistral-embed", "input": ["a", "b"], "dimensions": 16, "encoding_format": "float", "user": "u"},
            {"model": "mistral-embed", "input": ["a", "b"], "output_dimension": 16, "encoding_format": "float"},
        ),
        (
            "moderations",
            {"model": "mistral-moderation-latest", "input": ["x"], "user": "u"},
            {"model": "mistral-moderation-latest", "input": ["x"]},
        ),
        (
            "chat/moderations",
            {
                "model": "mistral-moderation-latest",
                "input": [{"role": "user", "content": "x", "name": "n"}],
                "metadata": {},
            },
            {"model": "mistral-moderation-latest", "input": [{"role": "user", "content": "x"}]},
        ),
        ("classifications", {"model": "c", "input": "x", "user": "u"}, {"model": "c", "input": "x"}),
        (
            "chat/classifications",
            {"model": "c", "input": {"messages": [{"role": "developer", "content": "x"}]}, "user": "u"},
            {"model": "c", "input": {"messages": [{"role": "system", "content": "x"}]}},
        ),
        (
            "ocr",
            {
                "model": "mistral-ocr-latest",
                "document": {"type": "document_url", "document_url": "https://x/a.pdf"},
                "id": "old-field",
            },
            {"model": "mistral-ocr-latest", "document": {"type": "document_url", "document_url": "https://x/a.pdf"}},
        ),
    ],
)
def test_every_endpoint(endpoint, body, expected, reverse, module_fake):
    module_fake.clear()
    r = post(reverse.url, "/v1/" + endpoint, body)
    assert r.status_code == 200, r.text
    assert last_body(module_fake) == expected


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_request_bodies(encoding, reverse, module_fake):
    module_fake.clear()
    r = post(
        reverse.url,
        "/v1/chat/completions",
        encode_content(json.dumps(DIRTY).encode(), encoding),
        {"content-encoding": encoding},
    )
    assert r.status_code == 200, r.text
    rec = module_fake.received[-1]
    assert rec.header("content-encoding") == encoding
    assert "stream_options" not in json.loads(rec.body)


def test_chunked_request_body(reverse, module_fake):
    data = json.dumps(DIRTY).encode()

    def chunks():
        for i in range(0, len(data), 17):
            yield data[i : i + 17]

    module_fake.clear()
    with httpx.Client(timeout=20) as c:
        r = c.post(
            reverse.url + "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json", **AUTH}
        )
    assert r.status_code == 200, r.text
    assert "user" not in json.loads(module_fake.received[-1].body)


@pytest.mark.parametrize(
    "raw,headers,needle",
    [
        (b"{not json", {}, "not valid JSON"),
        (b"[1, 2]", {}, "JSON array"),
        (b'{"model": "m", "temperature": NaN}', {}, "NaN"),
        (b"", {}, "empty"),
        (b"[" * 200_000 + b"]" * 200_000, {}, "nested too deeply"),
        (b"\x1f\x8b\x08garbage", {"content-encoding": "gzip"}, "cannot be decoded"),
    ],
)
def test_bad_body_answered_by_proxy(raw, headers, needle, reverse, module_fake):
    module_fake.clear()
    r = post(reverse.url, "/v1/chat/completions", raw, headers)
    assert r.status_code == 400
    err = r.json()
    assert err["object"] == "error" and err["type"] == "invalid_request_error" and needle in err["message"]
    assert module_fake.received == []
    assert post(reverse.url, "/v1/chat/completions", CLEAN).status_code == 200


def test_other_paths_and_methods_untouched(reverse, module_fake):
    module_fake.clear()
    with httpx.Client(timeout=20) as c:
        assert c.get(reverse.url + "/v1/models", headers=AUTH).status_code == 200
    raw = b'{"anything": ["goes"], "user": 1}'
    post(reverse.url, "/v1/files-unknown", raw)
    assert module_fake.received[-1].raw_body == raw


def test_streaming_events_arrive_spread_out(reverse, module_fake):
    body = dict(DIRTY, stream=True)
    arrivals = []
    start = time.monotonic()
    with httpx.Client(timeout=20) as c:
        with c.stream("POST", reverse.url + "/v1/chat/completions", json=body, headers=AUTH) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data:"):
                    arrivals.append((time.monotonic() - start, line))
    assert arrivals[-1][1] == "data: [DONE]"
    times = [t for t, _ in arrivals]
    assert times == sorted(times)
    # buffered, every event would arrive at the same moment at the end
    assert times[-1] - times[0] > 2 * module_fake.stream_interval


def test_log_names_changes_and_never_the_key(reverse, module_fake):
    post(reverse.url, "/v1/chat/completions", DIRTY, {"user-agent": "E2E-Client/1.0"})
    m = reverse.wait_for(r"chat/completions \[E2E-Client/1.0\]: .*stream_options")
    assert m, reverse.output
    line = m.string
    for part in ("seed -> random_seed", "max_completion_tokens -> max_tokens", "messages[1].name", "messages[0].role"):
        assert part in line
    assert KEY not in reverse.output


# --- forward (regular proxy) mode -------------------------------------------------------------


def test_forward_matched_host_rewritten(forward, module_fake):
    module_fake.clear()
    url = module_fake.url.replace("127.0.0.1", "localhost")
    r = post(url, "/v1/chat/completions", DIRTY, proxy=forward.url)
    assert r.status_code == 200, r.text
    assert "stream_options" not in last_body(module_fake)


def test_forward_unmatched_host_untouched(forward, module_fake):
    """127.0.0.1 is not in mistral_hosts: the body must reach it exactly as sent."""
    module_fake.clear()
    raw = json.dumps(DIRTY, indent=2).encode()
    r = post(module_fake.url, "/v1/chat/completions", raw, proxy=forward.url)
    assert r.status_code == 422
    assert module_fake.received[-1].raw_body == raw


def test_forward_https_via_connect(mitmdump, tmp_path):
    from fake_mistral import FakeMistral

    with FakeMistral(tls=True) as tls_fake:
        p = mitmdump("--set", "mistral_hosts=localhost", "--set", f"ssl_verify_upstream_trusted_ca={tls_fake.ca_pem}")
        ctx = ssl.create_default_context(cafile=str(p.confdir / "mitmproxy-ca-cert.pem"))
        r = post(tls_fake.url, "/v1/chat/completions", DIRTY, proxy=p.url, verify=ctx)
        assert r.status_code == 200, r.text
        assert "user" not in json.loads(tls_fake.received[-1].body)


# --- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,needle",
    [
        ("https://llm.example.com", "looks like a URL"),
        ("llm.example.com:8443", "has a port"),
        ("bad host", "is not a host name"),
    ],
)
def test_bad_option_stops_start_up(value, needle, tmp_path):
    p = Mitmdump(tmp_path, "--set", f"mistral_hosts={value}")
    assert p.proc.wait(timeout=15) == 1
    assert f"OptionsError: mistral_hosts: {value!r} {needle}" in p.output


def test_wildcard_hosts(mitmdump):
    """*.example.test is matched (the addon itself answers a bad body), example.test is not."""
    p = mitmdump("--set", "mistral_hosts=*.example.test")
    r = post("http://api.example.test", "/v1/chat/completions", b"[1]", proxy=p.url)
    assert r.status_code == 400 and "JSON array" in r.json()["message"]
    r = post("http://example.test", "/v1/chat/completions", b"[1]", proxy=p.url)
    assert r.status_code == 502  # not matched: mitmproxy tried the (unresolvable) host itself


def test_unknown_mistral_option_warned(mitmdump):
    p = mitmdump("--set", "mistral_hostz=typo.example")
    assert p.wait_for(r"Unknown option 'mistral_hostz'")
