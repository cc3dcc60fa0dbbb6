"""The corpus generator: deterministic, small, sized like real images, and what is committed."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from single_factory import file_bytes

from migrate.corpusgen import (
    ImageSpec,
    build_corpus,
    load_definition,
    memory_pages,
    parse_definition,
)
from migrate.data import corpus_root, load_json
from migrate.formats import read_image
from migrate.targets import load_targets
from migrate.validation import validate
from migrate.verdicts import Verdict

MiB = 1 << 20
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    build_corpus(str(folder))
    return folder


def manifest(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / "manifest.json").read_text("utf-8"))
    return document


def test_committed_corpus_is_byte_identical_to_a_fresh_build(built: Path) -> None:
    committed = corpus_root()
    fresh = sorted(p.name for p in built.iterdir())
    on_disk = sorted(p.name for p in committed.iterdir()
                     if p.is_file() and p.name != "__init__.py")
    assert on_disk == fresh, "rebuild the corpus: bhyvesnap corpus build corpus"
    for name in fresh:
        assert file_bytes(committed / name) == file_bytes(built / name), name


def test_manifest_matches_its_schema_and_records_true_hashes(built: Path) -> None:
    document = manifest(built)
    schema = json.loads((SCHEMAS / "manifest.schema.json").read_text("utf-8"))
    assert not list(Draft202012Validator(schema).iter_errors(document))
    for image in document["images"]:
        assert image["files"][0]["path"] == image["path"]
        for record in image["files"]:
            data = (built / record["path"]).read_bytes()
            assert record["size"] == len(data)
            assert record["sha256"] == hashlib.sha256(data).hexdigest()


def test_definition_matches_its_schema() -> None:
    document = json.loads((SCHEMAS / "corpus" / "images.json").read_text("utf-8"))
    schema = json.loads((SCHEMAS / "corpus" / "definition.schema.json").read_text("utf-8"))
    assert not list(Draft202012Validator(schema).iter_errors(document))


def test_every_image_expects_a_verdict_on_every_bundled_target() -> None:
    names = set(load_targets())
    for spec in load_definition().images:
        assert set(spec.expected) == names, spec.name


def test_expectations_agree_with_the_examples_of_format_md_6() -> None:
    """FORMAT.md 6, "Examples", copied here: the definition must say the same."""
    spec = {s.name: s.expected for s in load_definition().images}
    legacy_b = spec["legacy-b-server"]
    assert legacy_b["freebsd-14"] is Verdict.NATIVE
    assert legacy_b["bhyve-image-1.0"] is legacy_b["bhyve-image-2.0"] is Verdict.UPGRADE
    assert legacy_b["freebsd-13.0"] is legacy_b["freebsd-13.2"] is Verdict.INCOMPATIBLE
    assert spec["r1"]["freebsd-14"] is Verdict.LOSSY
    assert spec["r2"]["bhyve-image-2.0"] is spec["r2"]["bhyve-image-2.1"] is Verdict.NATIVE
    assert spec["r2"]["bhyve-image-1.0"] is Verdict.DOWNGRADE
    for name in ("foreign-producer", "unknown-version"):
        assert set(spec[name].values()) == {Verdict.INCOMPATIBLE}
    damaged = [s for s in load_definition().images if s.kind == "damaged"]
    assert {s.source for s in damaged} >= {"legacy-a-fbsd13.0", "legacy-b-minimal", "r1", "r2"}
    assert all(set(s.expected.values()) == {Verdict.INVALID} for s in damaged)


def test_corpus_is_small_and_memory_sized_as_bhyve_reads_it(built: Path) -> None:
    total = sum(p.stat().st_size for p in built.iterdir())
    assert total < 20 * MiB
    for spec in load_definition().images:
        if spec.kind != "damaged":
            assert MiB <= spec.memory <= 4 * MiB


def test_memory_holds_data_only_in_its_few_pages(built: Path) -> None:
    memory = (built / "legacy-b-server.ckp").read_bytes()
    pages = memory_pages(len(memory))
    assert pages == [0, len(memory) // 2, len(memory) - 4096]
    zeroed = bytearray(memory)
    for offset in pages:
        assert any(memory[offset:offset + 4096])
        zeroed[offset:offset + 4096] = bytes(4096)
    assert not any(zeroed)


def test_per_vcpu_structures_scale_with_ncpus(built: Path) -> None:
    one = read_image(str(built / "legacy-b-minimal.ckp"))
    four = read_image(str(built / "legacy-b-desktop.ckp"))
    assert (one.legacy and one.legacy.ncpus, four.legacy and four.legacy.ncpus) == (1, 4)
    size_one = {e.name: e.size for e in one.kernel}
    size_four = {e.name: e.size for e in four.kernel}
    assert size_four["vlapic"] == 4 * size_one["vlapic"]
    assert size_four["vmcx"] == 4 * size_one["vmcx"]
    assert size_four["vm"] > size_one["vm"]
    assert size_four["vhpet"] == size_one["vhpet"]


def test_generations_and_formats_are_what_the_names_say(built: Path) -> None:
    for name, fmt, generation in (("legacy-a-fbsd13.0", "legacy-a", "fbsd13.0"),
                                  ("legacy-a-fbsd13.2", "legacy-a", "fbsd13.2"),
                                  ("legacy-b-desktop", "legacy-b", "fbsd14")):
        image = read_image(str(built / f"{name}.ckp"))
        assert (image.format, image.generation) == (fmt, generation)
    r2 = read_image(str(built / "r2.bhyve"))
    assert r2.format == "r2"
    assert r2.producer is not None
    assert r2.producer.created == "2024-01-01T00:00:00Z"
    assert all((s.checksum or "").startswith("sha256:") for s in r2.sections)


@pytest.mark.parametrize(("name", "rule"), [
    ("damaged-legacy-a-memory.ckp", "BHS-L006"),
    ("damaged-legacy-b-blob.ckp", "BHS-L007"),
    ("damaged-r1-truncated.bhyve", "BHS-S007"),
    ("damaged-r2-checksum.bhyve", "BHS-S014"),
    ("damaged-r2-header.bhyve", "BHS-N002"),
    ("foreign-producer.bhyve", "BHS-P001"),
    ("unknown-version.bhyve", "BHS-P002"),
])
def test_broken_images_break_exactly_their_rule(built: Path, name: str, rule: str) -> None:
    report = validate(str(built / name), verify=True)
    assert not report.valid
    assert [f.rule for f in report.findings if f.is_error] == [rule]


def test_checksum_damage_needs_verification_to_show(built: Path) -> None:
    assert validate(str(built / "damaged-r2-checksum.bhyve")).valid


def test_provenance_names_the_source_of_damaged_images(built: Path) -> None:
    by_name = {i["name"]: i for i in manifest(built)["images"]}
    damaged = by_name["damaged-r2-header"]["provenance"]
    assert (damaged["method"], damaged["from"], damaged["format"]) == ("damaged", "r2", "r2")
    assert by_name["r1"]["provenance"]["method"] == "generated"
    assert by_name["r1"]["provenance"]["from"] is None


def test_definition_errors_are_caught_before_building() -> None:
    document = json.loads(json.dumps(load_json("corpus/images.json")))
    document["images"].append(dict(document["images"][0]))
    with pytest.raises(ValueError, match="defined twice"):
        parse_definition(document)
    document["images"][-1] = {**document["images"][-1], "kind": "damaged", "name": "x",
                              "from": "nowhere", "damage": "file-truncated"}
    for key in ("generation", "ncpus", "memory", "devices"):
        del document["images"][-1][key]
    with pytest.raises(ValueError, match="undamaged image"):
        parse_definition(document)
    document["images"][-1]["damage"] = "set-on-fire"
    with pytest.raises(ValueError, match="definition invalid at /images/"):
        parse_definition(document)


def test_a_custom_definition_builds_only_its_images(tmp_path: Path) -> None:
    base = load_definition()
    spec = base.spec("r1")
    copy = ImageSpec(**{**spec.__dict__, "name": "r1-copy", "ncpus": 3})
    result = build_corpus(str(tmp_path), base.with_images([copy]))
    assert [i["name"] for i in result["images"]] == ["r1-copy"]
    assert sorted(os.listdir(tmp_path)) == ["manifest.json", "r1-copy.bhyve"]
    assert read_image(str(tmp_path / "r1-copy.bhyve")).config_text is not None


def test_cli_builds_the_corpus_and_lists_stray_files(tmp_path: Path, run_cli: Any) -> None:
    (tmp_path / "old-image.bhyve").write_bytes(b"left over")
    result = run_cli("corpus", "build", str(tmp_path))
    assert result.status == 0
    assert "old-image.bhyve is not part of the corpus" in result.stderr
    assert (tmp_path / "manifest.json").read_bytes() == (corpus_root() / "manifest.json"
                                                         ).read_bytes()
