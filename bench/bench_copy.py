"""Benchmark storage.copy_range and storage.hash_range against cp and sha256sum.

Usage: ``python bench/bench_copy.py [--size-gib N] [--runs R] [--dir DIR]``

Builds a sparse file of N GiB (default 1) in a fresh directory under DIR (default: the
system's temporary directory): in every 64 MiB, 48 MiB of data then a 16 MiB hole. Then, in
alternating order (R >= 5 runs each, the median is reported):

* ``copy_range`` + ``fsync`` of the copy, in a Python child, against ``cp --sparse=always``
  followed by ``sync`` of the copied file (the same durability);
* ``hash_range`` (sha256), in a Python child, against ``sha256sum``.

Every tool runs as its own child process, and its peak RSS is the child's ``ru_maxrss``
(the per-child form of ``getrusage(RUSAGE_CHILDREN)``, which only keeps the maximum over all
children; see run_child for why GNU time reports it when installed). ``sync`` runs before
every timed run (untimed), so no run pays for the previous one's writeback. The page cache
is NOT dropped (that needs root): the source stays cached after it is written, so the
figures are for a warm cache, and include process start-up. The directory is removed at the
end, also on failure or Ctrl-C.
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
BLOCK = 64 * MIB
DATA_PER_BLOCK = 48 * MIB
REPO = Path(__file__).resolve().parents[1]

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


@dataclass
class Tool:
    """One contender: its timings, peak RSS (KiB) and the bytes its output takes on disk."""

    name: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_kib: int = 0
    on_disk: int | None = None


GNU_TIME = "/usr/bin/time"


def run_child(argv: list[str], scratch: Path, settle: bool = True) -> tuple[float, int, str]:
    """Run one child; return wall seconds, its own peak RSS in KiB, and its stdout.

    ``ru_maxrss`` of a direct child counts the memory of this (forking) process too, as
    Linux carries the pre-exec high-water mark across exec. So when GNU time is installed the
    tool runs under it, forked from a process of 2 MiB: its figure is the tool's own. Without
    it, ``wait4``'s figure is reported, an upper bound. ``settle=False`` for the second
    step of one measured operation (``sync`` after ``cp``), which must not be flushed first.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    report = scratch / "rss"
    measured = os.access(GNU_TIME, os.X_OK)
    if measured:
        argv = [GNU_TIME, "-f", "%M", "-o", str(report), *argv]
    if settle:  # start every run with no dirty pages left by the previous one
        os.sync()
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    child.stdout.close()
    if child.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with status {child.returncode}")
    rss = int(report.read_text().split()[-1]) if measured else int(usage.ru_maxrss)
    return elapsed, rss, output


def make_source(path: Path, size: int) -> None:
    """Mostly data (random, so nothing compresses or dedups) with a hole in every block."""
    chunk = os.urandom(4 * MIB)
    with open(path, "wb") as handle:
        for block in range(0, size, BLOCK):
            handle.seek(block)
            for offset in range(block, min(block + DATA_PER_BLOCK, size), len(chunk)):
                handle.write(chunk[:min(len(chunk), size - offset)])
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def bench_copies(source: Path, size: int, runs: int) -> tuple[Tool, Tool]:
    ours, theirs = Tool("copy_range + fsync"), Tool("cp --sparse=always + sync")
    target = source.with_name("copy")
    for run in range(runs):
        for tool in ((ours, theirs) if run % 2 == 0 else (theirs, ours)):
            if tool is ours:
                elapsed, rss, _ = run_child([sys.executable, "-c", PY_COPY, str(source),
                                             str(target), str(size)], source.parent)
            else:
                elapsed, rss, _ = run_child(["cp", "--sparse=always", str(source),
                                             str(target)], source.parent)
                synced, sync_rss, _ = run_child(["sync", str(target)], source.parent,
                                                settle=False)
                elapsed, rss = elapsed + synced, max(rss, sync_rss)
            tool.seconds.append(elapsed)
            tool.peak_rss_kib = max(tool.peak_rss_kib, rss)
            tool.on_disk = os.stat(target).st_blocks * 512
            if os.path.getsize(target) != size:
                raise SystemExit(f"{tool.name} produced a copy of the wrong size")
            target.unlink()
    return ours, theirs


def bench_hashes(source: Path, size: int, runs: int) -> tuple[Tool, Tool]:
    ours, theirs = Tool("hash_range (sha256)"), Tool("sha256sum")
    digests = set()
    for run in range(runs):
        for tool in ((ours, theirs) if run % 2 == 0 else (theirs, ours)):
            if tool is ours:
                argv = [sys.executable, "-c", PY_HASH, str(source), str(size)]
            else:
                argv = ["sha256sum", str(source)]
            elapsed, rss, output = run_child(argv, source.parent)
            digests.add(output.split()[0])
            tool.seconds.append(elapsed)
            tool.peak_rss_kib = max(tool.peak_rss_kib, rss)
    if len(digests) != 1:
        raise SystemExit(f"the digests differ: {sorted(digests)}")
    return ours, theirs


def table(size: int, rows: list[tuple[str, Tool, Tool]]) -> str:
    lines = ["| operation | tool | median s | GiB/s | speed vs reference | peak RSS MiB "
             "| copy on disk MiB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for operation, ours, reference in rows:
        base = statistics.median(reference.seconds)
        for tool in (ours, reference):
            median = statistics.median(tool.seconds)
            disk = "" if tool.on_disk is None else f"{tool.on_disk / MIB:.0f}"
            lines.append(f"| {operation} | {tool.name} | {median:.3f} | "
                         f"{size / GIB / median:.2f} | {base / median:.2f}x | "
                         f"{tool.peak_rss_kib / 1024:.1f} | {disk} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=1.0,
                        help="size of the test file in GiB (default 1)")
    parser.add_argument("--runs", type=int, default=5, help="runs per tool (default 5)")
    parser.add_argument("--dir", default=None,
                        help="where to create the files (default: the temporary directory)")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5 (the median of fewer is noise)")
    size = int(args.size_gib * GIB) // BLOCK * BLOCK or BLOCK
    base = Path(args.dir or tempfile.gettempdir())
    needed = 2 * size + 256 * MIB  # the source and one copy at a time
    free = shutil.disk_usage(base).free
    if free < needed:
        print(f"skipped: {base} has {free / GIB:.1f} GiB free, the benchmark needs "
              f"{needed / GIB:.1f} GiB")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bhyvesnap-bench-", dir=base))
    try:
        source = work / "memory"
        make_source(source, size)
        print(f"source: {size / GIB:.2f} GiB, {os.stat(source).st_blocks * 512 / MIB:.0f} MiB "
              f"allocated; {args.runs} runs per tool, alternating, median shown; page cache "
              "not dropped (warm cache); times include process start-up.\n")
        copies = bench_copies(source, size, args.runs)
        hashes = bench_hashes(source, size, args.runs)
        print(table(size, [("copy", *copies), ("hash", *hashes)]))
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
