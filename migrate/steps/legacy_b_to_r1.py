"""``legacy-b -> r1``: three files become one, and the VM's configuration is written down.

The legacy formats never stored the configuration; ``r1`` requires a ``config`` section. It
is built from ``basic metadata`` and the device names (FORMAT.md 3.7) and merged with the
user's ``--config`` file when one is given. Without one, bhyve would lack disk paths and
network backends on restore: the config is marked incomplete and the output carries a
warning, but nothing present in the legacy image is lost.
"""

from __future__ import annotations

from migrate.config import BhyveConfig, config_from_legacy, merge_user_config, write_config
from migrate.findings import Finding, error, warning
from migrate.ident import mainstream_ident
from migrate.image import Image
from migrate.steps.base import (
    Step,
    StepContext,
    current_generation,
    generation_blockers,
    refusal,
    upgrade_entries,
)


class LegacyBToR1(Step):
    """Rewrite a 14.0+ three-file snapshot as one ``r1`` file."""

    name = "legacy-b-to-r1"
    source = "legacy-b"
    destination = "r1"
    direction = "up"
    rewrites = (
        "IDENT: BHYVE CHECKPOINT IMAGE 1.0 with a 4 KiB header",
        "config: built from basic metadata and device names, merged with --config",
        "kernel, devices: F.meta entries and F.kern blobs -> nvlist sections",
        "memory: the F file copied unchanged (holes kept)",
    )
    losses = ()
    test_image = "legacy-b"

    def blockers(self, image: Image, context: StepContext) -> list[Finding]:
        found = generation_blockers(image, current_generation(), context.transforms)
        if image.legacy is None:
            found.append(error("BHS-M009", image.path, "/basic metadata",
                               "the image has no basic metadata to build a config from"))
            return found
        found.extend(refusal(lambda: _config(image, context)))
        return found

    def apply(self, image: Image, context: StepContext) -> Image:
        generation = current_generation()
        findings = list(image.findings)
        if context.user_config is None:
            findings.append(warning(
                "BHS-C005", image.path, None,
                "the config section was built from the legacy metadata alone; bhyve needs "
                "the disk paths and network backends it lacks to restore the VM",
                "migrate again with --config FILE (a bhyve -k file or the output of "
                "bhyve -o config.dump=1)"))
        return image.evolve(
            format=self.destination,
            ident=mainstream_ident("1.0"),
            config_text=write_config(_config(image, context)),
            legacy=None,
            kernel=upgrade_entries(image.kernel, generation, context.transforms),
            devices=upgrade_entries(image.devices, generation, context.transforms),
            sections=(),
            header_area=None,
            findings=tuple(findings),
        )


def _config(image: Image, context: StepContext) -> BhyveConfig:
    """The config section's content; raises the finding's error when it cannot be built."""
    if image.legacy is None:
        raise ValueError("a legacy-b image without basic metadata")
    meta = next((name for name in image.files if name.endswith(".meta")), image.path)
    built = config_from_legacy(image.legacy, [entry.name for entry in image.devices],
                               file=meta)
    if context.user_config is None:
        return built
    return merge_user_config(built, context.user_config,
                             context.user_config_file or "the --config file")
