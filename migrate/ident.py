"""IDENT strings of single-file images: ``<producer> <version>`` (FORMAT.md 1 and 3.1).

IDENT is the barrier against images that are "not ours". Which header revision a mainstream
version maps to is data (``schemas/bhyve/revisions.json``), so a later revision (an ``r3``) is
added there plus a reader, never by editing this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from migrate.data import load_json

IDENT_SIZE = 64


@dataclass(frozen=True)
class Ident:
    """A parsed IDENT: producer and version, split at the last space."""

    text: str
    producer: str
    version: Version

    @property
    def mainstream(self) -> bool:
        return self.producer == mainstream_producer()


def parse_ident(text: str) -> Ident | None:
    """The parsed IDENT, or ``None`` when it has no space or its version does not parse."""
    producer, space, version = text.rpartition(" ")
    if not space or not producer:
        return None
    try:
        return Ident(text, producer, Version(version))
    except InvalidVersion:
        return None


def mainstream_producer() -> str:
    producer: str = load_json("bhyve/revisions.json")["producer"]
    return producer


def mainstream_ident(version: str) -> str:
    """``BHYVE CHECKPOINT IMAGE <version>``."""
    return f"{mainstream_producer()} {version}"


def format_of(ident: Ident) -> str | None:
    """The format id a mainstream IDENT maps to, or ``None`` for an unknown version.

    A revision lists either the exact version strings it is (``r1`` has no compatibility
    record, so only ``1.0``) or just its major number (``r2``: any 2.x, its compat record
    decides).
    """
    if not ident.mainstream:
        return None
    version_text = ident.text.rpartition(" ")[2]
    for revision in load_json("bhyve/revisions.json")["revisions"]:
        if ident.version.major != revision["major"]:
            continue
        exact = revision.get("versions")
        if exact is None or version_text in exact:
            return str(revision["format"])
    return None
