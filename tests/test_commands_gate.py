"""``bhyvesnap gate`` on the command line: outputs, exit status, the failures it names."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult

from migrate.data import corpus_root

Run = Callable[..., CliResult]
TARGETS = ["freebsd-13.0", "freebsd-13.2", "freebsd-14", "bhyve-image-1.0", "bhyve-image-2.0",
           "bhyve-image-2.1"]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    shutil.copytree(corpus_root(), folder, ignore=shutil.ignore_patterns("__*"))
    return folder


def image_names() -> list[str]:
    document: dict[str, Any] = json.loads((corpus_root() / "manifest.json").read_text("utf-8"))
    return [image["name"] for image in document["images"]]


def test_gate_without_options_prints_the_matrix_of_the_bundled_corpus(run_cli: Run) -> None:
    result = run_cli("gate")
    assert result.status == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["image", *TARGETS]
    rows = [line.split()[0] for line in lines[2:-1]]
    assert rows == image_names()
    count = len(image_names())
    assert lines[-1].startswith(
        f"gate passed: {count} images x {len(TARGETS)} targets = {count * len(TARGETS)} pairs")
    assert result.stderr == ""


def test_json_is_one_document_and_the_short_form_of_format_json(run_cli: Run) -> None:
    long, short = run_cli("gate", "--format", "json"), run_cli("gate", "--json")
    assert long.status == short.status == 0
    assert long.stdout == short.stdout
    document = json.loads(short.stdout)
    assert document["targets"] == TARGETS
    assert document["failed"] is False
    assert {p["status"] for p in document["pairs"]} == {"ok"}
    assert set(document["pairs"][0]) == {"image", "target", "expected", "verdict", "status"}


def test_targets_are_resolved_by_name_ident_or_release(run_cli: Run) -> None:
    result = run_cli("gate", "--json", "--target", "14.1-RELEASE",
                     "BHYVE CHECKPOINT IMAGE 2.0", "--target", "freebsd-14")
    assert result.status == 0
    document = json.loads(result.stdout)
    assert document["targets"] == ["freebsd-14", "bhyve-image-2.0"]
    assert len(document["pairs"]) == 2 * len(image_names())


def test_a_hand_edited_manifest_verdict_fails_with_the_pair_named(run_cli: Run,
                                                                   corpus: Path) -> None:
    path = corpus / "manifest.json"
    document = json.loads(path.read_text("utf-8"))
    document["images"][2]["expected"]["freebsd-14"] = "upgrade"
    path.write_text(json.dumps(document), "utf-8")
    result = run_cli("gate", "--corpus", str(corpus))
    assert result.status == 1
    assert "legacy-b-minimal x freebsd-14: expected upgrade, got native [BHS-G001]" \
        in result.stderr
    assert "gate FAILED" in result.stdout


def test_a_hand_edited_profile_fails_and_a_baseline_reports_only_worse(
        run_cli: Run, corpus: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    first = run_cli("gate", "--corpus", str(corpus), "--json")
    baseline.write_text(first.stdout, "utf-8")
    profile = json.loads((Path(__file__).parent.parent / "schemas" / "targets" /
                          "freebsd-13.0.json").read_text("utf-8"))
    profile["rejects_zero_size"] = False
    profile["generation"] = "fbsd13.2"
    profile.pop("$schema")
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "freebsd-13.0.json").write_text(json.dumps(profile), "utf-8")
    against_manifest = run_cli("gate", "--corpus", str(corpus), "--targets-dir", str(profiles))
    assert against_manifest.status == 1
    assert "legacy-a-fbsd13.0 x freebsd-13.0: expected native, got incompatible" \
        in against_manifest.stderr
    against_baseline = run_cli("gate", "--corpus", str(corpus), "--targets-dir", str(profiles),
                               "--baseline", str(baseline), "--json")
    assert against_baseline.status == 1
    statuses = {(p["image"], p["target"]): p["status"]
                for p in json.loads(against_baseline.stdout)["pairs"]}
    assert statuses[("legacy-a-fbsd13.0", "freebsd-13.0")] == "worse"
    # 13.2 images on a 13.0 profile that now reads fbsd13.2 and accepts size 0: better
    assert statuses[("legacy-a-fbsd13.2", "freebsd-13.0")] == "better"
    assert {s for k, s in statuses.items() if k[1] != "freebsd-13.0"} == {"ok"}


@pytest.mark.parametrize(("form", "start"), [("junit", "<?xml"), ("markdown", "### bhyvesnap")])
def test_ci_and_pull_request_forms(run_cli: Run, form: str, start: str) -> None:
    result = run_cli("gate", "--format", form, "--target", "freebsd-14")
    assert result.status == 0
    assert result.stdout.startswith(start)


@pytest.mark.parametrize("args", [
    ["--json", "--format", "junit"],
    ["--target", "nonesuch"],
    ["--baseline", "/nonexistent/baseline.json"],
    ["--corpus", "/nonexistent"],
    ["--jobs", "0"],
])
def test_usage_errors_exit_2(run_cli: Run, args: list[str]) -> None:
    result = run_cli("gate", *args)
    assert result.status == 2
    assert result.stdout == ""
