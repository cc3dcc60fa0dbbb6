"""Benchmark ``bhyvesnap migrate legacy-b -> r2`` against ``cp`` of the same files.

Usage: ``python bench/bench_migrate.py [--size-gib N] [--runs R] [--dir DIR] [--verify]``

Builds a legacy-b image (``F``, ``F.kern``, ``F.meta``) whose guest memory is N GiB
(default 2) of data, fully written (a 4 MiB random block repeated: no holes, nothing a file
system could compress), in a fresh directory under DIR (default: the system's temporary
directory). Then, alternating (R >= 5 runs each, the median is reported):

* ``bhyvesnap migrate F --to r2 -o OUT --force`` (``python -m migrate``): reads the source,
  hashes memory for the r2 checksum, copies it with ``copy_file_range``, fsyncs, reads back
  the header and small sections, renames;
* ``cp F F.kern F.meta DIR && sync DIR/*``: the same bytes made equally durable (the tool
  fsyncs, so its baseline must too).

With ``--verify`` a third contender runs the migration with ``--verify`` (memory hashed again
from the output). Outputs are removed before each run, outside the timing, so no run pays for
freeing the previous run's blocks; ``sync`` settles dirty pages before each run. The page
cache is not dropped (that needs root): figures are for a warm cache and include process
start-up. Peak RSS is the child's own ``ru_maxrss`` from ``wait4``. Everything is removed at
the end, also on failure or Ctrl-C. Prints a Markdown table and the ratio (goal <= 1.15).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024**3
MIB = 1024**2
REPO = Path(__file__).resolve().parents[1]
GOAL = 1.15

sys.path.insert(0, str(REPO / "tests"))
from legacy_factory import build_legacy  # noqa: E402 - the tests' independent image builder


@dataclass
class Contender:
    """One way of producing the copy: its timings and peak RSS (KiB)."""

    name: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_kib: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def run_child(argv: list[str]) -> tuple[float, int]:
    """Run one child; return its wall seconds and its own peak RSS in KiB.

    Its stderr (the tool's warning that the config is incomplete) is shown only on failure.
    """
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(argv[:4])} ... failed with status {code}:\n"
                             + errors.read().decode(errors="replace"))
    return elapsed, int(usage.ru_maxrss)


def make_source(directory: Path, size: int) -> Path:
    """A legacy-b image of the test factory whose memory file is then written in full."""
    files = build_legacy(directory, "legacy-b", memsize=size, name="vm.ckp")
    block = os.urandom(4 * MIB)
    with open(files.memory, "r+b") as handle:
        for offset in range(0, size, len(block)):
            handle.write(block[:size - offset])
        handle.flush()
        os.fsync(handle.fileno())
    return files.memory


def clear(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
    os.sync()


def bench(source: Path, runs: int, verify: bool) -> list[Contender]:
    work = source.parent
    out = work / "vm.bhyve"
    copies = work / "copies"
    copies.mkdir()
    copied = [copies / name for name in ("vm.ckp", "vm.ckp.kern", "vm.ckp.meta")]
    migrate = Contender("bhyvesnap migrate legacy-b -> r2")
    checked = Contender("bhyvesnap migrate legacy-b -> r2 --verify")
    cp = Contender("cp F F.kern F.meta + sync")
    contenders = [migrate, cp, *([checked] if verify else [])]
    base = [sys.executable, "-m", "migrate", "migrate", str(source), "--to", "r2", "-o",
            str(out), "--force"]
    for run in range(runs):
        order = contenders if run % 2 == 0 else list(reversed(contenders))
        for contender in order:
            clear([out, *copied])
            if contender is cp:
                elapsed, rss = run_child(["cp", str(source), f"{source}.kern",
                                          f"{source}.meta", str(copies)])
                synced, sync_rss = run_child(["sync", *map(str, copied)])
                elapsed, rss = elapsed + synced, max(rss, sync_rss)
            else:
                elapsed, rss = run_child(base + (["--verify"] if contender is checked else []))
            contender.seconds.append(elapsed)
            contender.peak_rss_kib = max(contender.peak_rss_kib, rss)
    clear([*copied])
    return contenders


def table(size: int, contenders: list[Contender]) -> str:
    reference = next(c for c in contenders if c.name.startswith("cp")).median
    lines = ["| operation | median s | min s | max s | GiB/s | time vs cp+sync | "
             "peak RSS MiB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for c in contenders:
        lines.append(f"| {c.name} | {c.median:.3f} | {min(c.seconds):.3f} | "
                     f"{max(c.seconds):.3f} | {size / GIB / c.median:.2f} | "
                     f"{c.median / reference:.2f} | {c.peak_rss_kib / 1024:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=2.0,
                        help="guest memory size in GiB (default 2)")
    parser.add_argument("--runs", type=int, default=5, help="runs per contender (default 5)")
    parser.add_argument("--dir", default=None,
                        help="where to create the files (default: the temporary directory)")
    parser.add_argument("--verify", action="store_true",
                        help="also time migrate --verify (memory hashed again)")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5 (the median of fewer is noise)")
    size = max(int(args.size_gib * GIB) // (4 * MIB) * (4 * MIB), 4 * MIB)
    base = Path(args.dir or tempfile.gettempdir())
    needed = 2 * size + 512 * MIB  # the source and one output at a time
    free = shutil.disk_usage(base).free
    if free < needed:
        print(f"skipped: {base} has {free / GIB:.1f} GiB free, the benchmark needs "
              f"{needed / GIB:.1f} GiB")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bhyvesnap-bench-", dir=base))
    try:
        source = make_source(work, size)
        print(f"source: legacy-b, {size / GIB:.2f} GiB of memory fully written (random 4 MiB "
              f"block repeated); {args.runs} runs each, alternating, median; warm page "
              "cache; times include process start-up.\n")
        contenders = bench(source, args.runs, args.verify)
        print(table(size, contenders))
        ratio = contenders[0].median / contenders[1].median
        verdict = "meets" if ratio <= GOAL else "misses"
        print(f"\nratio migrate / (cp + sync): {ratio:.2f} ({verdict} the goal of "
              f"<= {GOAL}); peak RSS of migrate: {contenders[0].peak_rss_kib / 1024:.1f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
