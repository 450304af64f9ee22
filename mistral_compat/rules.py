"""The rules in force: built-in (rules.json, generated from Mistral's OpenAPI spec) or from a spec file.

This is the one place that knows where rules come from and how a request path names an endpoint.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from . import schema

BUILTIN = Path(__file__).with_name("rules.json")


class Rules:
    """Compiled rules: which endpoint a path is, and the node that repairs its body."""

    def __init__(self, rules: dict) -> None:
        self.source = rules.get("source", "")
        self.endpoints: dict[str, schema.Node] = schema.compile_rules(rules)
        # longest suffix first, so chat/moderations wins over moderations
        names = sorted(self.endpoints, key=len, reverse=True)
        self._path = re.compile(
            r"(?:^|/)v1/(" + "|".join(re.escape(n) for n in names) + r")/?$"
        ) if names else re.compile(r"(?!)")

    def endpoint(self, path: str) -> str | None:
        """'/openai/v1/chat/completions?x=1' -> 'chat/completions'; None if not a rewritten endpoint."""
        path = path.split("?", 1)[0].split("#", 1)[0]
        m = self._path.search(path)
        return m.group(1) if m else None


@lru_cache(maxsize=1)
def builtin() -> Rules:
    return Rules(json.loads(BUILTIN.read_text(encoding="utf-8")))
