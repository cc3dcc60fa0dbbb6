"""Benchmark ``bhyvesnap validate --verify`` against ``sha256sum`` of the same guest memory.

Usage: ``python bench/bench_verify.py [--size-gib N] [--runs R] [--dir DIR]``

Builds an r2 image of N GiB (default 1) of guest memory (48 MiB of random data then a 16 MiB
hole in every 64 MiB) and a legacy-b image of the same memory (its ``F`` is the raw memory)
with the package's own writers. Then, alternating (R >= 5 runs each, medians):

* ``bhyvesnap validate IMAGE.bhyve --verify``: reads the header, hashes every section with a
  checksum (memory streamed in 1 MiB reads, holes hashed from a zero buffer), compares;
* ``sha256sum F``: what a user would run to check the memory by hand.

The throughput ratio (sha256sum time / validate time) has the goal >= 0.9. sha256sum's
digest must equal the memory checksum the r2 writer recorded. Method: bench/common.py.
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
    build_images,
    markdown_table,
    python_m_migrate,
    ratio,
    rss_note,
    run_alternating,
    size_label,
    sized_arguments,
    sized_parser,
    workspace,
)

from migrate.formats.single import read_single

GOAL = 0.9
"""validate --verify throughput over sha256sum's: at least 90 %."""


@dataclass(frozen=True)
class VerifyBench:
    """validate --verify first, sha256sum second, at one memory size."""

    size: int
    contenders: list[Contender]

    @property
    def throughput_ratio(self) -> float:
        """validate's throughput over sha256sum's (goal >= 0.9)."""
        return ratio(self.contenders[1].median, self.contenders[0].median)


def needed_space(size: int) -> int:
    """The memory file, the r2 image and the legacy-b image, plus slack."""
    return 3 * size + 256 * MIB


def bench_verify(r2_image: Path, memory_file: Path, runs: int) -> VerifyBench:
    """Time verifying ``r2_image`` against hashing ``memory_file`` (the same memory, raw)."""
    recorded = read_single(str(r2_image)).checksums["memory"]

    def same_digest(stdout: str) -> None:
        if f"sha256:{stdout.split(maxsplit=1)[0]}" != recorded:
            raise SystemExit(f"sha256sum of {memory_file} is not the recorded {recorded}")

    contenders = [
        Contender("bhyvesnap validate --verify",
                  [python_m_migrate("validate", str(r2_image), "--verify")]),
        Contender("sha256sum of the memory", [["sha256sum", str(memory_file)]],
                  check=same_digest),
    ]
    run_alternating(contenders, runs)
    return VerifyBench(os.path.getsize(memory_file), contenders)


def table(benches: list[VerifyBench]) -> str:
    rows = []
    for bench in benches:
        for contender in bench.contenders:
            rows.append((size_label(bench.size), contender.name, f"{contender.median:.3f}",
                         f"{bench.size / GIB / contender.median:.2f}",
                         f"{ratio(bench.contenders[1].median, contender.median):.2f}",
                         f"{contender.peak_rss_mib:.1f}"))
    return markdown_table(("memory", "contender", "median s", "GiB/s",
                           "throughput x sha256sum", "peak RSS MiB"), rows,
                          (True, False, True, True, True, True))


def main() -> int:
    parser = sized_parser(__doc__.split("\n\n")[0], 1.0)
    args, size = sized_arguments(parser)
    with workspace(args.dir, needed_space(size), "the verify benchmark",
                   "bhyvesnap-bench-verify-") as work:
        if work is None:
            return 0
        images = build_images(work, size, ["legacy-b", "r2"], data=True)
        bench = bench_verify(images["r2"][0], images["legacy-b"][0], args.runs)
        print(f"{args.runs} runs each, alternating, median; warm page cache; times include "
              f"process start-up; {rss_note()}.\n")
        print(table([bench]))
        verdict = "meets" if bench.throughput_ratio >= GOAL else "misses"
        print(f"\nthroughput validate --verify / sha256sum: {bench.throughput_ratio:.2f} "
              f"({verdict} the goal of >= {GOAL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
