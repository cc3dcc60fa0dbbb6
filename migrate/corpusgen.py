"""The deterministic sample-corpus generator behind ``bhyvesnap corpus build DIR``.

The corpus is what the release gate runs: sample images of every format, a foreign and an
unknown-version IDENT, and damaged images of each kind, plus ``manifest.json`` naming each
file's sha256 and the verdict expected for every bundled target. What to build is data
(``schemas/corpus/images.json``, validated by ``schemas/corpus/definition.schema.json``); the
expected verdicts there were written by hand from FORMAT.md section 6, never computed by the
checker, so the gate compares the checker with the specification rather than with itself.

Every build writes the same bytes: blob and memory contents are SHAKE-256 streams seeded by
the image and entry names, the r2 producer record is fixed, nothing reads the clock, and the
images go through the tool's own canonical writers (FORMAT.md 2.3 and 3.6). Guest memory is
a few data pages with holes between them, so images stay small on disk and in git. A damaged
image is its source image rebuilt, then broken in one defined way before it is renamed into
place. The committed corpus is checked against a fresh build by a test.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from migrate import storage
from migrate.config import BhyveConfig, write_config
from migrate.data import load_json, schema_errors
from migrate.devices import layout_b_order, parse_device_name
from migrate.formats import output_paths, write_image
from migrate.formats.bhyve import legacy_facts
from migrate.ident import IDENT_SIZE, mainstream_ident
from migrate.image import (
    Compat,
    FileRange,
    Image,
    LegacyMetadata,
    Producer,
    Section,
    StateEntry,
)
from migrate.nvlist import NvPair, NvType
from migrate.verdicts import Verdict

DEFINITION = "corpus/images.json"
DEFINITION_SCHEMA = "corpus/definition"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
PAGE = 4096
DAMAGES: dict[str, str] = {
    "memory-truncated": "the memory file F is one page shorter than basic metadata.memsize",
    "blob-out-of-bounds": "F.meta places the last device blob past the end of F.kern",
    "file-truncated": "the file is cut one page short, inside its memory section",
    "memory-byte-flipped": "the last byte of guest memory is inverted after the checksum "
                           "was recorded",
    "header-bad-magic": "the first byte of the header nvlist (the 0x6c magic) is zeroed",
}
"""Each way a damaged image is broken, as the manifest's provenance describes it."""

_SUFFIX = {"legacy-a": ".ckp", "legacy-b": ".ckp", "r1": ".bhyve", "r2": ".bhyve",
           "diff-pages": ".bhyve"}
_SINGLE_VERSION = {"r1": "1.0", "r2": "2.0", "diff-pages": "2.1"}


@dataclass(frozen=True)
class BlobSize:
    """A blob size as real ones scale: ``base`` bytes plus ``per_vcpu`` bytes per vCPU."""

    base: int = 0
    per_vcpu: int = 0

    def for_cpus(self, ncpus: int) -> int:
        return self.base + self.per_vcpu * ncpus


@dataclass(frozen=True)
class ImageSpec:
    """One image of the definition: how to generate it, or which image to damage and how."""

    name: str
    kind: str
    description: str
    expected: Mapping[str, Verdict]
    generation: str = "fbsd14"
    ncpus: int = 1
    memory: int = 1 << 20
    memflags: int = 0
    devices: tuple[str, ...] = ()
    config: Mapping[str, str] = field(default_factory=dict)
    ident: str | None = None
    source: str | None = None
    damage: str | None = None
    base: str | None = None
    base_file: str | None = None
    pages: tuple[int, ...] = ()


@dataclass(frozen=True)
class Definition:
    """The parsed corpus definition (``schemas/corpus/images.json`` or a caller's own)."""

    description: str
    producer: Producer
    blob_sizes: Mapping[str, Mapping[str, BlobSize]]
    images: tuple[ImageSpec, ...]

    def spec(self, name: str) -> ImageSpec:
        return next(spec for spec in self.images if spec.name == name)

    def with_images(self, images: Sequence[ImageSpec]) -> Definition:
        """The same blob sizes and producer with other images (the benchmark's big corpus)."""
        _check_images(images)
        return replace(self, images=tuple(images))


def parse_definition(document: Any) -> Definition:
    """Check a definition document against its schema and cross-references, and parse it.

    The definition is bundled data or a benchmark's own, never user input, so a broken one
    is a programming error: ``ValueError`` naming the JSON pointer.
    """
    problems = schema_errors(DEFINITION_SCHEMA, document)
    if problems:
        pointer, message = problems[0]
        raise ValueError(f"corpus definition invalid at {pointer or '/'}: {message}")
    sizes = {group: {name: BlobSize(entry.get("base", 0), entry.get("per_vcpu", 0))
                     for name, entry in table.items()}
             for group, table in document["blob_sizes"].items()}
    images = tuple(_spec(entry) for entry in document["images"])
    _check_images(images)
    return Definition(document["description"], Producer(**document["producer"]), sizes, images)


def _check_images(images: Sequence[ImageSpec]) -> None:
    """Names are unique and every damaged image names an undamaged one defined before it,
    so a build never fails half-way on a definition error."""
    seen: dict[str, ImageSpec] = {}
    for spec in images:
        if spec.name in seen:
            raise ValueError(f"corpus image {spec.name!r} is defined twice")
        if spec.kind == "damaged":
            source = seen.get(spec.source or "")
            if source is None or source.kind == "damaged":
                raise ValueError(f"damaged image {spec.name!r} must name an undamaged image "
                                 f"defined before it, not {spec.source!r}")
        if spec.kind == "diff-pages":
            base = seen.get(spec.base or "")
            if base is None or base.kind != "r2" or base.memory != spec.memory:
                raise ValueError(f"diff-pages image {spec.name!r} must name an r2 image of "
                                 f"the same memory size defined before it, not {spec.base!r}")
            if max(spec.pages) >= spec.memory // PAGE:
                raise ValueError(f"diff-pages image {spec.name!r} names a page past memory")
        seen[spec.name] = spec


def _spec(entry: Mapping[str, Any]) -> ImageSpec:
    expected = {target: Verdict(verdict) for target, verdict in entry["expected"].items()}
    if entry["kind"] == "damaged":
        return ImageSpec(entry["name"], "damaged", entry["description"], expected,
                         source=entry["from"], damage=entry["damage"])
    return ImageSpec(
        entry["name"], entry["kind"], entry["description"], expected,
        generation=entry["generation"], ncpus=entry["ncpus"], memory=entry["memory"],
        memflags=entry.get("memflags", 0), devices=tuple(entry["devices"]),
        config=dict(entry.get("config", {})), ident=entry.get("ident"),
        base=entry.get("base"), base_file=entry.get("base_file"),
        pages=tuple(entry.get("pages", ())))


def load_definition() -> Definition:
    """The bundled definition."""
    return parse_definition(load_json(DEFINITION))


def image_format(spec: ImageSpec, definition: Definition) -> str:
    """The format ``spec`` is written as (a damaged image: its source's)."""
    if spec.kind == "damaged":
        return image_format(definition.spec(spec.source or ""), definition)
    return "r2" if spec.kind == "diff-pages" else spec.kind


def image_path(spec: ImageSpec, definition: Definition) -> str:
    """The path of the image inside the corpus folder (a legacy image's memory file F)."""
    return spec.name + _SUFFIX[image_format(spec, definition)]


# --------------------------------------------------------------------------- contents


def synthetic(seed: str, size: int) -> bytes:
    """``size`` deterministic bytes for ``seed``: the same on every platform and Python."""
    return hashlib.shake_256(seed.encode("utf-8")).digest(size) if size else b""


def memory_pages(size: int) -> list[int]:
    """Offsets of the data pages of a guest memory of ``size`` bytes: first, middle, last.

    Everything else is a hole, so a 4 MiB guest costs 12 KiB of data on disk.
    """
    return sorted({0, size // 2 // PAGE * PAGE, (size - 1) // PAGE * PAGE})


def _write_memory(path: str, spec: ImageSpec) -> None:
    with open(path, "wb") as handle:
        for offset in memory_pages(spec.memory):
            handle.seek(offset)
            handle.write(synthetic(f"{spec.name}/memory/{offset}",
                                   min(PAGE, spec.memory - offset)))
        handle.truncate(spec.memory)


def _size(definition: Definition, group: str, name: str, ncpus: int) -> int:
    table = definition.blob_sizes.get(group, {})
    if name not in table:
        raise ValueError(f"the corpus definition has no blob size for {group} {name!r}")
    return table[name].for_cpus(ncpus)


def _kernel(spec: ImageSpec, definition: Definition) -> tuple[StateEntry, ...]:
    facts = legacy_facts()
    names = ([s.name for s in facts.a_structs] if spec.kind == "legacy-a"
             else list(facts.b_structs))
    return tuple(
        StateEntry(name, spec.generation,
                   synthetic(f"{spec.name}/kernel/{name}",
                             _size(definition, spec.generation, name, spec.ncpus)))
        for name in names)


def _devices(spec: ImageSpec, definition: Definition) -> tuple[StateEntry, ...]:
    """Layout A: the whole fixed table, absent devices of size 0; later: instances in
    layout-B order (by PCI address, ``atkbdc`` last)."""
    def entry(name: str, present: bool) -> StateEntry:
        emulation = parse_device_name(name).emulation
        size = _size(definition, "devices", emulation, spec.ncpus) if present else 0
        return StateEntry(name, spec.generation, synthetic(f"{spec.name}/devices/{name}", size))

    if spec.kind == "legacy-a":
        table = legacy_facts().a_devices
        unknown = sorted(set(spec.devices) - set(table))
        if unknown:
            raise ValueError(f"{spec.name}: {unknown} are not in the layout-A device table")
        return tuple(entry(name, name in spec.devices) for name in table)
    return tuple(entry(name, True) for name in layout_b_order(spec.devices))


def _config(spec: ImageSpec, devices: Sequence[StateEntry]) -> str:
    values = {"name": spec.name, "cpus": str(spec.ncpus), "memory.size": str(spec.memory)}
    for device in devices:
        instance = parse_device_name(device.name)
        if instance.address is not None:
            values["pci.{}.{}.{}.device".format(*instance.address)] = instance.emulation
    values.update(spec.config)
    return write_config(BhyveConfig(values))


def build_model(spec: ImageSpec, definition: Definition, memory_path: str) -> Image:
    """The in-memory image of a generated ``spec``, its memory read from ``memory_path``."""
    kernel = _kernel(spec, definition)
    devices = _devices(spec, definition)
    image = Image(format=spec.kind, path=spec.name, files=(), kernel=kernel, devices=devices,
                  memory=FileRange(memory_path, 0, spec.memory))
    if spec.kind in ("legacy-a", "legacy-b"):
        return image.evolve(legacy=LegacyMetadata(spec.ncpus, spec.name, spec.memory,
                                                  spec.memflags))
    image = image.evolve(format=image_format(spec, definition),
                         ident=spec.ident or mainstream_ident(_SINGLE_VERSION[spec.kind]),
                         config_text=_config(spec, devices))
    if image.format == "r2":
        image = image.evolve(compat=Compat(mainstream_ident("2.0")),
                             producer=definition.producer)
    return image


def _diff_pages(model: Image, spec: ImageSpec, definition: Definition, directory: str,
                scratch: str) -> Image:
    """``model`` as an r2 2.1 image whose memory is a diff-pages section (FORMAT.md 3.5)
    against the already built base image; ``base_file`` may name a base that is not there."""
    from migrate.formats.single import read_single

    base_spec = definition.spec(spec.base or "")
    base_name = image_path(base_spec, definition)
    recorded = read_single(os.path.join(directory, base_name)).checksums["memory"]
    bitmap = bytearray((spec.memory // PAGE + 63) // 64 * 8)
    for page in spec.pages:
        bitmap[page // 8] |= 1 << (page % 8)
    payload_path = os.path.join(scratch, f"{spec.name}.diff")
    with open(payload_path, "wb") as handle:
        handle.write(struct.pack("<QQ", PAGE, spec.memory // PAGE) + bytes(bitmap))
        for page in sorted(spec.pages):
            handle.write(synthetic(f"{spec.name}/diff/{page}", PAGE))
    attributes = {
        "base": NvPair("base", NvType.STRING, spec.base_file or base_name),
        "base_checksum": NvPair("base_checksum", NvType.STRING, recorded),
    }
    ident = mainstream_ident("2.1")
    return model.evolve(
        ident=ident,
        compat=Compat(ident, ("diff-pages",)),
        memory=FileRange(payload_path, 0, os.path.getsize(payload_path)),
        memory_type="diff-pages",
        sections=(Section("memory", 0, 0, "diff-pages", None, attributes),),
    )


# --------------------------------------------------------------------------- damage


def _damage(kind: str, paths: Sequence[str]) -> None:
    """Break the freshly written temporaries ``paths`` (``output_paths`` order) as ``kind``."""
    if kind == "memory-truncated":
        os.truncate(paths[0], os.path.getsize(paths[0]) - PAGE)
    elif kind == "blob-out-of-bounds":
        kern_size = os.path.getsize(paths[1])
        with open(paths[2], "rb") as handle:
            document = json.loads(handle.read())
        document["devices"][-1]["file_offset"] = kern_size
        with open(paths[2], "wb") as handle:
            handle.write((json.dumps(document, indent=2) + "\n").encode("ascii"))
    elif kind == "file-truncated":
        os.truncate(paths[0], os.path.getsize(paths[0]) - PAGE)
    elif kind == "memory-byte-flipped":
        _xor_byte(paths[0], os.path.getsize(paths[0]) - 1, 0xFF)
    elif kind == "header-bad-magic":
        _xor_byte(paths[0], IDENT_SIZE + 4, 0x6C)
    else:
        raise ValueError(f"no damage {kind!r}")


def _xor_byte(path: str, offset: int, mask: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)[0] ^ mask
        handle.seek(offset)
        handle.write(bytes([value]))


# --------------------------------------------------------------------------- building


def build_image(spec: ImageSpec, definition: Definition, directory: str,
                scratch: str) -> list[str]:
    """Write one image into ``directory`` (replacing an old one); return its file paths.

    ``scratch`` is a private folder for the synthetic memory file the writer copies from.
    The files appear complete or not at all (``storage.AtomicOutputs``).
    """
    generated = definition.spec(spec.source or "") if spec.kind == "damaged" else spec
    memory_path = os.path.join(scratch, f"{generated.name}.mem")
    if not os.path.exists(memory_path):
        _write_memory(memory_path, generated)
    model = build_model(generated, definition, memory_path)
    if generated.kind == "diff-pages":
        model = _diff_pages(model, generated, definition, directory, scratch)
    finals = output_paths(model.format, os.path.join(directory, image_path(spec, definition)))
    with storage.AtomicOutputs(finals, force=True) as out:
        write_image(model, out.temps)
        if spec.damage is not None:
            _damage(spec.damage, out.temps)
        out.commit()
    return finals


def file_record(directory: str, relative: str) -> dict[str, Any]:
    """``{"path", "size", "sha256"}`` of one corpus file (holes hashed as zeros, unread)."""
    path = os.path.join(directory, relative)
    size = os.path.getsize(path)
    return {"path": relative, "size": size,
            "sha256": storage.hash_range(FileRange(path, 0, size))}


def manifest_entry(spec: ImageSpec, definition: Definition, directory: str,
                   files: Sequence[str]) -> dict[str, Any]:
    """The manifest record of a built image (its files must be in ``directory``)."""
    fmt = image_format(spec, definition)
    if spec.kind == "damaged":
        provenance: dict[str, Any] = {
            "method": "damaged", "format": fmt, "from": spec.source, "damage": spec.damage,
            "detail": f"{spec.source} rebuilt, then {DAMAGES[spec.damage or '']}"}
    else:
        detail = (f"synthetic {spec.generation} {fmt} image, {spec.ncpus} vCPU, "
                  f"{spec.memory} bytes of memory, written by the canonical writer")
        if spec.ident is not None:
            detail += f", IDENT replaced by {spec.ident!r}"
        provenance = {"method": "generated", "format": fmt, "from": None, "detail": detail}
    return {
        "name": spec.name,
        "path": image_path(spec, definition),
        "format": fmt,
        "description": spec.description,
        "provenance": provenance,
        "files": [file_record(directory, os.path.relpath(path, directory)) for path in files],
        "expected": {target: verdict.value for target, verdict in spec.expected.items()},
    }


def build_corpus(directory: str, definition: Definition | None = None) -> dict[str, Any]:
    """Build every image of ``definition`` (default: the bundled one) and ``manifest.json``
    into ``directory`` (created if missing); return the manifest document.

    Existing files of the same names are replaced; other files are left alone (see
    :func:`stray_files`). The manifest is written last, so a build that fails half-way
    leaves the old manifest, whose sha256 values then no longer match: the gate says so.
    """
    definition = definition or load_definition()
    os.makedirs(directory, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory(prefix="bhyvesnap-corpus-") as scratch:
        for spec in definition.images:
            files = build_image(spec, definition, directory, scratch)
            entries.append(manifest_entry(spec, definition, directory, files))
    manifest = {"manifest_version": MANIFEST_VERSION, "description": definition.description,
                "images": entries}
    with storage.AtomicOutputs([os.path.join(directory, MANIFEST)], force=True) as out:
        storage.write_bytes_at(out.fd(0), 0, manifest_bytes(manifest))
        out.commit()
    return manifest


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The manifest as written: two-space indent, keys in insertion order, final newline."""
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def stray_files(directory: str, manifest: Mapping[str, Any]) -> list[str]:
    """Files in ``directory`` that belong to no image of ``manifest`` (left by an image that
    was renamed or removed from the definition); the package marker is not one."""
    known = {record["path"] for image in manifest["images"] for record in image["files"]}
    known.update({MANIFEST, "__init__.py"})
    return sorted(name for name in os.listdir(directory)
                  if name not in known and not name.startswith(".")
                  and os.path.isfile(os.path.join(directory, name)))
