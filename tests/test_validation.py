"""``validate()``: reader findings plus streamed checksum verification."""

from __future__ import annotations

from pathlib import Path

import pytest
from single_factory import build, flip_byte

from migrate.findings import ImageError
from migrate.validation import validate


def test_report_of_a_sound_image(tmp_path: Path) -> None:
    report = validate(str(build(tmp_path, "r2")), verify=True)
    assert (report.valid, report.interpreted, report.findings) == (True, True, ())
    assert report.image is not None
    assert report.to_json() == {"valid": True, "findings": []}


def test_verify_streams_every_checksummed_section(tmp_path: Path) -> None:
    path = build(tmp_path, "r2")
    image = validate(str(path)).image
    assert image is not None
    kernel = image.section("kernel")
    assert kernel is not None
    blob = image.kernel[0].read()
    raw = path.read_bytes()
    at = raw.index(blob, kernel.offset)  # flip a byte inside a blob, not its nvlist framing
    assert at < kernel.offset + kernel.size
    flip_byte(path, at, 0x40)
    report = validate(str(path), verify=True)
    assert [(f.rule, f.location) for f in report.findings] == [
        ("BHS-S014", "/sections/kernel/checksum")]


def test_unreadable_path_is_not_a_validation_result(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as caught:
        validate(str(tmp_path / "absent"))
    assert caught.value.finding.rule == "BHS-X002"
