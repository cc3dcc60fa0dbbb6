"""``r2 -> r1``: back to the fixed 4 KiB header, for images that need nothing of ``r2``.

An ``r1`` header cannot say that a reader needs 2.1 or a feature, and an ``r1`` entry has no
layout tag (it is ``fbsd14`` by definition), so the step refuses an image whose
``min_reader`` is not 2.0, that lists features, or whose entries are of another generation
with no registered transform. What it drops (the producer record, the checksums, header keys
an ``r1`` reader would reject) is informational: a restore needs none of it.
"""

from __future__ import annotations

from migrate.findings import Finding, error
from migrate.ident import mainstream_ident
from migrate.image import ExtraSection, Image
from migrate.steps.base import (
    Loss,
    Step,
    StepContext,
    current_generation,
    generation_blockers,
    upgrade_entries,
)


class R2ToR1(Step):
    """Rewrite a plain ``r2`` 2.0 image as an ``r1`` image."""

    name = "r2-to-r1"
    source = "r2"
    destination = "r1"
    direction = "down"
    rewrites = (
        "IDENT: BHYVE CHECKPOINT IMAGE 2.x -> BHYVE CHECKPOINT IMAGE 1.0",
        "header: flat r1 section entries (offset, size, type); no compat record",
        "kernel, devices: every entry a plain binary blob (layout fbsd14 implied)",
        "unknown sections: carried over unchanged",
    )
    losses = (
        Loss("producer", "the r2 producer record (name, version, creation time) is dropped",
             informational=True),
        Loss("checksums", "section checksums and section-entry keys r1 cannot hold are "
             "dropped", informational=True),
    )
    test_image = "r2"

    def blockers(self, image: Image, context: StepContext) -> list[Finding]:
        found: list[Finding] = []
        plain = mainstream_ident("2.0")
        compat = image.compat
        if compat is None or compat.min_reader != plain:
            needed = "none" if compat is None else compat.min_reader
            found.append(error(
                "BHS-M009", image.path, "/compat/min_reader",
                f"the image needs reader {needed}; only an image whose min_reader is "
                f"{plain} can be written as r1",
                "restore it with a reader of that version, or flatten it first"))
        elif compat.features:
            found.append(error(
                "BHS-M009", image.path, "/compat/features",
                f"the image uses the feature(s) {', '.join(compat.features)}, which r1 cannot "
                "express", "restore it with a reader that knows these features"))
        if image.memory_type != "binary":
            found.append(error(
                "BHS-M009", image.path, "/sections/memory/type",
                f"the memory section is of type {image.memory_type}; r1 holds only binary "
                "memory", "flatten the image against its base first"))
        found.extend(generation_blockers(image, current_generation(), context.transforms))
        return found

    def apply(self, image: Image, context: StepContext) -> Image:
        generation = current_generation()
        return image.evolve(
            format=self.destination,
            ident=mainstream_ident("1.0"),
            compat=None,
            producer=None,
            checksums={},
            kernel=upgrade_entries(image.kernel, generation, context.transforms),
            devices=upgrade_entries(image.devices, generation, context.transforms),
            extra_sections=tuple(ExtraSection(extra.name, extra.type, extra.data)
                                 for extra in image.extra_sections),
            sections=(),
            header_area=None,
        )
