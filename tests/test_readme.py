"""The README stays true: its rule table is the catalogue, its test command is CI's."""

from __future__ import annotations

from pathlib import Path

import pytest
from readme_rules import README, current, table

ROOT = README.parent


def test_rule_table_matches_the_catalogue() -> None:
    assert current() == table(), "run: python tests/readme_rules.py --write"


def test_ci_runs_the_readme_test_command() -> None:
    readme = README.read_text(encoding="utf-8")
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    test_command = block[1].split("&& ", 2)[2]  # after creating and activating the venv
    assert test_command == "pip install '.[test]' && pytest"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pip install --quiet '.[test]' && pytest" in ci


def test_changelog_has_an_unreleased_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog.startswith("# Changelog")
    assert "## [Unreleased]" in changelog or "## [0.1.0]" in changelog


def test_python_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's API example is executed as written (in a scratch directory)."""
    readme = README.read_text(encoding="utf-8")
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})  # our own documentation
    assert (tmp_path / "vm.bhyve").is_file()
