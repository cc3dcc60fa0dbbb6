"""Benchmark ``bhyvesnap check``: its cost must not grow with guest memory.

Usage: ``python bench/bench_check.py [--runs R] [--dir DIR] [--large-gib N]``

Builds two plain ``r2`` images with the tool's own writer in a fresh directory under DIR
(default: the system's temporary directory): one with 8 MiB and one with N GiB (default 8) of
sparse guest memory (a few pages of data, holes elsewhere; the writer hashes the memory once
while building, which is untimed). Then, in alternating order, R >= 5 runs each, it times
``python -m migrate check IMAGE --target bhyve-image-2.0 --json`` as a child process, and
``python -c pass`` for the interpreter's own start-up. It prints a Markdown table of the
medians, the large/small ratio (goal: below 1.2, since check reads only the header and the
small sections), the CLI's start-up cost over bare Python, and each child's peak RSS (by GNU
time when installed, else ``wait4``'s figure, an upper bound that includes this process).

Before building, free space is checked: the sparse files need a few MiB, but a file system
without holes would need the full size twice, so the large image is skipped (and said so)
when the space is short. The directory is removed at the end, also on failure or Ctrl-C.
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
from pathlib import Path

from migrate.formats.single import write_single
from migrate.ident import mainstream_ident
from migrate.image import Compat, FileRange, Image, StateEntry

MIB = 1 << 20
GIB = 1 << 30
PAGE = 4096
REPO = Path(__file__).resolve().parents[1]
GNU_TIME = "/usr/bin/time"
KERNEL = ("vhpet", "vm", "vioapic", "vlapic", "vmcx", "vatpit", "vatpic", "vpmtmr", "vrtc")
DEVICES = (("virtio-blk", "0.3.0"), ("virtio-net", "0.4.0"), ("lpc", "0.31.0"))


def sparse_memory(path: Path, size: int) -> None:
    """``size`` bytes: one data page at the start, the middle and the end, holes between."""
    with open(path, "wb") as handle:
        for offset in sorted({0, size // 2 // PAGE * PAGE, size - PAGE}):
            handle.seek(offset)
            handle.write(bytes((offset // PAGE + i) % 251 for i in range(PAGE)))
        handle.truncate(size)


def holes_supported(directory: Path) -> bool:
    """Whether a 64 MiB file with one data page takes (much) less than 64 MiB on disk."""
    probe = directory / "probe"
    sparse_memory(probe, 64 * MIB)
    used = os.stat(probe).st_blocks * 512
    probe.unlink()
    return used < 8 * MIB


def build_image(directory: Path, name: str, memory_size: int) -> Path:
    """A plain r2 2.0 image of ``memory_size`` bytes of guest memory, written canonically."""
    memory = directory / f"{name}.mem"
    sparse_memory(memory, memory_size)
    devices = [f"{emulation}@pci.{address}" for emulation, address in DEVICES] + ["atkbdc"]
    config = (f"name=bench\ncpus=2\nmemory.size={memory_size}\n" + "".join(
        f"pci.{address}.device={emulation}\n" for emulation, address in DEVICES))
    ident = mainstream_ident("2.0")
    image = Image(
        format="r2", path=str(directory / name), files=(),
        kernel=tuple(StateEntry(n, "fbsd14", n.encode() * 64) for n in KERNEL),
        devices=tuple(StateEntry(n, "fbsd14", n.encode() * 32) for n in devices),
        memory=FileRange(str(memory), 0, memory_size), ident=ident, config_text=config,
        compat=Compat(ident))
    out = directory / f"{name}.bhyve"
    write_single(image, str(out))
    memory.unlink()
    return out


def run_child(argv: list[str], scratch: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child; it must exit 0."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    report = scratch / "rss"
    measured = os.access(GNU_TIME, os.X_OK)
    if measured:
        argv = [GNU_TIME, "-f", "%M", "-o", str(report), *argv]
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with status {child.returncode}")
    rss = int(report.read_text().split()[-1]) if measured else int(usage.ru_maxrss)
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per contender (>= 5)")
    parser.add_argument("--dir", default=None, help="where to build the images")
    parser.add_argument("--large-gib", type=int, default=8, help="memory of the large image")
    args = parser.parse_args()
    runs = max(5, args.runs)
    large = args.large_gib * GIB
    scratch = Path(tempfile.mkdtemp(prefix="bench-check-", dir=args.dir))
    try:
        sizes = {"8 MiB": 8 * MIB}
        free = shutil.disk_usage(scratch).free
        needed = 64 * MIB if holes_supported(scratch) else 2 * large + 64 * MIB
        if free >= needed:
            sizes[f"{args.large_gib} GiB"] = large
        else:
            print(f"skipping the {args.large_gib} GiB image: {free // MIB} MiB free, "
                  f"{needed // MIB} MiB needed", file=sys.stderr)
        print(f"building images in {scratch} ...", file=sys.stderr)
        images = {label: build_image(scratch, f"m{size}", size) for label, size in sizes.items()}
        contenders: dict[str, list[str]] = {"python -c pass": [sys.executable, "-c", "pass"]}
        for label, path in images.items():
            contenders[f"check, {label} memory"] = [
                sys.executable, "-m", "migrate", "check", str(path), "--target",
                "bhyve-image-2.0", "--json"]
        seconds: dict[str, list[float]] = {name: [] for name in contenders}
        peak: dict[str, int] = dict.fromkeys(contenders, 0)
        for run in range(runs):
            order = list(contenders) if run % 2 == 0 else list(reversed(contenders))
            for name in order:
                elapsed, rss = run_child(contenders[name], scratch)
                seconds[name].append(elapsed)
                peak[name] = max(peak[name], rss)
        median = {name: statistics.median(values) for name, values in seconds.items()}
        print(f"\n{runs} runs each, alternating; medians (warm page cache)\n")
        print("| command | median (ms) | min (ms) | peak RSS (MiB) |")
        print("|---|---:|---:|---:|")
        for name in contenders:
            print(f"| {name} | {median[name] * 1000:.1f} | {min(seconds[name]) * 1000:.1f} "
                  f"| {peak[name] / 1024:.1f} |")
        small, *rest = (name for name in contenders if name.startswith("check"))
        base = median["python -c pass"]
        print(f"\nCLI start-up over bare Python (8 MiB image): "
              f"{(median[small] - base) * 1000:.1f} ms")
        for name in rest:
            ratio = median[name] / median[small]
            verdict = "ok" if ratio < 1.2 else "ABOVE GOAL"
            print(f"ratio {name} / {small}: {ratio:.3f} (goal < 1.2: {verdict})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
