"""Build single-file images (r1, r2) for tests, and hand-craft broken ones.

Valid images go through the real writer, so a test that reads them back exercises both
directions; broken images are crafted byte by byte (IDENT, NVLIST SIZE, header, body) so
that each one breaks exactly one rule.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from migrate.formats.single import write_single
from migrate.ident import mainstream_ident
from migrate.image import Compat, FileRange, Image, Producer, Section, StateEntry
from migrate.nvlist import NvList, NvPair, NvType, pack

KERNEL = ("vhpet", "vm", "vioapic", "vlapic", "vmcx", "vatpit", "vatpic", "vpmtmr", "vrtc")
DEVICES = ("virtio-blk@pci.0.3.0", "virtio-net@pci.0.4.0", "lpc@pci.0.31.0", "atkbdc")


def config_text(memory_size: int, cpus: int = 2, name: str = "testvm") -> str:
    return (f"name={name}\ncpus={cpus}\nmemory.size={memory_size}\n"
            "pci.0.3.0.device=virtio-blk\npci.0.4.0.device=virtio-net\n"
            "pci.0.31.0.device=lpc\n")


def memory_file(path: Path, size: int, *, sparse_tail: bool = True) -> Path:
    """A memory file: a recognisable pattern in its first pages, zeros (a hole) after."""
    with open(path, "wb") as handle:
        pattern = bytes(range(256)) * 16
        data_pages = max(1, min(size, 64 << 10) // len(pattern))
        for page in range(data_pages):
            handle.write(pattern[page % 256:] + pattern[:page % 256])
        handle.truncate(size if sparse_tail else handle.tell())
    return path


def blobs(names: Sequence[str], seed: int) -> tuple[StateEntry, ...]:
    return tuple(StateEntry(name, "fbsd14", bytes((seed + i + j) % 251 for j in range(32 + 8 * i)))
                 for i, name in enumerate(names))


def model(tmp: Path, image_format: str = "r2", memory_size: int = 1 << 20, *,
          memory: Path | None = None, compat: Compat | None = None,
          producer: Producer | None = None) -> Image:
    """An in-memory image of ``image_format`` whose memory lives in a file under ``tmp``."""
    memory_path = memory or memory_file(tmp / "guest.mem", memory_size)
    r2 = image_format == "r2"
    return Image(
        format=image_format,
        path=str(tmp / "model"),
        files=(),
        kernel=blobs(KERNEL, 1),
        devices=blobs(DEVICES, 7),
        memory=FileRange(str(memory_path), 0, memory_size),
        ident=mainstream_ident("2.0" if r2 else "1.0"),
        config_text=config_text(memory_size),
        compat=(compat or Compat(mainstream_ident("2.0"))) if r2 else None,
        producer=producer if r2 else None,
    )


def build(tmp: Path, image_format: str = "r2", name: str = "image.bhyve", **kwargs: Any) -> Path:
    """Write a valid image with the real writer and return its path."""
    out = tmp / name
    write_single(model(tmp, image_format, **kwargs), str(out))
    return out


def section_entry(offset: int, size: int, kind: str, **extra: Any) -> NvList:
    pairs = [("offset", NvType.NUMBER, offset), ("size", NvType.NUMBER, size),
             ("type", NvType.STRING, kind)]
    pairs += [(key, NvType.STRING, value) for key, value in extra.items()]
    return NvList.of(*pairs)


def craft(path: Path, ident: bytes, header: bytes, body: dict[int, bytes], size: int, *,
          nvlist_size: int | None = None) -> Path:
    """A file of ``size`` bytes: IDENT (padded to 64), NVLIST SIZE, header, then ``body``
    chunks at their offsets (everything else zero)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        handle.write(ident.ljust(64, b"\0")[:64])
        handle.write(struct.pack("<I", len(header) if nvlist_size is None else nvlist_size))
        handle.write(header)
        for offset, data in body.items():
            handle.seek(offset)
            handle.write(data)
    return path


def r1_header(sections: dict[str, NvList]) -> bytes:
    return pack(NvList(0, tuple(NvPair(n, NvType.NVLIST, v) for n, v in sections.items())))


def state_nvlist(names: Sequence[str], r2: bool) -> bytes:
    pairs = []
    for name in names:
        blob = name.encode() * 4
        value: Any = blob
        kind = NvType.BINARY
        if r2:
            value = NvList.of(("layout", NvType.STRING, "fbsd14"), ("data", NvType.BINARY, blob))
            kind = NvType.NVLIST
        pairs.append(NvPair(name, kind, value))
    return pack(NvList(0, tuple(pairs)))


def craft_r1(path: Path, *, memory_size: int = 1 << 20, config: str | None = None,
             overrides: dict[str, NvList] | None = None, drop: Sequence[str] = (),
             kernel: bytes | None = None, ident: bytes = b"BHYVE CHECKPOINT IMAGE 1.0",
             extra_body: dict[int, bytes] | None = None) -> Path:
    """A hand-laid r1 image (config, kernel, devices, memory at 4 KiB boundaries), with
    section entries replaced by ``overrides`` or removed by ``drop``."""
    config_bytes = (config if config is not None else config_text(memory_size)).encode()
    kernel_bytes = kernel if kernel is not None else state_nvlist(KERNEL, r2=False)
    devices_bytes = state_nvlist(DEVICES, r2=False)
    layout = {"config": (4096, config_bytes, "text"), "kernel": (8192, kernel_bytes, "nvlist"),
              "devices": (12288, devices_bytes, "nvlist")}
    memory_offset = 16384
    entries = {name: section_entry(offset, len(data), kind)
               for name, (offset, data, kind) in layout.items()}
    entries["memory"] = section_entry(memory_offset, memory_size, "binary")
    entries.update(overrides or {})
    for name in drop:
        del entries[name]
    body = {offset: data for offset, data, _ in layout.values()}
    body[memory_offset] = b"\x5a" * min(memory_size, 4096)
    body.update(extra_body or {})
    return craft(path, ident, r1_header(entries), body, memory_offset + memory_size)


def file_bytes(path: Path | str) -> bytes:
    return Path(path).read_bytes()


def allocated_bytes(path: Path | str) -> int:
    return os.stat(path).st_blocks * 512


def diff_pages_payload(page_count: int, present: dict[int, bytes]) -> bytes:
    """A diff-pages payload (FORMAT.md 3.5): header, bitmap, present pages in order."""
    bitmap = bytearray((page_count + 63) // 64 * 8)
    for page in present:
        bitmap[page // 8] |= 1 << (page % 8)
    pages = b"".join(present[page].ljust(4096, b"\0") for page in sorted(present))
    return struct.pack("<QQ", 4096, page_count) + bytes(bitmap) + pages


def build_diff(tmp: Path, present: dict[int, bytes], *, base_name: str = "base.bhyve",
               name: str = "diff.bhyve", memory_size: int = 1 << 20,
               compat: Compat | None = None) -> tuple[Path, Path]:
    """A plain r2 base image and an r2 2.1 image whose memory is a diff against it."""
    from migrate.formats.single import read_single

    base = build(tmp, "r2", name=base_name, memory_size=memory_size)
    recorded = read_single(str(base)).checksums["memory"]
    payload = tmp / "diff.payload"
    payload.write_bytes(diff_pages_payload(memory_size // 4096, present))
    attributes = {"base": NvPair("base", NvType.STRING, base_name),
                  "base_checksum": NvPair("base_checksum", NvType.STRING, recorded)}
    ident = mainstream_ident("2.1")
    image = model(tmp, "r2", memory_size, memory=tmp / "guest.mem").evolve(
        ident=ident,
        memory=FileRange(str(payload), 0, payload.stat().st_size),
        memory_type="diff-pages",
        compat=compat or Compat(ident, ("diff-pages",)),
        sections=(Section("memory", 0, 0, "diff-pages", None, attributes),),
    )
    out = tmp / name
    write_single(image, str(out))
    return base, out


def flip_byte(path: Path | str, offset: int, mask: int = 0xFF) -> None:
    """XOR the byte at ``offset`` of ``path`` with ``mask``: one bit of damage, in place."""
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([byte ^ mask]))
