"""Device instance names of layout B and later (FORMAT.md 2.3).

A layout-B device entry is named by instance, ``<emulation>@pci.<bus>.<slot>.<func>``, but a
review of 14.0 showed the spelling ``<emulation>-pci-<bus>-<slot>-<func>`` and it is
UNVERIFIED which one the release writes. Readers therefore keep names as opaque strings and
only this module interprets them: the checker compares emulation and address, never the
spelling, and writers emit the canonical ``@pci.`` form. A name that carries no address
(``atkbdc``, or a layout-A table name such as ``virtio-blk``) is just an emulation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAX_BUS = 255
MAX_SLOT = 31
MAX_FUNCTION = 7
"""bhyve's PCI limits (MAXBUSES 256, MAXSLOTS 32, MAXFUNCS 8 in pci_emul.c)."""

_NUMBER = r"(0|[1-9][0-9]{0,3})"
"""An unpadded PCI number; four digits at most, far above every limit, so that a hostile
name never reaches ``int()`` with thousands of digits (it stays an opaque emulation name)."""
_AT_SPELLING = re.compile(rf"(.+)@pci\.{_NUMBER}\.{_NUMBER}\.{_NUMBER}", re.DOTALL)
_DASH_SPELLING = re.compile(rf"(.+)-pci-{_NUMBER}-{_NUMBER}-{_NUMBER}", re.DOTALL)


@dataclass(frozen=True, order=True)
class DeviceInstance:
    """One device: its emulation and, when the name carries one, its PCI address."""

    emulation: str
    bus: int | None
    slot: int | None
    function: int | None

    @property
    def address(self) -> tuple[int, int, int] | None:
        """``(bus, slot, function)``, or ``None`` for a device without a PCI address."""
        if self.bus is None or self.slot is None or self.function is None:
            return None
        return (self.bus, self.slot, self.function)


def valid_address(bus: int, slot: int, function: int) -> bool:
    """Whether the address is one bhyve can configure."""
    return 0 <= bus <= MAX_BUS and 0 <= slot <= MAX_SLOT and 0 <= function <= MAX_FUNCTION


def parse_device_name(name: str) -> DeviceInstance:
    """Split a device entry name into emulation and address; never fails.

    Both spellings are understood (``virtio-blk@pci.0.3.0``, ``virtio-blk-pci-0-3-0``).
    Anything else, including an address with padded numbers or outside bhyve's PCI limits,
    is kept whole as the emulation name, so that an odd name is reported by the checker as
    an unknown emulation rather than misread as a known one.
    """
    for spelling in (_AT_SPELLING, _DASH_SPELLING):
        match = spelling.fullmatch(name)
        if match is not None:
            bus, slot, function = (int(match.group(i)) for i in (2, 3, 4))
            if valid_address(bus, slot, function):
                return DeviceInstance(match.group(1), bus, slot, function)
    return DeviceInstance(name, None, None, None)


def instance_name(emulation: str, bus: int, slot: int, function: int) -> str:
    """The canonical layout-B name ``<emulation>@pci.<bus>.<slot>.<func>``.

    Raises ``ValueError`` for an empty emulation or an address outside bhyve's limits: such
    a name could not be parsed back, so producing one is a programming error.
    """
    if not emulation or not valid_address(bus, slot, function):
        raise ValueError(f"no device instance {emulation!r} at pci {bus}:{slot}:{function}")
    return f"{emulation}@pci.{bus}.{slot}.{function}"


def layout_b_order(names: Iterable[str]) -> list[str]:
    """Names in layout-B order: by bus, slot, function; names without an address last.

    The sort is stable, so names without an address (``atkbdc``) keep their given order,
    as do two spellings of the same address.
    """

    def key(name: str) -> tuple[int, int, int, int]:
        address = parse_device_name(name).address
        return (1, 0, 0, 0) if address is None else (0, *address)

    return sorted(names, key=key)
