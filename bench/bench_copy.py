"""Benchmark storage.copy_range and storage.hash_range against cp and sha256sum.

Usage: ``python bench/bench_copy.py [--size-gib N] [--runs R] [--dir DIR]``

Builds a file of N GiB (default 1) in a fresh directory under DIR (default: the system's
temporary directory): in every 64 MiB, 48 MiB of random data then a 16 MiB hole. Then, in
alternating order (R >= 5 runs each, the median is reported):

* ``copy_range`` + ``fsync`` of the copy, in a Python child, against ``cp --sparse=always``
  followed by ``sync`` of the copied file (the same durability);
* ``hash_range`` (sha256), in a Python child, against ``sha256sum`` (the digests must agree).

These are the primitives under ``migrate``/``validate --verify``: the floor those commands
can reach. The method (alternation, settling, peak RSS) is bench/common.py's.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from common import (
    GIB,
    MIB,
    Contender,
    markdown_table,
    on_disk,
    ratio,
    remove,
    rss_note,
    run_alternating,
    size_label,
    sized_arguments,
    sized_parser,
    workspace,
    write_memory,
)

PY_COPY = """
import os, sys
from migrate.image import FileRange
from migrate.storage import copy_range
src, dst, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
copy_range(FileRange(src, 0, size), fd, 0)
os.fsync(fd)
os.close(fd)
"""

PY_HASH = """
import sys
from migrate.image import FileRange
from migrate.storage import hash_range
print(hash_range(FileRange(sys.argv[1], 0, int(sys.argv[2]))))
"""


@dataclass(frozen=True)
class PrimitiveBench:
    """One operation at one size: ours first, the reference tool second."""

    operation: str
    size: int
    contenders: list[Contender]
    copy_on_disk: int | None = None

    @property
    def speed(self) -> float:
        """Our throughput over the reference's (> 1: faster than the reference)."""
        return ratio(self.contenders[1].median, self.contenders[0].median)


def needed_space(size: int) -> int:
    """The source and one copy at a time, plus slack."""
    return 2 * size + 256 * MIB


def bench_copies(source: Path, runs: int) -> PrimitiveBench:
    size = os.path.getsize(source)
    target = source.with_name("copy")

    def right_size(_: str) -> None:
        if os.path.getsize(target) != size:
            raise SystemExit(f"{target} has {os.path.getsize(target)} bytes, not {size}")

    contenders = [
        Contender("copy_range + fsync",
                  [[sys.executable, "-c", PY_COPY, str(source), str(target), str(size)]],
                  prepare=lambda: remove([target]), check=right_size),
        Contender("cp --sparse=always + sync",
                  [["cp", "--sparse=always", str(source), str(target)], ["sync", str(target)]],
                  prepare=lambda: remove([target]), check=right_size),
    ]
    run_alternating(contenders, runs)
    allocated = on_disk(target)
    remove([target])
    return PrimitiveBench("copy", size, contenders, allocated)


def bench_hashes(source: Path, runs: int) -> PrimitiveBench:
    size = os.path.getsize(source)
    digests: set[str] = set()

    def record(stdout: str) -> None:
        digests.add(stdout.split(maxsplit=1)[0])

    contenders = [
        Contender("hash_range (sha256)",
                  [[sys.executable, "-c", PY_HASH, str(source), str(size)]], check=record),
        Contender("sha256sum", [["sha256sum", str(source)]], check=record),
    ]
    run_alternating(contenders, runs)
    if len(digests) != 1:
        raise SystemExit(f"the digests differ: {sorted(digests)}")
    return PrimitiveBench("hash", size, contenders)


def table(benches: list[PrimitiveBench]) -> str:
    rows = []
    for bench in benches:
        reference = bench.contenders[1].median
        for contender in bench.contenders:
            disk = "" if bench.copy_on_disk is None else f"{bench.copy_on_disk / MIB:.0f}"
            rows.append((bench.operation, size_label(bench.size), contender.name,
                         f"{contender.median:.3f}", f"{bench.size / GIB / contender.median:.2f}",
                         f"{ratio(reference, contender.median):.2f}x",
                         f"{contender.peak_rss_mib:.1f}", disk))
    return markdown_table(
        ("operation", "size", "tool", "median s", "GiB/s", "speed vs reference",
         "peak RSS MiB", "copy on disk MiB"), rows,
        (False, True, False, True, True, True, True, True))


def main() -> int:
    parser = sized_parser(__doc__.split("\n\n")[0], 1.0)
    args, size = sized_arguments(parser)
    with workspace(args.dir, needed_space(size), "the copy benchmark",
                   "bhyvesnap-bench-copy-") as work:
        if work is None:
            return 0
        source = work / "memory"
        write_memory(source, size, data=True)
        print(f"source: {size_label(size)}, {on_disk(source) / MIB:.0f} MiB allocated; "
              f"{args.runs} runs per tool, alternating, median; warm page cache; times "
              f"include process start-up; {rss_note()}.\n")
        print(table([bench_copies(source, args.runs), bench_hashes(source, args.runs)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
