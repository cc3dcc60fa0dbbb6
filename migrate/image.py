"""The in-memory model of a snapshot image, independent of its container.

Every reader produces an :class:`Image`; every writer, step, checker and gate consumes one.
Large byte ranges (guest memory, unknown sections, legacy state blobs) are
:class:`FileRange` references into the input files, never loaded: guest memory can be tens of
GiB, and ``info``/``check`` must cost the same whatever its size. Small state blobs decoded
from an nvlist are plain ``bytes``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from migrate.findings import Finding, UsageError, error

FORMATS: tuple[str, ...] = ("legacy-a", "legacy-b", "r1", "r2")
"""Every format id, oldest first (the upgrade chain of FORMAT.md section 1)."""

UNKNOWN_FORMAT = "unknown"
"""Format id reported for an image whose contents were not interpreted."""


@dataclass(frozen=True)
class FileRange:
    """``size`` bytes at ``offset`` of the file at ``path``; read only on demand."""

    path: str
    offset: int
    size: int

    def read(self) -> bytes:
        """Read the whole range; for small ranges only (state blobs, config, headers).

        A file that shrank since it was measured, or vanished, is an unreadable input
        (BHS-X002), never a silently short blob.
        """
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(self.size)
        except OSError as exc:
            raise UsageError(error("BHS-X002", self.path, self.offset,
                                   f"cannot read: {exc.strerror or exc}")) from exc
        if len(data) != self.size:
            raise UsageError(error(
                "BHS-X002", self.path, self.offset + len(data),
                f"the file ends {self.size - len(data)} bytes before the end of the "
                f"{self.size}-byte range it should hold: it was truncated"))
        return data


@dataclass(frozen=True)
class PageMerge:
    """Guest memory assembled from a base image's memory and the pages of a diff.

    What flattening a ``diff-pages`` section (FORMAT.md 3.5) produces: page ``i`` comes from
    ``pages`` when bit ``i`` of ``bitmap`` is set (present pages stored in ascending order),
    else from ``base``. Nothing is read until a writer copies the :meth:`pieces`.
    """

    base: FileRange
    pages: FileRange
    bitmap: FileRange
    page_size: int
    page_count: int

    @property
    def size(self) -> int:
        return self.page_count * self.page_size

    def pieces(self) -> Iterator[tuple[int, FileRange]]:
        """``(guest offset, source range)`` for each run of pages from one source, in order.

        The bitmap is streamed from its file: a guest of terabytes has a bitmap of many MiB,
        and a hostile one claims whatever the (sparse) file allows."""
        stored = 0
        page = 0
        for from_diff, run in itertools.groupby(bitmap_bits(self.bitmap, self.page_count)):
            pages = sum(1 for _ in run)
            length = pages * self.page_size
            if from_diff:
                source = FileRange(self.pages.path, self.pages.offset + stored, length)
                stored += length
            else:
                source = FileRange(self.base.path, self.base.offset + page * self.page_size,
                                   length)
            yield page * self.page_size, source
            page += pages


BITMAP_CHUNK = 1 << 20


def bitmap_bits(bitmap: FileRange, count: int) -> Iterator[int]:
    """The first ``count`` bits of ``bitmap``, least significant bit of each byte first,
    read in bounded chunks."""
    done = 0
    with open(bitmap.path, "rb") as handle:
        handle.seek(bitmap.offset)
        while done < count:
            chunk = handle.read(min(BITMAP_CHUNK, bitmap.size - done // 8))
            if not chunk:
                raise UsageError(error("BHS-X002", bitmap.path, bitmap.offset + done // 8,
                                       "the diff-pages bitmap ends early: the file was "
                                       "truncated"))
            for byte in chunk:
                for bit in range(min(8, count - done)):
                    yield byte >> bit & 1
                done += 8
                if done >= count:
                    return


Memory = FileRange | PageMerge
"""Guest memory: one range of a file, or base pages merged with a diff's pages."""


def memory_pieces(memory: Memory) -> Iterator[tuple[int, FileRange]]:
    """``(offset, source range)`` pieces that, copied in order, give the whole memory."""
    if isinstance(memory, FileRange):
        yield 0, memory
    else:
        yield from memory.pieces()


Blob = bytes | FileRange
"""A state blob: bytes already decoded from an nvlist, or a range of a legacy ``F.kern``."""


def blob_size(blob: Blob) -> int:
    return blob.size if isinstance(blob, FileRange) else len(blob)


def blob_bytes(blob: Blob) -> bytes:
    return blob.read() if isinstance(blob, FileRange) else blob


@dataclass(frozen=True)
class StateEntry:
    """One kernel structure or device: its name, ABI generation and opaque blob.

    ``name`` is the layout-B name (``vm``, ``virtio-blk@pci.0.3.0``, ``atkbdc``) or, for
    layout A, the table name (``virtio-blk``). ``generation`` is the kernel ABI generation
    (``fbsd13.0``, ``fbsd13.2``, ``fbsd14``) the blob was written with.
    """

    name: str
    generation: str
    blob: Blob

    @property
    def size(self) -> int:
        return blob_size(self.blob)

    def read(self) -> bytes:
        return blob_bytes(self.blob)


@dataclass(frozen=True)
class Section:
    """One named, typed byte range of a single-file image, as its header describes it.

    ``attributes`` keeps every other pair of the section's header entry (``base``,
    ``base_checksum`` of diff-pages, keys a newer writer added) so they survive a rewrite.
    """

    name: str
    offset: int
    size: int
    type: str
    checksum: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LegacyMetadata:
    """``basic metadata`` of a legacy ``F.meta`` (FORMAT.md 2.3)."""

    ncpus: int
    vmname: str
    memsize: int
    memflags: int


@dataclass(frozen=True)
class Compat:
    """The r2 forward-compatibility record (FORMAT.md 3.4)."""

    min_reader: str
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Producer:
    """The r2 informational producer record."""

    name: str | None = None
    version: str | None = None
    created: str | None = None


@dataclass(frozen=True)
class ExtraSection:
    """A section this tool does not interpret; carried over unchanged between single files."""

    name: str
    type: str
    data: FileRange
    checksum: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    """One snapshot, whatever its container.

    ``path`` is the path the user gave (for legacy images: the memory file ``F``); ``files``
    lists every file the image consists of. ``findings`` holds the non-fatal observations the
    reader made (warnings, info); a fatal problem is raised as :class:`ImageError` instead.
    ``checksums`` maps a section name (``memory``, an extra section) to the
    ``<algorithm>:<hex>`` its image recorded, so an r2 writer can carry it over instead of
    re-hashing GiBs of memory that it copies unchanged.
    """

    format: str
    path: str
    files: tuple[str, ...]
    kernel: tuple[StateEntry, ...]
    devices: tuple[StateEntry, ...]
    memory: Memory
    ident: str | None = None
    memory_type: str = "binary"
    config_text: str | None = None
    legacy: LegacyMetadata | None = None
    sections: tuple[Section, ...] = ()
    extra_sections: tuple[ExtraSection, ...] = ()
    header_area: int | None = None
    compat: Compat | None = None
    producer: Producer | None = None
    checksums: Mapping[str, str] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    @property
    def generations(self) -> frozenset[str]:
        """Every kernel ABI generation among the state entries."""
        return frozenset(entry.generation for entry in (*self.kernel, *self.devices))

    @property
    def generation(self) -> str | None:
        """The image's ABI generation when all entries agree, else ``None``."""
        found = self.generations
        return next(iter(found)) if len(found) == 1 else None

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def evolve(self, **changes: Any) -> Image:
        """A copy with ``changes`` applied (steps build their output this way)."""
        return replace(self, **changes)
