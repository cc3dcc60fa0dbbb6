"""Fuzz the libnv decoder: ``python bench/fuzz_nvlist.py -atheris_runs=500000``.

Seeds are the nvlist test vectors (tests/data/nvlist). An input must either raise
:class:`~migrate.nvlist.NvlistError` or decode to a list that packs and decodes back to the
same list (what the decoder accepts, the encoder can write); any other outcome is a crash.
See bench/fuzz_common.py for the options and docs/FUZZING.md for the recorded runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fuzz_common import main

from migrate.nvlist import NvlistError, pack, unpack

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "data" / "nvlist"


def seeds() -> list[bytes]:
    return [path.read_bytes() for path in sorted(VECTORS.glob("*/*.bin"))]


def one_input(data: bytes) -> None:
    try:
        nvl = unpack(data, None)
    except NvlistError:
        return
    if unpack(pack(nvl), None) != nvl:
        raise AssertionError("an accepted list changed in a pack/unpack round trip")


if __name__ == "__main__":
    sys.exit(main("fuzz_nvlist", one_input, seeds()))
