"""Building nvlists for property tests: generated pairs made into a list libnv would accept."""

from __future__ import annotations

from typing import Any

from migrate.nvlist import NvList, NvPair, NvType


def unique_list(flags: int, items: list[tuple[str, tuple[NvType, Any]]]) -> NvList:
    """A list of those pairs with ``flags``, dropping a name that repeats one before it
    (compared ASCII case-insensitively under IGNORE_CASE, 0x01), unless NO_UNIQUE (0x02)."""
    seen: set[bytes] = set()
    pairs = []
    for name, (kind, value) in items:
        key = name.encode("utf-8", "surrogateescape")
        key = key.lower() if flags & 1 else key
        if not flags & 2:
            if key in seen:
                continue
            seen.add(key)
        pairs.append(NvPair(name, kind, value))
    return NvList(flags, tuple(pairs))
