"""Shared fixtures: run the CLI in-process and capture what it prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate.cli import main

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class CliResult:
    status: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``bhyvesnap ARGS`` in this process; returns exit status, stdout and stderr."""

    def run(*args: str) -> CliResult:
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse usage errors and --help/--version
            status = exc.code if isinstance(exc.code, int) else 2
        captured = capsys.readouterr()
        return CliResult(status, captured.out, captured.err)

    return run
