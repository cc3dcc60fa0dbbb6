"""What this tool knows about bhyve's legacy snapshots, loaded from ``schemas/bhyve/legacy.json``.

The tables (layout-A structures with their enum values, the fixed 11-device table, the
layout-B structure order) and the kernel ABI generations with their fingerprints (FORMAT.md
2.3, 2.5) are data: a new release or a corrected fact is an edit of the JSON file, validated
by ``schemas/bhyve-facts.schema.json``, never a new ``if`` here. (Device instance names are
interpreted by :mod:`migrate.devices`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, NoReturn

from migrate import data
from migrate.findings import BhyvesnapError, error

FACTS_FILE = "bhyve/legacy.json"
FACTS_SCHEMA = "bhyve-facts"


@dataclass(frozen=True)
class StructFact:
    """A layout-A kernel structure: its name (``debug_name``) and ``enum snapshot_req`` value."""

    name: str
    snapshot_req: int


@dataclass(frozen=True)
class SizeCondition:
    """One fingerprint condition: structure ``structure`` is present, its size in the bounds."""

    structure: str
    min_size: int = 0
    max_size: int | None = None

    def holds(self, sizes: Mapping[str, int]) -> bool:
        size = sizes.get(self.structure)
        if size is None or size < self.min_size:
            return False
        return self.max_size is None or size <= self.max_size

    def describe(self) -> str:
        """The condition in words, for messages (``vmx of size 1 or more``)."""
        if self.max_size is None:
            return f"{self.structure} of size {self.min_size} or more"
        if self.min_size == self.max_size:
            return f"{self.structure} of size {self.min_size}"
        return f"{self.structure} of size {self.min_size} to {self.max_size}"


@dataclass(frozen=True)
class Generation:
    """A kernel ABI generation (``fbsd13.0``, ...) and how a legacy image reveals it."""

    id: str
    releases: str
    format: str
    fingerprint: tuple[SizeCondition, ...]
    note: str | None
    verified: bool

    def matches(self, format_id: str, sizes: Mapping[str, int]) -> bool:
        """Whether an image of ``format_id`` with these structure sizes is of this generation."""
        return format_id == self.format and all(c.holds(sizes) for c in self.fingerprint)

    def describe(self) -> str:
        """What the fingerprint asks for, for messages (``legacy-a with vmx of size 0``)."""
        if not self.fingerprint:
            return self.format
        return f"{self.format} with " + " and ".join(c.describe() for c in self.fingerprint)


@dataclass(frozen=True)
class LegacyFacts:
    """The parsed facts file; built once per process by :func:`legacy_facts`."""

    a_structs: tuple[StructFact, ...]
    a_devices: tuple[str, ...]
    b_structs: tuple[str, ...]
    generations: tuple[Generation, ...]

    def struct_by_req(self, snapshot_req: int) -> StructFact | None:
        """The layout-A structure bhyve 13.x looks up by this enum value (it keys on the int)."""
        return next((s for s in self.a_structs if s.snapshot_req == snapshot_req), None)

    def snapshot_req(self, name: str) -> int | None:
        """The enum value a layout-A writer records for structure ``name``."""
        return next((s.snapshot_req for s in self.a_structs if s.name == name), None)

    def generation_of(self, format_id: str, sizes: Mapping[str, int]) -> Generation | None:
        """The first generation (in data order) whose fingerprint matches, or ``None``.

        ``sizes`` maps each kernel structure of the image to its blob size.
        """
        return next((g for g in self.generations if g.matches(format_id, sizes)), None)

    def generation(self, generation_id: str) -> Generation | None:
        return next((g for g in self.generations if g.id == generation_id), None)


@cache
def legacy_facts() -> LegacyFacts:
    """The bundled facts, validated; a broken bundle is a tool error (BHS-X005)."""
    return parse_facts(data.load_json(FACTS_FILE))


def parse_facts(document: Any) -> LegacyFacts:
    """Validate a facts document against its schema and its cross-entry invariants."""
    problems = data.schema_errors(FACTS_SCHEMA, document)
    if problems:
        _broken(*problems[0])
    table_a = document["layout_a"]
    structs = tuple(StructFact(s["name"], s["snapshot_req"]) for s in table_a["structs"])
    for field in ("name", "snapshot_req"):
        values = [getattr(s, field) for s in structs]
        if len(set(values)) != len(values):
            _broken("/layout_a/structs", f"a structure {field} repeats")
    generations = tuple(
        Generation(
            id=g["id"], releases=g["releases"], format=g["format"],
            fingerprint=tuple(SizeCondition(c["structure"], c.get("min_size", 0),
                                            c.get("max_size")) for c in g["fingerprint"]),
            note=g.get("note"), verified=g["verified"])
        for g in document["generations"])
    ids = [g.id for g in generations]
    if len(set(ids)) != len(ids):
        _broken("/generations", "a generation id repeats")
    return LegacyFacts(structs, tuple(table_a["devices"]),
                       tuple(document["layout_b"]["kern_structs"]), generations)


def _broken(pointer: str, message: str) -> NoReturn:
    raise BhyvesnapError(error("BHS-X005", f"schemas/{FACTS_FILE}", pointer,
                               f"bundled bhyve facts are broken: {message}"))
