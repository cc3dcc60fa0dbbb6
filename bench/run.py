"""Run every benchmark and write one Markdown report: ``python bench/run.py``.

Usage: ``python bench/run.py [--quick] [--out bench/RESULTS.md] [--dir DIR] [--runs R]``

What it measures (each a module of bench/, also runnable alone; the method is in
bench/common.py: children run alternately in this process tree, medians of >= 5 runs, each
child's own peak RSS, warm page cache, times include process start-up):

* ``migrate legacy-b → r1`` and ``r1 → r2`` of 1 GiB and 4 GiB images, and ``legacy-b →
  r2`` of 2 GiB, against ``cp --sparse=always`` + ``sync`` of the same files (goal: ≤ 1.15 x);
* ``validate --verify`` of the r2 images against ``sha256sum`` of the memory (goal:
  throughput ≥ 0.9 x);
* the primitives under them: ``storage.copy_range`` against cp + sync and
  ``storage.hash_range`` against sha256sum (1 GiB);
* ``info`` and ``check`` on 4 MiB against 4 GiB images (goal: ratio < 1.2), and the CLI's
  start-up against ``python -c pass``;
* the nvlist codec on 1 MiB of many small pairs and of a few large BINARY values (goal:
  binary-heavy decode ≥ 20 MB/s);
* the release gate over 1,020 image x target pairs on two cores (goal: < 10 s per 1,000).

Every bhyvesnap child's peak RSS is held to ≤ 100 MiB at any image size. A size whose images
do not fit the free disk space is skipped, and the report says so. ``--quick`` uses small
sizes (MiB instead of GiB) and a small gate corpus: a smoke run of a minute or less whose
ratios mean little (process start-up dominates). The full run takes about 5-10 minutes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench_check
import bench_copy
import bench_gate
import bench_migrate
import bench_nvlist
import bench_verify
from common import (
    GIB,
    MIB,
    MIN_RUNS,
    build_images,
    disk_shortfall,
    markdown_table,
    rss_note,
    scratch_dir,
    size_label,
)

RSS_GOAL_MIB = 100.0
"""Peak RSS of any bhyvesnap command at any image size."""


@dataclass(frozen=True)
class Plan:
    """The sizes and counts of one run (full or quick)."""

    migration_sizes: tuple[int, ...]
    """Sizes at which legacy-b → r1, r1 → r2 and validate --verify are measured."""
    r2_direct_size: int
    """Size at which legacy-b → r2 is measured (the issue's 2 GiB)."""
    copy_size: int
    check_small: int
    check_large: int
    check_runs: int
    """info/check take ~0.2 s, all start-up: more runs steady their medians cheaply."""
    gate_images: int
    gate_runs: int
    nvlist_size: int
    nvlist_runs: int


FULL = Plan((GIB, 4 * GIB), 2 * GIB, GIB, 4 * MIB, 4 * GIB, 11, 170, 3, MIB, bench_nvlist.RUNS)
QUICK = Plan((16 * MIB, 64 * MIB), 32 * MIB, 64 * MIB, 4 * MIB, 64 * MIB, MIN_RUNS, 20, 1,
             64 * 1024, 3)


@dataclass(frozen=True)
class Goal:
    """One row of the goals table."""

    goal: str
    measured: str
    met: bool


@dataclass
class Results:
    """Everything measured, and what was skipped."""

    migrations: list[bench_migrate.MigrationBench] = field(default_factory=list)
    verifies: list[bench_verify.VerifyBench] = field(default_factory=list)
    primitives: list[bench_copy.PrimitiveBench] = field(default_factory=list)
    check: bench_check.CheckBench | None = None
    nvlist: list[bench_nvlist.CodecRow] = field(default_factory=list)
    gate: bench_gate.GateBench | None = None
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def log(message: str) -> None:
    """Progress on stderr (the report goes to a file)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_size(work: Path, size: int, plan: Plan, runs: int, results: Results) -> None:
    """Every image benchmark of one memory size; its images are removed afterwards."""
    routes = []
    if size in plan.migration_sizes:
        routes += [("legacy-b", "r1"), ("r1", "r2")]
    if size == plan.r2_direct_size:
        routes.append(("legacy-b", "r2"))
    verify = size in plan.migration_sizes
    primitives = size == plan.copy_size
    formats = sorted({source for source, _ in routes} | ({"legacy-b", "r2"} if verify else set())
                     | ({"legacy-b"} if primitives else set()))
    skip = disk_shortfall(work, 5 * size + GIB, f"the {size_label(size)} images")
    if skip:
        results.skipped.append(skip)
        log(skip)
        return
    folder = work / f"size-{size}"
    folder.mkdir()
    try:
        log(f"building {', '.join(formats)} images of {size_label(size)} ...")
        images = build_images(folder, size, formats, data=True)
        for source, destination in routes:
            log(f"migrate {source} → {destination}, {size_label(size)} ...")
            results.migrations.append(bench_migrate.bench_migration(
                images[source], source, destination, size, runs))
        if verify:
            log(f"validate --verify, {size_label(size)} ...")
            results.verifies.append(bench_verify.bench_verify(
                images["r2"][0], images["legacy-b"][0], runs))
        if primitives:
            log(f"copy_range and hash_range, {size_label(size)} ...")
            memory = images["legacy-b"][0]
            results.primitives.append(bench_copy.bench_copies(memory, runs))
            results.primitives.append(bench_copy.bench_hashes(memory, runs))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_all(plan: Plan, runs: int, base: str | None) -> Results:
    """Every benchmark of ``plan``, in a scratch directory under ``base``."""
    results = Results()
    start = time.perf_counter()
    work = scratch_dir(base, "bhyvesnap-bench-")
    try:
        sizes = sorted({*plan.migration_sizes, plan.r2_direct_size, plan.copy_size})
        for size in sizes:
            run_size(work, size, plan, runs, results)
        log(f"info and check, {size_label(plan.check_small)} and "
            f"{size_label(plan.check_large)} ...")
        check_dir = work / "check"
        check_dir.mkdir()
        results.check = bench_check.bench_check(
            bench_check.build(check_dir, plan.check_small, plan.check_large),
            max(runs, plan.check_runs))
        shutil.rmtree(check_dir, ignore_errors=True)
        log("nvlist codec ...")
        results.nvlist = bench_nvlist.bench_nvlist(plan.nvlist_size, plan.nvlist_runs)
        log(f"gate, {plan.gate_images} images ...")
        gate_dir = work / "gate"
        gate_dir.mkdir()
        results.gate = bench_gate.bench_gate(gate_dir, plan.gate_images, 2, plan.gate_runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results.seconds = time.perf_counter() - start
    return results


# --------------------------------------------------------------------------------------------
# the report


def goals(results: Results) -> list[Goal]:
    """Every goal with what was measured against it."""
    found = []
    for bench in results.migrations:
        found.append(Goal(f"migrate {bench.route}, {size_label(bench.size)}: ≤ "
                          f"{bench_migrate.GOAL} x cp --sparse=always + sync",
                          f"{bench.ratio:.2f} x", bench.ratio <= bench_migrate.GOAL))
    for verify in results.verifies:
        found.append(Goal(f"validate --verify, {size_label(verify.size)}: throughput ≥ "
                          f"{bench_verify.GOAL} x sha256sum",
                          f"{verify.throughput_ratio:.2f} x",
                          verify.throughput_ratio >= bench_verify.GOAL))
    if results.check is not None and results.check.large is not None:
        for command, image_format, value in results.check.ratios():
            found.append(Goal(
                f"{command} ({image_format}) on {size_label(results.check.large)} / "
                f"{size_label(results.check.small)}: < {bench_check.GOAL}",
                f"{value:.3f}", value < bench_check.GOAL))
    binary = [row for row in results.nvlist if "BINARY" in row.workload]
    for row in binary:
        rate = row.decode_bytes_per_s / 1e6
        found.append(Goal(f"nvlist decode, {row.workload}: ≥ {bench_nvlist.GOAL_MB_S:.0f} MB/s",
                          f"{rate:.0f} MB/s", rate >= bench_nvlist.GOAL_MB_S))
    if results.gate is not None:
        gate = results.gate
        found.append(Goal(f"gate on {gate.cores} cores: < {bench_gate.GOAL_SECONDS:.0f} s "
                          "per 1,000 pairs",
                          f"{gate.seconds_per_1000:.2f} s ({gate.pairs} pairs in "
                          f"{gate.gate.median:.2f} s, {gate.pairs_per_second:.0f} pairs/s)",
                          gate.seconds_per_1000 < bench_gate.GOAL_SECONDS))
    heaviest = max(tool_rss(results), default=None, key=lambda item: item[1])
    if heaviest is not None:
        name, rss = heaviest
        found.append(Goal(f"peak RSS of every bhyvesnap command: ≤ {RSS_GOAL_MIB:.0f} MiB",
                          f"{rss:.1f} MiB (largest: {name})", rss <= RSS_GOAL_MIB))
    return found


def tool_rss(results: Results) -> list[tuple[str, float]]:
    """``(what, peak RSS MiB)`` of every bhyvesnap command measured."""
    found = []
    for bench in results.migrations:
        found += [(f"{c.name}, {size_label(bench.size)}", c.peak_rss_mib)
                  for c in bench.contenders if c.name.startswith("bhyvesnap")]
    for verify in results.verifies:
        found += [(f"{c.name}, {size_label(verify.size)}", c.peak_rss_mib)
                  for c in verify.contenders if c.name.startswith("bhyvesnap")]
    if results.check is not None:
        found += [(c.name, c.peak_rss_mib) for name, c in results.check.contenders.items()
                  if name != bench_check.PYTHON]
    if results.gate is not None:
        found.append((results.gate.gate.name, results.gate.gate.peak_rss_mib))
    return found


def machine() -> str:
    """One line describing where the figures come from."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next((line.split(":", 1)[1].strip() for line in info
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def file_system(path: str) -> str:
    """The type of the file system holding ``path`` (GNU df), or ``unknown``."""
    try:
        done = subprocess.run(["df", "--output=fstype", path], capture_output=True, text=True,
                              check=True)
        return done.stdout.split()[-1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def report(results: Results, plan: Plan, runs: int, quick: bool, base: str) -> str:
    """The whole Markdown document."""
    out: list[str] = []
    add = out.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    add("# Benchmark results\n")
    add(f"Written by `python bench/run.py{' --quick' if quick else ''}` on {now} in "
        f"{results.seconds / 60:.1f} minutes; {machine()}; scratch files on {file_system(base)}."
        + (" **Quick smoke run: small sizes, the ratios mostly measure process start-up.**"
           if quick else "") + "\n")
    add("Method: every contender is a child process of the runner; contenders run "
        f"alternately (A B, B A, ...), {runs} runs each (info/check "
        f"{max(runs, plan.check_runs)}), and the median is reported. `sync` settles dirty "
        "pages before each run and outputs are removed between runs, both untimed. The tool "
        "fsyncs, so `cp` is followed by `sync` of the copies, timed. Guest memory is 48 MiB "
        "of random data then a 16 MiB hole in every 64 MiB (info/check: sparse, three data "
        "pages). The page cache is warm (not dropped); times include process start-up, with "
        f"compiled bytecode cached as an installed package has it; {rss_note()}.\n")
    add("## Goals\n")
    add(markdown_table(("goal", "measured", "result"),
                       [(g.goal, g.measured, "met" if g.met else "**missed**")
                        for g in goals(results)]) + "\n")
    if results.skipped:
        add("Skipped: " + "; ".join(results.skipped) + ".\n")
    if results.migrations:
        add("## migrate against cp --sparse=always + sync\n")
        add(bench_migrate.table(results.migrations) + "\n")
    if results.verifies:
        add("## validate --verify against sha256sum of the memory\n")
        add(bench_verify.table(results.verifies) + "\n")
    if results.primitives:
        add("## The primitives: storage.copy_range and storage.hash_range\n")
        add(bench_copy.table(results.primitives) + "\n")
    if results.check is not None:
        add("## info and check against memory size; start-up\n")
        add(bench_check.table(results.check) + "\n")
        add(bench_check.ratio_table(results.check) + "\n")
        add(f"CLI start-up (`bhyvesnap --version`) over `python -c pass`: "
            f"{results.check.startup * 1000:.0f} ms "
            f"({results.check.startup_ratio:.2f} x python -c pass).\n")
    if results.nvlist:
        add(f"## nvlist codec (in process, median of {plan.nvlist_runs} runs)\n")
        add(bench_nvlist.table(results.nvlist) + "\n")
    if results.gate is not None:
        add("## Release gate\n")
        add(bench_gate.table(results.gate) + "\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and a small gate corpus: a smoke run")
    parser.add_argument("--out", default=str(Path(__file__).with_name("RESULTS.md")),
                        help="the Markdown report to write (default bench/RESULTS.md)")
    parser.add_argument("--dir", default=None,
                        help="where to create the images (default: the temporary directory)")
    parser.add_argument("--runs", type=int, default=MIN_RUNS,
                        help=f"runs per contender (default and minimum {MIN_RUNS})")
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS} (the median of fewer is noise)")
    plan = QUICK if args.quick else FULL
    results = run_all(plan, args.runs, args.dir)
    document = report(results, plan, args.runs, args.quick, args.dir or tempfile.gettempdir())
    Path(args.out).write_text(document, encoding="utf-8")
    print(document)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
