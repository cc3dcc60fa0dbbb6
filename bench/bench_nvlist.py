"""Decode/encode speed of the libnv codec on two 1 MiB shapes; prints a Markdown table.

Run ``python bench/bench_nvlist.py [--size-kib N]``. (a) is the worst case for a
pure-Python decoder, many small pairs in nested lists (one object per ~30 bytes); (b) is the
shape of image headers with state blobs, a few large BINARY values, which must be sliced
rather than copied byte by byte (goal: decode >= 20 MB/s). Figures are the median of several
runs, in this process (the codec is a library call, not a command); peak RSS is the
process's high-water mark after each workload (it only grows).
"""

from __future__ import annotations

import argparse
import functools
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from common import KIB, MIB, markdown_table

from migrate.nvlist import NvList, NvPair, NvType, pack, unpack

RUNS = 7
GOAL_MB_S = 20.0
"""Decode throughput of the binary-heavy shape, in MB/s (10^6 bytes)."""


def many_small_pairs(target: int = MIB) -> NvList:
    """Device-like records: a nested list per device of numbers, strings and a small array."""
    devices: list[NvPair] = []
    size = 19
    index = 0
    while size < target:
        device = NvList.of(
            ("slot", NvType.NUMBER, index),
            ("name", NvType.STRING, f"virtio-blk@pci.0.{index}.0"),
            ("generation", NvType.STRING, "fbsd14"),
            ("enabled", NvType.BOOL, index % 2 == 0),
            ("regs", NvType.NUMBER_ARRAY, (index, index * 3, 0xFFFF)),
            ("queue", NvType.NVLIST, NvList.of(("size", NvType.NUMBER, 256),
                                                ("base", NvType.NUMBER, 0x1000 * index))),
        )
        devices.append(NvPair(f"dev{index}", NvType.NVLIST, device))
        size = len(pack(NvList(0, tuple(devices)))) if index % 512 == 0 else size + 330
        index += 1
    return NvList(0, tuple(devices))


def few_large_binaries(target: int = MIB) -> NvList:
    chunk = target // 4
    return NvList.of(*((f"blob{i}", NvType.BINARY, bytes([i]) * chunk) for i in range(4)))


@dataclass(frozen=True)
class CodecRow:
    """One workload: its packed size, top-level pairs, rates and the peak RSS so far."""

    workload: str
    size: int
    pairs: int
    decode_bytes_per_s: float
    encode_bytes_per_s: float
    peak_rss_mib: float


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / KIB  # bytes on macOS, KiB else


def _rate(action: Callable[[], object], size: int, runs: int) -> float:
    """Bytes per second of the median of ``runs`` calls of ``action``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return size / statistics.median(times)


def bench_nvlist(target: int = MIB, runs: int = RUNS) -> list[CodecRow]:
    """Decode and encode rates of both shapes of about ``target`` packed bytes."""
    rows = []
    for workload, nvl in (("many small pairs", many_small_pairs(target)),
                          ("4 large BINARY values", few_large_binaries(target))):
        data = pack(nvl)
        if unpack(data) != nvl:
            raise SystemExit(f"{workload}: the codec does not round-trip")
        rows.append(CodecRow(workload, len(data), len(nvl.pairs),
                             _rate(functools.partial(unpack, data), len(data), runs),
                             _rate(functools.partial(pack, nvl), len(data), runs),
                             _peak_rss_mib()))
    return rows


def table(rows: list[CodecRow]) -> str:
    return markdown_table(
        ("workload", "size", "top-level pairs", "decode MB/s", "encode MB/s", "peak RSS MiB"),
        [(row.workload, f"{row.size / MIB:.2f} MiB", row.pairs,
          f"{row.decode_bytes_per_s / 1e6:.1f}", f"{row.encode_bytes_per_s / 1e6:.1f}",
          f"{row.peak_rss_mib:.0f}") for row in rows],
        (False, True, True, True, True, True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-kib", type=int, default=1024, help="packed size of each shape")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, median of {RUNS} runs\n")
    print(table(bench_nvlist(args.size_kib * KIB)))


if __name__ == "__main__":
    main()
