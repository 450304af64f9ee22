#!/usr/bin/env python3
"""Generate mistral_compat/rules.json from Mistral's OpenAPI spec.

    python scripts/gen_rules.py path/to/openapi.yaml [-o mistral_compat/rules.json] [--check]

--check compares instead of writing and exits 1 when the file differs (used by .ci/run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mistral_compat import spec  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "mistral_compat" / "rules.json"


def render(spec_path: Path) -> str:
    doc = spec.load_spec_file(spec_path)
    digest = spec.spec_digest(spec_path.read_bytes())
    rules, problems = spec.compile_spec(doc, source=f"{spec_path.name} sha256:{digest}")
    if problems:
        raise SystemExit("spec lacks endpoints:\n  " + "\n  ".join(problems))
    return json.dumps(rules, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path, help="Mistral OpenAPI file (YAML or JSON)")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only compare with --out")
    args = ap.parse_args(argv)
    text = render(args.spec)
    if args.check:
        if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is not what {args.spec} generates; run scripts/gen_rules.py", file=sys.stderr)
            return 1
        print(f"{args.out} matches {args.spec}")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
