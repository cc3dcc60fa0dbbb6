"""``r1 -> r2``: the grouped header with a compatibility record and typed state entries.

Nothing is lost: every section is carried over and each state entry gets the ``layout`` tag
of the one generation an ``r1`` writer has. Checksums are the ``r2`` writer's job (it hashes
what it writes); the model only says which header revision to write.
"""

from __future__ import annotations

from migrate.findings import Finding
from migrate.ident import mainstream_ident
from migrate.image import Compat, Image
from migrate.steps.base import (
    Step,
    StepContext,
    current_generation,
    generation_blockers,
    upgrade_entries,
)


class R1ToR2(Step):
    """Rewrite an ``r1`` image as a plain ``r2`` 2.0 image."""

    name = "r1-to-r2"
    source = "r1"
    destination = "r2"
    direction = "up"
    rewrites = (
        "IDENT: BHYVE CHECKPOINT IMAGE 1.0 -> BHYVE CHECKPOINT IMAGE 2.0",
        "header: section entries grouped under `sections`; `compat` record with min_reader 2.0",
        "kernel, devices: every entry an nvlist with `layout` fbsd14 and `data`",
        "sections: sha256 checksum of every section",
    )
    losses = ()
    test_image = "r1"

    def blockers(self, image: Image, context: StepContext) -> list[Finding]:
        """An ``r1`` entry is ``fbsd14`` by definition; anything else needs a transform."""
        return generation_blockers(image, current_generation(), context.transforms)

    def apply(self, image: Image, context: StepContext) -> Image:
        generation = current_generation()
        ident = mainstream_ident("2.0")
        return image.evolve(
            format=self.destination,
            ident=ident,
            compat=Compat(ident, ()),
            kernel=upgrade_entries(image.kernel, generation, context.transforms),
            devices=upgrade_entries(image.devices, generation, context.transforms),
            sections=(),
            header_area=None,
        )
