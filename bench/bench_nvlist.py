"""Decode/encode speed of the libnv codec on two 1 MiB shapes; prints a Markdown table.

Run ``python bench/bench_nvlist.py``. (a) is the worst case for a pure-Python decoder, many
small pairs in nested lists (one object per ~30 bytes); (b) is the shape of image headers
with state blobs, a few large BINARY values, which must be sliced rather than copied byte
by byte. Figures are the median of several runs; peak RSS is the process's high-water mark
after each workload (it only grows).
"""

from __future__ import annotations

import functools
import resource
import statistics
import sys
import time
from collections.abc import Callable

from migrate.nvlist import NvList, NvPair, NvType, pack, unpack

MIB = 1024 * 1024
RUNS = 7


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


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB else


def _rate(action: Callable[[], object], size: int) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return size / MIB / statistics.median(times)


def main() -> None:
    rows = []
    for label, nvl in (("many small pairs", many_small_pairs()),
                       ("4 large BINARY values", few_large_binaries())):
        data = pack(nvl)
        assert unpack(data) == nvl
        decode = _rate(functools.partial(unpack, data), len(data))
        encode = _rate(functools.partial(pack, nvl), len(data))
        rows.append(f"| {label} | {len(data) / MIB:.2f} MiB | {len(nvl.pairs)} | "
                    f"{decode:.1f} | {encode:.1f} | {_peak_rss_mib():.0f} MiB |")
    print(f"Python {sys.version.split()[0]}, median of {RUNS} runs\n")
    print("| workload | size | top-level pairs | decode MiB/s | encode MiB/s | peak RSS |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
