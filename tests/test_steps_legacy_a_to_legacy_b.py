"""``legacy-a -> legacy-b``: config-driven instance names, dropped entries, blob transforms."""

from __future__ import annotations

from pathlib import Path

from registry_images import KERNEL_B, USER_CONFIG_TEXT, blob, legacy_a_image

from migrate.config import parse_config
from migrate.registry import StepContext
from migrate.steps.legacy_a_to_legacy_b import LegacyAToLegacyB
from migrate.transforms import TransformRegistry

STEP = LegacyAToLegacyB()
PRESENT = ("atkbdc", "virtio-net", "virtio-blk", "lpc")


def _transforms(source: str) -> TransformRegistry:
    transforms = TransformRegistry()
    for name in (*KERNEL_B, *PRESENT):
        transforms.register(name, source, "fbsd14", lambda data: b"14:" + data)
    return transforms


def _context(text: str = USER_CONFIG_TEXT, source: str = "fbsd13.0") -> StepContext:
    return StepContext(user_config=parse_config(text, "vm.conf"), user_config_file="vm.conf",
                       transforms=_transforms(source))


def test_declaration() -> None:
    assert (STEP.source, STEP.destination, STEP.direction) == ("legacy-a", "legacy-b", "up")
    assert STEP.losses == ()
    assert not STEP.lossy


def test_refused_without_config_and_blocked_without_transforms(tmp_path: Path) -> None:
    image = legacy_a_image(tmp_path)
    found = STEP.blockers(image, StepContext())
    config = [f for f in found if f.rule == "BHS-M003"]
    assert len(config) == 1
    assert "--config" in (config[0].remedy or "")
    blocked = [f for f in found if f.rule == "BHS-M002"]
    # Every kept structure and device once; vmx and the size-0 devices need nothing.
    assert [f.message.split("`")[1] for f in blocked] == [*KERNEL_B, *PRESENT]
    vm = blocked[1]
    assert vm.message == ("kernel structure `vm`: generation fbsd13.0 -> fbsd14 has no "
                          "registered upgrade")
    assert (vm.file, vm.location) == (image.path + ".meta", "/structs/1")
    assert blocked[-1].location == "/devices/4"  # lpc, fifth in the fixed table
    assert all(f.is_error for f in found)


def test_a_device_the_config_does_not_name_is_refused(tmp_path: Path) -> None:
    text = USER_CONFIG_TEXT.replace("pci.0.2.0.device=virtio-net\n", "")
    found = STEP.blockers(legacy_a_image(tmp_path), _context(text))
    assert [(f.rule, f.location) for f in found] == [("BHS-M003", "/devices/1")]
    assert "virtio-net" in found[0].message
    assert "vm.conf" in found[0].message


def test_apply_renames_drops_and_upgrades(tmp_path: Path) -> None:
    image = legacy_a_image(tmp_path)
    context = _context()
    assert STEP.blockers(image, context) == []
    result = STEP.apply(image, context)
    assert result.format == "legacy-b"
    assert result.memory is image.memory
    assert result.legacy == image.legacy
    assert [e.name for e in result.kernel] == list(KERNEL_B)
    # The lowest address of each emulation (13.x saved only the first virtio-blk), in
    # bus/slot/function order, atkbdc last.
    assert [e.name for e in result.devices] == [
        "virtio-net@pci.0.2.0", "virtio-blk@pci.0.3.0", "lpc@pci.0.31.0", "atkbdc"]
    assert {e.generation for e in (*result.kernel, *result.devices)} == {"fbsd14"}
    assert result.kernel[1].blob == b"14:" + blob("vm")
    assert result.devices[1].blob == b"14:" + blob("virtio-blk")


def test_fbsd13_2_image_with_empty_vmx(tmp_path: Path) -> None:
    image = legacy_a_image(tmp_path, generation="fbsd13.2")
    assert next(e for e in image.kernel if e.name == "vmx").size == 0
    context = _context(source="fbsd13.2")
    assert STEP.blockers(image, context) == []
    result = STEP.apply(image, context)
    assert "vmx" not in [e.name for e in result.kernel]
    assert result.kernel[0].blob == b"14:" + blob("vhpet")
