"""Findings: registered rule ids, the one-line form and the JSON record of CLI.md."""

from __future__ import annotations

import pytest

from migrate.findings import BhyvesnapError, Finding, ImageError, Severity, error
from migrate.rules import RuleKind


def test_findings_refuse_unregistered_rules() -> None:
    with pytest.raises(ValueError, match="unregistered"):
        Finding("BHS-Z999", Severity.ERROR, "f", 0, "m")


def test_finding_one_line_and_json() -> None:
    finding = Finding("BHS-S007", Severity.ERROR, "vm.bhyve", "/sections/memory/size", "too big")
    assert finding.one_line() == "vm.bhyve:/sections/memory/size: too big [BHS-S007]"
    assert Finding("BHS-N002", Severity.ERROR, "h.nvl", 68, "bad").one_line() == \
        "h.nvl:byte 68: bad [BHS-N002]"
    assert finding.to_json() == {"rule": "BHS-S007", "severity": "error", "file": "vm.bhyve",
                                 "location": "/sections/memory/size", "message": "too big",
                                 "remedy": None}
    assert finding.kind is RuleKind.VALIDATION


def test_errors_carry_their_finding() -> None:
    finding = error("BHS-L006", "vm.ckp", 10, "short")
    exc = ImageError(finding)
    assert isinstance(exc, BhyvesnapError)
    assert exc.finding is finding
    assert str(exc) == "vm.ckp:byte 10: short [BHS-L006]"
