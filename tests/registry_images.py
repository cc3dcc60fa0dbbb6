"""Hand-built image models, one per format, for the registry and step tests.

They are built directly as :class:`~migrate.image.Image` objects over small temporary files
(memory and, for legacy images, ``F.kern``), so step tests do not depend on any reader or
writer. :data:`TEST_IMAGES` is the table a step's ``test_image`` must name (registry lint).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from migrate.image import (
    Compat,
    ExtraSection,
    FileRange,
    Image,
    LegacyMetadata,
    Producer,
    StateEntry,
)

MEMSIZE = 1 << 20
KERNEL_B = ("vhpet", "vm", "vioapic", "vlapic", "vmcx", "vatpit", "vatpic", "vpmtmr", "vrtc")
KERNEL_A = ("vhpet", "vm", "vmx", "vioapic", "vlapic", "vmcx", "vatpit", "vatpic", "vpmtmr",
            "vrtc")
DEVICES_A = ("atkbdc", "virtio-net", "virtio-blk", "virtio-rnd", "lpc", "fbuf", "xhci",
             "e1000", "ahci", "ahci-hd", "ahci-cd")
PRESENT_A = ("atkbdc", "virtio-net", "virtio-blk", "lpc")
DEVICES_B = ("virtio-net@pci.0.2.0", "virtio-blk@pci.0.3.0", "lpc@pci.0.31.0", "atkbdc")
CONFIG_TEXT = ("name=vm1\ncpus=2\nmemory.size=1048576\nmemory.guest_in_core=true\n"
               "pci.0.2.0.device=virtio-net\npci.0.3.0.device=virtio-blk\n"
               "pci.0.31.0.device=lpc\n")
USER_CONFIG_TEXT = ("name=vm1\ncpus=2\nmemory.size=1048576\n"
                    "pci.0.0.0.device=hostbridge\n"
                    "pci.0.2.0.device=virtio-net\npci.0.2.0.backend=tap0\n"
                    "pci.0.3.0.device=virtio-blk\npci.0.3.0.path=/vm/disk.img\n"
                    "pci.0.4.0.device=virtio-blk\npci.0.4.0.path=/vm/data.img\n"
                    "pci.0.31.0.device=lpc\nlpc.com1.path=stdio\n")
LEGACY = LegacyMetadata(ncpus=2, vmname="vm1", memsize=MEMSIZE, memflags=1)


def blob(name: str) -> bytes:
    """A recognisable blob for a structure, so tests can see that bytes travel unchanged."""
    return f"<{name}>".encode() * 3


def memory_file(directory: Path, name: str, offset: int = 0) -> FileRange:
    path = directory / name
    path.write_bytes(b"\0" * offset + bytes(range(256)) * (MEMSIZE // 256))
    return FileRange(str(path), offset, MEMSIZE)


def _kern(directory: Path, base: str,
          entries: list[tuple[str, bytes]]) -> tuple[str, list[FileRange]]:
    path = directory / f"{base}.kern"
    path.write_bytes(b"".join(data for _, data in entries))
    ranges, offset = [], 0
    for _, data in entries:
        ranges.append(FileRange(str(path), offset, len(data)))
        offset += len(data)
    return str(path), ranges


def legacy_a_image(directory: Path, generation: str = "fbsd13.0") -> Image:
    """A 13.0 snapshot (``vmx`` non-empty) with four present devices and seven size-0 ones."""
    kernel = [(name, b"" if name == "vmx" and generation == "fbsd13.2" else blob(name))
              for name in KERNEL_A]
    devices = [(name, blob(name) if name in PRESENT_A else b"") for name in DEVICES_A]
    memory = memory_file(directory, "a.ckp")
    kern, ranges = _kern(directory, memory.path, kernel + devices)
    entries = [StateEntry(name, generation, r)
               for (name, _), r in zip(kernel + devices, ranges, strict=True)]
    return Image(format="legacy-a", path=memory.path,
                 files=(memory.path, kern, memory.path + ".meta"),
                 kernel=tuple(entries[:len(kernel)]), devices=tuple(entries[len(kernel):]),
                 memory=memory, legacy=LEGACY)


def legacy_b_image(directory: Path) -> Image:
    entries_in = [(name, blob(name)) for name in (*KERNEL_B, *DEVICES_B)]
    memory = memory_file(directory, "b.ckp")
    kern, ranges = _kern(directory, memory.path, entries_in)
    entries = [StateEntry(name, "fbsd14", r) for (name, _), r in zip(entries_in, ranges,
                                                                      strict=True)]
    return Image(format="legacy-b", path=memory.path,
                 files=(memory.path, kern, memory.path + ".meta"),
                 kernel=tuple(entries[:len(KERNEL_B)]), devices=tuple(entries[len(KERNEL_B):]),
                 memory=memory, legacy=LEGACY)


def r1_image(directory: Path) -> Image:
    memory = memory_file(directory, "vm1.r1", offset=4096)
    return Image(format="r1", path=memory.path, files=(memory.path,),
                 kernel=tuple(StateEntry(n, "fbsd14", blob(n)) for n in KERNEL_B),
                 devices=tuple(StateEntry(n, "fbsd14", blob(n)) for n in DEVICES_B),
                 memory=memory, ident="BHYVE CHECKPOINT IMAGE 1.0", config_text=CONFIG_TEXT,
                 extra_sections=(ExtraSection("notes", "text",
                                              FileRange(memory.path, 0, 16)),))


def r2_image(directory: Path) -> Image:
    memory = memory_file(directory, "vm1.r2", offset=4096)
    ident = "BHYVE CHECKPOINT IMAGE 2.0"
    return Image(format="r2", path=memory.path, files=(memory.path,),
                 kernel=tuple(StateEntry(n, "fbsd14", blob(n)) for n in KERNEL_B),
                 devices=tuple(StateEntry(n, "fbsd14", blob(n)) for n in DEVICES_B),
                 memory=memory, ident=ident, config_text=CONFIG_TEXT,
                 compat=Compat(ident, ()),
                 producer=Producer("bhyve", "15.0-CURRENT", "2026-01-02T03:04:05Z"),
                 checksums={"memory": "sha256:" + "0" * 64, "notes": "sha256:" + "1" * 64},
                 extra_sections=(ExtraSection("notes", "text", FileRange(memory.path, 0, 16),
                                              "sha256:" + "1" * 64, {"origin": "x"}),))


def r2_diff_image(directory: Path) -> Image:
    """An r2 2.1 image whose memory is a diff-pages section against a base beside it.

    Unlike the others it is written to disk: flattening reads the base image's header.
    """
    from single_factory import build_diff

    from migrate.formats.single import read_single

    _, diff = build_diff(directory, {0: b"diff page"})
    return read_single(str(diff))


TEST_IMAGES: dict[str, Callable[[Path], Image]] = {
    "legacy-a": legacy_a_image,
    "legacy-b": legacy_b_image,
    "r1": r1_image,
    "r2": r2_image,
    "r2-diff-pages": r2_diff_image,
}
"""Every image a step's ``test_image`` may name, by name."""
