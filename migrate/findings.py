"""Findings: every problem, warning or reason the tool reports is one immutable record.

Modelled on QEMU's vmstate-static-checker: a finding is data (rule id, severity, where, what,
what to do), so the CLI, the JSON output, the gate and the Python API all speak the same shape
(../shared/spec/CLI.md, "Findings"). Code never raises bare strings: it raises
:class:`BhyvesnapError` carrying the finding, so a caller always learns the stable rule id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from migrate.rules import RULES, RuleKind

Location = int | str | None
"""A byte offset (int), a JSON pointer such as ``/sections/memory/size`` (str), or unknown."""


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One located, explained problem; serialises to the JSON record of CLI.md."""

    rule: str
    severity: Severity
    file: str
    location: Location
    message: str
    remedy: str | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"finding uses unregistered rule id {self.rule!r}")

    @property
    def kind(self) -> RuleKind:
        """Whether the rule is a validation, target, producer, usage or tool rule."""
        return RULES[self.rule].kind

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "file": self.file,
            "location": self.location,
            "message": self.message,
            "remedy": self.remedy,
        }

    def one_line(self) -> str:
        """``file:location: message [rule]``, the form every error message on stderr takes."""
        where = self.file if self.location is None else f"{self.file}:{_show(self.location)}"
        return f"{where}: {self.message} [{self.rule}]"


def _show(location: int | str) -> str:
    return f"byte {location}" if isinstance(location, int) else location


def error(rule: str, file: str, location: Location, message: str,
          remedy: str | None = None) -> Finding:
    return Finding(rule, Severity.ERROR, file, location, message, remedy)


def warning(rule: str, file: str, location: Location, message: str,
            remedy: str | None = None) -> Finding:
    return Finding(rule, Severity.WARNING, file, location, message, remedy)


def info(rule: str, file: str, location: Location, message: str,
         remedy: str | None = None) -> Finding:
    return Finding(rule, Severity.INFO, file, location, message, remedy)


class BhyvesnapError(Exception):
    """Base of every error the tool raises; carries the finding that explains it."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.one_line())
        self.finding = finding


class ImageError(BhyvesnapError):
    """The input cannot be interpreted as an image (damaged, malformed, foreign)."""


class NotInterpretedError(ImageError):
    """A well-formed single-file prefix whose contents this tool must not interpret.

    Raised for a foreign producer (BHS-P001) or an unknown mainstream version (BHS-P002):
    only the fixed prefix was checked, so ``info`` reports the format as ``unknown`` with the
    IDENT, ``validate`` answers not valid and ``check`` answers ``incompatible``.
    """

    def __init__(self, finding: Finding, ident: str) -> None:
        super().__init__(finding)
        self.ident = ident


class UsageError(BhyvesnapError):
    """The caller asked for something that cannot be done as asked (exit status 2)."""
