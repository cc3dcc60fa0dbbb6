"""``r1 -> legacy-b``: one file back to the three files FreeBSD 14.0+ restores.

Layout B has no place for the configuration: ``basic metadata`` keeps what bhyve reads from
it (``name`` -> ``vmname``, ``cpus`` -> ``ncpus``, ``memory.size`` -> ``memsize``, the memory
flags -> ``memflags``) and the rest of the ``config`` section is lost, so the plan is lossy.
Unknown sections have no place either and are dropped, a declared loss.
"""

from __future__ import annotations

from migrate.config import BhyveConfig, legacy_memflags, parse_config, validate_config
from migrate.findings import Finding, error
from migrate.image import Image, LegacyMetadata
from migrate.steps.base import (
    Loss,
    Step,
    StepContext,
    current_generation,
    generation_blockers,
    refusal,
    upgrade_entries,
)


class R1ToLegacyB(Step):
    """Rewrite an ``r1`` image as a three-file FreeBSD 14.0+ snapshot."""

    name = "r1-to-legacy-b"
    source = "r1"
    destination = "legacy-b"
    direction = "down"
    rewrites = (
        "F.meta basic metadata: name, cpus, memory.size and memory flags from the config",
        "F.meta kern_structs and devices, F.kern: the kernel and devices blobs",
        "F: the memory section copied unchanged (holes kept)",
    )
    losses = (
        Loss("config", "the config section (disk paths, network backends, every other key); "
             "restore needs the VM's original -s options or -k file"),
        Loss("unknown sections", "sections this tool does not know have no place in a "
             "legacy image and are dropped"),
    )
    test_image = "r1"

    def blockers(self, image: Image, context: StepContext) -> list[Finding]:
        found = generation_blockers(image, current_generation(), context.transforms)
        if image.memory_type != "binary":
            found.append(error("BHS-M009", image.path, "/memory/type",
                               f"the memory section is of type {image.memory_type}; a legacy "
                               "memory file is plain binary"))
        found.extend(refusal(lambda: _config(image)))
        return found

    def apply(self, image: Image, context: StepContext) -> Image:
        generation = current_generation()
        config = _config(image)
        return image.evolve(
            format=self.destination,
            ident=None,
            config_text=None,
            legacy=LegacyMetadata(ncpus=config.cpus or 0, vmname=config.name or "",
                                  memsize=config.memory_size or 0,
                                  memflags=legacy_memflags(config)),
            kernel=upgrade_entries(image.kernel, generation, context.transforms),
            devices=upgrade_entries(image.devices, generation, context.transforms),
            extra_sections=(),
            compat=None,
            producer=None,
            checksums={},
            sections=(),
            header_area=None,
        )


def _config(image: Image) -> BhyveConfig:
    """The parsed config section, with name, cpus and memory.size present (else it raises)."""
    section = image.section("config")
    start = 0 if section is None else section.offset
    config = parse_config(image.config_text or "", image.path, start)
    validate_config(config, image.path, start)
    return config
