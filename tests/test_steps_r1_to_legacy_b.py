"""``r1 -> legacy-b``: basic metadata from the config; the config itself is lost."""

from __future__ import annotations

from pathlib import Path

from registry_images import r1_image

from migrate.image import LegacyMetadata
from migrate.registry import StepContext
from migrate.steps.r1_to_legacy_b import R1ToLegacyB

STEP = R1ToLegacyB()


def test_declaration_is_lossy() -> None:
    assert (STEP.source, STEP.destination, STEP.direction) == ("r1", "legacy-b", "down")
    assert STEP.lossy
    assert {loss.what: loss.informational for loss in STEP.losses} == {
        "config": False, "unknown sections": False}


def test_apply(tmp_path: Path) -> None:
    image = r1_image(tmp_path)
    assert STEP.blockers(image, StepContext()) == []
    result = STEP.apply(image, StepContext())
    assert result.format == "legacy-b"
    assert result.legacy == LegacyMetadata(ncpus=2, vmname="vm1", memsize=1 << 20, memflags=1)
    assert (result.ident, result.config_text, result.extra_sections) == (None, None, ())
    assert result.memory is image.memory
    assert result.kernel == image.kernel
    assert result.devices == image.devices


def test_memflags_come_from_both_memory_keys(tmp_path: Path) -> None:
    image = r1_image(tmp_path)
    text = (image.config_text or "") + "memory.wired=yes\n"
    result = STEP.apply(image.evolve(config_text=text), StepContext())
    assert result.legacy is not None
    assert result.legacy.memflags == 3


def test_a_broken_config_or_non_binary_memory_blocks_the_step(tmp_path: Path) -> None:
    image = r1_image(tmp_path)
    (missing,) = STEP.blockers(image.evolve(config_text="name=vm1\nmemory.size=1G\n"),
                               StepContext())
    assert missing.rule == "BHS-C002"
    (syntax,) = STEP.blockers(image.evolve(config_text="name=vm1\nno equals sign\n"),
                              StepContext())
    assert (syntax.rule, syntax.location) == ("BHS-C001", 9)
    (memory,) = STEP.blockers(image.evolve(memory_type="diff-pages"), StepContext())
    assert memory.rule == "BHS-M009"
