"""Fuzz the single-file reader: ``python bench/fuzz_single.py -atheris_runs=200000``.

An input is a flag byte and the head of an r1 or r2 file; the target writes the head to a
scratch file (on tmpfs) and, when the flag's low bit is set, extends it with a hole to the
seeds' full length, so that byte edits of the header and small sections are not drowned in
1 MiB of guest memory while truncated files are still reached. ``read_single`` must then
return an image or raise :class:`~migrate.findings.BhyvesnapError`; anything else is a
crash. Seeds: an r1 and an r2 image of the canonical writer (memory all holes).
See bench/fuzz_common.py for the options and docs/FUZZING.md for the recorded runs.
"""

from __future__ import annotations

import os
import sys

from fuzz_common import main, scratch_dir, tests_on_path

from migrate.findings import BhyvesnapError
from migrate.formats.single import read_single

SCRATCH = scratch_dir()
TARGET = SCRATCH / "input.bhyve"
MEMORY = 1 << 20
FULL: dict[str, int] = {"size": 0}
"""The largest seed's full size: what a flagged input is extended to."""


def seeds() -> list[bytes]:
    tests_on_path()
    from single_factory import build

    zeros = SCRATCH / "zero.mem"
    with open(zeros, "wb") as handle:
        handle.truncate(MEMORY)
    found = []
    for image_format in ("r1", "r2"):
        path = build(SCRATCH, image_format, name=f"seed.{image_format}", memory_size=MEMORY,
                     memory=zeros)
        data = path.read_bytes()
        FULL["size"] = max(FULL["size"], len(data))
        found.append(b"\x01" + data.rstrip(b"\0"))
    return found


def one_input(data: bytes) -> None:
    flag, body = (data[0], data[1:]) if data else (0, b"")
    with open(TARGET, "wb") as handle:
        handle.write(body)
        if flag & 1 and len(body) < FULL["size"]:
            handle.truncate(FULL["size"])
    try:
        read_single(os.fspath(TARGET))
    except BhyvesnapError:
        return


if __name__ == "__main__":
    sys.exit(main("fuzz_single", one_input, seeds()))
