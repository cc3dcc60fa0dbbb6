"""Hostile input: absurd sizes, offsets, nesting and counts are refused quickly, in little memory.

Issue 7, part 4. Each case is a file crafted to make a careless reader allocate or loop on
what the input *declares* (a 2^63-byte header, 10,000 nested lists, 10^9 array items, a
100 MiB ``F.meta``, a 512 MiB section in a sparse file) rather than on what it holds. A
fresh interpreter parses it (the nvlist decoder, ``read_single`` or ``read_legacy``) and
prints the rule it was refused with, the time the parse took and its own peak RSS. That
peak is ``VmHWM`` of /proc/self/status, the high-water mark of the child's own address
space: Linux carries ``ru_maxrss`` across fork and exec, so ``getrusage`` in the child (and
``RUSAGE_CHILDREN`` in the parent) would report the test runner's own peak whenever that is
higher (``ru_maxrss`` is the fallback where there is no procfs). Each must be refused with
its rule, in under :data:`MAX_SECONDS`, with a peak below :data:`MAX_RSS_MIB` (the
interpreter and the package take about 25 MiB of it).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from legacy_factory import build_legacy
from single_factory import config_text, craft, craft_r1, model, section_entry

from migrate.formats.single import write_single
from migrate.ident import mainstream_ident
from migrate.image import Compat, FileRange, Section
from migrate.nvlist import NvPair, NvType

MAX_RSS_MIB = 100
MAX_SECONDS = 2.0
MIB = 1 << 20

CHILD = """
import json, resource, sys, time
from migrate.findings import BhyvesnapError
from migrate.formats.legacy import read_legacy
from migrate.formats.single import read_single
from migrate.nvlist import unpack

kind, path = sys.argv[1:3]
started = time.monotonic()
rule = None
try:
    if kind == "nvlist":
        with open(path, "rb") as handle:
            unpack(handle.read())
    elif kind == "single":
        read_single(path)
    else:
        read_legacy(path)
except BhyvesnapError as exc:
    rule = exc.finding.rule
seconds = time.monotonic() - started
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rule": rule, "seconds": seconds, "peak_kib": peak}))
"""


# --------------------------------------------------------------------------------------------
# raw nvlist bytes, written by hand (the codec's own packer refuses all of these)


def header(size: int, *, flags: int = 0, descriptors: int = 0) -> bytes:
    """An nvlist header (NVLIST.md 2); ``flags`` 0x80 writes the sizes big-endian."""
    order = ">" if flags & 0x80 else "<"
    return struct.pack("<BBB", 0x6C, 0, flags) + struct.pack(f"{order}QQ", descriptors, size)


def pair(kind: int, name: bytes, datasize: int, nitems: int = 0, payload: bytes = b"") -> bytes:
    return struct.pack("<BHQQ", kind, len(name) + 1, datasize, nitems) + name + b"\0" + payload


def listed(*pairs: bytes) -> bytes:
    """A top-level list holding ``pairs``, with a truthful ``nvlh_size``."""
    body = b"".join(pairs)
    return header(len(body)) + body


def nested(depth: int) -> bytes:
    """``depth`` lists each holding the next (every header's size is the bytes after it)."""
    unit = 19 + 2 + 19  # NVLIST pair header, the name "n\\0", the child's header
    total = 19 + depth * unit
    out = bytearray(header(total - 19))
    for level in range(1, depth + 1):
        out += pair(NvType.NVLIST, b"n", 19)
        out += header(total - 19 - level * unit)
    return bytes(out)


BILLION = 10**9


# --------------------------------------------------------------------------------------------
# the cases


@dataclass(frozen=True)
class Case:
    """A hostile file, the reader to give it to, and the rule it must be refused with
    (``None`` for the controls, which must be accepted)."""

    name: str
    kind: str  # "nvlist", "single" or "legacy"
    build: Callable[[Path], Path]
    rule: str | None


def nvlist_file(data: bytes) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        path = tmp / "hostile.nvlist"
        path.write_bytes(data)
        return path
    return build


def single_file(data: bytes, *, size: int | None = None) -> Callable[[Path], Path]:
    """An r2 prefix whose header nvlist is ``data`` (the file extended to ``size``)."""
    def build(tmp: Path) -> Path:
        return craft(tmp / "hostile.bhyve", mainstream_ident("2.0").encode(), data, {},
                     size or 68 + len(data))
    return build


def prefix_only(nvlist_size: int, file_size: int) -> Callable[[Path], Path]:
    """An r2 prefix announcing ``nvlist_size`` header bytes in a sparse ``file_size`` file."""
    def build(tmp: Path) -> Path:
        return craft(tmp / "hostile.bhyve", mainstream_ident("2.0").encode(), b"", {},
                     file_size, nvlist_size=nvlist_size)
    return build


def r1_sections(**entries: tuple[int, int, str]) -> Callable[[Path], Path]:
    """A valid hand-laid r1 image whose named sections are moved to (offset, size, type);
    the file is extended (sparse) to cover them when they fit below 4 GiB."""
    def build(tmp: Path) -> Path:
        path = craft_r1(tmp / "hostile.bhyve", overrides={
            name: section_entry(offset, size, kind) for name, (offset, size, kind)
            in entries.items()})
        end = max(offset + size for offset, size, _ in entries.values())
        if end < 1 << 32:
            os.truncate(path, max(end, path.stat().st_size))
        return path
    return build


def diff_pages_bitmap(memory: int) -> Callable[[Path], Path]:
    """An r2 2.1 image whose diff-pages section claims ``memory`` bytes of guest RAM: its
    bitmap (memory / 32 KiB) is all zeros in a sparse file, yet one page is stored."""
    def build(tmp: Path) -> Path:
        pages = memory // 4096
        bitmap = (pages + 63) // 64 * 8
        payload = tmp / "diff.payload"
        with open(payload, "wb") as handle:
            handle.write(struct.pack("<QQ", 4096, pages))
            handle.seek(16 + bitmap)
            handle.write(b"\x55" * 4096)
        ident = mainstream_ident("2.1")
        attributes = {"base": NvPair("base", NvType.STRING, "base.bhyve"),
                      "base_checksum": NvPair("base_checksum", NvType.STRING,
                                              "sha256:" + "0" * 64)}
        image = model(tmp, "r2").evolve(
            ident=ident, compat=Compat(ident, ("diff-pages",)),
            config_text=config_text(memory),
            memory=FileRange(str(payload), 0, payload.stat().st_size),
            memory_type="diff-pages", checksums={"memory": "sha256:" + "0" * 64},
            sections=(Section("memory", 0, 0, "diff-pages", None, attributes),))
        out = tmp / "hostile.bhyve"
        write_single(image, str(out))
        return out
    return build


def meta_document(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], Path]:
    """A legacy-b image whose ``F.meta`` document is changed by ``edit`` (which may return a
    replacement document, or the bytes to write instead)."""
    def build(tmp: Path) -> Path:
        files = build_legacy(tmp, "legacy-b", memsize=64 * 1024)
        document = files.meta_document()
        replaced = edit(document)
        if isinstance(replaced, bytes):
            files.meta.write_bytes(replaced)
        else:
            files.write_meta(document if replaced is None else replaced)
        return files.memory
    return build


def set_at(*path_and_value: Any) -> Callable[[dict[str, Any]], None]:
    *path, value = path_and_value

    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return edit


def meta_of_100_mib(tmp: Path) -> Path:
    """A legacy-b image with a real 100 MiB ``F.meta``: its valid document, then 100 MiB of
    JSON whitespace (written a MiB at a time, so this process stays small)."""
    files = build_legacy(tmp, "legacy-b", memsize=64 * 1024)
    with open(files.meta, "ab") as handle:
        for _ in range(100):
            handle.write(b" " * MIB)
    return files.memory


def deep_json(depth: int) -> Callable[[dict[str, Any]], bytes]:
    def edit(document: dict[str, Any]) -> bytes:
        inner = "[" * depth + "]" * depth
        return f'{{"basic metadata": {inner}, "kern_structs": [], "devices": []}}'.encode()
    return edit


def many_entries(document: dict[str, Any]) -> None:
    document["devices"] = [{"device": f"d{i}", "size": 0, "file_offset": 0}
                           for i in range(100_000)]


def huge_digits(document: dict[str, Any]) -> bytes:
    text = json.dumps(document)
    return text.replace('"memsize": 65536', '"memsize": ' + "9" * 1_000_000).encode()


CASES = [
    # the nvlist decoder
    Case("nvlist-size-2^63", "nvlist", nvlist_file(header(2**63)), "BHS-N004"),
    Case("nvlist-size-2^63-big-endian", "nvlist", nvlist_file(header(2**63, flags=0x80)),
         "BHS-N004"),
    Case("nvlist-descriptors-2^63", "nvlist", nvlist_file(header(0, descriptors=2**63)),
         "BHS-N005"),
    Case("nvlist-datasize-2^63", "nvlist",
         nvlist_file(listed(pair(NvType.BINARY, b"b", 2**63, payload=b"x"))), "BHS-N009"),
    Case("nvlist-nesting-10000", "nvlist", nvlist_file(nested(10_000)), "BHS-N013"),
    Case("nvlist-number-array-1e9", "nvlist", nvlist_file(listed(
        pair(NvType.NUMBER_ARRAY, b"a", 8 * BILLION, BILLION, bytes(8)))), "BHS-N009"),
    Case("nvlist-number-array-1e9-small-datasize", "nvlist", nvlist_file(listed(
        pair(NvType.NUMBER_ARRAY, b"a", 8, BILLION, bytes(8)))), "BHS-N009"),
    Case("nvlist-bool-array-1e9", "nvlist", nvlist_file(listed(
        pair(NvType.BOOL_ARRAY, b"a", BILLION, BILLION, b"\1"))), "BHS-N009"),
    Case("nvlist-string-array-1e9", "nvlist", nvlist_file(listed(
        pair(NvType.STRING_ARRAY, b"a", 2, BILLION, b"x\0"))), "BHS-N010"),
    Case("nvlist-nvlist-array-1e9", "nvlist", nvlist_file(listed(
        pair(NvType.NVLIST_ARRAY, b"a", 0, BILLION, header(0)))), "BHS-N001"),
    Case("nvlist-nvlist-array-2^64-1", "nvlist", nvlist_file(listed(
        pair(NvType.NVLIST_ARRAY, b"a", 0, 2**64 - 1, header(0)))), "BHS-N001"),
    # the single-file reader
    Case("single-nvlist-size-4GiB-in-4KiB", "single", prefix_only(2**32 - 1, 4096),
         "BHS-S003"),
    Case("single-header-100MiB", "single", prefix_only(100 * MIB, 101 * MIB), "BHS-N015"),
    Case("single-header-nesting-10000", "single", single_file(nested(10_000)), "BHS-N013"),
    Case("single-header-array-1e9", "single", single_file(listed(
        pair(NvType.NUMBER_ARRAY, b"a", 8 * BILLION, BILLION, bytes(8)))), "BHS-N009"),
    Case("single-section-offset-2^63", "single",
         r1_sections(memory=(2**63, 1 << 20, "binary")), "BHS-S007"),
    Case("single-section-size-2^64-1", "single",
         r1_sections(config=(4096, 2**64 - 1, "text")), "BHS-S007"),
    Case("single-kernel-section-512MiB-sparse", "single",
         r1_sections(kernel=(4 * MIB, 512 * MIB, "nvlist")), "BHS-S019"),
    Case("single-devices-section-100MiB-sparse", "single",
         r1_sections(devices=(4 * MIB, 100 * MIB, "nvlist")), "BHS-S019"),
    Case("single-config-section-512MiB-sparse", "single",
         r1_sections(config=(4 * MIB, 512 * MIB, "text")), "BHS-S019"),
    Case("single-diff-pages-bitmap-256MiB-sparse", "single", diff_pages_bitmap(8 << 40),
         "BHS-S017"),
    Case("single-sections-at-2^63-overlapping", "single",
         r1_sections(kernel=(2**63, 2**63 - 1, "nvlist"), devices=(2**63, 2**63 - 1, "nvlist")),
         "BHS-S007"),
    # the legacy F.meta reader
    Case("meta-100MiB", "legacy", meta_of_100_mib, "BHS-L004"),
    Case("meta-nesting-10000", "legacy", meta_document(deep_json(10_000)), "BHS-L002"),
    Case("meta-100000-entries", "legacy", meta_document(many_entries), "BHS-L003"),
    Case("meta-offset-2^63", "legacy",
         meta_document(set_at("devices", 0, "file_offset", 2**63)), "BHS-L003"),
    Case("meta-size-2^63-1", "legacy",
         meta_document(set_at("devices", 0, "size", 2**63 - 1)), "BHS-L007"),
    Case("meta-memsize-2^63-1", "legacy",
         meta_document(set_at("basic metadata", "memsize", 2**63 - 1)), "BHS-L006"),
    Case("meta-memsize-million-digits", "legacy", meta_document(huge_digits), "BHS-L003"),
]

def parse_in_child(case: Case, path: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, case.kind, str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"the child failed (not a BhyvesnapError?):\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input_is_refused_quickly_in_bounded_memory(tmp_path: Path,
                                                            case: Case) -> None:
    path = case.build(tmp_path)
    report = parse_in_child(case, path)
    assert report["rule"] == case.rule
    assert report["seconds"] < MAX_SECONDS
    assert report["peak_kib"] < MAX_RSS_MIB * 1024, \
        f"peak RSS {report['peak_kib'] // 1024} MiB"


@pytest.mark.slow
def test_the_child_measures_its_own_peak(tmp_path: Path) -> None:
    """The controls: the figure is the child's own, not this process's (which holds 160 MiB
    while it runs the child), and it does see a large allocation in the child (an accepted
    48 MiB nvlist is held in memory), so the bound above can fail."""
    ballast = b"x" * (160 * MIB)
    small = Case("small", "nvlist", nvlist_file(header(0)), None)
    assert parse_in_child(small, small.build(tmp_path))["peak_kib"] < MAX_RSS_MIB * 1024
    del ballast
    case = Case("large-but-valid", "nvlist",
                nvlist_file(listed(pair(NvType.BINARY, b"b", 48 * MIB, payload=bytes(48 * MIB)))),
                None)
    report = parse_in_child(case, case.build(tmp_path))
    assert report["rule"] is None
    assert report["peak_kib"] > 90 * 1024  # the file's bytes and the value sliced from them
