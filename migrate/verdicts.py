"""Verdicts, their precedence and the exit status each maps to (FORMAT.md 5-6, CLI.md)."""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    NATIVE = "native"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    LOSSY = "lossy"
    INCOMPATIBLE = "incompatible"
    INVALID = "invalid"

    @property
    def rank(self) -> int:
        """Higher is worse: native < upgrade = downgrade < lossy < incompatible < invalid."""
        return _RANK[self]

    @property
    def exit_status(self) -> int:
        return _EXIT[self]


_RANK = {
    Verdict.NATIVE: 0,
    Verdict.UPGRADE: 1,
    Verdict.DOWNGRADE: 1,
    Verdict.LOSSY: 2,
    Verdict.INCOMPATIBLE: 3,
    Verdict.INVALID: 4,
}

_EXIT = {
    Verdict.NATIVE: 0,
    Verdict.UPGRADE: 10,
    Verdict.DOWNGRADE: 11,
    Verdict.LOSSY: 12,
    Verdict.INCOMPATIBLE: 20,
    Verdict.INVALID: 30,
}

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_INTERPRETED = 20
EXIT_INVALID = 30
