"""Blob transforms: registered upgrades of a state blob between kernel ABI generations.

Blob layouts changed between FreeBSD releases without any marker (FORMAT.md 2.5), and no
transform between generations is known today. The checker and the steps must therefore say
precisely which structure lacks one ("kernel structure `vm`: generation fbsd13.2 -> fbsd14 has
no registered upgrade") instead of guessing, and adding one later must be a registration, not
a code change elsewhere. This module is that registration point: one function per
(structure or device emulation, generation -> generation), chained by a shortest-path search
over generations, so a transform 13.0 -> 13.2 and one 13.2 -> 14 also upgrade 13.0 to 14.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from migrate.devices import parse_device_name
from migrate.image import StateEntry

BlobTransform = Callable[[bytes], bytes]
"""Maps a blob of one generation to the same structure's blob of another generation."""


@dataclass(frozen=True)
class TransformLink:
    """One registered transform: ``structure`` from generation ``source`` to ``destination``."""

    structure: str
    source: str
    destination: str
    fn: BlobTransform


def structure_key(name: str) -> str:
    """The key transforms are registered under for a state entry named ``name``.

    A device's blob layout belongs to its emulation, not to its PCI slot, so
    ``virtio-blk@pci.0.3.0`` and ``virtio-blk-pci-0-4-0`` share the transforms of
    ``virtio-blk``; a kernel structure (``vm``) or an unaddressed device (``atkbdc``, a
    layout-A type name) is its own key.
    """
    return parse_device_name(name).emulation


class TransformRegistry:
    """Blob transforms keyed by structure and generation edge.

    The module-level :data:`TRANSFORMS` is the one the tool uses; tests build their own
    ``TransformRegistry()`` so that registering a made-up transform never leaks.
    """

    def __init__(self) -> None:
        self._links: dict[str, dict[tuple[str, str], TransformLink]] = {}

    def register(self, structure: str, source: str, destination: str,
                 fn: BlobTransform) -> None:
        """Add the transform of ``structure`` from ``source`` to ``destination`` generation.

        A second function for the same edge is a ``ValueError``: two upgrades of one layout
        would make the chosen one depend on import order.
        """
        if source == destination:
            raise ValueError(f"transform of {structure!r} from {source!r} to itself")
        edges = self._links.setdefault(structure, {})
        if (source, destination) in edges:
            raise ValueError(f"a transform of {structure!r} from {source!r} to "
                             f"{destination!r} is already registered")
        edges[(source, destination)] = TransformLink(structure, source, destination, fn)

    def chain(self, structure: str, source: str,
              destination: str) -> list[TransformLink] | None:
        """The shortest chain of transforms from ``source`` to ``destination``.

        ``[]`` when the generations are equal (nothing to do), ``None`` when no chain exists.
        Ties between equally short chains go to the alphabetically first generation, so the
        result never depends on registration order.
        """
        if source == destination:
            return []
        edges = self._links.get(structure, {})
        previous: dict[str, TransformLink] = {}
        queue = deque([source])
        seen = {source}
        while queue:
            generation = queue.popleft()
            for link in sorted((link for (start, _), link in edges.items()
                                if start == generation), key=lambda link: link.destination):
                if link.destination in seen:
                    continue
                seen.add(link.destination)
                previous[link.destination] = link
                if link.destination == destination:
                    return _walk_back(previous, source, destination)
                queue.append(link.destination)
        return None

    def apply(self, entry: StateEntry, destination: str) -> StateEntry:
        """``entry`` upgraded to ``destination`` by running its chain over the blob.

        An entry already of that generation is returned unchanged (its blob stays a
        :class:`~migrate.image.FileRange`, never read). Callers check :meth:`missing` first;
        a missing chain here is a programming error and raises ``LookupError``.
        """
        links = self.chain(structure_key(entry.name), entry.generation, destination)
        if links is None:
            raise LookupError(f"no blob transform chain for {entry.name!r} from "
                              f"{entry.generation!r} to {destination!r}")
        if not links:
            return entry
        blob = entry.read()
        for link in links:
            blob = bytes(link.fn(blob))
        return StateEntry(entry.name, destination, blob)


def _walk_back(previous: dict[str, TransformLink], source: str,
               destination: str) -> list[TransformLink]:
    links: list[TransformLink] = []
    generation = destination
    while generation != source:
        link = previous[generation]
        links.append(link)
        generation = link.source
    links.reverse()
    return links


TRANSFORMS = TransformRegistry()
"""The transforms the tool uses. Empty: none is known for real releases (FORMAT.md 2.5)."""
