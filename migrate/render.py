"""Output rendering shared by every command: one JSON document on stdout, or tables/lines.

Messages and warnings go to stderr so that ``--json`` output stays one parseable document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from tabulate import tabulate

from migrate.findings import Finding


def print_json(document: Any, stream: TextIO | None = None) -> None:
    out = sys.stdout if stream is None else stream
    json.dump(document, out, indent=2, sort_keys=False)
    out.write("\n")


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    return tabulate(list(rows), headers=list(headers), tablefmt="simple",
                    disable_numparse=True)


def findings_table(findings: Sequence[Finding]) -> str:
    return table(
        ((f.severity.value, f.rule, _location(f), f.message) for f in findings),
        ("severity", "rule", "where", "message"),
    )


def print_findings(findings: Sequence[Finding], stream: TextIO | None = None) -> None:
    """Each finding as one line ``severity: file:location: message [rule]`` (+ remedy)."""
    out = sys.stderr if stream is None else stream
    for finding in findings:
        out.write(f"{finding.severity.value}: {finding.one_line()}\n")
        if finding.remedy:
            out.write(f"  remedy: {finding.remedy}\n")


def _location(finding: Finding) -> str:
    return "" if finding.location is None else str(finding.location)
