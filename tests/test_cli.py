"""The thin CLI: dispatch, --help of every command, error handling, lazy imports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from conftest import CliResult

from migrate import __version__, cli
from migrate.findings import UsageError, error


def test_version(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("--version")
    assert result.status == 0
    assert result.stdout.strip() == f"bhyvesnap {__version__}"


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_explains_itself_with_an_example(
        run_cli: Callable[..., CliResult], command: str) -> None:
    result = run_cli(command, "--help")
    assert result.status == 0
    assert "example" in result.stdout
    assert f"bhyvesnap {command}" in result.stdout


def test_unknown_command_is_a_usage_error(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("frobnicate")
    assert result.status == 2
    assert "invalid choice" in result.stderr


def test_internal_error_is_one_line_without_traceback(
        run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch) -> None:
    module = cli._command_module("targets")

    def explode(args: Any) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "run", explode)
    result = run_cli("targets")
    assert result.status == 2
    assert "Traceback" not in result.stderr
    assert "internal error (RuntimeError: boom) [BHS-X005]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_tool_errors_print_the_finding(
        run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch) -> None:
    module = cli._command_module("targets")

    def refuse(args: Any) -> int:
        raise UsageError(error("BHS-X001", "x.json", "/a", "nope"))

    monkeypatch.setattr(module, "run", refuse)
    result = run_cli("targets")
    assert result.status == 2
    assert result.stderr.strip() == "bhyvesnap: x.json:/a: nope [BHS-X001]"


def test_python_dash_m_and_lazy_imports() -> None:
    """``python -m migrate info --help`` works and imports neither the gate nor the registry."""
    code = ("import sys, runpy; sys.argv=['migrate','info','--help'];\n"
            "try:\n runpy.run_module('migrate', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('migrate.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = out.strip().splitlines()[-1]
    assert "migrate.commands.info" in loaded
    for heavy in ("migrate.gate", "migrate.registry", "migrate.checker", "migrate.corpus"):
        assert heavy not in loaded
