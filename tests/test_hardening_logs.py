"""Hardening of what the proxy prints (issue 13, findings 1, 3, 4, 5, 6 and 9): whatever a client sends, the
redaction stays linear, no key reaches the terminal or the log (colours, flow_detail 1-4, proxy_debug, the
debug dump), no client text forges a line or reaches the terminal as a control sequence, every line and the
summary stay bounded, and so does the summary's memory.

The end-to-end tests read a real mitmdump's raw output bytes (a pipe, or a pseudo-terminal where mitmdump
colours its output as in a real terminal)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
from conftest import MITMDUMP, ROOT, clean_env

from mistral_compat import redact, report
from mistral_compat.changes import Change

MASK = redact.MASK

_LISTEN = re.compile(rb"listening at (?:http://)?127\.0\.0\.1:(\d+)")
_CSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]")


class RawMitmdump:
    """A real `mitmdump -s addon.py` whose output is kept as raw bytes: through a pipe, or (tty=True) on a
    pseudo-terminal, where mitmdump colours header names, URLs and bodies as it does for a person."""

    def __init__(self, confdir: Path, *args: str, tty: bool = False) -> None:
        self.cmd = [
            MITMDUMP,
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--set",
            f"confdir={confdir}",
            "-s",
            str(ROOT / "addon.py"),
            *args,
        ]
        self.buf = bytearray()
        self._cond = threading.Condition()
        env = clean_env()
        if tty:
            import fcntl
            import pty
            import struct
            import termios

            master, slave = pty.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
            env["TERM"] = "xterm-256color"
            env.pop("NO_COLOR", None)
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=str(ROOT), close_fds=True
            )
            os.close(slave)
            self._fd = master
        else:
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(ROOT),
            )
            self._fd = self.proc.stdout.fileno()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        m = self.wait_for(_LISTEN, timeout=30)
        if m is None:
            self.stop()
            raise RuntimeError("mitmdump did not start:\n" + self.text)
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def _drain(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.2)
                if not ready:
                    if self.proc.poll() is not None:
                        ready, _, _ = select.select([self._fd], [], [], 0.2)
                        if not ready:
                            break
                    continue
                data = os.read(self._fd, 1 << 16)
            except OSError:  # a pty's master reads EIO once the child is gone
                break
            if not data:
                break
            with self._cond:
                self.buf += data
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def out(self) -> bytes:
        with self._cond:
            return bytes(self.buf)

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def wait_for(self, pattern: re.Pattern, timeout: float = 10.0):
        """Wait until the output (colour codes taken out) matches pattern, a compiled bytes regex."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                m = pattern.search(_CSI.sub(b"", bytes(self.buf)))
                if m or time.monotonic() > deadline or not self._reader.is_alive():
                    return m
                self._cond.wait(0.2)

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        if self._fd is not None and self.proc.stdout is None:
            os.close(self._fd)
            self._fd = None
        return self.proc.returncode


@pytest.fixture
def raw_mitmdump(tmp_path_factory):
    started: list[RawMitmdump] = []

    def start(*args: str, tty: bool = False) -> RawMitmdump:
        p = RawMitmdump(tmp_path_factory.mktemp("mitm"), *args, tty=tty)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def post(url: str, body, headers: dict | None = None, timeout: float = 30) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with httpx.Client(timeout=timeout) as c:
        return c.post(url, content=raw, headers={"content-type": "application/json", **(headers or {})})


CHAT = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "hi"}]}


# -- 1. redaction in linear time ------------------------------------------------------------------------

HOSTILE = {
    # the reported case: a dropped key name that is a newline, then "key" 33,000 times, then "!:"
    "table line 100 KB": "'\\n' + 'key' * 33_000 + '!:'",
    "table line 1 MB": "'\\n' + 'key' * 330_000 + '!:'",
    "query 100 KB": "'?' + 'key' * 33_000 + '!='",
    "query 1 MB": "'?' + 'key' * 330_000 + '!='",
    # guards for the patterns that came with the fix (the old code had none of these)
    "escaped lines 1 MB": "'key: x\\\\r\\\\n' * 100_000",
    "JSON pairs 1 MB": '\'"key": "x", \' * 80_000',
    "escaped quotes 1 MB": "'\"\\\\' * 500_000 + 'key:'",
    "coloured 1 MB": "'\\x1b[34mkey\\x1b[0m: x\\n' * 60_000",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_redaction_is_linear_on_hostile_text(case):
    """Each case in a fresh process with a deadline, so that the quadratic patterns fail in bounded time."""
    code = (
        f"import time; from mistral_compat.redact import redact_text; text = {HOSTILE[case]}; "
        f"t = time.process_time(); redact_text(text); print(time.process_time() - t)"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=20,
            env={**clean_env(), "PYTHONPATH": str(ROOT)},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: redaction took more than 20 s")
    assert done.returncode == 0, done.stderr
    seconds = float(done.stdout)
    print(f"{case}: {seconds:.3f} s CPU")
    assert seconds < 2.0, f"{case}: {seconds:.2f} s"


def test_hostile_key_does_not_stall_the_proxy(raw_mitmdump, fake):
    """One 100 KB body with one odd key must not hold mitmproxy's event loop (it held it 16 s)."""
    p = raw_mitmdump("--mode", f"reverse:{fake.url}", "--set", "flow_detail=1")
    body = dict(CHAT)
    body["\n" + "key" * 33_000 + "!:"] = 1
    cpu = p.cpu_seconds()
    assert post(p.url + "/v1/chat/completions", body).status_code == 200
    time.sleep(0.5)  # the log line is written (and redacted) 0.2 s after the request
    started = time.monotonic()
    with httpx.Client(timeout=10) as c:
        assert c.get(p.url + "/v1/models").status_code == 200
    waited = time.monotonic() - started
    assert p.wait_for(re.compile(rb"mistral-compat chat/completions .*dropped"), timeout=5)
    cpu = p.cpu_seconds() - cpu
    print(f"next request waited {waited:.3f} s; mitmdump CPU for both requests {cpu:.2f} s")
    assert waited < 2.0
    assert cpu < 3.0


# -- 3. keys on a real terminal (coloured output) --------------------------------------------------------

SECRETS = {
    name: f"zz{name.replace('_', '')}SECRET0123456789"
    for name in (
        "x_api_key",
        "api_key_header",
        "goog",
        "authorization",
        "bearer_tab",
        "cookie",
        "auth_token_header",
        "q_api_key",
        "q_api_key_pct",
        "q_access_token_pct",
        "q_key",
        "b_api_key",
        "b_private_key",
        "b_auth_value",
        "b_access_key",
        "b_key_value",
        "b_password",
        "b_client_secret",
        "u_api_key",
        "u_private_key",
        "u_auth_value",
        "u_key_list",
    )
}


def _send_secrets(url: str) -> None:
    """Secrets in headers, in the query (plain and percent-encoded names) and in bodies: one changed by the
    addon (its own view and debug dump), one it leaves alone (mitmproxy's own views)."""
    s = SECRETS
    headers = {
        "x-api-key": s["x_api_key"],
        "api-key": s["api_key_header"],
        "x-goog-api-key": s["goog"],
        "authorization": s["authorization"],
        "cookie": f"session={s['cookie']}",
        "x-auth-token": s["auth_token_header"],
        "user-agent": "SecretsClient/1.0",
    }
    query = (
        f"?api_key={s['q_api_key']}&api%5Fkey={s['q_api_key_pct']}&access%5Ftoken={s['q_access_token_pct']}"
        f"&key={s['q_key']}"
    )
    changed = {
        **CHAT,
        "user": "u",
        "api_key": s["b_api_key"],
        "private_key": [s["b_private_key"]],
        "auth": {"value": s["b_auth_value"]},
        "access_key": s["b_access_key"],
        "key": {"value": s["b_key_value"]},
        "nested": {"password": s["b_password"]},
        "client_secret": s["b_client_secret"],
    }
    assert post(url + "/v1/chat/completions" + query, changed, headers).status_code == 200
    assert post(url + "/v1/chat/completions", CHAT, {"authorization": f"Bearer\t{s['bearer_tab']}"}).status_code == 200
    unchanged = {
        "api_key": s["u_api_key"],
        "private_key": [s["u_private_key"]],
        "auth": {"value": s["u_auth_value"]},
        "key": [s["u_key_list"]],
        "model": "m",
    }
    post(url + "/v1/not-an-endpoint" + query, unchanged, headers)


def _leaks(out: bytes) -> list[str]:
    return [name for name, secret in SECRETS.items() if secret.encode() in out]


@pytest.mark.parametrize(
    "args",
    [
        ("--set", "flow_detail=2"),
        ("--set", "flow_detail=4", "--set", "termlog_verbosity=debug", "--set", "proxy_debug=true"),
    ],
    ids=["flow_detail=2", "flow_detail=4+debug"],
)
def test_no_key_on_a_coloured_terminal(raw_mitmdump, fake, args):
    if not hasattr(os, "openpty"):
        pytest.skip("no pseudo-terminals here")
    p = raw_mitmdump("--mode", f"reverse:{fake.url}", *args, tty=True)
    _send_secrets(p.url)
    assert p.wait_for(re.compile(rb"/v1/not-an-endpoint"), timeout=10)
    p.stop()
    out = p.out
    assert b"\x1b[" in out  # coloured, as on a terminal ...
    assert b"x-api-key" in out and MASK.encode() in out  # ... the headers printed ...
    assert _leaks(out) == []  # ... never a key


# -- 6. more secrets: any flow_detail, proxy_debug, the debug dump, percent-encoded names ----------------


@pytest.mark.parametrize("detail", [1, 2, 3, 4])
def test_no_key_at_any_flow_detail_with_debug_and_proxy_debug(raw_mitmdump, fake, detail):
    p = raw_mitmdump(
        "--mode",
        f"reverse:{fake.url}",
        "--set",
        f"flow_detail={detail}",
        "--set",
        "termlog_verbosity=debug",
        "--set",
        "proxy_debug=true",
    )
    _send_secrets(p.url)
    assert p.wait_for(re.compile(rb"sent by the client"), timeout=10)  # the debug dump was written
    assert p.wait_for(re.compile(rb"/v1/not-an-endpoint"), timeout=10)
    p.stop()
    out = p.out
    assert b"DataReceived" in out  # proxy_debug printed the raw bytes
    if detail >= 3:
        assert b'"model"' in out  # bodies were printed
    assert _leaks(out) == []


def test_redact_text_escaped_bytes_and_percent_encoded_names():
    raw = (
        "<< DataReceived(client, b'POST /v1/x?api%5Fkey=Q1SECRET HTTP/1.1\\r\\nHost: h\\r\\n"
        "Authorization: A1SECRET\\r\\napi-key: K1SECRET\\r\\nCookie: s=C1SECRET\\r\\nX-Auth-Token: T1SECRET\\r\\n"
        "x: Bearer\\tB1SECRET\\r\\n\\r\\n')"
    )
    out = redact.redact_text(raw)
    assert not re.search(r"[A-Z]\dSECRET", out), out
    assert "Host: h\\r\\n" in out  # other headers stay readable
    for text in (
        "GET /x?access%5Ftoken=SECRET&api%255Fkey=SECRET",
        "?a=1;key=SECRET",
        "url=https://x?key=SECRET",
        "    ..binary api_key=SECRET",
        "a=1,client_secret=SECRET",
    ):
        assert "SECRET" not in redact.redact_text(text), text
    # a JSON pair, pretty or compact, any value
    for text in (
        '    "api_key": "SECRET",',
        '{"private_key":["SECRET"]}',
        '"auth": {\n  "value": "SECRET"\n}',
        '"x-api-key": 12345678',
        '"session": null, "Password": "SECRET"',
    ):
        assert "SECRET" not in redact.redact_text(text) and "12345678" not in redact.redact_text(text), text
    assert redact.redact_text('"max_tokens": 100, "author": "me"') == '"max_tokens": 100, "author": "me"'


def test_table_lines_are_masked_on_every_line_as_a_multiline_pattern_would():
    """_mask_table_lines looks for a line's name from the newline before it (fast on kilobytes of log lines):
    the same result as `(?m)^name: value` on every line, in texts made of header-like pieces."""
    import random

    reference = re.compile(r"(?m)^([ \t]*([\w.-]+)[ \t]*:[ \t]*)([^\r\n]*)")
    rng = random.Random(5)
    pieces = ["x-api-key: abc", "  Authorization : Bearer x", "foo: bar", "\n", "\r\n", "token: ", "api_key:\tv"]
    pieces += [" : x", "a", ":", "\n\n", "key:", "Cookie: a=b", "\t\tsecret-thing: 5", "max_tokens: 5"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        assert redact._mask_table_lines(text) == reference.sub(redact._mask_table_line, text), repr(text)


def test_redact_json_masks_any_value_under_a_key_like_name():
    body = {
        "api_key": ["s1"],
        "auth": {"value": "s2"},
        "private_key": "s3",
        "access_key": 4,
        "key": {"value": "s5"},
        "X-Goog-Api-Key": "s6",
        "api%5Fkey": "s7",
        "client.secret": True,
        "sessionId": "s9",
        "max_tokens": 100,
        "usage": {"prompt_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 1}},
        "author": "me",
        "messages": [{"role": "user", "content": "hi"}],
    }
    out = redact.redact_json(body)
    for k in (
        "api_key",
        "auth",
        "private_key",
        "access_key",
        "key",
        "X-Goog-Api-Key",
        "api%5Fkey",
        "client.secret",
        "sessionId",
    ):
        assert out[k] == MASK, k
    assert out["max_tokens"] == 100 and out["usage"] == body["usage"] and out["author"] == "me"
    assert out["messages"] == body["messages"]


def test_debug_dump_masks_nested_secrets():
    original = json.dumps({**CHAT, "api_key": ["SECRET1"], "auth": {"value": "SECRET2"}}).encode()
    text = report.before_after(original, json.dumps(CHAT).encode(), [Change("dropped", "api_key")])
    assert "SECRET" not in text and '"api_key": "[REDACTED]"' in text


# -- 4. log and terminal injection ---------------------------------------------------------------------

FORGED = "\n[12:00:00.000] mistral-compat summary FORGED\x1b]0;pwned\x07\x1b[2J\x9b31m\u2028\x7f"
_BAD_BYTES = (b"\x1b", b"\x07", b"\x7f", b"\xc2\x9b", b"\xe2\x80\xa8")
_SUMMARY_HEAD = re.compile(r"(?m)^(\[[\d:.]+\] )?mistral-compat summary\r?\nclient +matched +changed +400 +answers")


def _forged_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"(\[[\d:.]+\] )?mistral-compat summary FORGED", line)]


def test_printable_escapes_and_cuts():
    assert redact.printable("OpenAI/Python 1.66.0") == "OpenAI/Python 1.66.0"
    out = redact.printable(FORGED + "\ud800")
    assert out.isprintable() and "\\n[12:00:00.000]" in out and "\\x1b]0;pwned\\x07" in out
    assert "\\x9b" in out and "\\u2028" in out and "\\ud800" in out and "\\x7f" in out
    long = redact.printable("k" * 1_048_576)
    assert long.endswith("...(1048576 chars)") and len(long) < 250
    middle = redact.printable("a" * 10_000 + "the reason", 600, tail=200)
    assert middle.endswith("the reason") and "...(10010 chars)..." in middle and len(middle) < 650


def test_report_lines_escape_client_text():
    changes = [
        Change("dropped", "x" + FORGED + "\ud800"),
        Change("tool_call_id", "messages[1].tool_calls[0].id", f"call{FORGED} -> Ab3dE5gH9"),
        Change("value", "tool_choice", f"allowed_tools -> 'auto', tools limited to a{FORGED}"),
    ]
    client = "UA" + FORGED
    texts = [
        report.log_line("chat/completions", client, changes),
        report.comment(changes),
        report.rejected_line("responses", client, 400, "tool_choice " + FORGED + " is not one of ..."),
        report.answer_line("/v1/x" + FORGED, client, ["note" + FORGED]),
        report.answer_comment(["n" + FORGED]),
        report.before_after(b"not json" + FORGED.encode("utf-8", "surrogatepass"), None, changes),
        report.before_after(
            json.dumps({"k" + FORGED: "v" + FORGED}, ensure_ascii=False).encode("utf-8", "surrogatepass"), None, changes
        ),
    ]
    s = report.Summary()
    s.matched(client)
    s.changed(client, changes)
    s.answered(client, ["note" + FORGED])
    texts.append(s.table())
    for text in texts:
        assert not any(c in text for c in "\x1b\x07\x7f\x9b\u2028\ud800"), text
        assert _forged_lines(text) == [], text
    for text in (texts[0], texts[2], texts[3]):  # the log lines: one line each
        assert "\n" not in text


def test_no_forged_line_or_control_sequence_reaches_the_output(raw_mitmdump, fake):
    p = raw_mitmdump("--mode", f"reverse:{fake.url}", "--set", "flow_detail=1")
    # a User-Agent with control bytes (sent raw: HTTP libraries refuse them)
    body = json.dumps({**CHAT, "user": "u"}).encode()
    ua = b"Evil" + FORGED.replace("\n", "").replace("\x07", "").encode() + b"\x85"
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"User-Agent: "
        + ua
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as sock:
        sock.sendall(request)
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    # a dropped key, a tool-call id, an allowed_tools name and an error message that repeats the client's value
    chat = {
        **CHAT,
        "bad" + FORGED: 1,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call" + FORGED, "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call" + FORGED, "content": "ok"},
        ],
    }
    assert post(p.url + "/v1/chat/completions", chat).status_code == 200
    responses = {
        "model": "m",
        "input": "hi",
        "tools": [{"type": "function", "name": "f", "parameters": {}}],
        "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f" + FORGED}]},
    }
    post(p.url + "/v1/responses", responses)
    post(p.url + "/v1/responses", {"model": "m", "input": "hi", "tool_choice": {"type": FORGED}})
    assert p.wait_for(re.compile(rb"answered 400"), timeout=10)
    assert p.stop() == 0
    out = p.out
    text = p.text
    # every line was written, the summary too ...
    assert _SUMMARY_HEAD.search(text), text[-3000:]
    assert "mistral-compat chat/completions [Evil[12:00:00.000] mistral-compat summary FORGED\\x1b]0;pwned" in text
    assert "dropped bad\\n[12:00:00.000] mistral-compat summary FORGED\\x1b]0;pwned\\x07" in text
    assert "tools limited to f\\n[12:00:00.000]" in text
    # ... but no line forged, and no control sequence reached the terminal
    assert _forged_lines(text) == []
    assert [b for b in _BAD_BYTES if b in out] == []


def test_lone_surrogate_does_not_silence_the_log(raw_mitmdump, fake):
    """A lone surrogate (a key name, or undecodable User-Agent bytes) made the log write fail: the request's
    line and the whole summary were lost."""
    p = raw_mitmdump("--mode", f"reverse:{fake.url}", "--set", "flow_detail=1")
    assert (
        post(p.url + "/v1/chat/completions", {**CHAT, "bad\ud800": 1}, {"user-agent": "Surrogate/1.0"}).status_code
        == 200
    )
    assert p.wait_for(re.compile(rb"\[Surrogate/1\.0\]: dropped bad\\ud800"), timeout=10)
    assert p.stop() == 0
    assert _SUMMARY_HEAD.search(p.text)
    assert b"Traceback" not in p.out


# -- 5. bounded log lines ------------------------------------------------------------------------------


def test_log_lines_and_summary_are_bounded(raw_mitmdump, fake):
    p = raw_mitmdump("--mode", f"reverse:{fake.url}", "--set", "flow_detail=1")
    huge_key = "k" * 1_048_576
    assert (
        post(p.url + "/v1/chat/completions", {**CHAT, huge_key: 1}, {"user-agent": "BigClient/1.0"}).status_code == 200
    )
    r = post(
        p.url + "/v1/responses",
        {"model": "m", "input": "hi", "tool_choice": "t" * 2 * 1_048_576},
        {"user-agent": "BigClient/1.0"},
    )
    assert r.status_code == 400
    many = {**CHAT, **{f"unknown_{i}": i for i in range(20_000)}}
    assert post(p.url + "/v1/chat/completions", many, {"user-agent": "BigClient/1.0"}).status_code == 200
    assert p.wait_for(re.compile(rb"answered 400"), timeout=10)
    time.sleep(0.5)
    assert p.stop() == 0
    out = p.out
    longest = max(len(line) for line in out.splitlines())
    print(f"output {len(out)} bytes, longest line {longest} bytes")
    assert longest < 5000
    assert len(out) < 100_000
    assert b"...(1048576 chars)" in out and b"chars)..." in out and b"more changes" in out
    assert _SUMMARY_HEAD.search(p.text)


def test_log_line_and_comment_are_bounded_in_process():
    changes = [Change("dropped", f"unknown_key_{i}") for i in range(100_000)]
    line = report.log_line("chat/completions", "c", changes)
    assert len(line) <= report.LINE_LIMIT + 40 and line.endswith("more changes")
    assert re.search(r"\.\.\. and \d+ more changes$", line)
    comment = report.comment(changes)
    assert len(comment.splitlines()) == report.COMMENT_CHANGES + 2 and "99900 more changes" in comment
    big = report.before_after(json.dumps({f"k{i}": "v" for i in range(100_000)}).encode(), None, changes[:1])
    assert len(big) < 2 * report.DUMP_LIMIT


# -- 9. the summary's memory -----------------------------------------------------------------------------


def test_summary_fields_per_client_are_bounded():
    s = report.Summary()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i in range(0, 200_000, 1000):
            s.changed("Client/1.0", [Change("dropped", f"key_{j}_{'x' * 40}") for j in range(i, i + 1000)])
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    print(f"summary memory after 200,000 distinct fields: {grown / 1e6:.2f} MB")
    fields = s.clients["Client/1.0"].fields
    assert len(fields) <= 201
    assert fields[report.OTHER_FIELDS] == 200_000 - (len(fields) - 1)
    assert grown < 1_000_000
    table = s.table()
    assert "(other fields)" in table and len(table) < 20_000


def test_an_object_under_a_token_name_is_masked_unless_it_is_usage_details():
    from mistral_compat.redact import MASK, redact_json

    out = redact_json(
        {"tokens": {"access": "sk-live-1"}, "max_tokens": 5, "usage": {"prompt_tokens_details": {"cached_tokens": 1}}}
    )
    assert out == {"tokens": MASK, "max_tokens": 5, "usage": {"prompt_tokens_details": {"cached_tokens": 1}}}
