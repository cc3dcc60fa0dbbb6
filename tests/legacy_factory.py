"""Build legacy three-file images (``legacy-a``, ``legacy-b``) on disk for tests.

Deliberately independent of :mod:`migrate.formats.legacy`: the tables below are copied from
FORMAT.md 2.3, not loaded from the tool's data, and ``F.meta`` is printed here the way the
spec says (libxo key order, two-space indent, final newline). Tests can therefore compare the
tool's writer against these bytes, and break an image by editing its ``F.meta`` document.
Guest memory is written sparse: a few pages of data, the rest holes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYOUT_A_STRUCTS: tuple[tuple[str, int], ...] = (
    ("vhpet", 5), ("vm", 2), ("vmx", 0), ("vioapic", 1), ("vlapic", 3), ("vmcx", 6),
    ("vatpit", 8), ("vatpic", 7), ("vpmtmr", 9), ("vrtc", 10),
)
"""Layout-A kernel structures in bhyve 13.x order, with their ``enum snapshot_req`` values."""

LAYOUT_A_DEVICES: tuple[str, ...] = (
    "atkbdc", "virtio-net", "virtio-blk", "virtio-rnd", "lpc", "fbuf", "xhci", "e1000",
    "ahci", "ahci-hd", "ahci-cd",
)
"""The fixed layout-A device table."""

LAYOUT_B_STRUCTS: tuple[str, ...] = (
    "vhpet", "vm", "vioapic", "vlapic", "vmcx", "vatpit", "vatpic", "vpmtmr", "vrtc",
)

PAGE = 4096
Blobs = Sequence[tuple[str, bytes]]


def blob(name: str, size: int) -> bytes:
    """Deterministic, name-dependent, non-zero-heavy bytes (so misplaced blobs show)."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def layout_a_kernel(vmx_size: int = 96) -> list[tuple[str, bytes]]:
    """Every layout-A structure; ``vmx_size`` > 0 is fbsd13.0, 0 is fbsd13.2."""
    return [(name, blob(name, vmx_size if name == "vmx" else 40 + 8 * req))
            for name, req in LAYOUT_A_STRUCTS]


def layout_a_devices(present: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    """The full 11-entry table, with ``b""`` (size 0) for every device not in ``present``."""
    return [(name, present.get(name, b"")) for name in LAYOUT_A_DEVICES]


def layout_b_kernel() -> list[tuple[str, bytes]]:
    return [(name, blob(name, 24 + 4 * i)) for i, name in enumerate(LAYOUT_B_STRUCTS)]


DEFAULT_A_DEVICES = {"atkbdc": blob("atkbdc", 20), "virtio-blk": blob("virtio-blk", 300),
                     "lpc": blob("lpc", 12)}
DEFAULT_B_DEVICES: Blobs = (("virtio-blk@pci.0.3.0", blob("virtio-blk", 300)),
                            ("lpc@pci.0.31.0", blob("lpc", 12)),
                            ("atkbdc", blob("atkbdc", 20)))


@dataclass(frozen=True)
class LegacyFiles:
    """The three files of a built image."""

    memory: Path
    kern: Path
    meta: Path

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        return (self.memory, self.kern, self.meta)

    def meta_document(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.meta.read_text(encoding="utf-8"))
        return document

    def write_meta(self, document: Any) -> None:
        """Replace ``F.meta`` by ``document`` printed as the spec prints it."""
        self.meta.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    def contents(self) -> tuple[bytes, bytes, bytes]:
        """All bytes of the three files (small images only)."""
        return (self.memory.read_bytes(), self.kern.read_bytes(), self.meta.read_bytes())


def write_sparse_memory(path: Path, memsize: int) -> None:
    """``memsize`` bytes: a data page at the start, the middle and the end, holes between."""
    with open(path, "wb") as handle:
        for offset in sorted({0, memsize // 2 // PAGE * PAGE, max(0, memsize - PAGE)}):
            handle.seek(offset)
            handle.write(blob(f"page{offset}", min(PAGE, memsize - offset)))
        handle.truncate(memsize)


def build_legacy(directory: Path, layout: str = "legacy-a", *, ncpus: int = 2,
                 memsize: int = 256 * 1024, kernel: Blobs | None = None,
                 devices: Blobs | None = None, vmname: str = "testvm", memflags: int = 0,
                 name: str = "vm.ckp", numbers_as_strings: bool = False) -> LegacyFiles:
    """Write ``name``, ``name.kern``, ``name.meta`` under ``directory``; blobs contiguous.

    ``kernel`` and ``devices`` are written in the given order (default: every structure of
    the layout; layout A: the 11-entry device table with atkbdc, virtio-blk and lpc
    present; layout B: virtio-blk, lpc and atkbdc by instance name). Layout-A structure
    names must be in :data:`LAYOUT_A_STRUCTS` (their ``snapshot_req`` comes from it).
    """
    if layout == "legacy-a":
        kernel = layout_a_kernel() if kernel is None else kernel
        devices = layout_a_devices(DEFAULT_A_DEVICES) if devices is None else devices
    elif layout == "legacy-b":
        kernel = layout_b_kernel() if kernel is None else kernel
        devices = DEFAULT_B_DEVICES if devices is None else devices
    else:
        raise ValueError(f"no legacy layout {layout!r}")

    def number(value: int) -> int | str:
        return str(value) if numbers_as_strings else value

    requests = dict(LAYOUT_A_STRUCTS)
    offset = 0
    kern = bytearray()

    def rows(entries: Blobs, name_key: str, *, with_req: bool) -> list[dict[str, Any]]:
        nonlocal offset
        out: list[dict[str, Any]] = []
        for entry_name, data in entries:
            row: dict[str, Any] = {name_key: entry_name}
            if with_req:
                row["snapshot_req"] = number(requests[entry_name])
            row["size"] = number(len(data))
            row["file_offset"] = number(offset)
            offset += len(data)
            kern.extend(data)
            out.append(row)
        return out

    basic = {"ncpus": number(ncpus), "vmname": vmname, "memsize": number(memsize),
             "memflags": number(memflags)}
    if layout == "legacy-a":
        document = {"basic metadata": basic,
                    "structs": rows(kernel, "debug_name", with_req=True),
                    "devices": rows(devices, "snapshot_req", with_req=False)}
    else:
        document = {"basic metadata": basic,
                    "kern_structs": rows(kernel, "device", with_req=False),
                    "devices": rows(devices, "device", with_req=False)}
    os.makedirs(directory, exist_ok=True)
    files = LegacyFiles(directory / name, directory / f"{name}.kern", directory / f"{name}.meta")
    write_sparse_memory(files.memory, memsize)
    files.kern.write_bytes(bytes(kern))
    files.write_meta(document)
    return files
