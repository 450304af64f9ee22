"""The READMEs stay in step with each other and with the addon: every option in README.md's options table is
in README.zh-CN.md's and the other way round, every `mistral_*` option the addon registers is documented,
the two READMEs link each other at their tops, and their relative links lead somewhere."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_DELIMITER_ROW = re.compile(r"^\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?$")
_OPTION_CELL = re.compile(r"^`(mistral_[a-z0-9_]+)`$")
_CODE_SPAN = re.compile(r"`+([^`]*?)`+")


# --- Markdown, as much of it as these tests need ---------------------------------------------------------


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks (a fenced line becomes empty, so line
    positions are kept)."""
    out, fence = [], None
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            closing = m.group(1) if m else ""
            if closing[:1] == fence[0] and len(closing) >= len(fence) and line.strip() == closing:
                fence = None
            out.append("")
        else:
            out.append(line)
    return out


def split_row(line: str) -> list[str]:
    """The cells of a table row, as GitHub splits them: on every `|` not escaped with a backslash (also
    inside code spans); the outer pipes are optional."""
    line = line.strip()
    cells, cell, i = [], "", 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] == "|":
            cell += "|"
            i += 2
            continue
        if ch == "|":
            cells.append(cell)
            cell = ""
        else:
            cell += ch
        i += 1
    cells.append(cell)
    if line.startswith("|"):
        cells = cells[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        cells = cells[:-1]
    return [c.strip() for c in cells]


def tables(text: str) -> list[list[list[str]]]:
    """Every table in the text (outside code blocks), as its body rows (header and delimiter row left out),
    each row a list of cells."""
    lines = [ln.strip() for ln in prose_lines(text)]
    found, i = [], 0
    while i + 1 < len(lines):
        if "|" in lines[i] and "-" in lines[i + 1] and _DELIMITER_ROW.match(lines[i + 1]):
            rows, j = [], i + 2
            while j < len(lines) and lines[j] and "|" in lines[j]:
                rows.append(split_row(lines[j]))
                j += 1
            found.append(rows)
            i = j
        else:
            i += 1
    return found


def options_table(path: Path) -> dict[str, list[str]]:
    """The rows of the file's options table, by option name: the table with the most rows whose first cell
    is a backticked `mistral_*` name."""
    best: dict[str, list[str]] = {}
    for rows in tables(path.read_text(encoding="utf-8")):
        opts: dict[str, list[str]] = {}
        for cells in rows:
            m = _OPTION_CELL.match(cells[0].replace("**", "").strip()) if cells else None
            if m:
                assert m.group(1) not in opts, f"{path.name}: {m.group(1)} has two rows in the options table"
                opts[m.group(1)] = cells
        if len(opts) > len(best):
            best = opts
    assert best, f"{path.name}: no options table (rows whose first cell is a backticked mistral_* name)"
    return best


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation (backticks, brackets, full-width
    punctuation ...) dropped, spaces to hyphens; letters of any script, digits, `_` and `-` kept."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        m = re.match(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(text: str) -> list[str]:
    """The targets of the inline links in the given lines (code spans left out)."""
    targets = []
    for line in text.splitlines():
        line = _CODE_SPAN.sub("code", line)
        targets += re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line)
    return targets


def top(path: Path) -> str:
    """The part of a README before its first second-level heading."""
    lines = prose_lines(path.read_text(encoding="utf-8"))
    for n, line in enumerate(lines):
        if re.match(r"^ {0,3}##\s", line):
            return "\n".join(lines[:n])
    return "\n".join(lines)


def links_to(text: str, name: str) -> bool:
    return any(re.fullmatch(rf"(\./)?{re.escape(name)}(#.*)?", t) for t in links(text))


# --- the options the addon registers ------------------------------------------------------------------------

# loader.add_option(name="mistral_x", ...) in addon.py, or Option("mistral_x", ...) / Option(name="mistral_x", ...)
# in a table of options in mistral_compat/ that addon.py hands to add_option
_DECLARATION = re.compile(
    r"(?:\badd_option\(\s*name\s*=|\bOption\(\s*(?:name\s*=\s*)?)"
    r"\s*[\"'](mistral_[a-z0-9_]+)[\"']"
)


def registered_options() -> set[str]:
    """The `mistral_*` options addon.py registers, loaded in-process as mitmdump would load them. If
    addon.py cannot be loaded right now (it is being edited), the declarations are read from the source
    instead: the other test files report a broken addon.py; this one is about the documentation."""
    try:
        from mitmproxy.test import taddons

        import addon

        with taddons.context(addon.addons[0]) as tctx:
            names = {name for name in tctx.options.keys() if name.startswith("mistral_")}
        if names:
            return names
        raise RuntimeError("no mistral_* option registered")
    except Exception as e:  # noqa: BLE001 - any failure to load falls back to the source
        warnings.warn(
            f"addon.py could not be loaded ({type(e).__name__}: {e}); reading its options from the source", stacklevel=2
        )
    names: set[str] = set()
    for src in [ROOT / "addon.py", *sorted((ROOT / "mistral_compat").glob("*.py"))]:
        names |= set(_DECLARATION.findall(src.read_text(encoding="utf-8")))
    assert names, (
        "found no option declaration in addon.py or mistral_compat/ "
        '(loader.add_option(name="mistral_...") or Option("mistral_...", ...))'
    )
    return names


# --- the tests ---------------------------------------------------------------------------------------------


def test_the_table_parser():
    text = (
        "| option | type |\n|---|:--:|\n| `mistral_a` | x \\| y |\n| `mistral_b` | `p`, `q` |\n| other | z |\n\n"
        "```\n| `mistral_c` | in a code block |\n|---|---|\n| `mistral_d` | no |\n```\n"
        "opt | t\n--- | ---\n`mistral_e` | w\n"
    )
    assert tables(text) == [
        [["`mistral_a`", "x | y"], ["`mistral_b`", "`p`, `q`"], ["other", "z"]],
        [["`mistral_e`", "w"]],
    ]
    assert slug("Responses API clients (`/v1/responses`)") == "responses-api-clients-v1responses"
    assert slug("Using Mistral's free tier") == "using-mistrals-free-tier"
    assert slug("Mistral 免费档") == "mistral-免费档"


def test_every_readme_option_is_in_the_chinese_table():
    missing = sorted(set(options_table(README)) - set(options_table(README_ZH)))
    assert not missing, f"options in README.md's table but not in README.zh-CN.md's: {missing}"


def test_every_chinese_option_is_in_the_readme_table():
    missing = sorted(set(options_table(README_ZH)) - set(options_table(README)))
    assert not missing, f"options in README.zh-CN.md's table but not in README.md's: {missing}"


def test_types_and_defaults_are_written_alike():
    """The code in the type and default cells (`64m`, `false`, `auto`, ...) is the same in both tables;
    only the words around it are translated."""
    en, zh = options_table(README), options_table(README_ZH)
    for name in sorted(set(en) & set(zh)):
        for col, what in ((1, "type"), (2, "default")):
            spans = [
                set(_CODE_SPAN.findall(cells[col])) if len(cells) > col else set() for cells in (en[name], zh[name])
            ]
            assert spans[0] == spans[1], f"{name}: the {what} cells differ in code: {spans[0]} vs {spans[1]}"
        assert len(zh[name]) == len(en[name]), f"{name}: {len(en[name])} cells in README.md, {len(zh[name])} here"


def test_every_registered_option_is_documented():
    missing = sorted(registered_options() - set(options_table(README)))
    assert not missing, f"options addon.py registers that README.md's options table lacks: {missing}"


def test_every_documented_option_is_registered():
    stale = sorted(set(options_table(README)) - registered_options())
    assert not stale, f"options in README.md's table that addon.py does not register: {stale}"


@pytest.mark.parametrize("path", [README, README_ZH], ids=lambda p: p.name)
def test_every_option_named_is_in_the_table(path):
    """A `mistral_*` name anywhere in the text (a `--set`, a cross-reference) is one of the table's."""
    text = "\n".join(path.read_text(encoding="utf-8").splitlines())
    named = set(re.findall(r"(?<![\w/.-])(mistral_[a-z][a-z0-9_]*)", text)) - {"mistral_compat"}
    unknown = sorted(named - set(options_table(path)))
    assert not unknown, f"{path.name} names options its options table lacks: {unknown}"


def test_readme_links_the_chinese_readme_at_its_top():
    assert links_to(top(README), "README.zh-CN.md"), (
        "README.md has no link to README.zh-CN.md before its first '## ' heading"
    )


def test_chinese_readme_links_readme_at_its_top():
    assert links_to(top(README_ZH), "README.md"), (
        "README.zh-CN.md has no link to README.md before its first '## ' heading"
    )


@pytest.mark.parametrize("path", [README, README_ZH], ids=lambda p: p.name)
def test_relative_links_lead_somewhere(path):
    """Every relative link names a file that exists and, into a Markdown file, a heading it has."""
    text = "\n".join(prose_lines(path.read_text(encoding="utf-8")))
    broken = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading in {dest.name})")
    assert not broken, f"{path.name}: broken links: {broken}"
