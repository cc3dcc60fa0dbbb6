"""Fuzz the legacy ``F.meta`` reader: ``python bench/fuzz_meta.py -atheris_runs=200000``.

An input is the bytes of ``F.meta``; the target writes them beside a fixed ``F`` (256 KiB,
sparse) and ``F.kern`` (large enough for both seeds' blobs) on tmpfs and runs
``read_legacy``, which must return an image or raise
:class:`~migrate.findings.BhyvesnapError`; anything else is a crash. Seeds: the ``F.meta``
of a legacy-a and a legacy-b image, with numbers as JSON numbers and as strings.
See bench/fuzz_common.py for the options and docs/FUZZING.md for the recorded runs.
"""

from __future__ import annotations

import os
import sys

from fuzz_common import main, scratch_dir, tests_on_path

from migrate.findings import BhyvesnapError
from migrate.formats.legacy import read_legacy

SCRATCH = scratch_dir()
IMAGE = SCRATCH / "vm.ckp"
META = SCRATCH / "vm.ckp.meta"
MEMSIZE = 256 * 1024


def seeds() -> list[bytes]:
    """The seeds' ``F.meta`` bytes; leaves ``F`` and the largest ``F.kern`` in place."""
    tests_on_path()
    from legacy_factory import build_legacy

    found = []
    kern = b""
    for layout in ("legacy-a", "legacy-b"):
        for as_strings in (False, True):
            files = build_legacy(SCRATCH / f"{layout}-{as_strings}", layout, memsize=MEMSIZE,
                                 numbers_as_strings=as_strings)
            found.append(files.meta.read_bytes())
            kern = max(kern, files.kern.read_bytes(), key=len)
            os.replace(files.memory, IMAGE)
    (SCRATCH / "vm.ckp.kern").write_bytes(kern)
    return found


def one_input(data: bytes) -> None:
    META.write_bytes(data)
    try:
        read_legacy(os.fspath(IMAGE))
    except BhyvesnapError:
        return


if __name__ == "__main__":
    sys.exit(main("fuzz_meta", one_input, seeds()))
