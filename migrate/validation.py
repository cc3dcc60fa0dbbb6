"""``validate``: every structural rule (by reading), plus section checksums on request.

Readers already refuse the first structural error; this module turns that into a report and,
with ``verify``, streams every checksummed section through sha256 (memory in chunks, holes
read as zeros) so a bit flip anywhere is found without loading the image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrate import storage
from migrate.data import load_json
from migrate.findings import Finding, ImageError, NotInterpretedError, error, warning
from migrate.formats import read_image
from migrate.image import FileRange, Image
from migrate.rules import RuleKind


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of validating one image; ``to_json`` is the ``validate --json`` document."""

    path: str
    valid: bool
    interpreted: bool
    findings: tuple[Finding, ...]
    image: Image | None

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "findings": [f.to_json() for f in self.findings]}


ProgressFactory = Callable[[int, str], storage.Progress | None]


def validate(path: str, *, verify: bool = False,
             progress: ProgressFactory | None = None) -> ValidationReport:
    """Validate the image at ``path``; with ``verify``, also check every recorded checksum.

    An unreadable path is not a validation result: its :class:`ImageError` (rule BHS-X002)
    propagates, so callers can tell "broken image" from "no image".
    """
    try:
        image = read_image(path)
    except NotInterpretedError as exc:
        return ValidationReport(path, False, False, (exc.finding,), None)
    except ImageError as exc:
        if exc.finding.kind is not RuleKind.VALIDATION:
            raise
        return ValidationReport(path, False, True, (exc.finding,), None)
    findings = list(image.findings)
    if verify:
        findings.extend(verify_checksums(image, progress))
    valid = not any(f.is_error and f.kind is RuleKind.VALIDATION for f in findings)
    return ValidationReport(path, valid, True, tuple(findings), image)


def verify_checksums(image: Image, progress: ProgressFactory | None = None) -> list[Finding]:
    """One finding per section whose bytes differ from, or cannot be checked against, its
    recorded checksum."""
    known = set(load_json("bhyve/revisions.json")["checksum_algorithms"])
    findings: list[Finding] = []
    for section in image.sections:
        if section.checksum is None:
            continue
        pointer = f"/sections/{section.name}/checksum"
        algorithm, _, recorded = section.checksum.partition(":")
        if algorithm not in known:
            findings.append(warning(
                "BHS-S015", image.path, pointer,
                f"section {section.name!r} uses checksum algorithm {algorithm!r}, which this "
                "tool cannot verify"))
            continue
        source = FileRange(image.path, section.offset, section.size)
        bar = progress(section.size, f"verifying {section.name}") if progress else None
        try:
            actual = storage.hash_range(source, algorithm, bar)
        finally:
            if bar is not None:
                bar.close()
        if actual != recorded:
            findings.append(error(
                "BHS-S014", image.path, pointer,
                f"section {section.name!r} hashes to {algorithm}:{actual[:16]}…, not the "
                f"recorded {section.checksum[:16 + len(algorithm) + 1]}…",
                "restore from a backup copy; the image was damaged after it was written"))
    return findings
