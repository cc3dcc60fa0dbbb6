"""Blob transforms: registration, shortest chains, applying a chain."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.image import FileRange, StateEntry
from migrate.transforms import TRANSFORMS, BlobTransform, TransformRegistry, structure_key


def _appending(label: bytes) -> BlobTransform:
    """A transform whose effect is visible: it appends ``label`` to the blob."""
    return lambda blob: blob + label


def _registry(*edges: tuple[str, str, str, bytes]) -> TransformRegistry:
    registry = TransformRegistry()
    for structure, source, destination, label in edges:
        registry.register(structure, source, destination, _appending(label))
    return registry


def test_the_tool_knows_no_transform_for_real_releases() -> None:
    assert TRANSFORMS.chain("vm", "fbsd13.2", "fbsd14") is None
    assert TRANSFORMS.chain("vm", "fbsd14", "fbsd14") == []


def test_duplicate_and_self_edges_are_refused() -> None:
    registry = _registry(("vm", "fbsd13.2", "fbsd14", b"x"))
    with pytest.raises(ValueError, match="already registered"):
        registry.register("vm", "fbsd13.2", "fbsd14", lambda b: b)
    with pytest.raises(ValueError, match="to itself"):
        registry.register("vm", "fbsd14", "fbsd14", lambda b: b)
    registry.register("vlapic", "fbsd13.2", "fbsd14", lambda b: b)  # other structure: fine


def test_chain_is_the_shortest_and_independent_of_registration_order() -> None:
    edges = [("vm", "fbsd13.0", "fbsd13.2", b"a"), ("vm", "fbsd13.2", "fbsd14", b"b"),
             ("vm", "fbsd13.0", "fbsd13.1", b"c"), ("vm", "fbsd13.1", "fbsd14", b"d")]
    for order in (edges, list(reversed(edges))):
        chain = _registry(*order).chain("vm", "fbsd13.0", "fbsd14")
        assert chain is not None
        # Two chains of length 2; the tie goes to the alphabetically first generation.
        assert [(link.source, link.destination) for link in chain] == [
            ("fbsd13.0", "fbsd13.1"), ("fbsd13.1", "fbsd14")]
    direct = _registry(*edges, ("vm", "fbsd13.0", "fbsd14", b"z"))
    assert [link.destination for link in direct.chain("vm", "fbsd13.0", "fbsd14") or []] == [
        "fbsd14"]


def test_chain_none_without_a_path_and_per_structure() -> None:
    registry = _registry(("vm", "fbsd13.2", "fbsd14", b"x"))
    assert registry.chain("vm", "fbsd14", "fbsd13.2") is None  # edges are directed
    assert registry.chain("vlapic", "fbsd13.2", "fbsd14") is None
    assert registry.chain("vm", "fbsd13.0", "fbsd14") is None


def test_device_entries_share_the_transforms_of_their_emulation() -> None:
    assert structure_key("virtio-blk@pci.0.3.0") == "virtio-blk"
    assert structure_key("virtio-blk-pci-0-4-0") == "virtio-blk"
    assert structure_key("atkbdc") == "atkbdc"
    assert structure_key("vm") == "vm"
    registry = _registry(("virtio-blk", "fbsd13.2", "fbsd14", b"x"))
    entries = [StateEntry("vm", "fbsd13.2", b"1"),
               StateEntry("virtio-blk@pci.0.3.0", "fbsd13.2", b"2"),
               StateEntry("virtio-net@pci.0.4.0", "fbsd13.2", b"3"),
               StateEntry("virtio-net@pci.0.5.0", "fbsd13.2", b"4"),
               StateEntry("vrtc", "fbsd14", b"5")]
    unreachable = [structure_key(e.name) for e in entries
                   if registry.chain(structure_key(e.name), e.generation, "fbsd14") is None]
    assert unreachable == ["vm", "virtio-net", "virtio-net"]


def test_apply_runs_the_chain_in_order_and_updates_the_generation(tmp_path: Path) -> None:
    kern = tmp_path / "vm.ckp.kern"
    kern.write_bytes(b"..VM..")
    entry = StateEntry("vm", "fbsd13.0", FileRange(str(kern), 2, 2))
    registry = _registry(("vm", "fbsd13.2", "fbsd14", b"+14"),
                         ("vm", "fbsd13.0", "fbsd13.2", b"+132"))
    upgraded = registry.apply(entry, "fbsd14")
    assert upgraded == StateEntry("vm", "fbsd14", b"VM+132+14")
    assert isinstance(upgraded.blob, bytes)


def test_apply_to_the_same_generation_keeps_the_entry_unread(tmp_path: Path) -> None:
    entry = StateEntry("vm", "fbsd14", FileRange(str(tmp_path / "absent"), 0, 8))
    assert TransformRegistry().apply(entry, "fbsd14") is entry


def test_apply_without_a_chain_is_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="vm"):
        TransformRegistry().apply(StateEntry("vm", "fbsd13.2", b"x"), "fbsd14")
