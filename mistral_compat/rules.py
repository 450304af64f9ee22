"""The rules in force: built-in (rules.json, generated from Mistral's OpenAPI spec) or from a spec file.

This is the one place that knows where rules come from and how a request path names an endpoint.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from . import schema, spec

BUILTIN = Path(__file__).with_name("rules.json")


class Rules:
    """Compiled rules: which endpoint a path is, and the node that repairs its body."""

    def __init__(self, rules: dict, fallback: "Rules | None" = None) -> None:
        self.source = rules.get("source", "")
        self.endpoints: dict[str, schema.Node] = schema.compile_rules(rules)
        # endpoints this spec lacks keep the fallback's (built-in) rules
        self.from_fallback = sorted(set(fallback.endpoints) - set(self.endpoints)) if fallback else []
        if fallback:
            self.endpoints = {**{k: fallback.endpoints[k] for k in self.from_fallback}, **self.endpoints}
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


def from_spec_file(path: str | Path) -> tuple[Rules, list[str]]:
    """Rules from a Mistral OpenAPI file (YAML or JSON), with the built-in rules for whatever it lacks.

    Returns (rules, problems); raises spec.SpecError with a readable message when the file is of no use.
    """
    try:
        doc = spec.load_spec_file(path)
    except OSError as e:
        raise spec.SpecError(f"cannot read {path}: {e.strerror or e}") from None
    except spec.SpecError:
        raise
    except Exception as e:  # YAML/JSON/encoding errors of every kind
        raise spec.SpecError(f"{path} is not valid YAML or JSON: {str(e).splitlines()[0] if str(e) else e}") from None
    rules, problems = spec.compile_spec(doc, source=str(path))
    if not rules["endpoints"]:
        raise spec.SpecError(f"{path} describes none of the endpoints mistral-compat rewrites: "
                             + "; ".join(problems))
    try:
        return Rules(rules, fallback=builtin()), problems
    except (ValueError, KeyError, TypeError) as e:
        raise spec.SpecError(f"{path} gave rules that cannot be used: {e}") from None
