"""Device instance names (FORMAT.md 2.3): both spellings, opaque fallbacks, layout-B order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrate.devices import DeviceInstance, instance_name, layout_b_order, parse_device_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("virtio-blk@pci.0.3.0", DeviceInstance("virtio-blk", 0, 3, 0)),
        ("virtio-blk-pci-0-3-0", DeviceInstance("virtio-blk", 0, 3, 0)),
        ("lpc@pci.0.31.0", DeviceInstance("lpc", 0, 31, 0)),
        ("ahci-hd-pci-2-4-7", DeviceInstance("ahci-hd", 2, 4, 7)),
        ("e1000@pci.255.0.1", DeviceInstance("e1000", 255, 0, 1)),
        ("atkbdc", DeviceInstance("atkbdc", None, None, None)),
        ("virtio-blk", DeviceInstance("virtio-blk", None, None, None)),
        # padded or out-of-range numbers are not addresses bhyve could have: kept opaque
        ("virtio-blk@pci.0.03.0", DeviceInstance("virtio-blk@pci.0.03.0", None, None, None)),
        ("virtio-blk@pci.0.32.0", DeviceInstance("virtio-blk@pci.0.32.0", None, None, None)),
        ("virtio-blk@pci.256.0.0", DeviceInstance("virtio-blk@pci.256.0.0", None, None, None)),
        ("virtio-blk-pci-0-3-8", DeviceInstance("virtio-blk-pci-0-3-8", None, None, None)),
        ("@pci.0.3.0", DeviceInstance("@pci.0.3.0", None, None, None)),
        ("virtio-blk@pci.0.3", DeviceInstance("virtio-blk@pci.0.3", None, None, None)),
        ("", DeviceInstance("", None, None, None)),
        ("a\nb@pci.0.1.0", DeviceInstance("a\nb", 0, 1, 0)),
    ],
)
def test_parse_device_name(name: str, expected: DeviceInstance) -> None:
    assert parse_device_name(name) == expected


def test_address_property() -> None:
    assert parse_device_name("xhci@pci.0.5.1").address == (0, 5, 1)
    assert parse_device_name("atkbdc").address is None


def test_instance_name_is_canonical_spelling() -> None:
    assert instance_name("virtio-net", 0, 2, 0) == "virtio-net@pci.0.2.0"
    assert instance_name("lpc", 0, 31, 0) == "lpc@pci.0.31.0"


@pytest.mark.parametrize(("emulation", "bus", "slot", "function"),
                         [("", 0, 1, 0), ("x", 0, 32, 0), ("x", 0, 1, 8), ("x", -1, 0, 0),
                          ("x", 256, 0, 0)])
def test_instance_name_refuses_unparseable_names(emulation: str, bus: int, slot: int,
                                                 function: int) -> None:
    with pytest.raises(ValueError, match="no device instance"):
        instance_name(emulation, bus, slot, function)


@given(st.text(min_size=1), st.integers(0, 255), st.integers(0, 31), st.integers(0, 7))
def test_instance_name_round_trips(emulation: str, bus: int, slot: int, function: int) -> None:
    name = instance_name(emulation, bus, slot, function)
    assert parse_device_name(name) == DeviceInstance(emulation, bus, slot, function)


def test_layout_b_order_by_address_then_unaddressed_stably() -> None:
    names = ["atkbdc", "lpc@pci.0.31.0", "virtio-net-pci-0-2-0", "weird", "virtio-blk@pci.0.3.0",
             "xhci@pci.1.0.0", "e1000@pci.0.3.1", "ahci@pci.0.10.0"]
    assert layout_b_order(names) == [
        "virtio-net-pci-0-2-0", "virtio-blk@pci.0.3.0", "e1000@pci.0.3.1", "ahci@pci.0.10.0",
        "lpc@pci.0.31.0", "xhci@pci.1.0.0", "atkbdc", "weird",
    ]


def test_layout_b_order_keeps_same_address_in_given_order() -> None:
    assert layout_b_order(["b-pci-0-3-0", "a@pci.0.3.0"]) == ["b-pci-0-3-0", "a@pci.0.3.0"]
    assert layout_b_order([]) == []


def test_a_huge_number_is_an_opaque_name_not_an_error() -> None:
    name = "virtio-blk@pci." + "9" * 5000 + ".3.0"
    device = parse_device_name(name)
    assert device.address is None
    assert device.emulation == name
