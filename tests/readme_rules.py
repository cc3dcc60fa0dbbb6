"""The README's rule table, generated from :mod:`migrate.rules` (the single source).

``python tests/readme_rules.py --write`` rewrites the table between the RULES markers;
``tests/test_readme.py`` fails when the README and the catalogue disagree.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from migrate.rules import RULES

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- RULES:BEGIN -->"
END = "<!-- RULES:END -->"


def table() -> str:
    lines = [
        BEGIN,
        "### Rule ids",
        "",
        "Stable once released; a new check gets a new id. The kind says what an `error` of the",
        "rule does: `validation` makes the image invalid, `producer` and `target` make a check",
        "incompatible, `migration` refuses a migration, `gate` fails a gate pair, `usage` and",
        "`tool` are errors of the command line or the tool itself.",
        "",
        "| rule | name | kind | meaning |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{r.id}` | {r.name} | {r.kind.value} | {r.summary} |" for r in RULES.values()]
    lines.append(END)
    return "\n".join(lines)


def current() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index(BEGIN):text.index(END) + len(END)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the README's table")
    if parser.parse_args().write:
        text = README.read_text(encoding="utf-8")
        README.write_text(text.replace(current(), table()), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
