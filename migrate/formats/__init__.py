"""Format detection and the reader/writer of each format family.

``read_image`` is the one entry point every command uses: it tells a legacy three-file image
from a single-file one as FORMAT.md section 1 prescribes, and hands the path to the family's
reader. ``write_image`` writes a model to the temporary paths ``output_paths`` names the
finals of (the caller renames them into place in that order).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from migrate.findings import ImageError, error
from migrate.image import Image

if TYPE_CHECKING:
    from migrate.storage import Progress

LEGACY_FORMATS = ("legacy-a", "legacy-b")
SINGLE_FORMATS = ("r1", "r2")


def read_image(path: str) -> Image:
    """Read the image at ``path`` (a legacy ``F``, ``F.kern`` or ``F.meta``, or a single file)."""
    from migrate.formats.legacy import legacy_paths, read_legacy

    if legacy_paths(path) is not None:
        return read_legacy(path)
    if os.path.isdir(path):
        raise ImageError(error("BHS-X002", path, None, "is a directory, not an image"))
    if not os.path.exists(path):
        raise ImageError(error("BHS-X002", path, None, "no such file"))
    from migrate.formats.single import read_single

    return read_single(path)


def read_image_files(image_format: str, paths: Sequence[str], display: str) -> Image:
    """Read an image from explicitly named files (``output_paths`` order), e.g. temporaries.

    The migration runner verifies what it wrote before renaming it into place, when the
    temporary names do not yet carry the ``.kern``/``.meta`` suffixes detection relies on.
    """
    if image_format in LEGACY_FORMATS:
        from migrate.formats.legacy import read_legacy_files

        memory, kern, meta = paths
        return read_legacy_files(memory, kern, meta, display)
    from migrate.formats.single import read_single

    (single,) = paths
    return read_single(single, display=display)


def output_paths(image_format: str, out: str) -> list[str]:
    """The files a write of ``image_format`` to ``out`` produces, in rename order.

    Legacy triples put ``.meta`` last: ``F`` and ``F.kern`` without ``F.meta`` are not an
    image, so a write interrupted between renames never looks like a whole one.
    """
    if image_format in LEGACY_FORMATS:
        return [out, f"{out}.kern", f"{out}.meta"]
    if image_format in SINGLE_FORMATS:
        return [out]
    raise ValueError(f"no writer for format {image_format!r}")


def write_image(image: Image, paths: Sequence[str], *,
                progress: Progress | None = None) -> None:
    """Write ``image`` to ``paths`` (as ``output_paths`` orders them, usually temporaries);
    ``progress`` counts the bytes of guest memory copied."""
    if image.format in LEGACY_FORMATS:
        from migrate.formats.legacy import write_legacy

        memory, kern, meta = paths
        write_legacy(image, memory, kern, meta, progress=progress)
        return
    from migrate.formats.single import write_single

    (single,) = paths
    write_single(image, single, progress=progress)
