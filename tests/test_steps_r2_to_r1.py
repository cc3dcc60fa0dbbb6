"""``r2 -> r1``: only plain 2.0 images; producer and checksums are informational losses."""

from __future__ import annotations

from pathlib import Path

from registry_images import r2_image

from migrate.image import Compat, ExtraSection, StateEntry
from migrate.registry import StepContext
from migrate.steps.r2_to_r1 import R2ToR1

STEP = R2ToR1()


def test_declaration() -> None:
    assert (STEP.source, STEP.destination, STEP.direction) == ("r2", "r1", "down")
    assert [loss.what for loss in STEP.losses] == ["producer", "checksums"]
    assert all(loss.informational for loss in STEP.losses)
    assert not STEP.lossy


def test_apply(tmp_path: Path) -> None:
    image = r2_image(tmp_path)
    assert STEP.blockers(image, StepContext()) == []
    result = STEP.apply(image, StepContext())
    assert result.format == "r1"
    assert result.ident == "BHYVE CHECKPOINT IMAGE 1.0"
    assert (result.compat, result.producer, dict(result.checksums)) == (None, None, {})
    assert result.memory is image.memory
    assert result.config_text == image.config_text
    assert result.kernel == image.kernel
    assert result.devices == image.devices
    (notes,) = result.extra_sections
    assert notes == ExtraSection("notes", "text", image.extra_sections[0].data)
    assert notes.data is image.extra_sections[0].data


def test_images_that_need_more_than_r1_are_blocked(tmp_path: Path) -> None:
    image = r2_image(tmp_path)
    newer = image.evolve(compat=Compat("BHYVE CHECKPOINT IMAGE 2.1", ("diff-pages",)),
                         memory_type="diff-pages")
    found = STEP.blockers(newer, StepContext())
    assert [(f.rule, f.location) for f in found] == [
        ("BHS-M009", "/compat/min_reader"), ("BHS-M009", "/sections/memory/type")]
    assert "BHYVE CHECKPOINT IMAGE 2.1" in found[0].message
    featured = image.evolve(compat=Compat("BHYVE CHECKPOINT IMAGE 2.0", ("shiny",)))
    (feature,) = STEP.blockers(featured, StepContext())
    assert (feature.location, "shiny" in feature.message) == ("/compat/features", True)
    other = image.evolve(kernel=(StateEntry("vm", "fbsd15", b"v"),))
    (generation,) = STEP.blockers(other, StepContext())
    assert generation.rule == "BHS-M002"
