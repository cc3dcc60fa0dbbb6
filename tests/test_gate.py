"""The gate over the bundled corpus: passes as committed, fails naming the pairs when a
manifest verdict or a target profile is changed by hand, compares with baselines."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from migrate import gate
from migrate.data import corpus_root
from migrate.findings import UsageError
from migrate.gate import GateResult, render_junit, render_markdown, render_table, run_gate
from migrate.targets import Target, load_targets, sort_key
from migrate.verdicts import Verdict

PROFILES = Path(__file__).resolve().parent.parent / "schemas" / "targets"


def targets(targets_dir: str | None = None) -> list[Target]:
    return sorted(load_targets(targets_dir).values(), key=sort_key)


@pytest.fixture(scope="module")
def bundled() -> GateResult:
    return run_gate(targets())


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A copy of the bundled corpus that a test may edit."""
    folder = tmp_path / "corpus"
    shutil.copytree(corpus_root(), folder, ignore=shutil.ignore_patterns("__*"))
    return folder


def edit_manifest(folder: Path, image: str, target: str, verdict: str) -> None:
    path = folder / "manifest.json"
    document = json.loads(path.read_text("utf-8"))
    entry = next(i for i in document["images"] if i["name"] == image)
    entry["expected"][target] = verdict
    path.write_text(json.dumps(document), "utf-8")


def profile_dir(tmp_path: Path, bundled_name: str, **changes: Any) -> str:
    """A targets folder holding a copy of a bundled profile with ``changes`` applied."""
    document = json.loads((PROFILES / f"{bundled_name}.json").read_text("utf-8"))
    document.pop("$schema")
    document.update(changes)
    folder = tmp_path / "profiles"
    folder.mkdir(exist_ok=True)
    (folder / f"{document['name']}.json").write_text(json.dumps(document), "utf-8")
    return str(folder)


def failed_pairs(result: GateResult) -> set[tuple[str, str]]:
    return {(p.image, p.target) for p in result.pairs if p.failed}


def test_bundled_corpus_passes_every_pair(bundled: GateResult) -> None:
    assert not bundled.failed
    assert bundled.targets == ("freebsd-13.0", "freebsd-13.2", "freebsd-14",
                               "bhyve-image-1.0", "bhyve-image-2.0", "bhyve-image-2.1")
    assert len(bundled.pairs) == len(bundled.images) * 6
    assert {p.status for p in bundled.pairs} == {"ok"}
    assert bundled.findings == ()
    assert bundled.pair("r2", "bhyve-image-1.0").verdict is Verdict.DOWNGRADE
    assert bundled.pair("damaged-r2-checksum", "bhyve-image-2.0").verdict is Verdict.INVALID
    order = [(p.image, p.target) for p in bundled.pairs]
    assert order == [(i, t) for i in bundled.images for t in bundled.targets]


def test_a_verdict_changed_in_the_manifest_fails_naming_the_pair(corpus: Path) -> None:
    edit_manifest(corpus, "r1", "freebsd-14", "native")
    result = run_gate(targets(), str(corpus))
    assert result.failed
    assert failed_pairs(result) == {("r1", "freebsd-14")}
    pair = result.pair("r1", "freebsd-14")
    assert (pair.expected, pair.verdict, pair.status) == (Verdict.NATIVE, Verdict.LOSSY,
                                                          "changed")
    (finding,) = result.findings
    assert finding.rule == "BHS-G001"
    assert finding.message == "r1 x freebsd-14: expected native, got lossy"
    assert finding.location == "/images/5/expected/freebsd-14"


def test_a_target_profile_changed_by_hand_fails_the_images_it_affects(
        corpus: Path, tmp_path: Path) -> None:
    devices = [d for d in json.loads((PROFILES / "freebsd-14.json").read_text())["devices"]
               if d != "virtio-blk"]
    result = run_gate(targets(profile_dir(tmp_path, "freebsd-14", devices=devices)),
                      str(corpus))
    # exactly the interpreted, valid images with a virtio-blk disk that freebsd-14 could
    # restore (legacy-b-desktop has AHCI; the diff whose base is missing is refused anyway)
    assert failed_pairs(result) == {("legacy-b-minimal", "freebsd-14"),
                                    ("legacy-b-server", "freebsd-14"),
                                    ("r1", "freebsd-14"), ("r2", "freebsd-14"),
                                    ("r2-diff-pages", "freebsd-14")}
    assert all(result.pair(i, t).verdict is Verdict.INCOMPATIBLE
               for i, t in failed_pairs(result))


def test_a_new_target_is_reported_and_never_fails(corpus: Path, tmp_path: Path) -> None:
    folder = profile_dir(tmp_path, "freebsd-14", name="freebsd-15-new", releases=">=15.0")
    result = run_gate(targets(folder), str(corpus))
    assert not result.failed
    column = [p for p in result.pairs if p.target == "freebsd-15-new"]
    assert len(column) == len(result.images)
    assert {p.status for p in column} == {"new"}
    assert all(p.expected is None for p in column)
    assert result.pair("legacy-b-server", "freebsd-15-new").verdict is Verdict.NATIVE


def test_a_changed_corpus_file_fails_even_when_verdicts_hold(corpus: Path) -> None:
    kern = corpus / "legacy-b-server.ckp.kern"
    data = bytearray(kern.read_bytes())
    data[0] ^= 1
    kern.write_bytes(bytes(data))
    result = run_gate(targets(), str(corpus))
    assert result.failed
    assert failed_pairs(result) == set()
    (finding,) = result.findings
    assert (finding.rule, finding.file) == ("BHS-G004", str(kern))


def test_a_missing_image_has_no_verdict_and_fails(corpus: Path) -> None:
    (corpus / "r1.bhyve").unlink()
    result = run_gate(targets(), str(corpus))
    assert failed_pairs(result) == {("r1", t) for t in result.targets}
    assert result.pair("r1", "freebsd-14").verdict is None
    rules = [f.rule for f in result.findings]
    assert rules[:2] == ["BHS-G004", "BHS-X002"]
    assert rules.count("BHS-G001") == 6


def test_baseline_fails_only_pairs_that_got_worse(corpus: Path, tmp_path: Path,
                                                   bundled: GateResult) -> None:
    document = bundled.to_json()
    edits = {("r1", "freebsd-14"): "native",        # now lossy: worse
             ("r1", "freebsd-13.0"): "invalid",     # now incompatible: better
             ("r2", "bhyve-image-1.0"): "upgrade"}  # now downgrade: the same rank
    for pair in document["pairs"]:
        pair["verdict"] = edits.get((pair["image"], pair["target"]), pair["verdict"])
    document["pairs"] = [p for p in document["pairs"] if p["target"] != "bhyve-image-2.1"]
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(document), "utf-8")
    result = run_gate(targets(), str(corpus), baseline=str(baseline))
    assert failed_pairs(result) == {("r1", "freebsd-14")}
    assert result.pair("r1", "freebsd-14").status == "worse"
    assert result.pair("r1", "freebsd-14").expected is Verdict.NATIVE
    assert result.pair("r1", "freebsd-13.0").status == "better"
    assert result.pair("r2", "bhyve-image-1.0").status == "ok"
    assert {p.status for p in result.pairs if p.target == "bhyve-image-2.1"} == {"new"}
    assert [f.rule for f in result.findings] == ["BHS-G002"]


def test_baseline_ignores_the_manifest_expectations(corpus: Path, tmp_path: Path,
                                                    bundled: GateResult) -> None:
    edit_manifest(corpus, "r1", "freebsd-14", "native")
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(bundled.to_json()), "utf-8")
    assert not run_gate(targets(), str(corpus), baseline=str(baseline)).failed


@pytest.mark.parametrize(("document", "pointer"), [
    ({"manifest_version": 2, "description": "", "images": []}, "/manifest_version"),
    ("not an object", ""),
])
def test_an_invalid_manifest_is_a_usage_error(corpus: Path, document: Any,
                                              pointer: str) -> None:
    (corpus / "manifest.json").write_text(json.dumps(document), "utf-8")
    with pytest.raises(UsageError) as caught:
        run_gate(targets(), str(corpus))
    assert (caught.value.finding.rule, caught.value.finding.location) == ("BHS-G003", pointer)


def test_a_manifest_path_cannot_leave_the_corpus(corpus: Path) -> None:
    path = corpus / "manifest.json"
    document = json.loads(path.read_text("utf-8"))
    document["images"][0]["path"] = "../outside.ckp"
    path.write_text(json.dumps(document), "utf-8")
    with pytest.raises(UsageError) as caught:
        run_gate(targets(), str(corpus))
    assert caught.value.finding.location == "/images/0/path"


def test_a_repeated_image_name_is_refused(corpus: Path) -> None:
    path = corpus / "manifest.json"
    document = json.loads(path.read_text("utf-8"))
    document["images"].append(document["images"][0])
    path.write_text(json.dumps(document), "utf-8")
    with pytest.raises(UsageError, match="listed twice"):
        run_gate(targets(), str(corpus))


@pytest.mark.parametrize("content", ['{"pairs": [{"image": "r1"}]}', "[]", "{"])
def test_an_invalid_baseline_is_a_usage_error(tmp_path: Path, content: str) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_text(content, "utf-8")
    with pytest.raises(UsageError) as caught:
        run_gate(targets(), baseline=str(baseline))
    assert caught.value.finding.rule == "BHS-G005"


def test_the_process_pool_gives_the_serial_result(monkeypatch: pytest.MonkeyPatch,
                                                  corpus: Path) -> None:
    edit_manifest(corpus, "legacy-b-minimal", "freebsd-13.2", "native")
    serial = run_gate(targets(), str(corpus), workers=1)
    monkeypatch.setattr(gate, "SERIAL_BELOW", 0)
    parallel = run_gate(targets(), str(corpus), workers=2)
    assert parallel == serial
    assert failed_pairs(parallel) == {("legacy-b-minimal", "freebsd-13.2")}


def test_renderers_name_the_failed_pair(corpus: Path) -> None:
    edit_manifest(corpus, "legacy-a-fbsd13.0", "freebsd-13.0", "upgrade")
    result = run_gate(targets(), str(corpus))
    text = render_table(result)
    row = next(line for line in text.splitlines() if line.startswith("legacy-a-fbsd13.0"))
    assert "FAIL native (expected upgrade)" in row
    assert text.rstrip().endswith(f"({len(result.pairs) - 1} ok, 1 changed)")
    markdown = render_markdown(result)
    assert "### bhyvesnap gate failed" in markdown
    assert "| `legacy-a-fbsd13.0` | ❌ native (expected upgrade) |" in markdown
    assert "- `BHS-G001` legacy-a-fbsd13.0 x freebsd-13.0: expected upgrade, got native" \
        in markdown
    suite = ET.fromstring(render_junit(result)).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (
        str(len(result.pairs)), "1", "0")
    failures = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failures] == [
        ("legacy-a-fbsd13.0", "freebsd-13.0")]


def test_junit_reports_changed_corpus_files_as_errors(corpus: Path) -> None:
    (corpus / "r2.bhyve").unlink()
    suite = ET.fromstring(render_junit(run_gate(targets(), str(corpus)))).find("testsuite")
    assert suite is not None
    # r2's six pairs, plus the four pairs of r2-diff-pages that its base made restorable
    assert (suite.get("failures"), suite.get("errors")) == ("10", "2")
