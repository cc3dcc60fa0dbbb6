"""The rule catalogue: well-formed ids, and every rule exercised by some test."""

from __future__ import annotations

import re
from pathlib import Path

from migrate.rules import RULES

TESTS = Path(__file__).parent


def test_ids_are_well_formed_and_names_unique() -> None:
    assert all(re.fullmatch(r"BHS-[NLSCPTMGX]\d{3}", rule) for rule in RULES)
    names = [rule.name for rule in RULES.values()]
    assert len(names) == len(set(names))
    assert all(rule.summary and rule.id == key for key, rule in RULES.items())


def test_every_rule_is_triggered_by_some_test() -> None:
    """A rule nobody can trigger is dead; one nobody tests can silently change meaning."""
    text = "".join(path.read_text(encoding="utf-8") for path in TESTS.glob("test_*.py")
                   if path.name not in ("test_rules.py", "test_readme.py"))
    untested = sorted(rule for rule in RULES if rule not in text)
    assert not untested, f"rules without a test: {untested}"
