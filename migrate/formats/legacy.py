"""The legacy three-file formats ``legacy-a`` and ``legacy-b``: ``F``, ``F.kern``, ``F.meta``.

FORMAT.md section 2. None of the three files has a magic number or checksum, so the reader is
the validator: it checks every structural rule before it hands out a model, and it does so
without reading guest memory (``F``) or the state blobs (``F.kern``): both become
:class:`FileRange` references, so reading a 64 GiB snapshot costs a few ``stat`` calls and
one small JSON file. The JSON index is hostile input: it is size-limited before it is read
(CLI.md "Limits"), parsed with bounded integers, and every failure becomes an
:class:`ImageError` located by byte offset or JSON pointer.

The writer is the reader's mirror: it writes exactly what the reader accepts (it runs the
reader's own checks on the document before writing), lays the blobs out contiguously in table
order, and prints ``F.meta`` in libxo's key order, so write -> read -> write is byte-identical.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from migrate import data, storage
from migrate.devices import parse_device_name
from migrate.findings import Finding, ImageError, UsageError, error, warning
from migrate.formats.bhyve import LegacyFacts, legacy_facts
from migrate.image import FileRange, Image, LegacyMetadata, StateEntry

MAX_META_SIZE = 64 * 1024 * 1024
"""Largest ``F.meta`` this tool reads (CLI.md "Limits"): bounds memory on hostile input."""

MAX_ENTRIES = 4096
"""Most entries per ``F.meta`` array (``maxItems`` of both meta schemas): checked before the
schema runs, so that a huge array costs one ``len`` instead of a full validation pass."""

_MESSAGE_LIMIT = 200
"""Schema messages quote the offending value; a 60 MiB string must not become the message."""

_DIGITS = re.compile(r"0|[1-9][0-9]{0,18}")
"""An integer libxo wrote as a string: at most 19 digits, so conversion is cheap and the
schema's int64 bound still applies to the converted value."""

_LONGEST_INT = 20
"""JSON integers with more digits (sign included) are parsed as float (``inf``): the schema
rejects them without Python building, or refusing to build, a huge int."""

BASIC = "basic metadata"
_BASIC_KEYS = ("ncpus", "vmname", "memsize", "memflags")
_BASIC_NUMBERS = ("ncpus", "memsize", "memflags")
_BLOB_NUMBERS = ("size", "file_offset")


@dataclass(frozen=True)
class _Layout:
    """How one layout spells its index: the format id, schema and keys that differ."""

    format: str
    schema: str
    kernel_key: str
    kernel_name: str
    device_name: str

    @property
    def arrays(self) -> tuple[str, str]:
        return (self.kernel_key, "devices")


_LAYOUT_A = _Layout("legacy-a", "meta-legacy-a", "structs", "debug_name", "snapshot_req")
_LAYOUT_B = _Layout("legacy-b", "meta-legacy-b", "kern_structs", "device", "device")
_LAYOUTS = {layout.format: layout for layout in (_LAYOUT_A, _LAYOUT_B)}


@dataclass(frozen=True)
class _Entry:
    """One checked ``F.meta`` entry: where it is in the document and where its blob is."""

    pointer: str
    name: str
    file_offset: int
    size: int


@dataclass(frozen=True)
class _Index:
    """A checked ``F.meta``: what the reader builds the model from."""

    layout: _Layout
    metadata: LegacyMetadata
    kernel: tuple[_Entry, ...]
    devices: tuple[_Entry, ...]


# --------------------------------------------------------------------------------------------
# paths


def legacy_paths(path: str) -> tuple[str, str, str] | None:
    """``(F, F.kern, F.meta)`` when ``path`` names a legacy image, else ``None``.

    FORMAT.md 1: ``path`` is ``F`` when ``F.meta`` is beside it; a path ending in ``.meta`` or
    ``.kern`` names the image beside it when that image's ``.meta`` exists. Only existence is
    tested: whether the files are valid is :func:`read_legacy`'s question.
    """
    if os.path.exists(path + ".meta"):
        return _triple(path)
    base = _base_of(path)
    if base != path and os.path.exists(base + ".meta"):
        return _triple(base)
    return None


def _base_of(path: str) -> str:
    """``F`` for ``F.meta`` or ``F.kern``; any other path is ``F`` itself."""
    for suffix in (".meta", ".kern"):
        if path.endswith(suffix) and len(path) > len(suffix):
            return path[: -len(suffix)]
    return path


def _triple(base: str) -> tuple[str, str, str]:
    return base, base + ".kern", base + ".meta"


# --------------------------------------------------------------------------------------------
# reading


def read_legacy(path: str) -> Image:
    """Read and validate the legacy image named by ``path`` (``F``, ``F.kern`` or ``F.meta``).

    Reads ``F.meta`` only; ``F`` and ``F.kern`` are measured, not read. Warnings (gaps in
    ``F.kern``, BHS-L009) are in ``Image.findings``; every error is an :class:`ImageError`
    naming the offending file as derived from ``path`` (BHS-L001 to BHS-L011), or a
    :class:`UsageError` BHS-X002 when a file exists but cannot be accessed.
    """
    memory_path, kern_path, meta_path = legacy_paths(path) or _triple(_base_of(path))
    return read_legacy_files(memory_path, kern_path, meta_path, path)


def read_legacy_files(memory_path: str, kern_path: str, meta_path: str, display: str) -> Image:
    """:func:`read_legacy` of three explicitly named files (a writer's temporaries, whose
    names lack the suffixes); ``display`` becomes ``Image.path``, errors name the files."""
    memory_size = _regular_size(memory_path, "the memory file F")
    kern_size = _regular_size(kern_path, "the state file F.kern")
    document = _parse_meta(_read_meta(meta_path), meta_path)
    index = _check_document(document, meta_path)
    if memory_size != index.metadata.memsize:
        raise ImageError(error(
            "BHS-L006", memory_path, memory_size,
            f"the memory file is {memory_size} bytes but basic metadata.memsize is "
            f"{index.metadata.memsize}; bhyve refuses it (mem size mismatch)"))
    entries = (*index.kernel, *index.devices)
    _check_blobs(entries, kern_size, meta_path)
    generation = _fingerprint(index, meta_path)

    def state(entry: _Entry) -> StateEntry:
        return StateEntry(entry.name, generation,
                          FileRange(kern_path, entry.file_offset, entry.size))

    return Image(
        format=index.layout.format,
        path=display,
        files=(memory_path, kern_path, meta_path),
        kernel=tuple(map(state, index.kernel)),
        devices=tuple(map(state, index.devices)),
        memory=FileRange(memory_path, 0, index.metadata.memsize),
        legacy=index.metadata,
        findings=tuple(_gaps(entries, kern_size, kern_path)),
    )


def _regular_size(path: str, what: str) -> int:
    """Size of ``path``, which must be a non-empty regular file (BHS-L001 otherwise)."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageError(error("BHS-L001", path, None, f"{what} is missing",
                               "a legacy image is three files: F, F.kern and F.meta")) from None
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    return _checked_size(path, info, what)


def _checked_size(path: str, info: os.stat_result, what: str) -> int:
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(error("BHS-L001", path, None, f"{what} is not a regular file"))
    if info.st_size == 0:
        raise ImageError(error("BHS-L001", path, 0, f"{what} is empty"))
    return info.st_size


def _unreadable(path: str, exc: OSError | ValueError) -> UsageError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return UsageError(error("BHS-X002", path, None, f"cannot read the file: {reason}"))


def _read_meta(path: str) -> bytes:
    """The bytes of ``F.meta``, refusing a non-regular file or one above the size limit
    before reading it (O_NONBLOCK so that a FIFO planted there cannot hang the open)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageError(error("BHS-L001", path, None, "the index file F.meta is missing",
                               "a legacy image is three files: F, F.kern and F.meta")) from None
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    try:
        size = _checked_size(path, os.fstat(fd), "the index file F.meta")
        if size > MAX_META_SIZE:
            raise _too_large(path, size)
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_META_SIZE:
            chunk = os.read(fd, MAX_META_SIZE + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)
    if total > MAX_META_SIZE:  # the file grew after fstat
        raise _too_large(path, total)
    return b"".join(chunks)


def _too_large(path: str, size: int) -> ImageError:
    return ImageError(error(
        "BHS-L004", path, MAX_META_SIZE,
        f"F.meta is {size} bytes, more than this tool reads ({MAX_META_SIZE} bytes); "
        "a real index is a few KiB"))


class _Ambiguous(dict[str, Any]):
    """A JSON object in which ``repeated`` occurs twice (Python keeps the last, libucl
    does not): refused, since two readers would see two different images."""

    repeated: str = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    ambiguous = _Ambiguous(result)
    seen: set[str] = set()
    for key, _value in pairs:
        if key in seen:
            ambiguous.repeated = key
            break
        seen.add(key)
    return ambiguous


def _parse_int(text: str) -> int | float:
    return int(text) if len(text) <= _LONGEST_INT else float(text)


def _parse_meta(raw: bytes, path: str) -> dict[str, Any]:
    """``F.meta`` as a JSON object (BHS-L002 with the byte offset otherwise)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImageError(error("BHS-L002", path, exc.start,
                               "F.meta is not UTF-8 text, so it is not JSON")) from None
    try:
        document = json.loads(text, object_pairs_hook=_object, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8"))
        raise ImageError(error("BHS-L002", path, offset,
                               f"F.meta is not valid JSON: {exc.msg}")) from None
    except RecursionError:
        raise ImageError(error("BHS-L002", path, 0,
                               "F.meta nests arrays or objects too deeply to parse")) from None
    if not isinstance(document, dict):
        raise ImageError(error("BHS-L002", path, 0,
                               f"F.meta holds a JSON {_json_type(document)}, not an object"))
    found = _find_ambiguous(document)
    if found is not None:
        pointer, key = found
        raise ImageError(error("BHS-L002", path, pointer,
                               f"the key {key!r} appears twice in one object"))
    return document


def _json_type(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")


def _find_ambiguous(document: Any) -> tuple[str, str] | None:
    """The JSON pointer of the first repeated key, walking iteratively (no recursion limit)."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, _Ambiguous):
            return data.json_pointer((*path, value.repeated)), value.repeated
        if isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))
    return None


def _check_document(document: dict[str, Any], path: str) -> _Index:
    """Layout detection, schema and table checks of a parsed ``F.meta`` (shared by the
    writer, so that it can only write what the reader accepts)."""
    layout = _layout_of(document, path)
    for key in layout.arrays:
        entries = document.get(key)
        if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
            raise ImageError(error(
                "BHS-L003", path, f"/{key}",
                f"{key} has {len(entries)} entries, more than this tool accepts "
                f"({MAX_ENTRIES})"))
    _normalise(document, layout)
    try:
        problems = data.schema_errors(layout.schema, document)
    except RecursionError:
        problems = [("", "a value nests too deeply")]
    if problems:
        pointer, message = problems[0]
        if len(message) > _MESSAGE_LIMIT:
            message = message[:_MESSAGE_LIMIT] + "..."
        raise ImageError(error("BHS-L003", path, pointer,
                               f"F.meta does not match the {layout.format} schema: {message}"))
    basic = document[BASIC]
    metadata = LegacyMetadata(*(basic[key] for key in _BASIC_KEYS))
    facts = legacy_facts()
    kernel = _entries(document, layout.kernel_key, layout.kernel_name)
    devices = _entries(document, "devices", layout.device_name)
    if layout is _LAYOUT_A:
        _named_structs(document, kernel, facts, path)
        _known_devices(devices, facts, path)
    _unique(kernel, "kernel structure", path, instances=False)
    _unique(devices, "device", path, instances=layout is _LAYOUT_B)
    return _Index(layout, metadata, kernel, devices)


def _layout_of(document: dict[str, Any], path: str) -> _Layout:
    has_a = _LAYOUT_A.kernel_key in document
    has_b = _LAYOUT_B.kernel_key in document
    if has_a and has_b:
        raise ImageError(error("BHS-L005", path, f"/{_LAYOUT_B.kernel_key}",
                               "F.meta has both `structs` (layout A) and `kern_structs` "
                               "(layout B)"))
    if not (has_a or has_b):
        raise ImageError(error("BHS-L005", path, "",
                               "F.meta has neither `structs` (layout A, FreeBSD 13.x) nor "
                               "`kern_structs` (layout B, FreeBSD 14.0+)"))
    return _LAYOUT_A if has_a else _LAYOUT_B


def _normalise(document: dict[str, Any], layout: _Layout) -> None:
    """Turn numbers written as strings (libxo may quote them) or as integral floats into
    ints, in place, where the layout has a number; anything else is left for the schema."""
    basic = document.get(BASIC)
    if isinstance(basic, dict):
        _numbers(basic, _BASIC_NUMBERS)
    for key in layout.arrays:
        entries = document.get(key)
        if isinstance(entries, list):
            numbers = (*_BLOB_NUMBERS, "snapshot_req") if key == "structs" else _BLOB_NUMBERS
            for entry in entries:
                if isinstance(entry, dict):
                    _numbers(entry, numbers)


def _numbers(obj: dict[str, Any], keys: Sequence[str]) -> None:
    for key in keys:
        value: object = obj.get(key)
        if isinstance(value, str) and _DIGITS.fullmatch(value):
            obj[key] = int(value)
        elif isinstance(value, float) and value.is_integer():
            obj[key] = int(value)  # 5.0: libucl's toint accepts it too


def _entries(document: dict[str, Any], key: str, name_key: str) -> tuple[_Entry, ...]:
    return tuple(_Entry(f"/{key}/{i}", entry[name_key], entry["file_offset"], entry["size"])
                 for i, entry in enumerate(document[key]))


def _named_structs(document: dict[str, Any], kernel: tuple[_Entry, ...], facts: LegacyFacts,
                   path: str) -> None:
    """Layout A: bhyve 13.x finds a structure by its ``snapshot_req`` int, so the int must be
    in the table and ``debug_name`` must agree with it (else the model's name is a guess)."""
    for entry, raw in zip(kernel, document["structs"], strict=True):
        fact = facts.struct_by_req(raw["snapshot_req"])
        if fact is None:
            known = ", ".join(f"{s.name} {s.snapshot_req}" for s in facts.a_structs)
            raise ImageError(error("BHS-L003", path, entry.pointer + "/snapshot_req",
                                   f"snapshot_req {raw['snapshot_req']} is no kernel structure "
                                   f"of layout A (known: {known})"))
        if fact.name != entry.name:
            raise ImageError(error("BHS-L003", path, entry.pointer + "/debug_name",
                                   f"debug_name {entry.name!r} disagrees with snapshot_req "
                                   f"{fact.snapshot_req}, which is {fact.name!r}"))


def _known_devices(devices: tuple[_Entry, ...], facts: LegacyFacts, path: str) -> None:
    for entry in devices:
        if entry.name not in facts.a_devices:
            raise ImageError(error("BHS-L003", path, entry.pointer + "/snapshot_req",
                                   f"device {entry.name!r} is not in layout A's device table "
                                   f"({', '.join(facts.a_devices)})"))


def _unique(entries: tuple[_Entry, ...], what: str, path: str, *, instances: bool) -> None:
    """Names must not repeat (BHS-L010); in layout B neither may a device instance under
    two spellings, since checkers compare instances, not spellings."""
    seen: dict[Any, str] = {}
    for entry in entries:
        keys: list[Any] = [entry.name]
        if instances:
            instance = parse_device_name(entry.name)
            if instance.address is not None:
                keys.append((instance.emulation, instance.address))
        for key in keys:
            if key in seen:
                raise ImageError(error(
                    "BHS-L010", path, entry.pointer,
                    f"{what} {entry.name!r} repeats the entry {seen[key]!r}"
                    if seen[key] != entry.name else f"{what} {entry.name!r} appears twice"))
            seen[key] = entry.name


def _check_blobs(entries: Sequence[_Entry], kern_size: int, path: str) -> None:
    """Every blob inside ``F.kern`` (BHS-L007), no two overlapping (BHS-L008)."""
    for entry in entries:
        if entry.file_offset + entry.size > kern_size:
            raise ImageError(error(
                "BHS-L007", path, entry.pointer,
                f"{entry.name} ({entry.size} bytes at offset {entry.file_offset}) ends past "
                f"the end of F.kern ({kern_size} bytes)"))
    previous: _Entry | None = None
    for entry in _by_offset(entries):
        if previous is not None and entry.file_offset < _end(previous):
            raise ImageError(error(
                "BHS-L008", path, entry.pointer,
                f"{entry.name} (offset {entry.file_offset}) overlaps {previous.name} "
                f"(offset {previous.file_offset}, {previous.size} bytes) in F.kern"))
        if previous is None or _end(entry) > _end(previous):
            previous = entry


def _end(entry: _Entry) -> int:
    return entry.file_offset + entry.size


def _by_offset(entries: Sequence[_Entry]) -> list[_Entry]:
    """Non-empty blobs by offset (an empty blob occupies no bytes, so it overlaps nothing)."""
    return sorted((e for e in entries if e.size), key=lambda e: e.file_offset)


def _gaps(entries: Sequence[_Entry], kern_size: int, path: str) -> Iterator[Finding]:
    """A warning per stretch of ``F.kern`` no blob covers (bhyve finds blobs by offset, so a
    gap is not damage, FORMAT.md 2.2)."""
    cursor = 0
    for entry in (*_by_offset(entries), None):
        start = kern_size if entry is None else entry.file_offset
        if start > cursor:
            where = "trailing bytes" if entry is None else f"a gap before {entry.name}"
            yield warning("BHS-L009", path, cursor,
                          f"F.kern has {where}: {start - cursor} bytes at offset {cursor} "
                          "belong to no state blob")
        if entry is not None:
            cursor = max(cursor, _end(entry))


def _fingerprint(index: _Index, path: str) -> str:
    """The kernel ABI generation whose data fingerprint matches (BHS-L011 if none does)."""
    facts = legacy_facts()
    sizes = {entry.name: entry.size for entry in index.kernel}
    generation = facts.generation_of(index.layout.format, sizes)
    if generation is None:
        expected = "; ".join(f"{g.id}: {g.describe()}" for g in facts.generations
                             if g.format == index.layout.format)
        raise ImageError(error(
            "BHS-L011", path, f"/{index.layout.kernel_key}",
            f"no known kernel ABI generation matches this {index.layout.format} image "
            f"(known: {expected})"))
    return generation.id


# --------------------------------------------------------------------------------------------
# writing


def write_legacy(image: Image, memory_out: str, kern_out: str, meta_out: str, *,
                 progress: storage.Progress | None = None) -> None:
    """Write ``image`` (format ``legacy-a`` or ``legacy-b``) as the three given files.

    The paths are the caller's temporary names: it fsyncs and renames them (F.meta last).
    Blobs go into ``F.kern`` contiguously from 0 in table order (kernel structures, then
    devices); memory is copied by the kernel with holes kept, never read into Python.
    Raises ``ValueError`` when the model is not a legacy image the reader would accept
    (a programming error of the step that built it); I/O failures are ``ImageError``
    BHS-M006 from :mod:`migrate.storage` or ``OSError``.
    """
    layout = _LAYOUTS.get(image.format)
    if layout is None:
        raise ValueError(f"write_legacy cannot write a {image.format} image")
    if image.legacy is None:
        raise ValueError("write_legacy needs the image's basic metadata (Image.legacy)")
    if image.memory.size != image.legacy.memsize:
        raise ValueError(f"memory is {image.memory.size} bytes but memsize is "
                         f"{image.legacy.memsize}")
    document = _document(image, layout, image.legacy)
    try:
        generation = _fingerprint(_check_document(json.loads(json.dumps(document)), meta_out),
                                  meta_out)
    except ImageError as exc:
        raise ValueError(f"the image cannot be written as {image.format}: "
                         f"{exc.finding.message} at {exc.finding.location!r}") from None
    relabelled = [e.name for e in (*image.kernel, *image.devices) if e.generation != generation]
    if relabelled:
        raise ValueError(f"a {image.format} image of these blobs reads back as generation "
                         f"{generation}, but {', '.join(relabelled)} are not of it")
    _write_kern(image, kern_out)
    with open(meta_out, "wb") as meta:
        meta.write(_render_meta(document))
    fd = _create(memory_out)
    try:
        storage.copy_memory(image.memory, fd, 0, progress)
    finally:
        os.close(fd)


def _render_meta(document: dict[str, Any]) -> bytes:
    """``F.meta`` bytes: keys in the given (libxo) order, two-space indent, final newline,
    ASCII with escapes (a lone surrogate in a name still encodes; libucl reads escapes)."""
    return (json.dumps(document, indent=2) + "\n").encode("ascii")


def _document(image: Image, layout: _Layout, meta: LegacyMetadata) -> dict[str, Any]:
    """The ``F.meta`` object in libxo's key order, with contiguous offsets."""
    facts = legacy_facts()
    offset = 0

    def place(entries: Sequence[StateEntry], name_key: str, *,
              with_req: bool = False) -> list[dict[str, Any]]:
        nonlocal offset
        rows: list[dict[str, Any]] = []
        for entry in entries:
            row: dict[str, Any] = {name_key: entry.name}
            if with_req:
                req = facts.snapshot_req(entry.name)
                if req is None:
                    raise ValueError(f"{entry.name!r} is no layout-A kernel structure")
                row["snapshot_req"] = req
            row["size"] = entry.size
            row["file_offset"] = offset
            offset += entry.size
            rows.append(row)
        return rows

    return {
        BASIC: {"ncpus": meta.ncpus, "vmname": meta.vmname, "memsize": meta.memsize,
                "memflags": meta.memflags},
        layout.kernel_key: place(image.kernel, layout.kernel_name,
                                 with_req=layout is _LAYOUT_A),
        "devices": place(image.devices, layout.device_name),
    }


def _create(path: str) -> int:
    """Open an output for writing, emptied (the caller usually created it already)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                   0o600)


def _write_kern(image: Image, path: str) -> None:
    fd = _create(path)
    try:
        offset = 0
        for entry in (*image.kernel, *image.devices):
            if isinstance(entry.blob, FileRange):
                if entry.blob.size:
                    storage.copy_range(entry.blob, fd, offset)
            else:
                storage.write_bytes_at(fd, offset, entry.blob)
            offset += entry.size
    finally:
        os.close(fd)
