"""Safe as the system proxy: only Mistral hosts are intercepted, HTTP/1.1 and HTTP/2, the real openai SDK."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest
import trustme
from conftest import clean_env
from fake_mistral import FakeMistral

DIRTY = {
    "model": "mistral-small-latest",
    "messages": [{"role": "developer", "content": "terse"}, {"role": "user", "content": "hi", "name": "n"}],
    "stream_options": {"include_usage": True},
    "user": "u",
    "seed": 1,
    "max_completion_tokens": 50,
}


class _Echo(BaseHTTPRequestHandler):
    """Another HTTPS site: records each body exactly and answers it back."""

    protocol_version = "HTTP/1.1"
    received: list[bytes] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        type(self).received.append(body)
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def other_site(tmp_path_factory):
    """An unmatched HTTPS host on 127.0.0.2 with a CA of its own (not mitmproxy's)."""
    ca = trustme.CA()
    server = ThreadingHTTPServer(("127.0.0.2", 0), _Echo)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.2").configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ca_file = tmp_path_factory.mktemp("other") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield f"https://127.0.0.2:{server.server_address[1]}", str(ca_file)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tls_fake():
    with FakeMistral(tls=True) as f:
        yield f


@pytest.fixture(scope="module")
def proxy(tls_fake, tmp_path_factory):
    from conftest import Mitmdump

    p = Mitmdump(
        tmp_path_factory.mktemp("mitm"),
        "--set",
        "mistral_hosts=localhost",
        "--set",
        "connection_strategy=lazy",
        "--set",
        f"ssl_verify_upstream_trusted_ca={tls_fake.ca_pem}",
    )
    yield p
    p.stop()


def mitm_ca(p) -> ssl.SSLContext:
    """A client that trusts only the CA in the test's confdir."""
    return ssl.create_default_context(cafile=str(p.confdir / "mitmproxy-ca-cert.pem"))


def test_startup_log_names_intercepted_hosts(proxy):
    assert proxy.wait_for(
        r"intercepting TLS only for api\.mistral\.ai, codestral\.mistral\.ai, localhost; "
        r"every other host is tunnelled untouched"
    )


def test_matched_host_intercepted_http11(proxy, tls_fake):
    tls_fake.clear()
    with httpx.Client(proxy=proxy.url, verify=mitm_ca(proxy), timeout=20) as c:
        r = c.post(tls_fake.url + "/v1/chat/completions", json=DIRTY)
    assert r.status_code == 200, r.text
    assert r.http_version == "HTTP/1.1"
    sent = json.loads(tls_fake.received[-1].body)
    assert sent["random_seed"] == 1 and "stream_options" not in sent and "user" not in sent


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is needed as the HTTP/2 client")
def test_matched_host_intercepted_http2(proxy, tls_fake, tmp_path):
    """curl offers h2 first in ALPN (httpx offers http/1.1 first, so it never gets HTTP/2 via a proxy)."""
    tls_fake.clear()
    body = tmp_path / "body.json"
    body.write_text(json.dumps(DIRTY))
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2",
            "-x",
            proxy.url,
            "--cacert",
            str(proxy.confdir / "mitmproxy-ca-cert.pem"),
            "-H",
            "content-type: application/json",
            "--data-binary",
            f"@{body}",
            "-o",
            str(tmp_path / "answer.json"),
            "-w",
            "%{http_version} %{http_code}",
            tls_fake.url + "/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
    )
    assert out.stdout == "2 200", out.stderr
    assert json.loads((tmp_path / "answer.json").read_text())["object"] == "chat.completion"
    sent = json.loads(tls_fake.received[-1].body)
    assert sent["max_tokens"] == 50 and "stream_options" not in sent


def test_other_host_tunnelled_untouched(proxy, other_site):
    url, ca_file = other_site
    raw = json.dumps(DIRTY, indent=3).encode()
    # trusting only the site's own CA works: the client sees the real certificate, not mitmproxy's
    with httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=ca_file), timeout=20) as c:
        r = c.post(url + "/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.content == raw
    assert _Echo.received[-1] == raw
    # and a client trusting only mitmproxy's CA is refused: nothing was intercepted
    with httpx.Client(proxy=proxy.url, verify=mitm_ca(proxy), timeout=20) as c:
        with pytest.raises(httpx.ConnectError):
            c.post(url + "/v1/chat/completions", content=raw)


def test_intercept_all(mitmdump, other_site):
    url, ca_file = other_site
    p = mitmdump("--set", "mistral_intercept_all=true", "--set", "ssl_verify_upstream_trusted_ca=" + ca_file)
    assert p.wait_for(r"intercepting TLS for every host")
    raw = json.dumps(DIRTY).encode()
    with httpx.Client(proxy=p.url, verify=mitm_ca(p), timeout=20) as c:  # mitmproxy's certificate now
        r = c.post(url + "/v1/chat/completions", content=raw)
    assert r.status_code == 200 and _Echo.received[-1] == raw  # intercepted, but not a Mistral host: untouched


def test_users_own_allow_hosts_win(mitmdump, other_site):
    """allow_hosts=^127.0.0.2: intercepts the other site (the user's choice), so it now sees mitmproxy."""
    url, ca_file = other_site
    p = mitmdump("--set", r"allow_hosts=^127\.0\.0\.2:", "--set", "ssl_verify_upstream_trusted_ca=" + ca_file)
    assert p.wait_for(r"your allow_hosts/ignore_hosts decide")
    with httpx.Client(proxy=p.url, verify=mitm_ca(p), timeout=20) as c:
        assert c.post(url + "/x", content=b"x").status_code == 200


def sdk(proxy, tls_fake) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-sdk-test",
        base_url=tls_fake.url + "/v1",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(proxy=proxy.url, verify=mitm_ca(proxy)),
    )


def test_openai_sdk_chat(proxy, tls_fake):
    client = sdk(proxy, tls_fake)
    resp = client.chat.completions.create(
        model="mistral-small-latest",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi", "name": "me"}],
        seed=7,
        user="user-1",
        max_completion_tokens=20,
        logprobs=False,
        store=False,
        temperature=1.9,
        metadata={"app": "test"},
        logit_bias={"1": 1},
    )
    assert resp.choices[0].message.role == "assistant"
    sent = json.loads(tls_fake.received[-1].body)
    assert sent["random_seed"] == 7 and sent["max_tokens"] == 20 and sent["temperature"] == 1.5


def test_openai_sdk_stream(proxy, tls_fake):
    client = sdk(proxy, tls_fake)
    stream = client.chat.completions.create(
        model="mistral-small-latest",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
        user="u",
        seed=1,
    )
    chunks = list(stream)
    assert len(chunks) >= tls_fake.stream_events
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "stream_options" not in json.loads(tls_fake.received[-1].body)


def test_openai_sdk_tool_round_trip(proxy, tls_fake):
    client = sdk(proxy, tls_fake)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather"}}]  # no parameters
    messages = [{"role": "user", "content": "Hi"}]
    first = client.chat.completions.create(model="mistral-small-latest", messages=messages, tools=tools, user="u")
    messages.append(first.choices[0].message)  # the SDK's own object, appended back as people do
    messages += [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "audio": None,
            "function_call": None,
            "tool_calls": [
                {
                    "id": "call_QWERTYUIOPASDFGHJKLZXCVB",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_QWERTYUIOPASDFGHJKLZXCVB", "content": "sunny"},
    ]
    second = client.chat.completions.create(
        model="mistral-small-latest", messages=messages, tools=tools, parallel_tool_calls=True, seed=3
    )
    assert second.choices[0].message.role == "assistant"
    sent = json.loads(tls_fake.received[-1].body)
    assert sent["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    ids = {sent["messages"][3]["tool_calls"][0]["id"], sent["messages"][4]["tool_call_id"]}
    assert len(ids) == 1 and len(ids.pop()) == 9


def test_openai_sdk_embeddings(proxy, tls_fake):
    client = sdk(proxy, tls_fake)
    resp = client.embeddings.create(
        model="mistral-embed", input=["a", "b"], dimensions=16, user="u", encoding_format="float"
    )
    assert len(resp.data) == 2 and len(resp.data[0].embedding) == 16
