"""The building blocks of a migration step, shared by every module of :mod:`migrate.steps`.

They live here rather than in :mod:`migrate.registry` so that importing one step module never
imports the registry half-way (the registry imports every step module to build itself).
:mod:`migrate.registry` re-exports them; that is where callers should import them from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from migrate.config import BhyveConfig
from migrate.data import load_json
from migrate.findings import BhyvesnapError, Finding, error
from migrate.image import Image, StateEntry
from migrate.transforms import TRANSFORMS, TransformRegistry, structure_key


def current_generation() -> str:
    """The kernel ABI generation of layout B, ``r1`` and plain ``r2`` (``fbsd14``, as data)."""
    generation: str = load_json("bhyve/revisions.json")["r1_generation"]
    return generation

Direction = Literal["up", "down"]


@dataclass(frozen=True)
class Loss:
    """Something a step drops. ``informational`` losses (checksums, the producer record) are
    listed in a plan but do not make it lossy: nothing a restore needs is gone."""

    what: str
    message: str
    informational: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "message": self.message,
                "informational": self.informational}


@dataclass(frozen=True)
class StepContext:
    """What a step may need besides the image.

    ``user_config`` is the parsed ``--config`` file (``user_config_file`` its path as the user
    gave it, for findings); ``transforms`` the blob transforms to use, the tool's own by
    default, a fresh registry in tests.
    """

    user_config: BhyveConfig | None = None
    user_config_file: str | None = None
    transforms: TransformRegistry = field(default=TRANSFORMS)


class Step(ABC):
    """One declared edge of the format graph.

    Subclasses set the class attributes and implement :meth:`blockers` and :meth:`apply`.
    ``rewrites`` has one human-readable line per section or key group the step rewrites;
    ``test_image`` names the test image that exercises the step (lint requires it to exist
    in the table of test images the caller provides).
    """

    name: ClassVar[str]
    source: ClassVar[str]
    destination: ClassVar[str]
    direction: ClassVar[Direction]
    rewrites: ClassVar[tuple[str, ...]]
    losses: ClassVar[tuple[Loss, ...]]
    test_image: ClassVar[str]
    removes_feature: ClassVar[str | None] = None
    """The r2 compat feature this step removes (``flatten``: ``diff-pages``), if any."""

    @abstractmethod
    def blockers(self, image: Image, context: StepContext) -> list[Finding]:
        """Every reason the step cannot run on ``image`` (error findings); empty if it can."""

    @abstractmethod
    def apply(self, image: Image, context: StepContext) -> Image:
        """``image`` in the destination format. Only valid when :meth:`blockers` is empty."""

    @property
    def lossy(self) -> bool:
        return any(not loss.informational for loss in self.losses)

    def to_json(self) -> dict[str, Any]:
        """The plan entry of CLI.md (``migrate --dry-run --json``)."""
        return {
            "step": self.name,
            "from": self.source,
            "to": self.destination,
            "rewrites": list(self.rewrites),
            "losses": [loss.to_json() for loss in self.losses],
        }


def generation_blockers(image: Image, destination: str, transforms: TransformRegistry,
                        kept: Callable[[StateEntry, bool], bool] = lambda entry, kernel: True,
                        ) -> list[Finding]:
    """One ``BHS-M002`` finding per structure whose blob cannot reach ``destination``.

    Structures are named by their transform key (``vm``, ``virtio-blk``), once each, with the
    generation edge that lacks a transform, as FORMAT.md 2.5 asks: say precisely what is
    missing instead of guessing. Entries the step drops (``kept(entry, is_kernel)`` false)
    need no transform; the others are located by their index in the image as read.
    """
    found: list[Finding] = []
    named: set[str] = set()
    for kind, entries in (("kernel structure", image.kernel), ("device", image.devices)):
        for index, entry in enumerate(entries):
            key = structure_key(entry.name)
            if (not kept(entry, kind == "kernel structure") or key in named
                    or transforms.chain(key, entry.generation, destination) is not None):
                continue
            named.add(key)
            file, location = entry_location(image, kind, index)
            found.append(error(
                "BHS-M002", file, location,
                f"{kind} `{key}`: generation {entry.generation} -> {destination} has no "
                "registered upgrade",
                "no blob transform between these generations is known; restore the image "
                "with a release of its own generation"))
    return found


def entry_location(image: Image, kind: str, index: int) -> tuple[str, str | None]:
    """Where the ``index``-th kernel structure or device of ``image`` is described.

    Legacy images: a JSON pointer into ``F.meta``; single-file images: the image itself,
    whose nvlist sections have no JSON pointer.
    """
    if not image.format.startswith("legacy"):
        return image.path, None
    meta = next((name for name in image.files if name.endswith(".meta")), image.path)
    if kind == "device":
        return meta, f"/devices/{index}"
    table = "structs" if image.format == "legacy-a" else "kern_structs"
    return meta, f"/{table}/{index}"


def upgrade_entries(entries: Sequence[StateEntry], destination: str,
                    transforms: TransformRegistry) -> tuple[StateEntry, ...]:
    """``entries`` with every blob carried to generation ``destination``.

    Entries already there keep their blob object (a legacy :class:`FileRange` stays unread).
    """
    return tuple(transforms.apply(entry, destination) for entry in entries)



def refusal(check: Callable[[], object]) -> list[Finding]:
    """``[]`` if ``check()`` succeeds, else the finding of the error it raised.

    Steps build their output with the same functions that decide whether they may run (the
    config merge, the config parser), so a blocker is simply that call failing.
    """
    try:
        check()
    except BhyvesnapError as exc:
        return [exc.finding]
    return []
