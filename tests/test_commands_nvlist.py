"""``bhyvesnap nvlist decode|encode`` end to end, against the libnv vectors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, CliResult

NV = DATA / "nvlist"
Run = Callable[..., CliResult]


def _case(variant: str, name: str) -> dict[str, Any]:
    cases = json.loads((NV / variant / "cases.json").read_text())["cases"]
    case: dict[str, Any] = next(c for c in cases if c["name"] == name)
    return case


@pytest.mark.parametrize("name", ["everything", "nvlist_array", "flags_both", "scalars"])
def test_decode_prints_the_vector_description(run_cli: Run, name: str) -> None:
    result = run_cli("nvlist", "decode", str(NV / "modern" / f"{name}.bin"))
    assert result.status == 0, result.stderr
    assert json.loads(result.stdout) == _case("modern", name)["root"]
    assert result.stderr == ""


def test_decode_invalid_nvlist_exits_30_with_one_located_line(run_cli: Run) -> None:
    path = str(NV / "edge" / "nested_bad_magic.bin")
    result = run_cli("nvlist", "decode", path)
    assert result.status == 30
    assert result.stdout == ""
    assert result.stderr == (f"bhyvesnap: {path}:byte 93: nvlist header magic is 0x6b, "
                             "not 0x6c [BHS-N002]\n")


def test_decode_flags_are_checked_only_when_given(run_cli: Run) -> None:
    path = str(NV / "edge" / "flags_match.bin")
    assert run_cli("nvlist", "decode", path).status == 0
    assert run_cli("nvlist", "decode", path, "--flags", "0x1").status == 0
    mismatch = run_cli("nvlist", "decode", path, "--flags", "0")
    assert mismatch.status == 30
    assert "[BHS-N006]" in mismatch.stderr
    assert run_cli("nvlist", "decode", path, "--flags", "4").status == 2


def test_decode_descriptors_are_rejected(run_cli: Run) -> None:
    result = run_cli("nvlist", "decode", str(NV / "modern" / "descriptors_via_send.bin"))
    assert result.status == 30
    assert "byte 3:" in result.stderr
    assert "[BHS-N005]" in result.stderr


def test_decode_unreadable_file_exits_2(run_cli: Run, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.bin")
    result = run_cli("nvlist", "decode", missing)
    assert result.status == 2
    assert result.stderr.startswith(f"bhyvesnap: {missing}: cannot read")
    assert "[BHS-X002]" in result.stderr


@pytest.mark.parametrize("rule", ["modern", "legacy"])
def test_encode_writes_the_vector_bytes(run_cli: Run, tmp_path: Path, rule: str) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps(_case(rule, "nvlist_in_array_element")["root"]))
    out = tmp_path / "out.nvl"
    result = run_cli("nvlist", "encode", str(source), "-o", str(out), "--size-rule", rule)
    assert result.status == 0, result.stderr
    assert out.read_bytes() == (NV / rule / "nvlist_in_array_element.bin").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json", "out.nvl"]


def test_encode_refuses_to_overwrite_without_force(run_cli: Run, tmp_path: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps(_case("modern", "worked_example")["root"]))
    out = tmp_path / "out.nvl"
    out.write_bytes(b"keep me")
    refused = run_cli("nvlist", "encode", str(source), "-o", str(out))
    assert refused.status == 2
    assert refused.stderr == f"bhyvesnap: {out}: the output already exists [BHS-M004]\n"
    assert out.read_bytes() == b"keep me"
    forced = run_cli("nvlist", "encode", str(source), "-o", str(out), "--force")
    assert forced.status == 0
    assert out.read_bytes() == (NV / "modern" / "worked_example.bin").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json", "out.nvl"]  # no temp left


def test_encode_descriptors_need_the_option(run_cli: Run, tmp_path: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps(_case("legacy", "descriptors_via_send")["root"]))
    out = tmp_path / "out.nvl"
    refused = run_cli("nvlist", "encode", str(source), "-o", str(out))
    assert refused.status == 30
    assert "[BHS-N005]" in refused.stderr
    assert not out.exists()
    sent = run_cli("nvlist", "encode", str(source), "-o", str(out), "--descriptors",
                   "--size-rule", "legacy")
    assert sent.status == 0, sent.stderr
    assert out.read_bytes() == (NV / "legacy" / "descriptors_via_send.bin").read_bytes()


def test_encode_invalid_description_points_into_the_json(run_cli: Run, tmp_path: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text(json.dumps({"flags": 0, "pairs": [
        {"name": "x", "type": "NUMBER", "value": 1},
        {"name": "y", "type": "NUMBER", "value": -5}]}))
    out = tmp_path / "out.nvl"
    result = run_cli("nvlist", "encode", str(source), "-o", str(out))
    assert result.status == 30
    assert result.stderr.startswith(f"bhyvesnap: {source}:/pairs/1/value: ")
    assert result.stderr.rstrip().endswith("[BHS-N010]")
    assert not out.exists()


def test_encode_rejects_text_that_is_not_json(run_cli: Run, tmp_path: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text('{"flags": 0, "pairs": [}')
    result = run_cli("nvlist", "encode", str(source), "-o", str(tmp_path / "out.nvl"))
    assert result.status == 2
    assert "not a JSON description" in result.stderr


def test_help_explains_with_an_example(run_cli: Run) -> None:
    result = run_cli("nvlist", "--help")
    assert result.status == 0
    assert "bhyvesnap nvlist decode header.nvl" in result.stdout
    assert "--size-rule legacy" in result.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_is_accepted_on_either_side_of_the_action(run_cli: Run, where: str) -> None:
    path = str(NV / "modern" / "empty.bin")
    args = ["nvlist", "--debug", "decode", path] if where == "before" \
        else ["nvlist", "decode", path, "--debug"]
    result = run_cli(*args)
    assert result.status == 0, result.stderr
    assert json.loads(result.stdout) == {"flags": 0, "pairs": []}
