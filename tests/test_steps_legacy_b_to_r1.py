"""``legacy-b -> r1``: the config section built from metadata, merged with --config."""

from __future__ import annotations

from pathlib import Path

from registry_images import USER_CONFIG_TEXT, legacy_b_image

from migrate.config import parse_config
from migrate.registry import StepContext
from migrate.steps.legacy_b_to_r1 import LegacyBToR1
from migrate.transforms import TransformRegistry

STEP = LegacyBToR1()
BUILT = ("name=vm1\ncpus=2\nmemory.guest_in_core=true\nmemory.size=1048576\n"
         "pci.0.2.0.device=virtio-net\npci.0.3.0.device=virtio-blk\npci.0.31.0.device=lpc\n"
         "snapshot.config_incomplete=true\n")


def test_declaration() -> None:
    assert (STEP.source, STEP.destination, STEP.direction) == ("legacy-b", "r1", "up")
    assert not STEP.lossy


def test_without_config_the_section_is_built_from_metadata_and_marked(tmp_path: Path) -> None:
    image = legacy_b_image(tmp_path)
    context = StepContext()
    assert STEP.blockers(image, context) == []
    result = STEP.apply(image, context)
    assert result.format == "r1"
    assert result.ident == "BHYVE CHECKPOINT IMAGE 1.0"
    assert result.config_text == BUILT
    assert result.legacy is None
    assert result.memory is image.memory
    for before, after in zip((*image.kernel, *image.devices), (*result.kernel, *result.devices),
                             strict=True):
        assert after is before  # same name, fbsd14, blob still an unread FileRange
    (finding,) = result.findings
    assert (finding.rule, finding.severity.value) == ("BHS-C005", "warning")
    assert "disk paths" in finding.message


def test_user_config_is_merged_and_completes_the_section(tmp_path: Path) -> None:
    image = legacy_b_image(tmp_path)
    context = StepContext(user_config=parse_config(USER_CONFIG_TEXT, "vm.conf"),
                          user_config_file="vm.conf")
    assert STEP.blockers(image, context) == []
    result = STEP.apply(image, context)
    assert result.findings == ()
    assert result.config_text == (
        "name=vm1\ncpus=2\nmemory.guest_in_core=true\nmemory.size=1048576\n"
        "pci.0.0.0.device=hostbridge\n"
        "pci.0.2.0.backend=tap0\npci.0.2.0.device=virtio-net\n"
        "pci.0.3.0.device=virtio-blk\npci.0.3.0.path=/vm/disk.img\n"
        "pci.0.4.0.device=virtio-blk\npci.0.4.0.path=/vm/data.img\n"
        "pci.0.31.0.device=lpc\nlpc.com1.path=stdio\n")


def test_a_conflicting_user_config_blocks_the_step(tmp_path: Path) -> None:
    context = StepContext(user_config=parse_config("cpus=4\n", "vm.conf"),
                          user_config_file="vm.conf")
    (finding,) = STEP.blockers(legacy_b_image(tmp_path), context)
    assert (finding.rule, finding.file) == ("BHS-C004", "vm.conf")


def test_image_without_metadata_or_of_another_generation_is_blocked(tmp_path: Path) -> None:
    image = legacy_b_image(tmp_path)
    (finding,) = STEP.blockers(image.evolve(legacy=None), StepContext())
    assert finding.rule == "BHS-M009"
    newer = image.evolve(kernel=tuple(e.__class__(e.name, "fbsd16", e.blob)
                                      for e in image.kernel))
    found = STEP.blockers(newer, StepContext())
    assert {f.rule for f in found} == {"BHS-M002"}
    assert len(found) == len(image.kernel)
    transforms = TransformRegistry()
    for entry in image.kernel:
        transforms.register(entry.name, "fbsd16", "fbsd14", lambda data: data[::-1])
    result = STEP.apply(newer, StepContext(transforms=transforms))
    assert result.kernel[0].blob == image.kernel[0].read()[::-1]
    assert result.kernel[0].generation == "fbsd14"
