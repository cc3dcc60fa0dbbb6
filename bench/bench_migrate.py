"""Benchmark ``bhyvesnap migrate`` against ``cp --sparse=always`` + ``sync`` of the same files.

Usage: ``python bench/bench_migrate.py [--from legacy-b] [--to r2] [--size-gib N] [--runs R]
[--dir DIR] [--verify]``

Builds a source image (default legacy-b: ``F``, ``F.kern``, ``F.meta``) of N GiB of guest
memory (default 2; 48 MiB of random data then a 16 MiB hole in every 64 MiB) with the
package's own writer, in a fresh directory under DIR (default: the temporary directory).
Then, alternating (R >= 5 runs each, the median is reported):

* ``bhyvesnap migrate SRC --to FORMAT -o OUT --force`` (``python -m migrate``): reads the
  source, copies memory with ``copy_file_range`` keeping holes (an r2 output also hashes it,
  in a thread, during the copy), fsyncs, reads back the header and small sections, renames;
* ``cp --sparse=always`` of the source's files, then ``sync`` of the copies: the same bytes,
  made equally durable (the tool fsyncs, so its baseline must too).

With ``--verify`` a third contender runs the migration with ``--verify`` (memory hashed again
from the output). The method (alternation, settling, removal of outputs, peak RSS) is
bench/common.py's. Prints a Markdown table and the ratio to cp (goal <= 1.15).
"""

from __future__ import annotations

import os
import shutil
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
    remove,
    rss_note,
    run_alternating,
    size_label,
    sized_arguments,
    sized_parser,
    workspace,
)

GOAL = 1.15
"""Migration time over cp + sync: the tool may cost at most 15 % more than copying."""


@dataclass(frozen=True)
class MigrationBench:
    """The contenders of one route at one size: the tool first, cp + sync second."""

    source: str
    destination: str
    size: int
    contenders: list[Contender]

    @property
    def route(self) -> str:
        return f"{self.source} → {self.destination}"

    @property
    def ratio(self) -> float:
        """Median migration time over median cp + sync time (goal <= 1.15)."""
        return ratio(self.contenders[0].median, self.contenders[1].median)


def needed_space(size: int) -> int:
    """Bytes a route needs free: the memory file, source, output and copy, plus slack."""
    return 4 * size + 512 * MIB


def bench_migration(source_files: list[Path], source: str, destination: str, size: int,
                    runs: int, *, verify: bool = False) -> MigrationBench:
    """Time migrating the image ``source_files`` (memory file first) against copying them."""
    work = source_files[0].parent / f"out-{source}-{destination}-{size}"
    work.mkdir()
    out = work / f"migrated.{destination}"
    outputs = [out, Path(f"{out}.kern"), Path(f"{out}.meta")]
    copies = [work / path.name for path in source_files]

    def output_written(_: str) -> None:
        if not out.exists() or os.path.getsize(out) < size:
            raise SystemExit(f"the migration did not write {out} of at least {size} bytes")

    def copied(_: str) -> None:
        if any(os.path.getsize(c) != os.path.getsize(s) for c, s in zip(copies, source_files,
                                                                       strict=True)):
            raise SystemExit("cp produced a copy of the wrong size")

    base = python_m_migrate("migrate", str(source_files[0]), "--to", destination, "-o",
                            str(out), "--force")
    contenders = [
        Contender(f"bhyvesnap migrate {source} → {destination}", [base],
                  prepare=lambda: remove(outputs), check=output_written),
        Contender("cp --sparse=always + sync",
                  [["cp", "--sparse=always", *map(str, source_files), str(work)],
                   ["sync", *map(str, copies)]],
                  prepare=lambda: remove(copies), check=copied),
    ]
    if verify:
        contenders.append(Contender(f"bhyvesnap migrate {source} → {destination} --verify",
                                    [[*base, "--verify"]], prepare=lambda: remove(outputs),
                                    check=output_written))
    try:
        run_alternating(contenders, runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return MigrationBench(source, destination, size, contenders)


def table(benches: list[MigrationBench]) -> str:
    """Every contender of every bench, with its time relative to cp + sync of that bench."""
    rows = []
    for bench in benches:
        reference = bench.contenders[1].median
        for contender in bench.contenders:
            rows.append((bench.route, size_label(bench.size), contender.name,
                         f"{contender.median:.3f}", f"{min(contender.seconds):.3f}",
                         f"{bench.size / GIB / contender.median:.2f}",
                         f"{ratio(contender.median, reference):.2f}",
                         f"{contender.peak_rss_mib:.1f}"))
    return markdown_table(
        ("route", "memory", "contender", "median s", "min s", "GiB/s", "x cp + sync",
         "peak RSS MiB"), rows, (False, True, False, True, True, True, True, True))


def main() -> int:
    parser = sized_parser(__doc__.split("\n\n")[0], 2.0)
    parser.add_argument("--from", dest="source", choices=("legacy-b", "r1", "r2"),
                        default="legacy-b", help="source format (default legacy-b)")
    parser.add_argument("--to", dest="destination", choices=("r1", "r2"), default="r2",
                        help="destination format (default r2)")
    parser.add_argument("--verify", action="store_true",
                        help="also time migrate --verify (memory hashed again)")
    args, size = sized_arguments(parser)
    if args.source == args.destination:
        parser.error("--from and --to must differ")
    with workspace(args.dir, needed_space(size), "the migration benchmark",
                   "bhyvesnap-bench-migrate-") as work:
        if work is None:
            return 0
        source = build_images(work, size, [args.source], data=True)[args.source]
        bench = bench_migration(source, args.source, args.destination, size, args.runs,
                                verify=args.verify)
        print(f"{args.runs} runs each, alternating, median; warm page cache; times include "
              f"process start-up; {rss_note()}.\n")
        print(table([bench]))
        verdict = "meets" if bench.ratio <= GOAL else "misses"
        print(f"\nratio migrate / (cp + sync): {bench.ratio:.2f} ({verdict} the goal of "
              f"<= {GOAL})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
