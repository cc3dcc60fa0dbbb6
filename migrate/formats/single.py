"""Single-file images ``r1`` and ``r2``: IDENT, packed header nvlist, aligned sections.

Reading checks every structural rule of FORMAT.md section 3 and raises on the first error;
it reads the fixed prefix, the header nvlist and the small sections (config, kernel,
devices), never the memory section (a :class:`FileRange`), so ``info`` and ``check`` cost the
same for 4 MiB and 40 GiB of guest RAM. Writing follows the canonical writer of 3.6, so two
independent writers produce the same bytes; what the reader accepts, the writer can write.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from migrate import storage
from migrate.config import parse_config, validate_config
from migrate.data import json_pointer, load_json, schema_errors
from migrate.devices import layout_b_order
from migrate.findings import Finding, ImageError, NotInterpretedError, error, info, warning
from migrate.ident import IDENT_SIZE, Ident, format_of, parse_ident
from migrate.image import (
    BITMAP_CHUNK,
    Compat,
    ExtraSection,
    FileRange,
    Image,
    Memory,
    Producer,
    Section,
    StateEntry,
    blob_bytes,
)
from migrate.nvlist import NvList, NvlistError, NvPair, NvType, pack, unpack

PREFIX_SIZE = IDENT_SIZE + 4
ALIGNMENT = 4096
MAX_HEADER_NVLIST = 64 << 20
"""A header nvlist larger than this is refused (BHS-N015; CLI.md "Limits")."""
SMALL_SECTION_LIMITS = {"config": 16 << 20, "kernel": 64 << 20, "devices": 64 << 20}
"""The sections a reader loads whole, and how large it lets them be (BHS-S019): a bhyve
config is a few KiB and a VM's state blobs a few MiB, so a larger claim is refused before a
byte is read, keeping memory bounded whatever a damaged or hostile header says."""
PADDING_SCAN_LIMIT = 64 << 10
"""Header padding is checked for non-zero bytes up to this many bytes (a warning only)."""
DIFF_PAGES_HEADER = 16

_U32 = struct.Struct("<I")
_DIFF_HEADER = struct.Struct("<QQ")


def _facts() -> Any:
    return load_json("bhyve/revisions.json")


def _r1_header_area() -> int:
    """The fixed header area of ``r1`` (4096), from the revisions data."""
    revision = next(r for r in _facts()["revisions"] if r["format"] == "r1")
    return int(revision["header_area"])


# --------------------------------------------------------------------------- reading


def read_single(path: str, *, display: str | None = None) -> Image:
    """Read an ``r1`` or ``r2`` image; raise :class:`ImageError` on the first structural error.

    A well-formed prefix of another producer or an unknown version raises
    :class:`NotInterpretedError` after checking only that prefix (FORMAT.md 3.1). Findings and
    ``Image.path`` name ``display`` when given (the output a temporary file will become), the
    file ranges the file actually read.
    """
    shown = display or path
    try:
        with open(path, "rb") as handle:
            return _Reader(path, handle, shown).read()
    except OSError as exc:
        raise ImageError(error("BHS-X002", shown, None,
                               f"cannot read: {exc.strerror or exc}")) from exc


class _Reader:
    """One pass over one file; keeps the findings it makes along the way."""

    def __init__(self, path: str, handle: Any, display: str) -> None:
        self.path = display
        """The image as the user knows it: named in findings and in ``Image.path``."""
        self.source = path
        """The file read: where the image's file ranges point."""
        self.handle = handle
        self.size = os.fstat(handle.fileno()).st_size
        self.findings: list[Finding] = []

    # -- helpers

    def fail(self, rule: str, location: int | str, message: str,
             remedy: str | None = None) -> ImageError:
        return ImageError(error(rule, self.path, location, message, remedy))

    def pread(self, offset: int, size: int) -> bytes:
        self.handle.seek(offset)
        data: bytes = self.handle.read(size)
        if len(data) != size:
            raise self.fail("BHS-S001", offset + len(data),
                            "file ends before the data its header describes")
        return data

    # -- the prefix

    def read_prefix(self) -> tuple[Ident, str, int]:
        if self.size < PREFIX_SIZE:
            raise self.fail("BHS-S001", self.size,
                            f"file is {self.size} bytes, shorter than the {PREFIX_SIZE}-byte "
                            "IDENT and NVLIST SIZE prefix")
        prefix = self.pread(0, PREFIX_SIZE)
        raw_ident = prefix[:IDENT_SIZE]
        length = raw_ident.find(b"\0")
        if length <= 0:
            raise self.fail("BHS-S002", 0 if length == 0 else IDENT_SIZE - 1,
                            "IDENT is empty" if length == 0
                            else "IDENT is not NUL-terminated within its 64 bytes")
        bad = next((i for i, byte in enumerate(raw_ident[:length]) if not 0x20 <= byte <= 0x7E),
                   None)
        if bad is not None:
            raise self.fail("BHS-S002", bad,
                            f"IDENT byte 0x{raw_ident[bad]:02x} is not printable ASCII")
        stray = next((i for i in range(length, IDENT_SIZE) if raw_ident[i]), None)
        if stray is not None:
            raise self.fail("BHS-S002", stray, "IDENT padding after the first NUL is not zero")
        text = raw_ident[:length].decode("ascii")
        ident = parse_ident(text)
        if ident is None:
            raise self.fail("BHS-S002", 0,
                            f"IDENT {text!r} is not '<producer> <version>' with a parsable version")
        (nvlist_size,) = _U32.unpack_from(prefix, IDENT_SIZE)
        if PREFIX_SIZE + nvlist_size > self.size:
            raise self.fail("BHS-S003", IDENT_SIZE,
                            f"NVLIST SIZE {nvlist_size} runs past the end of the "
                            f"{self.size}-byte file")
        image_format = format_of(ident)
        if image_format is None:
            if ident.mainstream:
                finding = error("BHS-P002", self.path, 0,
                                f"IDENT {text!r} is a version of the mainstream format this tool "
                                "does not know; its contents were not interpreted",
                                "upgrade bhyvesnap, or use the bhyve build that wrote it")
            else:
                finding = error("BHS-P001", self.path, 0,
                                f"IDENT {text!r} names another producer; its contents were not "
                                "interpreted", "use the tools of that producer")
            raise NotInterpretedError(finding, text)
        return ident, image_format, nvlist_size

    def read_header(self, nvlist_size: int) -> NvList:
        if nvlist_size > MAX_HEADER_NVLIST:
            raise self.fail("BHS-N015", IDENT_SIZE,
                            f"header nvlist of {nvlist_size} bytes exceeds this tool's "
                            f"{MAX_HEADER_NVLIST >> 20} MiB limit")
        try:
            return unpack(self.pread(PREFIX_SIZE, nvlist_size))
        except NvlistError as exc:
            raise exc.at(self.path, PREFIX_SIZE) from exc

    # -- the whole image

    def read(self) -> Image:
        ident, image_format, nvlist_size = self.read_prefix()
        header = self.read_header(nvlist_size)
        document = _check_unique(header, self.path, "")
        problems = schema_errors(f"header-{image_format}", document)
        if problems:
            pointer, message = problems[0]
            raise self.fail("BHS-S004", pointer or "/", f"header: {message}")
        header_end = PREFIX_SIZE + nvlist_size
        compat: Compat | None = None
        producer: Producer | None = None
        if image_format == "r1":
            area = _r1_header_area()
            if header_end > area:
                raise self.fail("BHS-S005", IDENT_SIZE,
                                f"r1 header of {header_end} bytes does not fit the "
                                f"{area}-byte header area")
            entries = header
            pointer_base = ""
        else:
            found = header.find("sections")
            assert found is not None  # the schema requires it
            assert isinstance(found.value, NvList)
            entries = found.value
            pointer_base = "/sections"
            compat = self.read_compat(document["compat"])
            if "producer" in document:
                record = document["producer"]
                producer = Producer(record.get("name"), record.get("version"),
                                    record.get("created"))
        sections = self.sections(entries, pointer_base)
        area = self.header_area(image_format, sections, header_end)
        self.check_padding(header_end, area)
        return self.image(ident, image_format, sections, area, compat=compat, producer=producer)

    def read_compat(self, record: Mapping[str, Any]) -> Compat:
        min_reader = str(record["min_reader"])
        parsed = parse_ident(min_reader)
        if parsed is None or not parsed.mainstream:
            raise self.fail("BHS-S016", "/compat/min_reader",
                            f"min_reader {min_reader!r} is not a mainstream IDENT")
        features = tuple(str(f) for f in record.get("features", ()))
        if len(set(features)) != len(features):
            raise self.fail("BHS-S016", "/compat/features", "a feature is listed twice")
        return Compat(min_reader, features)

    def sections(self, entries: NvList, pointer_base: str) -> list[Section]:
        """The section table; schema validation already vouched for every field's type."""
        sections = []
        for pair in entries.pairs:
            entry = pair.value
            assert isinstance(entry, NvList)
            fields = {p.name: p for p in entry.pairs}
            checksum = fields.pop("checksum", None)
            sections.append(Section(
                pair.name, _number(fields.pop("offset")), _number(fields.pop("size")),
                str(fields.pop("type").value),
                None if checksum is None else str(checksum.value), fields))
        for section in sections:
            pointer = pointer_base + json_pointer([section.name])
            if section.offset + section.size > self.size:
                raise self.fail("BHS-S007", f"{pointer}/size",
                                f"section {section.name!r} ({section.offset}+{section.size}) "
                                f"ends past the end of the {self.size}-byte file")
            allowed = _facts()["mainstream_sections"].get(section.name)
            if allowed is not None and section.type not in allowed:
                raise self.fail("BHS-S010", f"{pointer}/type",
                                f"section {section.name!r} has type {section.type!r}, expected "
                                + " or ".join(repr(t) for t in allowed))
        ordered = sorted((s for s in sections if s.size), key=lambda s: s.offset)
        for before, after in itertools.pairwise(ordered):
            if after.offset < before.offset + before.size:
                raise self.fail("BHS-S008", pointer_base + json_pointer([after.name, "offset"]),
                                f"section {after.name!r} at {after.offset} overlaps section "
                                f"{before.name!r} ({before.offset}+{before.size})")
        return sections

    def header_area(self, image_format: str, sections: list[Section], header_end: int) -> int:
        area = _r1_header_area() if image_format == "r1" else min(s.offset for s in sections)
        for section in sections:
            if section.offset < max(area, header_end):
                where = json_pointer(([] if image_format == "r1" else ["sections"])
                                     + [section.name, "offset"])
                raise self.fail("BHS-S006", where,
                                f"section {section.name!r} starts at {section.offset}, inside "
                                f"the header ({max(area, header_end)} bytes)")
        return area

    def check_padding(self, header_end: int, area: int) -> None:
        length = min(area - header_end, PADDING_SCAN_LIMIT)
        if length <= 0:
            return
        padding = self.pread(header_end, length)
        stray = next((i for i, byte in enumerate(padding) if byte), None)
        if stray is not None:
            self.findings.append(warning(
                "BHS-S011", self.path, header_end + stray,
                "header padding holds a non-zero byte (ignored by readers)"))

    def image(self, ident: Ident, image_format: str, sections: list[Section], area: int, *,
              compat: Compat | None, producer: Producer | None) -> Image:
        by_name = {s.name: s for s in sections}
        pointer_base = "" if image_format == "r1" else "/sections"
        for name in _facts()["section_order"]:
            if name not in by_name:
                raise self.fail("BHS-S009", f"{pointer_base}/{name}",
                                f"the mainstream section {name!r} is missing")
        config_section = by_name["config"]
        config_text = self.read_config(config_section)
        config = parse_config(config_text, self.path, config_section.offset)
        validate_config(config, self.path, config_section.offset)
        memory_size = config.memory_size
        assert memory_size is not None  # validate_config requires memory.size
        kernel = self.state_entries(image_format, by_name["kernel"])
        devices = self.state_entries(image_format, by_name["devices"])
        memory_section = by_name["memory"]
        if memory_section.type == "binary" and memory_section.size != memory_size:
            raise self.fail("BHS-S013", f"{pointer_base}/memory/size",
                            f"memory section holds {memory_section.size} bytes but config "
                            f"memory.size is {memory_size}")
        if memory_section.type == "diff-pages":
            self.check_feature_declared("diff-pages", compat, pointer_base)
            self.check_diff_pages(memory_section, memory_size)
        extras = []
        for section in sections:
            if section.name in _facts()["mainstream_sections"]:
                continue
            extras.append(ExtraSection(section.name, section.type,
                                       FileRange(self.source, section.offset, section.size),
                                       section.checksum, dict(section.attributes)))
            self.findings.append(info(
                "BHS-S018", self.path, pointer_base + json_pointer([section.name]),
                f"section {section.name!r} (type {section.type!r}) is not interpreted; "
                "migrations between single-file formats carry it over"))
        return Image(
            format=image_format,
            path=self.path,
            files=(self.source,),
            kernel=kernel,
            devices=devices,
            memory=FileRange(self.source, memory_section.offset, memory_section.size),
            ident=ident.text,
            memory_type=memory_section.type,
            config_text=config_text,
            sections=tuple(sorted(sections, key=lambda s: s.offset)),
            extra_sections=tuple(extras),
            header_area=area,
            compat=compat,
            producer=producer,
            checksums={s.name: s.checksum for s in sections if s.checksum},
            findings=tuple(self.findings),
        )

    def read_small(self, section: Section) -> bytes:
        """The whole of a section the reader interprets, within its size limit."""
        limit = SMALL_SECTION_LIMITS[section.name]
        if section.size > limit:
            raise self.fail("BHS-S019", section.offset,
                            f"the {section.name} section is {section.size} bytes; this tool "
                            f"reads at most {limit >> 20} MiB of it")
        return self.pread(section.offset, section.size)

    def read_config(self, section: Section) -> str:
        raw = self.read_small(section)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail("BHS-C001", section.offset + exc.start,
                            "config section is not UTF-8 text") from exc

    def state_entries(self, image_format: str, section: Section) -> tuple[StateEntry, ...]:
        try:
            decoded = unpack(self.read_small(section))
        except NvlistError as exc:
            raise exc.at(self.path, section.offset) from exc
        pointer = json_pointer([section.name])
        entries = []
        for pair in decoded.pairs:
            where = pointer + json_pointer([pair.name])
            if image_format == "r1":
                if pair.type is not NvType.BINARY:
                    raise self.fail("BHS-S012", where,
                                    f"{section.name} entry {pair.name!r} is {pair.type.name}, "
                                    "r1 requires BINARY")
                entries.append(StateEntry(pair.name, str(_facts()["r1_generation"]),
                                          _binary(pair)))
                continue
            entries.append(self.typed_entry(section.name, pair, where))
        if not entries:
            raise self.fail("BHS-S012", pointer, f"the {section.name} section has no entries")
        return tuple(entries)

    def typed_entry(self, section_name: str, pair: NvPair, where: str) -> StateEntry:
        value = pair.value
        if pair.type is not NvType.NVLIST or not isinstance(value, NvList):
            raise self.fail("BHS-S012", where, f"{section_name} entry {pair.name!r} is "
                            f"{pair.type.name}, r2 requires an NVLIST with layout and data")
        layout = value.find("layout")
        data = value.find("data")
        if layout is None or layout.type is not NvType.STRING:
            raise self.fail("BHS-S012", f"{where}/layout",
                            f"{section_name} entry {pair.name!r} lacks a STRING layout")
        if data is None or data.type is not NvType.BINARY:
            raise self.fail("BHS-S012", f"{where}/data",
                            f"{section_name} entry {pair.name!r} lacks BINARY data")
        return StateEntry(pair.name, str(layout.value), _binary(data))

    def check_feature_declared(self, feature: str, compat: Compat | None,
                               pointer_base: str) -> None:
        """A section that needs a feature is only valid in an image that says so: listed in
        ``compat.features`` with a ``min_reader`` at least the version that introduced it
        (FORMAT.md 3.5). Otherwise an older reader would take it for what it is not (a 2.0
        reader would restore diff pages as raw guest memory)."""
        if compat is None:
            raise self.fail("BHS-S010", f"{pointer_base}/memory/type",
                            f"a {feature} memory section needs an r2 compat record; this "
                            "revision has none, so its memory must be binary")
        introduced = Version(_facts()["features"][feature]["introduced"])
        reader = parse_ident(compat.min_reader)
        if feature not in compat.features:
            raise self.fail("BHS-S016", "/compat/features",
                            f"the image uses {feature} but does not list it in "
                            "compat.features")
        if reader is None or reader.version < introduced:
            raise self.fail("BHS-S016", "/compat/min_reader",
                            f"the image uses {feature}, introduced in {introduced}, but its "
                            f"min_reader is {compat.min_reader}")

    def check_diff_pages(self, section: Section, memory_size: int) -> None:
        pointer = "/sections/memory"
        read_diff_pages(FileRange(self.source, section.offset, section.size), memory_size,
                        self.handle, file=self.path)
        for attribute in ("base", "base_checksum"):
            pair = section.attributes.get(attribute)
            if pair is None or pair.type is not NvType.STRING:
                raise self.fail("BHS-S017", f"{pointer}/{attribute}",
                                f"diff-pages section lacks a STRING {attribute!r}")


@dataclass(frozen=True)
class DiffPages:
    """The parsed layout of a ``diff-pages`` payload (FORMAT.md 3.5)."""

    page_size: int
    page_count: int
    bitmap: FileRange
    pages: FileRange


def read_diff_pages(source: FileRange, memory_size: int, handle: Any = None, *,
                    file: str | None = None) -> DiffPages:
    """Parse and check the header and bitmap of the diff-pages payload at ``source``.

    Reads 16 bytes plus the bitmap (memory size / 32 KiB), never the pages; every size is
    checked against the section before anything is allocated.
    """
    def fail(location: int | str, message: str) -> ImageError:
        return ImageError(error("BHS-S017", file or source.path, location, message))

    def pread(offset: int, size: int) -> bytes:
        if handle is None:
            return FileRange(source.path, offset, size).read()
        handle.seek(offset)
        data: bytes = handle.read(size)
        return data

    pointer = "/sections/memory"
    if source.size < DIFF_PAGES_HEADER:
        raise fail(f"{pointer}/size", "diff-pages section is shorter than its 16-byte header")
    page_size, pages = _DIFF_HEADER.unpack(pread(source.offset, DIFF_PAGES_HEADER))
    if page_size != ALIGNMENT or pages * page_size != memory_size:
        raise fail(source.offset, f"diff-pages header ({pages} pages of {page_size} bytes) "
                   f"does not cover config memory.size {memory_size}")
    bitmap_size = (pages + 63) // 64 * 8
    if DIFF_PAGES_HEADER + bitmap_size > source.size:
        raise fail(source.offset + DIFF_PAGES_HEADER, "diff-pages bitmap runs past the section")
    bitmap = FileRange(source.path, source.offset + DIFF_PAGES_HEADER, bitmap_size)
    present = _count_bits(bitmap, pages, pread)
    header = DIFF_PAGES_HEADER + bitmap_size
    if header + present * page_size != source.size:
        raise fail(f"{pointer}/size", f"diff-pages section is {source.size} bytes but its "
                   f"bitmap announces {present} pages ({header + present * page_size} bytes)")
    return DiffPages(page_size, pages, bitmap,
                     FileRange(source.path, source.offset + header, present * page_size))


def _count_bits(bitmap: FileRange, count: int, pread: Callable[[int, int], bytes]) -> int:
    """How many of the first ``count`` bits of ``bitmap`` are set, read 1 MiB at a time so
    that a huge claimed bitmap costs time, never memory; bits past ``count`` (padding) are
    not counted."""
    total = 0
    for start in range(0, bitmap.size, BITMAP_CHUNK):
        chunk = pread(bitmap.offset + start, min(BITMAP_CHUNK, bitmap.size - start))
        bits = int.from_bytes(chunk, "little")
        wanted = count - start * 8
        if wanted < len(chunk) * 8:
            bits &= (1 << max(wanted, 0)) - 1
        total += bits.bit_count()
    return total


def _number(pair: NvPair) -> int:
    """A NUMBER pair's value (the header schema already vouched for the type)."""
    assert isinstance(pair.value, int)
    return pair.value


def _binary(pair: NvPair) -> bytes:
    """A BINARY pair's value (the caller already checked the type)."""
    assert isinstance(pair.value, bytes)
    return pair.value


def _check_unique(nvl: NvList, file: str, pointer: str) -> dict[str, Any]:
    """The header nvlist as JSON for schema validation; repeated names are an error."""
    document: dict[str, Any] = {}
    for pair in nvl.pairs:
        where = pointer + json_pointer([pair.name])
        if pair.name in document:
            raise ImageError(error("BHS-S004", file, where, f"header name {pair.name!r} repeats"))
        document[pair.name] = _json_value(pair, file, where)
    return document


def _json_value(pair: NvPair, file: str, pointer: str) -> Any:
    value = pair.value
    if isinstance(value, NvList):
        return _check_unique(value, file, pointer)
    if pair.type is NvType.NVLIST_ARRAY:
        assert isinstance(value, tuple)
        return [_check_unique(item, file, pointer + json_pointer([i]))
                for i, item in enumerate(value)
                if isinstance(item, NvList)]
    if isinstance(value, bytes):
        return {"binary": value.hex()}
    if isinstance(value, tuple):
        return list(value)
    return value


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class _Planned:
    """A section placed by the canonical writer: its bytes (small) or its source range."""

    name: str
    type: str
    size: int
    content: bytes | Memory
    checksum: str | None
    attributes: Mapping[str, Any]
    needs_hash: bool = False


def write_single(image: Image, out: str, *, header_room: int = 0,
                 progress: storage.Progress | None = None) -> None:
    """Write ``image`` (format ``r1`` or ``r2``) canonically to ``out`` (a temporary path).

    The caller (``storage.AtomicOutputs``) fsyncs and renames. Memory and unknown sections are
    copied by the kernel with their holes. In ``r2`` a section whose checksum the image
    already records is not re-hashed; the others are hashed in a background thread while the
    kernel copies (hashlib and ``preadv`` release the GIL), so hashing GiBs of memory costs
    little more than the copy itself. The header, which holds the checksums, is written last.
    """
    planned = _plan_sections(image)
    placeholder = {p.name: p.checksum or _PENDING for p in planned}
    header_size = len(_header(image, planned, dict.fromkeys(placeholder, 0), placeholder))
    if image.format == "r1":
        area = _r1_header_area()
        if PREFIX_SIZE + header_size > area:
            raise ImageError(error("BHS-S005", out, IDENT_SIZE,
                                   f"r1 header of {PREFIX_SIZE + header_size} bytes does not fit "
                                   f"the {area}-byte header area"))
    else:
        area = _align(PREFIX_SIZE + max(header_size, header_room))
    offsets: dict[str, int] = {}
    cursor = area
    for section in planned:
        offsets[section.name] = cursor
        cursor = _align(cursor + section.size)
    end = offsets[planned[-1].name] + planned[-1].size
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bhyvesnap-hash")
    cancel = threading.Event()
    try:
        hashes = {p.name: pool.submit(storage.hash_memory, p.content, cancel=cancel)
                  for p in planned if p.needs_hash and not isinstance(p.content, bytes)}
        for section in planned:
            if isinstance(section.content, bytes):
                storage.write_bytes_at(fd, offsets[section.name], section.content)
            else:
                storage.copy_memory(section.content, fd, offsets[section.name], progress)
        # Sized only now: a copy into bytes the file does not have yet may leave all-zero
        # pages as holes, and the last section may end in one.
        os.ftruncate(fd, end)
        if hashes:
            # Flush the copied GiBs while the hash thread finishes, rather than after it: the
            # caller's fsync then only has the header left to write.
            os.fdatasync(fd)
        checksums = {p.name: p.checksum for p in planned}
        checksums.update({name: "sha256:" + future.result() for name, future in hashes.items()})
        header = _header(image, planned, offsets, checksums)
        ident = (image.ident or "").encode("ascii").ljust(IDENT_SIZE, b"\0")
        storage.write_bytes_at(fd, 0, ident + _U32.pack(len(header)) + header)
    except BaseException:
        cancel.set()  # a failed or interrupted write must not wait for the hash to finish
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        os.close(fd)


_PENDING = "sha256:" + "0" * 64
"""Stands in for a checksum still being computed when the header is sized: same length."""


def _plan_sections(image: Image) -> list[_Planned]:
    """The canonical section order (FORMAT.md 3.6) with every small section's bytes packed.

    In ``r2`` a section's checksum is its recorded one when the image has it, the digest of
    its bytes when small, else marked ``needs_hash`` for the writer's background hash.
    """
    r2 = image.format == "r2"
    kernel = _state_nvlist(image.kernel, _kernel_order(image.kernel), r2)
    devices = _state_nvlist(image.devices, layout_b_order(e.name for e in image.devices), r2)
    config = (image.config_text or "").encode("utf-8")
    memory_section = image.section("memory")
    small: list[tuple[str, str, bytes]] = [
        ("config", "text", config), ("kernel", "nvlist", kernel), ("devices", "nvlist", devices)]
    planned = [_Planned(name, kind, len(data), data,
                        _digest(data) if r2 else None, {}) for name, kind, data in small]
    large: list[tuple[str, str, Memory, str | None, Mapping[str, Any]]] = [(
        "memory", image.memory_type, image.memory, image.checksums.get("memory"),
        dict(memory_section.attributes) if memory_section else {})]
    large += [(extra.name, extra.type, extra.data, extra.checksum or image.checksums.get(
        extra.name), dict(extra.attributes))
        for extra in sorted(image.extra_sections, key=lambda e: e.name)]
    for name, kind, content, recorded, attributes in large:
        planned.append(_Planned(name, kind, content.size, content,
                                recorded if r2 else None, attributes,
                                needs_hash=r2 and recorded is None))
    return planned


def _kernel_order(entries: Iterable[StateEntry]) -> list[str]:
    table = list(_facts()["kernel_structures"])
    names = [e.name for e in entries]
    return sorted(names, key=lambda n: (table.index(n) if n in table else len(table), n))


def _state_nvlist(entries: tuple[StateEntry, ...], order: list[str], typed: bool) -> bytes:
    by_name = {e.name: e for e in entries}
    pairs = []
    for name in order:
        entry = by_name[name]
        blob = blob_bytes(entry.blob)
        if typed:
            pairs.append(NvPair(name, NvType.NVLIST, NvList.of(
                ("layout", NvType.STRING, entry.generation), ("data", NvType.BINARY, blob))))
        else:
            pairs.append(NvPair(name, NvType.BINARY, blob))
    return pack(NvList(0, tuple(pairs)))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _header(image: Image, planned: list[_Planned], offsets: Mapping[str, int],
            checksums: Mapping[str, str | None]) -> bytes:
    entries = []
    for section in planned:
        fields: list[tuple[str, NvType, Any]] = [
            ("offset", NvType.NUMBER, offsets[section.name]),
            ("size", NvType.NUMBER, section.size),
            ("type", NvType.STRING, section.type),
        ]
        if image.format == "r2":
            checksum = checksums.get(section.name)
            if checksum:
                fields.append(("checksum", NvType.STRING, checksum))
            fields.extend(_attribute_pairs(section.attributes))
        entries.append(NvPair(section.name, NvType.NVLIST, NvList.of(*fields)))
    if image.format == "r1":
        return pack(NvList(0, tuple(entries)))
    compat = image.compat
    if compat is None:
        raise ImageError(error("BHS-S016", image.path, "/compat",
                               "an r2 image needs a compat record"))
    compat_pairs: list[tuple[str, NvType, Any]] = [
        ("min_reader", NvType.STRING, compat.min_reader)]
    if compat.features:
        compat_pairs.append(("features", NvType.STRING_ARRAY, compat.features))
    top = [NvPair("sections", NvType.NVLIST, NvList(0, tuple(entries))),
           NvPair("compat", NvType.NVLIST, NvList.of(*compat_pairs))]
    if image.producer is not None:
        record = [(key, NvType.STRING, value) for key, value in (
            ("name", image.producer.name), ("version", image.producer.version),
            ("created", image.producer.created)) if value is not None]
        top.append(NvPair("producer", NvType.NVLIST, NvList.of(*record)))
    return pack(NvList(0, tuple(top)))


def _attribute_pairs(attributes: Mapping[str, Any]) -> list[tuple[str, NvType, Any]]:
    """Section-entry pairs beyond offset/size/type/checksum (``base``, a newer writer's keys),
    kept by the reader as the header's own pairs so they are written back exactly."""
    return [(pair.name, pair.type, pair.value) for pair in attributes.values()]


def _align(offset: int) -> int:
    return (offset + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
