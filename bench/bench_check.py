"""Benchmark ``bhyvesnap check`` and ``info``: their cost must not grow with guest memory.

Usage: ``python bench/bench_check.py [--runs R] [--dir DIR] [--small-mib N] [--large-gib N]``

Builds an r2 and a legacy-b image of N MiB (default 4) and of N GiB (default 4) of sparse
guest memory (a data page at the start, middle and end, holes between) with the package's
own writers (the r2 writer hashes the memory once while building, untimed). Then, in
alternating order, R >= 5 runs each (default 7), it times as child processes:

* ``python -c pass`` (the interpreter's own start-up) and ``bhyvesnap --version`` (the
  CLI's start-up: interpreter, package and dispatcher imports);
* ``bhyvesnap info IMAGE --json`` and ``bhyvesnap check IMAGE --target T --json`` (T is the
  image's own format's target, so check answers "restorable") for every image.

It prints a Markdown table of the medians and peak RSS, and the large/small ratio of each
command and format (goal: below 1.2; both read only headers and small sections). Sparse
files need a few MiB; a file system without holes needs the full size, so the large images
are skipped (and said so) when space is short. Method: bench/common.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import (
    GIB,
    MIB,
    MIN_RUNS,
    Contender,
    build_images,
    disk_shortfall,
    holes_supported,
    markdown_table,
    python_m_migrate,
    ratio,
    rss_note,
    run_alternating,
    scratch_dir,
    size_label,
)

GOAL = 1.2
"""Time on the large image over time on the small one: at most 20 % more."""

TARGETS = {"r2": "bhyve-image-2.0", "legacy-b": "freebsd-14"}
"""The target each format is restorable on, so that ``check`` exits 0."""

PYTHON = "python -c pass"
VERSION = "bhyvesnap --version"


@dataclass(frozen=True)
class CheckBench:
    """Every contender by name, and the sizes compared."""

    small: int
    large: int | None
    contenders: dict[str, Contender]

    def ratios(self) -> list[tuple[str, str, float]]:
        """``(command, format, large median / small median)`` for each measured pair."""
        found: list[tuple[str, str, float]] = []
        if self.large is None:
            return found
        for command in ("info", "check"):
            for image_format in TARGETS:
                small = self.contenders[label(command, image_format, self.small)]
                large = self.contenders[label(command, image_format, self.large)]
                found.append((command, image_format, ratio(large.median, small.median)))
        return found

    @property
    def startup(self) -> float:
        """Seconds ``bhyvesnap --version`` takes beyond ``python -c pass``."""
        return self.contenders[VERSION].median - self.contenders[PYTHON].median

    @property
    def startup_ratio(self) -> float:
        return ratio(self.contenders[VERSION].median, self.contenders[PYTHON].median)


def label(command: str, image_format: str, size: int) -> str:
    return f"{command}, {image_format}, {size_label(size)}"


def bench_check(images: dict[int, dict[str, list[Path]]], runs: int) -> CheckBench:
    """Time start-up and ``info``/``check`` on ``images`` (size -> format -> files)."""
    contenders = {PYTHON: Contender(PYTHON, [[sys.executable, "-c", "pass"]]),
                  VERSION: Contender(VERSION, [python_m_migrate("--version")])}
    for command in ("info", "check"):
        for image_format, target in TARGETS.items():
            for size, built in sorted(images.items()):
                path = str(built[image_format][0])
                argv = (python_m_migrate("info", path, "--json") if command == "info" else
                        python_m_migrate("check", path, "--target", target, "--json"))
                name = label(command, image_format, size)
                contenders[name] = Contender(name, [argv])
    run_alternating(list(contenders.values()), runs)
    sizes = sorted(images)
    return CheckBench(sizes[0], sizes[-1] if len(sizes) > 1 else None, contenders)


def table(bench: CheckBench) -> str:
    base = bench.contenders[PYTHON].median
    rows = [(c.name, f"{c.median * 1000:.1f}", f"{min(c.seconds) * 1000:.1f}",
             f"{(c.median - base) * 1000:.1f}", f"{c.peak_rss_mib:.1f}")
            for c in bench.contenders.values()]
    return markdown_table(("command", "median ms", "min ms", "over python -c pass ms",
                           "peak RSS MiB"), rows, (False, True, True, True, True))


def ratio_table(bench: CheckBench) -> str:
    large = size_label(bench.large) if bench.large else "-"
    return markdown_table(
        ("command", "format", f"{large} / {size_label(bench.small)}", f"goal < {GOAL}"),
        [(command, image_format, f"{value:.3f}", "met" if value < GOAL else "MISSED")
         for command, image_format, value in bench.ratios()], (False, False, True, False))


def build(work: Path, small: int, large: int) -> dict[int, dict[str, list[Path]]]:
    """The images of both sizes; the large ones only when the disk can hold them."""
    sizes = [small]
    needed = 64 * MIB if holes_supported(work) else 3 * large + 64 * MIB
    skip = disk_shortfall(work, needed, f"the {size_label(large)} images")
    if skip:
        print(skip, file=sys.stderr)
    else:
        sizes.append(large)
    return {size: build_images(work, size, list(TARGETS), data=False) for size in sizes}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7,
                        help=f"runs per contender (default 7, minimum {MIN_RUNS})")
    parser.add_argument("--dir", default=None, help="where to build the images")
    parser.add_argument("--small-mib", type=int, default=4, help="memory of the small images")
    parser.add_argument("--large-gib", type=int, default=4, help="memory of the large images")
    args = parser.parse_args()
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS} (the median of fewer is noise)")
    work = scratch_dir(args.dir or tempfile.gettempdir(), "bhyvesnap-bench-check-")
    try:
        print(f"building images in {work} ...", file=sys.stderr)
        bench = bench_check(build(work, args.small_mib * MIB, args.large_gib * GIB), args.runs)
        print(f"{args.runs} runs each, alternating, median; warm page cache; {rss_note()}.\n")
        print(table(bench))
        print()
        print(ratio_table(bench))
        print(f"\nCLI start-up over bare Python: {bench.startup * 1000:.1f} ms "
              f"({bench.startup_ratio:.2f} x python -c pass)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
