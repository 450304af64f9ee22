"""End to end, issue 16: apps locked to api.openai.com, served by Mistral (mistral_redirect_openai).

Real clients with their DEFAULT base URL (https://api.openai.com/v1) and their own OpenAI key, configured
only through the environment as an app would be: HTTPS_PROXY at a real `mitmdump -s addon.py`, and
mitmproxy's CA trusted (SSL_CERT_FILE for openai-python, NODE_EXTRA_CA_CERTS for openai-node, whose fetch
is pointed at the proxy by tests/node/clients.mjs when HTTPS_PROXY is set). The redirect target is the
strict fake Mistral over HTTPS (`mistral_redirect_to=https://localhost:<port>`, its CA trusted by mitmproxy
with ssl_verify_upstream_trusted_ca); mitmdump gets MISTRAL_API_KEY in its environment.

What every request the fake receives must show: `Authorization: Bearer <MISTRAL_API_KEY>`, none of the
client's key headers (Authorization, OpenAI-Organization, OpenAI-Project) and the client's key nowhere in a
header or the body, the OpenAI model name mapped (gpt-4o -> mistral-medium-latest by the built-in map).

One proxy serves most of the module (`proxy`); the tests that need other options start their own.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import ROOT, Mitmdump, clean_env
from fake_mistral import TOOL_RESULT_PREFIX, FakeMistral
from mitmproxy import io as mitmio

MISTRAL_KEY = "mistral-e2e-KEY-7Qx2Lr9Vb4Nc8Hs1zWp0"  # (no known key shape: only its value can redact it)
CLIENT_KEY = "sk-proj-CLIENTKEY-e2e-python-0123456789abcdefABCDEF"
NODE_CLIENT_KEY = "sk-proj-CLIENTKEY-e2e-node-9876543210fedcbaFEDCBA"
CLIENT_ORG = "org-CLIENTORG-e2e-0123"
CLIENT_PROJECT = "proj_CLIENTPROJECT-e2e-0123"
OTHER_KEY = "other-provider-KEY-e2e-5551234"  # a key of the client's own for another host
PLACEHOLDER = "Bearer [MISTRAL_API_KEY]"
OPENAI_DEFAULT = "https://api.openai.com/v1"
STREAM_TEXT = "tok0 tok1 tok2 tok3 tok4 "
WEB_APP = "https://app.example"  # the one web origin allowed (mistral_cors_origins)

NODE_DIR = Path(__file__).resolve().parent / "node"
NODE = shutil.which("node")
IN_CI = os.environ.get("CI", "").lower() == "true"


def node_missing() -> str | None:
    if NODE is None:
        return "node is not on PATH (the Node client tests need Node.js 20+ and npm)"
    if not (NODE_DIR / "node_modules").is_dir():
        return "tests/node/node_modules is missing: `make test` installs it (or: cd tests/node && npm ci)"
    return None


# --- environments ----------------------------------------------------------------------------------------


def _base_env() -> dict:
    """This environment without proxy variables, OpenAI settings (an OPENAI_BASE_URL would change the
    clients' default) and MISTRAL_API_KEY."""
    return {
        k: v
        for k, v in clean_env().items()
        if not k.startswith("OPENAI_")
        and k not in ("MISTRAL_API_KEY", "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS")
    }


def proxy_env(key: str | None = MISTRAL_KEY) -> dict:
    env = _base_env()
    if key is not None:
        env["MISTRAL_API_KEY"] = key
    return env


def mitm_ca(p: Mitmdump) -> str:
    return str(p.confdir / "mitmproxy-ca-cert.pem")


def redirect_args(target: str, upstream_ca: str, *more: str) -> list[str]:
    return [
        "--set",
        "mistral_redirect_openai=true",
        "--set",
        f"mistral_redirect_to={target}",
        "--set",
        "connection_strategy=lazy",
        "--set",
        f"ssl_verify_upstream_trusted_ca={upstream_ca}",
        *more,
    ]


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_fake():
    """The redirect target: the strict fake Mistral over HTTPS (https://localhost:<port>)."""
    with FakeMistral(tls=True) as f:
        yield f


@pytest.fixture(scope="module")
def other_fake():
    """Another HTTPS host: a second fake (a CA of its own), reached as https://127.0.0.1:<port> (a Mistral
    host by mistral_hosts=127.0.0.1) and as https://localhost:<port> (a host the proxy does not match)."""
    with FakeMistral(tls=True) as f:
        yield f


@pytest.fixture(scope="module")
def upstream_ca(tls_fake, other_fake, tmp_path_factory) -> str:
    """Both fakes' CAs in one file, for mitmproxy's ssl_verify_upstream_trusted_ca."""
    path = tmp_path_factory.mktemp("cas") / "upstream-ca.pem"
    path.write_text(Path(tls_fake.ca_pem).read_text() + Path(other_fake.ca_pem).read_text())
    return str(path)


@pytest.fixture(scope="module")
def proxy(tls_fake, upstream_ca, tmp_path_factory):
    """The module's proxy: redirect on, to the TLS fake; 127.0.0.1 matched as a Mistral host; one web
    origin allowed; the most verbose logs (the key must be in none of their lines)."""
    p = Mitmdump(
        tmp_path_factory.mktemp("mitm"),
        *redirect_args(
            tls_fake.url,
            upstream_ca,
            "--set",
            "mistral_hosts=127.0.0.1",
            "--set",
            f"mistral_cors_origins={WEB_APP}",
            "--set",
            "termlog_verbosity=debug",
            "--set",
            "flow_detail=4",
        ),
        env=proxy_env(),
    )
    yield p
    p.stop()


@pytest.fixture
def app_env(monkeypatch):
    """The environment an app is started with: HTTPS_PROXY at the proxy, mitmproxy's CA in SSL_CERT_FILE
    (read by httpx when a client is made); no other proxy variable, no OPENAI_* setting."""

    def use(p: Mitmdump) -> None:
        for name in list(os.environ):
            if name.lower().endswith("_proxy") or name.startswith("OPENAI_") or name == "SSL_CERT_DIR":
                monkeypatch.delenv(name)
        monkeypatch.setenv("HTTPS_PROXY", p.url)
        monkeypatch.setenv("SSL_CERT_FILE", mitm_ca(p))

    return use


@pytest.fixture
def app(app_env):
    """app(proxy) -> an openai-python client made as an app makes it: default base URL, its own OpenAI key
    (with organization and project), the proxy and CA from the environment."""
    made: list[openai.OpenAI] = []

    def make(p: Mitmdump, **kwargs) -> openai.OpenAI:
        app_env(p)
        options = dict(api_key=CLIENT_KEY, organization=CLIENT_ORG, project=CLIENT_PROJECT, max_retries=0, timeout=30)
        client = openai.OpenAI(**{**options, **kwargs})
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


# --- checks ----------------------------------------------------------------------------------------------


def only_mistral_key(records, *client_keys: str) -> None:
    """Every request the fake received carries the Mistral key, and nothing of the client's credentials."""
    assert records, "the fake received nothing"
    secrets = (CLIENT_KEY, NODE_CLIENT_KEY, CLIENT_ORG, CLIENT_PROJECT, *client_keys)
    for r in records:
        where = f"{r.method} {r.path}"
        assert r.header("authorization") == f"Bearer {MISTRAL_KEY}", where
        assert [k for k, _ in r.headers if k.lower() == "authorization"] == ["authorization"], where  # one
        for name in ("x-api-key", "openai-organization", "openai-project"):
            assert r.header(name) is None, (where, name)
        for secret in secrets:
            assert not any(secret in v for _, v in r.headers), (where, secret)
            assert secret.encode() not in r.raw_body and secret.encode() not in r.body, (where, secret)


def no_addon_error(output: str) -> None:
    """No exception from the addon in mitmdump's output (mitmproxy itself prints an asyncio traceback when it
    stops with a connection still open: that one names no file of this project)."""
    assert "Addon error" not in output, output
    for mine in (ROOT / "addon.py", ROOT / "mitmlayer", ROOT / "mistral_compat"):
        assert f'File "{mine}' not in output, output


def models_sent(records) -> list[tuple[str, str | None]]:
    return [(r.path, r.json().get("model") if r.body else None) for r in records]


# --- start-up --------------------------------------------------------------------------------------------


def test_startup_log_names_api_openai_com_and_the_target(proxy, tls_fake):
    assert proxy.wait_for(
        r"intercepting TLS only for api\.mistral\.ai, codestral\.mistral\.ai, 127\.0\.0\.1, "
        r"api\.openai\.com; every other host is tunnelled untouched"
    )
    assert proxy.wait_for(
        rf"mistral_redirect_openai: requests to api\.openai\.com are sent to "
        rf"https://localhost:{tls_fake.port} with the key in MISTRAL_API_KEY"
    )


@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_refuses_to_start_without_the_key(value, tmp_path):
    p = Mitmdump(
        tmp_path, "--set", "mistral_redirect_openai=true", "--set", "connection_strategy=lazy", env=proxy_env(value)
    )
    try:
        assert p.proc.wait(timeout=60) == 1, p.output
    finally:
        p.stop()
    text = p.output
    assert "MISTRAL_API_KEY" in text and "mistral_redirect_openai" in text, text
    assert "Traceback" not in text, text


# --- openai-python ---------------------------------------------------------------------------------------


def test_python_chat(proxy, tls_fake, app):
    tls_fake.clear()
    client = app(proxy)
    assert str(client.base_url).rstrip("/") == OPENAI_DEFAULT
    resp = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Hi", "name": "me"}],
        seed=7,
        user="user-1",
        max_completion_tokens=20,
    )
    assert resp.choices[0].message.content == "ok"
    assert resp.choices[0].finish_reason == "stop"
    records = tls_fake.received
    assert [(r.method, r.path) for r in records] == [("POST", "/v1/chat/completions")]
    sent = records[0].json()
    assert sent["model"] == "mistral-medium-latest"
    assert sent["random_seed"] == 7 and sent["max_tokens"] == 20 and "user" not in sent  # rewritten as usual
    assert records[0].header("host") == f"localhost:{tls_fake.port}"  # the target's own Host
    only_mistral_key(records)


def test_python_chat_stream(proxy, tls_fake, app):
    tls_fake.clear()
    client = app(proxy)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == STREAM_TEXT
    assert chunks[-1].usage is not None
    assert models_sent(tls_fake.received) == [("/v1/chat/completions", "mistral-small-latest")]
    only_mistral_key(tls_fake.received)


def test_python_tool_round_trip(proxy, tls_fake, app):
    tls_fake.clear()
    client = app(proxy)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    messages = [{"role": "user", "content": "Please call the tool: what is the weather in Paris?"}]
    first = client.chat.completions.create(model="gpt-4.1", messages=messages, tools=tools)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model="gpt-4.1", messages=messages, tools=tools)
    assert second.choices[0].message.content.startswith(TOOL_RESULT_PREFIX)
    assert models_sent(tls_fake.received) == [("/v1/chat/completions", "mistral-medium-latest")] * 2
    only_mistral_key(tls_fake.received)


def test_python_embeddings(proxy, tls_fake, app):
    tls_fake.clear()
    client = app(proxy)
    resp = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # base64, the default
    assert [len(d.embedding) for d in resp.data] == [8, 8]
    resp = client.embeddings.create(model="text-embedding-3-large", input="a", dimensions=16, encoding_format="float")
    assert len(resp.data[0].embedding) == 16
    records = tls_fake.received
    assert models_sent(records) == [("/v1/embeddings", "mistral-embed")] * 2
    assert records[1].json()["output_dimension"] == 16
    only_mistral_key(records)


def test_python_responses(proxy, tls_fake, app):
    tls_fake.clear()
    client = app(proxy)
    resp = client.responses.create(model="gpt-4o", input="Hi")
    assert resp.output_text == "ok" and resp.status == "completed"
    stream = client.responses.create(model="gpt-5-mini", input="Hi", stream=True)
    events = list(stream)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == STREAM_TEXT
    assert events[-1].type == "response.completed"
    assert models_sent(tls_fake.received) == [
        ("/v1/chat/completions", "mistral-medium-latest"),
        ("/v1/chat/completions", "mistral-small-latest"),
    ]
    only_mistral_key(tls_fake.received)


def test_python_model_list_and_retrieve(proxy, tls_fake, app):
    tls_fake.clear()
    client = app(proxy)
    models = {m.id: m for m in client.models.list()}
    assert {"mistral-medium-latest", "mistral-small-latest", "mistral-embed"} <= set(models)  # Mistral's
    assert {"gpt-4o", "gpt-4o-mini", "o3", "text-embedding-3-small"} <= set(models)  # mapped names
    assert "mistral-medium-latest" in models["gpt-4o"].owned_by
    one = client.models.retrieve("gpt-4o")
    assert one.id == "gpt-4o" and "mistral-medium-latest" in one.owned_by
    assert [(r.method, r.path) for r in tls_fake.received] == [("GET", "/v1/models")]  # the retrieve: answered here
    only_mistral_key(tls_fake.received)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.images.generate(model="dall-e-3", prompt="a cat"),
        lambda c: c.audio.speech.create(model="tts-1", voice="alloy", input="hi"),
        lambda c: c.files.list(),
        lambda c: c.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi"),
    ],
    ids=["images", "audio", "files", "legacy-completions"],
)
def test_python_openai_only_endpoint_is_a_local_404(proxy, tls_fake, app, call):
    tls_fake.clear()
    client = app(proxy)
    with pytest.raises(openai.NotFoundError) as info:
        call(client)
    assert info.value.status_code == 404
    assert "no counterpart at Mistral" in info.value.message
    assert info.value.code == "unknown_url"
    time.sleep(0.2)
    assert tls_fake.received == []  # nothing sent


def test_other_hosts_keep_their_own_key(proxy, tls_fake, other_fake, app, app_env):
    """Another host, matched as a Mistral host (mistral_hosts=127.0.0.1): rewritten as usual, but with the
    client's own key and no default model map; an unmatched OpenAI-compatible host (localhost): tunnelled,
    the client sees that host's own certificate."""
    tls_fake.clear()
    other_fake.clear()
    matched = app(proxy, base_url=f"https://127.0.0.1:{other_fake.port}/v1", api_key=OTHER_KEY)
    resp = matched.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], seed=3)
    assert resp.choices[0].message.content == "ok"
    app_env(proxy)
    with openai.OpenAI(
        base_url=f"https://localhost:{other_fake.port}/v1",
        api_key=OTHER_KEY,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=other_fake.ca_pem), timeout=30),
    ) as tunnelled:
        resp = tunnelled.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert resp.choices[0].message.content == "ok"
    records = other_fake.received
    assert [(r.path, r.header("host")) for r in records] == [
        ("/v1/chat/completions", f"127.0.0.1:{other_fake.port}"),
        ("/v1/chat/completions", f"localhost:{other_fake.port}"),
    ]
    for r in records:
        assert r.header("authorization") == f"Bearer {OTHER_KEY}"
        assert r.json()["model"] == "gpt-4o"  # the built-in map is for requests redirected from OpenAI only
        assert MISTRAL_KEY not in json.dumps(r.headers) and MISTRAL_KEY.encode() not in r.raw_body
    assert records[0].json()["random_seed"] == 3  # the matched host's request was rewritten
    assert tls_fake.received == []


def test_web_pages_are_refused_unless_their_origin_is_listed(proxy, tls_fake):
    """A browser that uses the proxy puts an Origin on a web page's requests: those to api.openai.com are
    answered 403 by the proxy (the Mistral key is not lent to any web page), the CORS preflight too, unless
    mistral_cors_origins lists the origin."""
    tls_fake.clear()
    url = OPENAI_DEFAULT + "/chat/completions"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    with httpx.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=mitm_ca(proxy)), timeout=30) as c:
        for origin in ("https://evil.example", "null"):
            r = c.post(url, json=body, headers={"origin": origin, "authorization": f"Bearer {CLIENT_KEY}"})
            assert r.status_code == 403, r.text
            error = r.json()["error"]
            assert error["code"] == "origin_not_allowed" and "mistral_cors_origins" in error["message"]
            assert c.options(url, headers={"origin": origin, **preflight}).status_code == 403
        assert tls_fake.received == []  # nothing sent
        ok = c.options(url, headers={"origin": WEB_APP, **preflight})
        assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == WEB_APP
        r = c.post(url, json=body, headers={"origin": WEB_APP, "authorization": f"Bearer {CLIENT_KEY}"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == WEB_APP
    assert models_sent(tls_fake.received) == [("/v1/chat/completions", "mistral-medium-latest")]
    only_mistral_key(tls_fake.received)


# --- openai-node -----------------------------------------------------------------------------------------

NODE_JOBS = {
    "chat": ("openai-create", "gpt-4o", "Hi", {}),
    "stream": ("openai-stream", "gpt-4o-mini", "Hi", {}),
    "tools": ("openai-create", "gpt-4.1", "Please call every tool.", {"tools": "pair"}),
    "embeddings": ("openai-embeddings", "text-embedding-3-small", "hello", {}),
    "responses": ("openai-responses", "gpt-4o", "Hi", {}),
    "responses-stream": ("openai-responses-stream", "gpt-4.1-mini", "Hi", {}),
    "models": ("openai-models", "gpt-4o", "-", {}),
    "images": ("openai-images", "dall-e-3", "a cat", {}),
}


@pytest.fixture(scope="module")
def node_seen(proxy, tls_fake):
    """(what each openai-node job saw, the requests the fake received meanwhile): one clients.mjs --batch
    run with the default base URL, HTTPS_PROXY and NODE_EXTRA_CA_CERTS."""
    missing = node_missing()
    if missing:
        if IN_CI:
            pytest.fail(f"{missing} (CI=true: not skipped)", pytrace=False)
        pytest.skip(missing)
    env = _base_env()
    env.update(HTTPS_PROXY=proxy.url, NODE_EXTRA_CA_CERTS=mitm_ca(proxy))
    jobs = "".join(
        json.dumps({"id": key, "scenario": s, "model": m, "prompt": p, "options": {"apiKey": NODE_CLIENT_KEY, **o}})
        + "\n"
        for key, (s, m, p, o) in NODE_JOBS.items()
    )
    tls_fake.clear()
    proc = subprocess.run(
        [NODE, "clients.mjs", "--batch", "default"],
        input=jobs,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(NODE_DIR),
        env=env,
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            results[data.pop("id")] = data
    assert proc.returncode == 0 and set(results) == set(NODE_JOBS), (
        f"clients.mjs --batch exited {proc.returncode} with {sorted(results)}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return results, tls_fake.received


def node_result(node_seen, key: str) -> tuple[dict, str]:
    result = node_seen[0][key]
    return result, f"{key}: the client saw\n{json.dumps(result, indent=1)[:3000]}"


@pytest.mark.parametrize("key", ["chat", "stream", "tools", "responses", "responses-stream"])
def test_node_chat_and_responses(node_seen, key):
    result, message = node_result(node_seen, key)
    assert result["error"] is None, message
    if key == "tools":
        assert [c["name"] for c in result["toolCalls"]] == ["get_weather", "get_forecast"], message
        assert all(c["type"] == "function" and c["id"] for c in result["toolCalls"]), message
        assert result["finishReason"] == "tool_calls", message
    else:
        assert result["text"] == (STREAM_TEXT if "stream" in key else "ok"), message
    if key.startswith("responses"):
        assert result["baseURL"] == OPENAI_DEFAULT and result["status"] == "completed", message


def test_node_embeddings(node_seen):
    result, message = node_result(node_seen, "embeddings")
    assert result["error"] is None, message
    assert result["baseURL"] == OPENAI_DEFAULT, message
    assert result["dimensions"] == [8, 8] and result["finite"], message


def test_node_model_list_and_retrieve(node_seen):
    result, message = node_result(node_seen, "models")
    assert result["error"] is None, message
    assert {"mistral-medium-latest", "mistral-embed", "gpt-4o", "gpt-4o-mini", "text-embedding-3-small"} <= set(
        result["models"]
    ), message
    assert result["retrieved"]["id"] == "gpt-4o", message
    assert result["retrieved"]["mistral_model"] == "mistral-medium-latest", message


def test_node_images_is_a_local_404(node_seen):
    result, message = node_result(node_seen, "images")
    error = result["error"]
    assert error is not None and error["status"] == 404 and error["class"] == "NotFoundError", message
    assert "no counterpart at Mistral" in error["message"] and error["code"] == "unknown_url", message


def test_node_requests_at_the_fake(node_seen):
    """What the batch sent: each model mapped, the Mistral key only, nothing for the image request."""
    records = node_seen[1]
    assert collections.Counter(models_sent(records)) == collections.Counter(
        {
            ("/v1/chat/completions", "mistral-medium-latest"): 3,  # chat (gpt-4o), tools (gpt-4.1), responses (gpt-4o)
            ("/v1/chat/completions", "mistral-small-latest"): 2,  # stream (gpt-4o-mini), responses-stream
            ("/v1/embeddings", "mistral-embed"): 1,
            ("/v1/models", None): 1,  # the list; the retrieve is answered locally
        }
    )
    only_mistral_key(records)


# --- other options ---------------------------------------------------------------------------------------


def test_user_map_wins_over_the_default(mitmdump, tls_fake, upstream_ca, app):
    p = mitmdump(
        *redirect_args(tls_fake.url, upstream_ca, "--set", "mistral_model_map=gpt-4o=mistral-large-latest"),
        env=proxy_env(),
    )
    tls_fake.clear()
    client = app(p)
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4o-2024-08-06"):
        assert (
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
            .choices[0]
            .message.content
            == "ok"
        )
    assert [m for _, m in models_sent(tls_fake.received)] == [
        "mistral-large-latest",  # the user's entry
        "mistral-small-latest",  # the built-in map still applies to the names the user did not map
        "mistral-medium-latest",  # (the user's entry is an exact name: the default glob gpt-4o* still applies)
    ]
    one = client.models.retrieve("gpt-4o")
    assert "mistral-large-latest" in one.owned_by
    only_mistral_key(tls_fake.received)


def test_api_openai_com_not_decrypted_without_the_option(mitmdump, tls_fake, app):
    """Without mistral_redirect_openai, api.openai.com is tunnelled: a client that trusts only mitmproxy's CA
    never gets an HTTP answer (offline the tunnel cannot open; online the client sees OpenAI's own certificate
    and refuses it). Were it intercepted, mitmproxy would answer it (502 when OpenAI cannot be reached)."""
    p = mitmdump(
        "--set",
        "connection_strategy=lazy",
        "--set",
        "flow_detail=2",
        "--set",
        "termlog_verbosity=debug",
        env=proxy_env(),
    )
    line = p.wait_for(r"intercepting TLS only for (.*); every other host")
    assert line and line.group(1) == "api.mistral.ai, codestral.mistral.ai"
    tls_fake.clear()
    client = app(p)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert p.wait_for(r"client disconnect", timeout=10)
    time.sleep(0.3)
    assert "https://api.openai.com" not in p.output  # no request line: nothing was decrypted
    assert CLIENT_KEY not in p.output and MISTRAL_KEY not in p.output
    assert tls_fake.received == []


# --- logs and saved flows --------------------------------------------------------------------------------


def test_no_key_in_any_log_line(proxy, tls_fake, app):
    """termlog_verbosity=debug, flow_detail=4: neither the Mistral key nor a client's key is printed, also
    where a client puts the Mistral key in a body (only its value can tell it there). Checks the output of
    every request the module's proxy has served so far."""
    client = app(proxy)
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"my key is {MISTRAL_KEY}; api_key={CLIENT_KEY}"}], seed=1
    )
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="dall-e-3", prompt="a cat")
    with pytest.raises(openai.AuthenticationError):  # Mistral answers 401
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], extra_headers={"x-fake-error": "401-message"}
        )
    assert proxy.wait_for(r"images/generations .*answered 404")
    assert proxy.wait_for(r"<< 401 Unauthorized")
    time.sleep(0.5)  # (the request log lines are written in batches)
    out = proxy.output
    assert "[MISTRAL_API_KEY]" in out  # the body's copy, redacted by value
    for secret in (MISTRAL_KEY, CLIENT_KEY, NODE_CLIENT_KEY, OTHER_KEY, MISTRAL_KEY[8:30], CLIENT_KEY[8:30]):
        assert secret not in out, secret
    no_addon_error(out)


def read_flows(path: Path) -> list:
    with path.open("rb") as f:
        return list(mitmio.FlowReader(f).stream())


def test_saved_flows_hold_the_placeholder(mitmdump, tls_fake, upstream_ca, app, tmp_path):
    """-w: every flow that was sent to the target holds `Bearer [MISTRAL_API_KEY]`; the key is nowhere in
    the file; the flows answered by the proxy itself hold no Mistral key either."""
    saved = tmp_path / "flows.mitm"
    p = mitmdump(
        *redirect_args(
            tls_fake.url, upstream_ca, "--set", "termlog_verbosity=debug", "--set", "flow_detail=4", "-w", str(saved)
        ),
        env=proxy_env(),
    )
    tls_fake.clear()
    client = app(p)
    hi = [{"role": "user", "content": "Hi"}]
    client.chat.completions.create(model="gpt-4o", messages=hi)
    assert (
        "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(model="gpt-4o", messages=hi, stream=True)
            if c.choices
        )
        == STREAM_TEXT
    )
    client.responses.create(model="gpt-4o", input="Hi")
    list(client.responses.create(model="gpt-4o", input="Hi", stream=True))
    client.embeddings.create(model="text-embedding-3-small", input="a")
    list(client.models.list())
    client.models.retrieve("gpt-4o")
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="dall-e-3", prompt="a cat")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o", messages=hi, extra_headers={"x-fake-error": "401-message"})
    client.close()
    assert len(tls_fake.received) == 7
    p.stop()
    data = saved.read_bytes()
    assert MISTRAL_KEY.encode() not in data
    flows = read_flows(saved)
    assert len(flows) == 9
    sent = [f for f in flows if f.request.host == "localhost"]
    assert len(sent) == 7
    for f in sent:
        assert f.request.headers.get_all("authorization") == [PLACEHOLDER], f.request.path
        assert f.request.port == tls_fake.port
    local = [f for f in flows if f.request.host == "api.openai.com"]
    assert sorted(f.request.path for f in local) == ["/v1/images/generations", "/v1/models/gpt-4o"]
    assert MISTRAL_KEY not in p.output
    no_addon_error(p.output)


class _Blackhole:
    """A plain-HTTP redirect target that reads each request's head, then closes the connection without an
    answer (x-test: drop) or keeps it open (x-test: hang). .heads: the request heads received."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.heads: list[bytes] = []
        self.held: list[socket.socket] = []
        self.got = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            piece = conn.recv(65536)
            if not piece:
                break
            head += piece
        self.heads.append(head)
        self.got.set()
        if b"x-test: hang" in head.lower():
            self.held.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_saved_flows_of_failed_and_unfinished_requests_hold_no_key(mitmdump, app, tmp_path):
    """-w: a request whose target closed the connection without an answer (mitmproxy's error hook), and one
    still waiting for its answer when mitmdump stops (written by mitmproxy at shutdown): both were sent
    with the key, and both are saved with the placeholder."""
    target = _Blackhole()
    saved = tmp_path / "flows.mitm"
    try:
        p = mitmdump(
            "--set",
            "mistral_redirect_openai=true",
            "--set",
            f"mistral_redirect_to=http://127.0.0.1:{target.port}",
            "--set",
            "connection_strategy=lazy",
            "--set",
            "termlog_verbosity=debug",
            "--set",
            "flow_detail=4",
            "-w",
            str(saved),
            env=proxy_env(),
        )
        client = app(p)
        hi = [{"role": "user", "content": "Hi"}]
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="gpt-4o", messages=hi, extra_headers={"x-test": "drop"})
        assert info.value.status_code == 502
        target.got.clear()
        outcome: list = []

        def wait_for_answer() -> None:
            try:
                outcome.append(
                    client.chat.completions.create(model="gpt-4o", messages=hi, extra_headers={"x-test": "hang"})
                )
            except Exception as e:  # (mitmdump stops before the answer: the connection is closed)
                outcome.append(e)

        waiting = threading.Thread(target=wait_for_answer, daemon=True)
        waiting.start()
        assert target.got.wait(20)
        assert len(target.heads) == 2
        assert all(f"authorization: Bearer {MISTRAL_KEY}".encode() in h for h in target.heads)  # sent with the key
        time.sleep(0.3)
        p.stop()
        waiting.join(10)
    finally:
        target.close()
    data = saved.read_bytes()
    flows = {f.request.headers.get("x-test"): f for f in read_flows(saved)}
    assert sorted(flows) == ["drop", "hang"]
    assert flows["drop"].error is not None and flows["hang"].response is None
    assert outcome and isinstance(outcome[0], openai.APIConnectionError)
    for f in flows.values():
        assert f.request.headers.get_all("authorization") == [PLACEHOLDER], f.request.headers.get("x-test")
    assert MISTRAL_KEY.encode() not in data
    assert MISTRAL_KEY not in p.output
    no_addon_error(p.output)
