"""The bundled bhyve facts (schemas/bhyve/legacy.json) and their loader.

Expectations are FORMAT.md 2.3 and 2.5 typed out here, so a wrong edit of the data file fails
a test instead of silently changing how images are read.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from migrate import data
from migrate.findings import BhyvesnapError
from migrate.formats.bhyve import (
    Generation,
    SizeCondition,
    StructFact,
    legacy_facts,
    parse_facts,
)

SPEC_A_STRUCTS = [("vhpet", 5), ("vm", 2), ("vmx", 0), ("vioapic", 1), ("vlapic", 3),
                  ("vmcx", 6), ("vatpit", 8), ("vatpic", 7), ("vpmtmr", 9), ("vrtc", 10)]
SPEC_A_DEVICES = ["atkbdc", "virtio-net", "virtio-blk", "virtio-rnd", "lpc", "fbuf", "xhci",
                  "e1000", "ahci", "ahci-hd", "ahci-cd"]
SPEC_B_STRUCTS = ["vhpet", "vm", "vioapic", "vlapic", "vmcx", "vatpit", "vatpic", "vpmtmr",
                  "vrtc"]


def test_bundled_facts_are_the_spec_tables() -> None:
    facts = legacy_facts()
    assert [(s.name, s.snapshot_req) for s in facts.a_structs] == SPEC_A_STRUCTS
    assert list(facts.a_devices) == SPEC_A_DEVICES
    assert list(facts.b_structs) == SPEC_B_STRUCTS
    assert [(g.id, g.format, g.releases, g.verified) for g in facts.generations] == [
        ("fbsd13.0", "legacy-a", ">=13.0,<13.2", True),
        ("fbsd13.2", "legacy-a", ">=13.2,<14.0", False),
        ("fbsd14", "legacy-b", ">=14.0", True),
    ]


def test_facts_schema_is_draft_2020_12() -> None:
    schema = data.load_json("bhyve-facts.schema.json")
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://bhyvesnap.invalid/schemas/bhyve-facts.schema.json"


@pytest.mark.parametrize(("format_id", "sizes", "expected"), [
    ("legacy-a", {"vm": 8, "vmx": 100}, "fbsd13.0"),
    ("legacy-a", {"vm": 8, "vmx": 1}, "fbsd13.0"),
    ("legacy-a", {"vm": 8, "vmx": 0}, "fbsd13.2"),
    ("legacy-a", {"vm": 8}, None),  # no vmx at all: neither 13.x fingerprint holds
    ("legacy-b", {"vm": 8}, "fbsd14"),
    ("legacy-b", {"vmx": 0}, "fbsd14"),
    ("r1", {"vmx": 5}, None),
])
def test_generation_fingerprints(format_id: str, sizes: dict[str, int],
                                 expected: str | None) -> None:
    assert _id(legacy_facts().generation_of(format_id, sizes)) == expected


def _id(generation: Generation | None) -> str | None:
    return None if generation is None else generation.id


def test_lookups() -> None:
    facts = legacy_facts()
    assert facts.struct_by_req(6) == StructFact("vmcx", 6)
    assert facts.struct_by_req(11) is None
    assert facts.snapshot_req("vatpic") == 7
    assert facts.snapshot_req("virtio-blk") is None
    assert facts.generation("fbsd13.2") is not None
    assert facts.generation("fbsd15") is None


def test_descriptions_for_messages() -> None:
    assert SizeCondition("vmx", 1).describe() == "vmx of size 1 or more"
    assert SizeCondition("vmx", 0, 0).describe() == "vmx of size 0"
    assert SizeCondition("vm", 4, 8).describe() == "vm of size 4 to 8"
    generation = legacy_facts().generation("fbsd13.2")
    assert generation is not None
    assert generation.describe() == "legacy-a with vmx of size 0"
    fbsd14 = legacy_facts().generation("fbsd14")
    assert fbsd14 is not None
    assert fbsd14.describe() == "legacy-b"


def _broken(change: Any) -> BhyvesnapError:
    document = copy.deepcopy(data.load_json("bhyve/legacy.json"))
    change(document)
    with pytest.raises(BhyvesnapError) as caught:
        parse_facts(document)
    assert caught.value.finding.rule == "BHS-X005"
    return caught.value


@pytest.mark.parametrize(("change", "pointer"), [
    (lambda d: d["layout_a"]["structs"][0].pop("snapshot_req"), "/layout_a/structs/0"),
    (lambda d: d["generations"][0].update(format="r1"), "/generations/0/format"),
    (lambda d: d["generations"][0]["fingerprint"][0].pop("min_size"),
     "/generations/0/fingerprint/0"),
    (lambda d: d["layout_a"]["structs"][1].update(snapshot_req=5), "/layout_a/structs"),
    (lambda d: d["layout_a"]["structs"][1].update(name="vhpet"), "/layout_a/structs"),
    (lambda d: d["generations"][1].update(id="fbsd13.0"), "/generations"),
])
def test_broken_facts_are_a_tool_error(change: Any, pointer: str) -> None:
    assert _broken(change).finding.location == pointer


def test_a_new_generation_is_data_only() -> None:
    """A later ABI generation is one more entry in the data file, no code change."""
    document = copy.deepcopy(data.load_json("bhyve/legacy.json"))
    document["generations"].insert(2, {
        "id": "fbsd15", "releases": ">=15.0", "format": "legacy-b",
        "fingerprint": [{"structure": "vm", "min_size": 4096}], "verified": False})
    facts = parse_facts(document)
    assert _id(facts.generation_of("legacy-b", {"vm": 5000})) == "fbsd15"
    assert _id(facts.generation_of("legacy-b", {"vm": 100})) == "fbsd14"
