"""Verdict precedence and exit statuses (FORMAT.md 5-6, CLI.md)."""

from __future__ import annotations

from migrate.verdicts import Verdict


def test_exit_statuses_are_the_documented_ones() -> None:
    assert {v.value: v.exit_status for v in Verdict} == {
        "native": 0, "upgrade": 10, "downgrade": 11, "lossy": 12, "incompatible": 20,
        "invalid": 30}


def test_precedence() -> None:
    order = [Verdict.NATIVE, Verdict.UPGRADE, Verdict.LOSSY, Verdict.INCOMPATIBLE,
             Verdict.INVALID]
    assert [v.rank for v in order] == sorted(v.rank for v in order)
    assert Verdict.UPGRADE.rank == Verdict.DOWNGRADE.rank
