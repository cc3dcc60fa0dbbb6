"""``flatten``: diff-pages merged with its base into a plain r2 2.0 image (FORMAT.md 3.5)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from single_factory import build, build_diff

from migrate.formats.single import read_single, write_single
from migrate.ident import mainstream_ident
from migrate.image import Compat, FileRange
from migrate.registry import REGISTRY, StepContext
from migrate.steps.flatten import Flatten
from migrate.validation import validate

PRESENT = {0: b"\xaa" * 4096, 3: b"\xbb" * 100, 4: b"\xcc" * 4096, 255: b"\xdd" * 4096}


def test_flatten_is_registered_as_a_same_format_step() -> None:
    step = REGISTRY.removal_step("diff-pages")
    assert isinstance(step, Flatten)
    assert (step.source, step.destination, step.lossy) == ("r2", "r2", False)


def test_flatten_merges_pages_over_the_base(tmp_path: Path) -> None:
    base, diff = build_diff(tmp_path, PRESENT)
    image = read_single(str(diff))
    assert image.memory_type == "diff-pages"
    step = Flatten()
    assert step.blockers(image, StepContext()) == []
    flat = step.apply(image, StepContext())
    assert flat.ident == mainstream_ident("2.0")
    assert flat.compat == Compat(mainstream_ident("2.0"), ())
    out = tmp_path / "flat.bhyve"
    write_single(flat, str(out))
    written = read_single(str(out))
    base_memory = read_single(str(base)).memory
    assert isinstance(base_memory, FileRange)
    assert isinstance(written.memory, FileRange)
    expected = bytearray(base_memory.read())
    for page, data in PRESENT.items():
        expected[page * 4096:(page + 1) * 4096] = data.ljust(4096, b"\0")
    assert written.memory.read() == bytes(expected)
    assert written.memory_type == "binary"
    assert written.checksums["memory"] == "sha256:" + hashlib.sha256(expected).hexdigest()
    assert validate(str(out), verify=True).valid


def test_missing_base_blocks_with_the_file_named(tmp_path: Path) -> None:
    base, diff = build_diff(tmp_path, PRESENT)
    base.unlink()
    findings = Flatten().blockers(read_single(str(diff)), StepContext())
    assert [f.rule for f in findings] == ["BHS-T008"]
    assert str(base) in findings[0].message
    assert findings[0].remedy is not None


def test_a_different_base_is_not_at_hand(tmp_path: Path) -> None:
    base, diff = build_diff(tmp_path, PRESENT)
    other = tmp_path / "other"
    other.mkdir()
    impostor = build(other, "r2", memory_size=2 << 20)
    base.write_bytes(impostor.read_bytes())
    findings = Flatten().blockers(read_single(str(diff)), StepContext())
    assert [(f.rule, f.location) for f in findings] == [
        ("BHS-T008", "/sections/memory/base_checksum")]


def test_plain_memory_has_nothing_to_flatten(tmp_path: Path) -> None:
    image = read_single(str(build(tmp_path, "r2")))
    assert [f.rule for f in Flatten().blockers(image, StepContext())] == ["BHS-M009"]


def test_a_reader_needed_for_more_than_diff_pages_blocks(tmp_path: Path) -> None:
    """Flattening removes diff-pages only; a min_reader above 2.1 says the image needs a
    newer reader for something else, which a 2.0 IDENT would hide."""
    _, diff = build_diff(tmp_path, PRESENT)
    image = read_single(str(diff))
    newer = image.evolve(compat=Compat(mainstream_ident("2.2"), ("diff-pages",)))
    findings = Flatten().blockers(newer, StepContext())
    assert [(f.rule, f.location) for f in findings] == [("BHS-M009", "/compat/min_reader")]
