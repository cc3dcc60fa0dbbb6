"""``bhyvesnap validate``: valid / invalid / not interpreted, with and without --verify."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from conftest import CliResult

from migrate.data import corpus_root

Run = Callable[..., CliResult]
CORPUS = corpus_root()


@pytest.mark.parametrize("name", ["legacy-a-fbsd13.0.ckp", "legacy-b-desktop.ckp", "r1.bhyve",
                                  "r2.bhyve", "r2-diff-pages.bhyve"])
def test_sound_images_are_valid_even_verified(run_cli: Run, name: str) -> None:
    result = run_cli("validate", str(CORPUS / name), "--verify", "--json")
    assert (result.status, json.loads(result.stdout)) == (0, {"valid": True, "findings": []})


def test_flipped_memory_byte_needs_verify(run_cli: Run) -> None:
    path = str(CORPUS / "damaged-r2-checksum.bhyve")
    assert run_cli("validate", path).status == 0
    result = run_cli("validate", path, "--verify", "--json")
    assert result.status == 30
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert [(f["rule"], f["location"]) for f in document["findings"]] == [
        ("BHS-S014", "/sections/memory/checksum")]


@pytest.mark.parametrize(("name", "rule"), [
    ("damaged-legacy-a-memory.ckp", "BHS-L006"), ("damaged-legacy-b-blob.ckp", "BHS-L007"),
    ("damaged-r1-truncated.bhyve", "BHS-S007"), ("damaged-r2-header.bhyve", "BHS-N002")])
def test_damaged_images_are_invalid_with_their_rule(run_cli: Run, name: str, rule: str) -> None:
    result = run_cli("validate", str(CORPUS / name))
    assert result.status == 30
    assert f"[{rule}]" in result.stderr
    assert result.stdout.strip().endswith(": invalid")


@pytest.mark.parametrize(("name", "rule"), [("foreign-producer.bhyve", "BHS-P001"),
                                            ("unknown-version.bhyve", "BHS-P002")])
def test_uninterpreted_images_exit_20(run_cli: Run, name: str, rule: str) -> None:
    result = run_cli("validate", str(CORPUS / name), "--json")
    assert result.status == 20
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert [f["rule"] for f in document["findings"]] == [rule]


def test_unreadable_path_exits_2(run_cli: Run) -> None:
    assert run_cli("validate", "/nonexistent/image").status == 2
