"""The ``info`` view of an image: a JSON-able description (CRIU ``crit show`` style).

Only what the reader already decoded is described; nothing here reads guest memory.
"""

from __future__ import annotations

from typing import Any

from migrate.config import parse_config
from migrate.devices import parse_device_name
from migrate.image import Image, StateEntry


def describe(image: Image) -> dict[str, Any]:
    """The ``info --json`` document (CLI.md): format, ident, sections, config, entries."""
    return {
        "format": image.format,
        "ident": image.ident,
        "generation": image.generation,
        "files": list(image.files),
        "sections": _sections(image),
        "config": _config(image),
        "kernel": [_entry(entry) for entry in image.kernel],
        "devices": [_entry(entry, device=True) for entry in image.devices],
        "memory": {"size": image.memory.size, "type": image.memory_type},
        "compat": None if image.compat is None else {
            "min_reader": image.compat.min_reader, "features": list(image.compat.features)},
        "producer": None if image.producer is None else {
            "name": image.producer.name, "version": image.producer.version,
            "created": image.producer.created},
        "findings": [finding.to_json() for finding in image.findings],
    }


def _sections(image: Image) -> list[dict[str, Any]]:
    if image.sections:
        return [{"name": s.name, "offset": s.offset, "size": s.size, "type": s.type,
                 "checksum": s.checksum,
                 "attributes": {key: _plain(pair.value) for key, pair in s.attributes.items()}}
                for s in image.sections]
    kern_size = sum(entry.size for entry in (*image.kernel, *image.devices))
    return [
        {"name": "memory", "file": image.files[0], "offset": 0, "size": image.memory.size,
         "type": "binary", "checksum": None},
        {"name": "kern", "file": image.files[1], "offset": 0, "size": kern_size,
         "type": "blobs", "checksum": None},
        {"name": "meta", "file": image.files[2], "offset": 0, "size": None,
         "type": "json", "checksum": None},
    ]


def _config(image: Image) -> dict[str, Any]:
    if image.legacy is not None:
        meta = image.legacy
        return {"source": "basic metadata", "name": meta.vmname, "cpus": meta.ncpus,
                "memory_size": meta.memsize, "memflags": meta.memflags,
                "pci": [], "incomplete": True}
    config = parse_config(image.config_text or "", image.path)
    return {"source": "config section", "name": config.name, "cpus": config.cpus,
            "memory_size": config.memory_size,
            "pci": [{"bus": b, "slot": s, "function": f, "device": d}
                    for b, s, f, d in config.pci_devices()],
            "incomplete": config.incomplete}


def _entry(entry: StateEntry, device: bool = False) -> dict[str, Any]:
    described: dict[str, Any] = {"name": entry.name, "size": entry.size,
                                 "generation": entry.generation}
    if device:
        described["emulation"] = parse_device_name(entry.name).emulation
    return described


def _plain(value: Any) -> Any:
    """A header attribute's value as JSON can hold it (``base`` and ``base_checksum`` are
    strings; a newer writer's key of another type is shown as its text)."""
    return value if isinstance(value, (str, int)) else repr(value)
