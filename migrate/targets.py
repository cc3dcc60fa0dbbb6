"""Target profiles: the bhyve builds an image may be checked against (FORMAT.md section 4).

What a build can restore is data, not code: one JSON file per build under
``schemas/targets/``, validated by ``schemas/target.schema.json`` plus the few rules a schema
cannot express (the specifier set parses, IDENT and format agree, features are not newer than
the build). Users add or correct builds with ``--targets-dir DIR``: every ``*.json`` file
there is loaded the same way, and **a user profile with the name of a bundled one replaces
it** (so a user who has verified a fact recorded as UNVERIFIED can correct it without editing
the installation); ``source`` always tells which file a profile came from.

A ``--target`` is resolved by profile name, by exact IDENT string, or by FreeBSD release
(``14.1-RELEASE-p3`` → the profile whose specifier set contains 14.1).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from migrate import findings
from migrate.data import schema_errors, schemas_root
from migrate.findings import UsageError
from migrate.image import FORMATS
from migrate.storage import read_user_file

MAX_PROFILE_SIZE = 1 << 20
"""A profile file larger than this is refused (a limit of this tool; real ones are ~2 KiB)."""

SINGLE_FILE_MAJOR = {"r1": 1, "r2": 2}
"""The IDENT major version of each single-file format (FORMAT.md section 1)."""

_RELEASE = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-(?:RELEASE|STABLE|CURRENT|PRERELEASE|ALPHA[0-9]*|BETA[0-9]*|RC[0-9]*)(?:-p[0-9]+)?)?",
    re.IGNORECASE,
)
_TARGET_OPTION = "--target"


def _specifier_order(specifier: Specifier) -> tuple[int, Version | None, str]:
    try:
        return 0, Version(specifier.version.removesuffix(".*")), specifier.operator
    except InvalidVersion:
        return 1, None, str(specifier)


@dataclass(frozen=True)
class Feature:
    """A compat feature (FORMAT.md 3.4) and the IDENT version that introduced it."""

    name: str
    introduced: Version
    status: str  # "real" | "proposed"

    def to_document(self) -> dict[str, Any]:
        return {"name": self.name, "introduced": str(self.introduced), "status": self.status}


@dataclass(frozen=True)
class Target:
    """One bhyve build, as its profile describes it; see target.schema.json for each field.

    ``version`` is the IDENT version of a single-file target (``None`` for legacy ones);
    ``releases`` is ``None`` for a proposed target, which covers no FreeBSD release.
    """

    name: str
    description: str
    status: str
    releases: SpecifierSet | None
    format: str
    ident: str | None
    version: Version | None
    generation: str
    devices: frozenset[str]
    kernel_structures: tuple[str, ...]
    rejects_zero_size: bool
    blob_limit: int
    device_entries_required: bool
    features: tuple[Feature, ...]
    known_defects: tuple[str, ...]
    unverified: tuple[str, ...]
    source: str

    @property
    def releases_text(self) -> str | None:
        """The specifier set as people write it, lowest version first (``>=13.0,<13.2``);
        ``packaging`` itself sorts the specifiers as text."""
        if self.releases is None:
            return None
        return ",".join(str(s) for s in sorted(self.releases, key=_specifier_order))

    def covers(self, release: Version) -> bool:
        """Whether the FreeBSD ``release`` (already normalised) is one this build is."""
        return self.releases is not None and self.releases.contains(release, prereleases=True)

    def feature(self, name: str) -> Feature | None:
        """The feature of that name if this build knows it."""
        return next((f for f in self.features if f.name == name), None)

    def to_document(self) -> dict[str, Any]:
        """Every field, JSON-ready (``targets --json``)."""
        return {
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "releases": self.releases_text,
            "format": self.format,
            "ident": self.ident,
            "version": None if self.version is None else str(self.version),
            "generation": self.generation,
            "devices": sorted(self.devices),
            "kernel_structures": list(self.kernel_structures),
            "rejects_zero_size": self.rejects_zero_size,
            "blob_limit": self.blob_limit,
            "device_entries_required": self.device_entries_required,
            "features": [f.to_document() for f in self.features],
            "known_defects": list(self.known_defects),
            "unverified": list(self.unverified),
            "source": self.source,
        }


def _invalid(file: str, location: int | str, message: str) -> UsageError:
    return UsageError(findings.error(
        "BHS-X004", file, location, message,
        "correct the profile so that it matches schemas/target.schema.json"))


def parse_profile(data: bytes, source: str) -> Target:
    """A target from the bytes of one profile file; BHS-X004 at a byte offset or JSON pointer
    when it is not a valid profile."""
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _invalid(source, exc.start, "the profile is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        offset = len(exc.doc[: exc.pos].encode("utf-8"))
        raise _invalid(source, offset, f"the profile is not JSON ({exc.msg})") from None
    problems = schema_errors("target", document)
    if problems:
        pointer, message = problems[0]
        raise _invalid(source, pointer, f"the profile does not match the target schema: {message}")
    return _target(document, source)


def _target(document: dict[str, Any], source: str) -> Target:
    """Build a schema-valid profile, checking what the schema cannot."""
    releases: SpecifierSet | None = None
    if "releases" in document:
        try:
            releases = SpecifierSet(document["releases"])
        except InvalidSpecifier:
            raise _invalid(source, "/releases", f"releases {document['releases']!r} is not a "
                           "packaging specifier set such as '>=14.0'") from None
    ident: str | None = document.get("ident")
    version = None if ident is None else Version(ident.rsplit(" ", 1)[1])
    fmt: str = document["format"]
    if version is not None and version.major != SINGLE_FILE_MAJOR[fmt]:
        raise _invalid(source, "/ident", f"IDENT {ident!r} has major version {version.major}, "
                       f"but format {fmt} is major version {SINGLE_FILE_MAJOR[fmt]}")
    features: list[Feature] = []
    for index, entry in enumerate(document["features"]):
        feature = Feature(entry["name"], Version(entry["introduced"]), entry["status"])
        if fmt != "r2":
            raise _invalid(source, f"/features/{index}", f"format {fmt} has no compat "
                           "record, so a target of it knows no features")
        if version is not None and feature.introduced > version:
            raise _invalid(source, f"/features/{index}/introduced",
                           f"feature {feature.name} was introduced in {feature.introduced}, "
                           f"after this target's version {version}")
        if any(f.name == feature.name for f in features):
            raise _invalid(source, f"/features/{index}/name",
                           f"feature {feature.name} is listed twice")
        features.append(feature)
    return Target(
        name=document["name"],
        description=document["description"],
        status=document["status"],
        releases=releases,
        format=fmt,
        ident=ident,
        version=version,
        generation=document["generation"],
        devices=frozenset(document["devices"]),
        kernel_structures=tuple(document["kernel_structures"]),
        rejects_zero_size=document["rejects_zero_size"],
        blob_limit=document["blob_limit"],
        device_entries_required=document["device_entries_required"],
        features=tuple(features),
        known_defects=tuple(document["known_defects"]),
        unverified=tuple(document["unverified"]),
        source=source,
    )


def _add(found: dict[str, Target], target: Target) -> None:
    """Add a profile of one source; two files of one source with one name are an error."""
    if target.name in found:
        raise _invalid(target.source, "/name", f"target {target.name} is already defined by "
                       f"{found[target.name].source}")
    found[target.name] = target


@cache
def _bundled() -> tuple[Target, ...]:
    """The profiles shipped in schemas/targets/, parsed once per process."""
    folder = schemas_root().joinpath("targets")
    found: dict[str, Target] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            _add(found, parse_profile(entry.read_bytes(), str(entry)))
    return tuple(found.values())


def _user_targets(targets_dir: str) -> list[Target]:
    """Every ``*.json`` profile of ``targets_dir``, in file name order."""
    try:
        names = sorted(entry.name for entry in os.scandir(targets_dir)
                       if entry.name.endswith(".json"))
    except OSError as exc:
        raise UsageError(findings.error(
            "BHS-X002", targets_dir, None,
            f"cannot read the targets directory ({exc.strerror})")) from None
    found: dict[str, Target] = {}
    for name in names:
        path = os.path.join(targets_dir, name)
        data = read_user_file(path, MAX_PROFILE_SIZE, "target profile", "BHS-X004")
        _add(found, parse_profile(data, path))
    return list(found.values())


def user_targets_dir(target: Target) -> str | None:
    """The ``--targets-dir`` a command needs to find ``target`` again, or ``None`` for a
    bundled profile (so a printed remedy works when run as it is printed)."""
    if any(bundled.source == target.source for bundled in _bundled()):
        return None
    return os.path.dirname(target.source) or "."


def load_targets(targets_dir: str | None = None) -> dict[str, Target]:
    """Every target profile by name: the bundled ones, then those of ``targets_dir``.

    A user profile whose name is a bundled profile's replaces it. An invalid profile is a
    UsageError BHS-X004 naming the file and a JSON pointer (or byte offset); an unreadable
    directory or file is BHS-X002.
    """
    targets = {target.name: target for target in _bundled()}
    if targets_dir is not None:
        targets.update((target.name, target) for target in _user_targets(targets_dir))
    return targets


def sort_key(target: Target) -> tuple[int, str]:
    """Listing order: by format along the upgrade chain, then by name."""
    return FORMATS.index(target.format), target.name


def normalise_release(text: str) -> Version:
    """The release number of a FreeBSD release string (``14.1-RELEASE-p3`` → ``14.1``).

    Accepts ``X.Y`` optionally followed by a branch (RELEASE, STABLE, CURRENT, PRERELEASE,
    ALPHAn, BETAn, RCn) and a patch level ``-pN``; anything else is a UsageError BHS-X003.
    A pre-release such as ``14.0-BETA1`` counts as its release: it runs that release's code.
    """
    match = _RELEASE.fullmatch(text)
    if match is None:
        raise UsageError(findings.error(
            "BHS-X003", _TARGET_OPTION, None,
            f"{text!r} is not a FreeBSD release such as 14.1, 14.1-RELEASE-p3 or 15.0-CURRENT"))
    return Version(f"{match.group(1)}.{match.group(2)}")


def _describe(target: Target) -> str:
    if target.releases is not None:
        return f"{target.name} (releases {target.releases_text})"
    return f"{target.name} ({target.ident or target.format})"


def resolve_target(spec: str, targets: Mapping[str, Target]) -> Target:
    """The target ``--target SPEC`` means: a profile name, else an exact IDENT, else a release.

    A release is normalised first (``15.0-CURRENT`` → 15.0) and must fall in exactly one
    profile's specifier set; no match or several is a UsageError BHS-X003 listing the
    candidates.
    """
    if spec in targets:
        return targets[spec]
    by_ident = [t for t in targets.values() if t.ident is not None and t.ident == spec]
    if len(by_ident) == 1:
        return by_ident[0]
    ordered = sorted(targets.values(), key=sort_key)
    if by_ident:
        raise UsageError(findings.error(
            "BHS-X003", _TARGET_OPTION, None,
            f"IDENT {spec!r} is the IDENT of several target profiles: "
            f"{', '.join(t.name for t in sorted(by_ident, key=sort_key))}",
            "give the profile name instead"))
    known = "; ".join(_describe(t) for t in ordered)
    if _RELEASE.fullmatch(spec) is None:
        raise UsageError(findings.error(
            "BHS-X003", _TARGET_OPTION, None,
            f"{spec!r} is no target profile name, IDENT or FreeBSD release; known: {known}",
            "run 'bhyvesnap targets' to list the profiles"))
    release = normalise_release(spec)
    matching = [t for t in ordered if t.covers(release)]
    if len(matching) == 1:
        return matching[0]
    if not matching:
        raise UsageError(findings.error(
            "BHS-X003", _TARGET_OPTION, None,
            f"no target profile covers FreeBSD {release} ({spec}); known: {known}",
            "add a profile for that release with --targets-dir, or name a profile"))
    raise UsageError(findings.error(
        "BHS-X003", _TARGET_OPTION, None,
        f"FreeBSD {release} ({spec}) is covered by several target profiles: "
        f"{'; '.join(_describe(t) for t in matching)}",
        "name the profile instead of the release"))
