"""Request bodies captured from real clients (tests/fixtures/clients, see its README)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "clients"


def load_all() -> list[dict]:
    out = []
    for p in sorted(FIXTURES.glob("*.json")):
        fx = json.loads(p.read_text(encoding="utf-8"))
        fx["name"] = p.stem
        fx["raw"] = base64.b64decode(fx["body_b64"]) if "body_b64" in fx else fx.get("body", "").encode("utf-8")
        out.append(fx)
    return out
