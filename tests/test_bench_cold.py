"""bench/cold.py, the in-process A/B harness of the addon's per-request cost: it runs the addon's hook chain
on the benchmark's request and reports a figure per checkout (a tool for developers; not a benchmark here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cold_harness_reports_the_chain_for_each_checkout_given():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cold.py"), "--rounds", "1", "--flows", "5", str(ROOT), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    rows = [line for line in out.splitlines() if line.strip()]
    assert len(rows) == 1  # the same checkout twice is one row, with both runs
    m = re.fullmatch(r"\s*([\d.]+) us per flow \(runs: ([\d.]+), ([\d.]+)\)  (.+)", rows[0])
    assert m and float(m.group(1)) > 0 and Path(m.group(4)) == ROOT


def test_cold_harness_refuses_a_chain_that_did_not_rewrite(tmp_path):
    (tmp_path / "addon.py").write_text(  # an addon that does nothing: the measure would be meaningless
        "class Nothing:\n"
        "    def running(self): pass\n"
        "    def done(self): pass\n"
        "    def requestheaders(self, flow): pass\n"
        "    def request(self, flow): pass\n"
        "    def responseheaders(self, flow): pass\n"
        "    def response(self, flow): pass\n"
        "def build():\n    return Nothing()\n"
    )
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cold.py"), "--worker", str(tmp_path), "--flows", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode != 0 and "not rewritten" in run.stderr
