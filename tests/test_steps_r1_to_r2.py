"""``r1 -> r2``: IDENT, compat record, layout tags; everything else carried over."""

from __future__ import annotations

from pathlib import Path

from registry_images import r1_image

from migrate.image import Compat, StateEntry
from migrate.registry import StepContext
from migrate.steps.r1_to_r2 import R1ToR2

STEP = R1ToR2()


def test_declaration() -> None:
    assert (STEP.source, STEP.destination, STEP.direction) == ("r1", "r2", "up")
    assert STEP.losses == ()
    assert any("sha256 checksum of every section" in line for line in STEP.rewrites)


def test_apply(tmp_path: Path) -> None:
    image = r1_image(tmp_path)
    assert STEP.blockers(image, StepContext()) == []
    result = STEP.apply(image, StepContext())
    assert result.format == "r2"
    assert result.ident == "BHYVE CHECKPOINT IMAGE 2.0"
    assert result.compat == Compat("BHYVE CHECKPOINT IMAGE 2.0", ())
    assert result.memory is image.memory
    assert result.config_text == image.config_text
    assert result.extra_sections == image.extra_sections
    assert result.kernel == image.kernel
    assert result.devices == image.devices
    assert result.generations == {"fbsd14"}
    assert dict(result.checksums) == {}  # computed by the r2 writer


def test_an_entry_of_another_generation_needs_a_transform(tmp_path: Path) -> None:
    image = r1_image(tmp_path)
    odd = image.evolve(devices=(*image.devices[:-1], StateEntry("atkbdc", "fbsd13.2", b"x")))
    (finding,) = STEP.blockers(odd, StepContext())
    assert finding.rule == "BHS-M002"
    assert (finding.file, finding.location) == (image.path, None)
    assert "device `atkbdc`: generation fbsd13.2 -> fbsd14" in finding.message
