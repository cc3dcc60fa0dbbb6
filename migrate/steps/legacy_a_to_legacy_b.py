"""``legacy-a -> legacy-b``: FreeBSD 13.x three-file snapshots to the 14.0+ layout.

``structs`` becomes ``kern_structs`` (``vmx`` has no place in layout B), the fixed device
table of type names becomes one entry per PCI function named by instance, and size-0 entries
(devices the VM lacked) are dropped. Layout A does not record which PCI slot a device sat in,
so the step needs the VM's configuration (``--config``: a ``bhyve -k`` file or the output of
``bhyve -o config.dump=1``) and refuses without it. 13.x saved only the first device of each
type, which is the lowest PCI address with that emulation.

Every blob also changes generation (fbsd13.x -> fbsd14). No such transform is known
(FORMAT.md 2.5), so with the tool's own transforms this step is always blocked, naming every
structure that lacks one; registering transforms unblocks it with no change here.
"""

from __future__ import annotations

from migrate.config import BhyveConfig
from migrate.devices import instance_name, layout_b_order
from migrate.findings import Finding, error
from migrate.formats.bhyve import legacy_facts
from migrate.image import Image, StateEntry
from migrate.steps.base import (
    Step,
    StepContext,
    current_generation,
    entry_location,
    generation_blockers,
    upgrade_entries,
)

UNADDRESSED: frozenset[str] = frozenset({"atkbdc"})
"""Device types bhyve creates without a PCI function (FORMAT.md 3.7): they keep their name."""

CONFIG_REMEDY = ("pass the VM's configuration with --config FILE (a bhyve -k file, or the "
                 "output of bhyve -o config.dump=1 on the original VM)")


class LegacyAToLegacyB(Step):
    """Rewrite a 13.x (layout A) snapshot in the 14.0+ layout B."""

    name = "legacy-a-to-legacy-b"
    source = "legacy-a"
    destination = "legacy-b"
    direction = "up"
    rewrites = (
        "F.meta structs -> kern_structs in layout-B order, without vmx",
        "F.meta devices: type names -> instance names <emulation>@pci.B.S.F from --config; "
        "size-0 devices dropped",
        "F.kern: every blob upgraded fbsd13.x -> fbsd14 by registered transforms",
    )
    losses = ()
    test_image = "legacy-a"

    def blockers(self, image: Image, context: StepContext) -> list[Finding]:
        found = generation_blockers(image, current_generation(), context.transforms,
                                    kept=_kept)
        if context.user_config is None:
            found.append(error(
                "BHS-M003", image.path, None,
                "legacy-a images do not record PCI slots; the VM's configuration is needed "
                "to name the devices", CONFIG_REMEDY))
            return found
        slots = _slots(context.user_config)
        for index, entry in enumerate(image.devices):
            if entry.size and entry.name not in UNADDRESSED and entry.name not in slots:
                file, location = entry_location(image, "device", index)
                found.append(error(
                    "BHS-M003", file, location,
                    f"the saved {entry.name} device has no pci.B.S.F.device={entry.name} line "
                    f"in {context.user_config_file or 'the configuration'}",
                    "pass the configuration of the VM this snapshot was taken of"))
        return found

    def apply(self, image: Image, context: StepContext) -> Image:
        generation = current_generation()
        slots = _slots(context.user_config or BhyveConfig({}))
        order = legacy_facts().b_structs
        kernel = sorted((entry for entry in image.kernel if _kept(entry, kernel=True)),
                        key=lambda entry: order.index(entry.name))
        renamed = {entry.name: entry for entry in
                   (_renamed(entry, slots) for entry in image.devices
                    if _kept(entry, kernel=False))}
        devices = [renamed[name] for name in layout_b_order(renamed)]
        return image.evolve(
            format=self.destination,
            kernel=upgrade_entries(kernel, generation, context.transforms),
            devices=upgrade_entries(devices, generation, context.transforms),
            sections=(),
        )


def _kept(entry: StateEntry, kernel: bool) -> bool:
    """Whether layout B keeps the entry: kernel structures of its table, non-empty devices."""
    return entry.name in legacy_facts().b_structs if kernel else entry.size > 0


def _slots(config: BhyveConfig) -> dict[str, tuple[int, int, int]]:
    """The PCI address of the first (lowest) function of each emulation in ``config``."""
    slots: dict[str, tuple[int, int, int]] = {}
    for bus, slot, function, emulation in config.pci_devices():
        slots.setdefault(emulation, (bus, slot, function))
    return slots


def _renamed(entry: StateEntry, slots: dict[str, tuple[int, int, int]]) -> StateEntry:
    if entry.name in UNADDRESSED:
        return entry
    return StateEntry(instance_name(entry.name, *slots[entry.name]), entry.generation,
                      entry.blob)
