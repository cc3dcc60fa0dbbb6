"""IDENT parsing and the revision each mainstream version maps to (FORMAT.md 1, 3.1)."""

from __future__ import annotations

import pytest
from packaging.version import Version

from migrate.ident import format_of, mainstream_ident, parse_ident


@pytest.mark.parametrize(("text", "image_format"), [
    ("BHYVE CHECKPOINT IMAGE 1.0", "r1"),
    ("BHYVE CHECKPOINT IMAGE 2.0", "r2"),
    ("BHYVE CHECKPOINT IMAGE 2.1", "r2"),
    ("BHYVE CHECKPOINT IMAGE 2.17", "r2"),
    ("BHYVE CHECKPOINT IMAGE 1.1", None),   # r1 has no compat record: only 1.0 exists
    ("BHYVE CHECKPOINT IMAGE 1.00", None),  # an r1 reader compares IDENT byte for byte
    ("BHYVE CHECKPOINT IMAGE 3.0", None),
    ("OTHER VMM 2.0", None),
])
def test_revision_of_an_ident(text: str, image_format: str | None) -> None:
    parsed = parse_ident(text)
    assert parsed is not None
    assert format_of(parsed) == image_format


def test_split_at_the_last_space() -> None:
    parsed = parse_ident("ACME VM SNAPSHOT 3.1")
    assert parsed is not None
    assert (parsed.producer, parsed.version, parsed.mainstream) == (
        "ACME VM SNAPSHOT", Version("3.1"), False)


@pytest.mark.parametrize("text", ["NOSPACE", " 1.0", "BHYVE CHECKPOINT IMAGE one", ""])
def test_malformed_idents(text: str) -> None:
    assert parse_ident(text) is None


def test_mainstream_ident() -> None:
    assert mainstream_ident("2.1") == "BHYVE CHECKPOINT IMAGE 2.1"
