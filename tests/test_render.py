"""Shared rendering: one JSON document, tables, one line per finding."""

from __future__ import annotations

import io
import json

from migrate.findings import error, warning
from migrate.render import findings_table, print_findings, print_json, table


def test_print_json_is_one_parseable_document() -> None:
    out = io.StringIO()
    print_json({"a": [1, 2], "b": None}, out)
    assert json.loads(out.getvalue()) == {"a": [1, 2], "b": None}
    assert out.getvalue().endswith("}\n")


def test_table_keeps_numbers_as_written() -> None:
    rendered = table([("0x10", "007")], ("a", "b"))
    assert "0x10" in rendered
    assert "007" in rendered


def test_findings_lines_and_table() -> None:
    findings = [error("BHS-S007", "vm.bhyve", "/sections/memory/size", "too big", "fix it"),
                warning("BHS-L009", "vm.ckp.kern", 100, "gap")]
    out = io.StringIO()
    print_findings(findings, out)
    assert out.getvalue().splitlines() == [
        "error: vm.bhyve:/sections/memory/size: too big [BHS-S007]",
        "  remedy: fix it",
        "warning: vm.ckp.kern:byte 100: gap [BHS-L009]",
    ]
    assert "BHS-L009" in findings_table(findings)
