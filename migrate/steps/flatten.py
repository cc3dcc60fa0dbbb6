"""``flatten``: merge an ``r2`` 2.1 ``diff-pages`` memory section with its base (FORMAT.md 3.5).

The result is a plain ``r2`` image (binary memory, IDENT and ``min_reader``
``BHYVE CHECKPOINT IMAGE 2.0``) that every 2.x reader restores. Whether the base is at hand
is decided as the format says, without hashing anything: the base file exists beside the
image, is a plain ``r2`` image, and the checksum its own header records for its ``memory``
section equals ``base_checksum``. The merge itself is a :class:`~migrate.image.PageMerge`:
no page is read until a writer copies it.
"""

from __future__ import annotations

import os

from packaging.version import Version

from migrate.config import parse_config
from migrate.data import load_json
from migrate.findings import BhyvesnapError, Finding, error
from migrate.formats.single import read_diff_pages
from migrate.ident import mainstream_ident, parse_ident
from migrate.image import Compat, FileRange, Image, PageMerge
from migrate.steps.base import Step, StepContext

FEATURE = "diff-pages"


class Flatten(Step):
    """Turn an incremental ``r2`` image into a self-contained one."""

    name = "flatten"
    source = "r2"
    destination = "r2"
    direction = "down"
    rewrites = (
        "memory: diff-pages merged with the base image's memory into one binary section",
        "IDENT and compat.min_reader: BHYVE CHECKPOINT IMAGE 2.0; feature diff-pages removed",
        "checksums: memory re-hashed as written",
    )
    losses = ()
    test_image = "r2-diff-pages"
    removes_feature = FEATURE

    def blockers(self, image: Image, context: StepContext) -> list[Finding]:
        if image.memory_type != FEATURE:
            return [error("BHS-M009", image.path, "/sections/memory/type",
                          "the memory section is not diff-pages; there is nothing to flatten")]
        needed = parse_ident(image.compat.min_reader) if image.compat else None
        introduced = Version(load_json("bhyve/revisions.json")["features"][FEATURE]["introduced"])
        if needed is not None and needed.version > introduced:
            return [error("BHS-M009", image.path, "/compat/min_reader",
                          f"the image needs reader {needed.text}, for more than {FEATURE} "
                          f"(introduced in {introduced}); flattening cannot lower that",
                          f"restore it with a reader of version {needed.version} or later")]
        try:
            base_image(image)
        except BhyvesnapError as exc:
            return [exc.finding]
        return []

    def apply(self, image: Image, context: StepContext) -> Image:
        base = base_image(image)
        assert isinstance(image.memory, FileRange)  # diff-pages memory is read as one range
        assert isinstance(base.memory, FileRange)  # base_image() requires binary memory
        diff = read_diff_pages(image.memory, base.memory.size)
        plain = mainstream_ident("2.0")
        features = tuple(f for f in (image.compat.features if image.compat else ())
                         if f != FEATURE)
        return image.evolve(
            ident=plain,
            memory=PageMerge(base.memory, diff.pages, diff.bitmap, diff.page_size,
                             diff.page_count),
            memory_type="binary",
            compat=Compat(plain, features),
            checksums={k: v for k, v in image.checksums.items() if k != "memory"},
            sections=(),
            header_area=None,
        )


def base_path(image: Image) -> str | None:
    """The base file a diff-pages image names, resolved against the image's directory."""
    section = image.section("memory")
    if section is None or "base" not in section.attributes:
        return None
    name = str(section.attributes["base"].value)
    return os.path.join(os.path.dirname(image.path), name)


def base_image(image: Image) -> Image:
    """The base image of ``image``, read and matched; raises with BHS-T008 if not at hand."""
    from migrate.formats import read_image

    section = image.section("memory")
    path = base_path(image)
    if section is None or path is None:
        raise BhyvesnapError(error("BHS-S017", image.path, "/sections/memory/base",
                                   "diff-pages section names no base image"))
    expected = str(section.attributes["base_checksum"].value)
    missing = f"the base image {path} is not at hand"
    remedy = f"put the base image at {path} (its memory checksum must be {expected})"
    if not os.path.isfile(path):
        raise BhyvesnapError(error("BHS-T008", image.path, "/sections/memory/base",
                                   f"{missing}: no such file", remedy))
    try:
        base = read_image(path)
    except BhyvesnapError as exc:
        raise BhyvesnapError(error("BHS-T008", image.path, "/sections/memory/base",
                                   f"{missing}: it does not read as an image "
                                   f"({exc.finding.message})", remedy)) from exc
    recorded = base.checksums.get("memory")
    if (base.format != "r2" or base.memory_type != "binary" or recorded != expected
            or base.memory.size != image_memory_size(image)):
        raise BhyvesnapError(error(
            "BHS-T008", image.path, "/sections/memory/base_checksum",
            f"{missing}: {path} is not the base this image was taken against (its memory "
            f"checksum is {recorded or 'not recorded'})", remedy))
    return base


def image_memory_size(image: Image) -> int | None:
    """``memory.size`` of the image's own config: what the base must hold too."""
    return parse_config(image.config_text or "", image.path).memory_size
