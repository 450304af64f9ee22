"""A real headless Chromium: a page on one loopback origin streams a chat completion through the proxy
on another origin (reverse mode, strict fake upstream), with the headers openai-node sends."""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and not os.environ.get("MISTRAL_COMPAT_REQUIRE_BROWSER"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)", allow_module_level=True)
from playwright import sync_api as playwright_api  # noqa: E402

PAGE = """<!doctype html><meta charset="utf-8"><title>chat</title><pre id="out"></pre>
<script>
async function run(api) {
  const t0 = performance.now();
  const result = {events: [], times: []};
  try {
    const res = await fetch(api + "/v1/chat/completions", {
      method: "POST",
      headers: {
        "Authorization": "Bearer sk-browser-test",
        "Content-Type": "application/json",
        "X-Stainless-Lang": "js", "X-Stainless-Package-Version": "4.104.0", "X-Stainless-OS": "Linux",
        "X-Stainless-Arch": "x64", "X-Stainless-Runtime": "browser:chrome",
        "X-Stainless-Runtime-Version": "156.0.0", "X-Stainless-Retry-Count": "0",
        "X-Stainless-Timeout": "600",
      },
      body: JSON.stringify({model: "mistral-small-latest", stream: true, stream_options: {include_usage: true},
                            user: "browser-user", seed: 3,
                            messages: [{role: "developer", content: "Be brief."}, {role: "user", content: "Hi", name: "me"}]}),
    });
    result.status = res.status;
    result.requestId = res.headers.get("x-request-id");
    result.contentType = res.headers.get("content-type");
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let i;
      while ((i = buffer.indexOf("\\n\\n")) >= 0) {
        const event = buffer.slice(0, i); buffer = buffer.slice(i + 2);
        if (event.startsWith("data: ")) { result.events.push(event.slice(6)); result.times.push(performance.now() - t0); }
      }
    }
  } catch (e) { result.error = String(e); }
  document.getElementById("out").textContent = JSON.stringify(result);
}
run(new URLSearchParams(location.search).get("api"));
</script>"""


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def page_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
            ],
        )
        yield b
        b.close()


def run_page(browser, page_url, api):
    page = browser.new_page()
    try:
        page.goto(f"{page_url}/?api={api}")
        page.wait_for_function("document.getElementById('out').textContent.length > 0", timeout=30_000)
        return json.loads(page.inner_text("#out"))
    finally:
        page.close()


def test_browser_streams_through_proxy(browser, page_server, mitmdump, fake):
    fake.stream_events, fake.stream_interval = 5, 0.2
    p = mitmdump("--mode", f"reverse:{fake.url}", "--set", "connection_strategy=lazy")
    seen = run_page(browser, page_server, p.url)
    assert "error" not in seen, seen
    assert seen["status"] == 200
    assert seen["contentType"].startswith("text/event-stream")
    assert seen["requestId"]  # an exposed header the page can read
    assert seen["events"][-1] == "[DONE]"
    chunks = [json.loads(e) for e in seen["events"][:-1]]
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * len(chunks)
    assert len(chunks) >= 5
    times = seen["times"]
    assert times == sorted(times) and times[-1] - times[0] > 0.6 * 1000  # arrived spread out, not at once
    # the preflight was answered by the proxy; only the (rewritten) POST reached Mistral
    assert [r.method for r in fake.received] == ["POST"]
    sent = json.loads(fake.received[0].body)
    assert "stream_options" not in sent and "user" not in sent and sent["random_seed"] == 3
    assert sent["messages"][0]["role"] == "system" and "name" not in sent["messages"][1]


def test_browser_origin_not_listed_is_refused(browser, page_server, mitmdump, fake):
    p = mitmdump(
        "--mode",
        f"reverse:{fake.url}",
        "--set",
        "connection_strategy=lazy",
        "--set",
        "mistral_cors_origins=https://chat.example.com",
    )
    seen = run_page(browser, page_server, p.url)
    assert "Failed to fetch" in seen.get("error", ""), seen
    assert fake.received == []  # the browser stopped at the preflight
