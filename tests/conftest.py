"""Shared fixtures: a strict fake Mistral upstream and a real `mitmdump -s addon.py` subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_mistral import FakeMistral  # noqa: E402

MITMDUMP = str(Path(sys.executable).with_name("mitmdump"))
_LISTEN = re.compile(r"listening at (?:http://)?127\.0\.0\.1:(\d+)")


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


class Mitmdump:
    """A running `mitmdump -s addon.py` on 127.0.0.1; .port, .url, .output (all lines so far)."""

    def __init__(self, confdir: Path, *args: str, env: dict | None = None) -> None:
        """env: the process's environment (default: this one's, without *_proxy variables)."""
        self.confdir = confdir
        quiet = [] if any(a.startswith("flow_detail=") for a in args) else ["--set", "flow_detail=0"]
        self.cmd = [
            MITMDUMP,
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--set",
            f"confdir={confdir}",
            *quiet,
            "-s",
            str(ROOT / "addon.py"),
            *args,
        ]
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=clean_env() if env is None else env,
            cwd=str(ROOT),
            bufsize=1,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        m = self.wait_for(_LISTEN, timeout=30)
        if m is None:
            self.stop()
            raise RuntimeError("mitmdump did not start:\n" + self.output)
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern, timeout: float = 10.0):
        """Wait until a line matches pattern (a regex or compiled regex); return the match or None."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and seen == len(self.lines)):
                    return None
                self._cond.wait(min(left, 0.2))

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.05)
        return self.proc.returncode


def dead_port() -> int:
    """A loopback port nothing listens on (an unreachable upstream)."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def module_reverse(module_fake, tmp_path_factory):
    """One reverse proxy (connection_strategy=lazy) in front of module_fake, for a whole test module."""
    p = Mitmdump(
        tmp_path_factory.mktemp("mitm"), "--mode", f"reverse:{module_fake.url}", "--set", "connection_strategy=lazy"
    )
    yield p
    p.stop()


@pytest.fixture
def fake():
    with FakeMistral() as f:
        yield f


@pytest.fixture(scope="module")
def module_fake():
    with FakeMistral() as f:
        yield f


@pytest.fixture
def mitmdump(tmp_path_factory):
    """Factory: mitmdump(*args, env=None) starts a proxy; all are stopped at the end of the test."""
    started: list[Mitmdump] = []

    def start(*args: str, env: dict | None = None) -> Mitmdump:
        p = Mitmdump(tmp_path_factory.mktemp("mitm"), *args, env=env)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
