"""``bhyvesnap info``: the JSON shape of CLI.md, human tables, exit statuses."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from conftest import CliResult

from migrate.data import corpus_root

Run = Callable[..., CliResult]
CORPUS = corpus_root()
KEYS = {"format", "ident", "generation", "sections", "config", "kernel", "devices",
        "producer", "findings"}


@pytest.mark.parametrize(("name", "image_format"), [
    ("legacy-a-fbsd13.0.ckp", "legacy-a"), ("legacy-b-server.ckp.meta", "legacy-b"),
    ("r1.bhyve", "r1"), ("r2.bhyve", "r2")])
def test_json_has_the_documented_keys(run_cli: Run, name: str, image_format: str) -> None:
    result = run_cli("info", str(CORPUS / name), "--json")
    assert result.status == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= KEYS
    assert document["format"] == image_format
    assert all({"name", "size", "generation"} <= set(e) for e in document["kernel"])


def test_r2_details(run_cli: Run) -> None:
    document = json.loads(run_cli("info", str(CORPUS / "r2.bhyve"), "--json").stdout)
    assert document["ident"] == "BHYVE CHECKPOINT IMAGE 2.0"
    assert document["generation"] == "fbsd14"
    assert [s["name"] for s in document["sections"]] == ["config", "kernel", "devices", "memory"]
    assert all(s["checksum"].startswith("sha256:") for s in document["sections"])
    assert document["config"]["cpus"] == 4
    assert document["compat"] == {"min_reader": "BHYVE CHECKPOINT IMAGE 2.0", "features": []}
    assert document["producer"]["name"] == "bhyvesnap corpus"
    assert document["devices"][0]["emulation"] == "virtio-blk"


def test_diff_pages_base_is_shown(run_cli: Run) -> None:
    result = run_cli("info", str(CORPUS / "r2-diff-pages.bhyve"))
    assert result.status == 0
    assert "base        r2.bhyve (memory sha256:" in result.stdout
    assert "(diff-pages)" in result.stdout


def test_human_output_is_tables(run_cli: Run) -> None:
    result = run_cli("info", str(CORPUS / "legacy-b-minimal.ckp"))
    assert result.status == 0
    assert result.stdout.startswith("format      legacy-b\n")
    assert "section    file" in result.stdout
    assert "kind    name" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_foreign_image_is_not_interpreted(run_cli: Run) -> None:
    result = run_cli("info", str(CORPUS / "foreign-producer.bhyve"), "--json")
    assert result.status == 20
    document = json.loads(result.stdout)
    assert (document["format"], document["ident"]) == ("unknown", "EXAMPLE VMM CHECKPOINT 2.0")
    assert [f["rule"] for f in document["findings"]] == ["BHS-P001"]


def test_damaged_image_exits_30_with_one_located_line(run_cli: Run) -> None:
    path = str(CORPUS / "damaged-r2-header.bhyve")
    result = run_cli("info", path)
    assert result.status == 30
    assert result.stderr.strip() == (
        f"error: {path}:byte 68: nvlist header magic is 0x00, not 0x6c [BHS-N002]")


def test_missing_path_is_a_usage_error(run_cli: Run) -> None:
    result = run_cli("info", "/nonexistent/vm.ckp")
    assert result.status == 2
    assert "[BHS-X002]" in result.stderr
