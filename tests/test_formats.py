"""Format detection and the symmetric readers/writers, on the bundled corpus."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from migrate.data import corpus_root
from migrate.findings import ImageError
from migrate.formats import output_paths, read_image, read_image_files, write_image
from migrate.image import FileRange

MANIFEST = json.loads((corpus_root() / "manifest.json").read_text(encoding="utf-8"))
READABLE = [image for image in MANIFEST["images"]
            if image["provenance"]["method"] == "generated"
            and "IDENT replaced" not in image["provenance"]["detail"]]


@pytest.mark.parametrize("entry", READABLE, ids=lambda entry: entry["name"])
def test_corpus_images_round_trip_byte_for_byte(entry: dict[str, str], tmp_path: Path) -> None:
    """Read a committed image, write it again, and get every file's bytes back."""
    source = corpus_root() / entry["path"]
    image = read_image(str(source))
    assert image.format == entry["format"]
    out = tmp_path / Path(entry["path"]).name
    paths = output_paths(image.format, str(out))
    write_image(image, paths)
    originals = output_paths(image.format, str(source))
    for written, original in zip(paths, originals, strict=True):
        assert Path(written).read_bytes() == Path(original).read_bytes(), written


def test_read_image_files_reads_explicit_temporaries(tmp_path: Path) -> None:
    entry = next(e for e in READABLE if e["format"] == "legacy-b")
    image = read_image(str(corpus_root() / entry["path"]))
    temps = [str(tmp_path / name) for name in (".a.tmp", ".b.tmp", ".c.tmp")]
    write_image(image, temps)
    again = read_image_files("legacy-b", temps, "shown.ckp")
    assert [e.read() for e in again.devices] == [e.read() for e in image.devices]


def test_missing_path_and_directory_are_unreadable(tmp_path: Path) -> None:
    for path in (tmp_path / "absent", tmp_path):
        with pytest.raises(ImageError) as caught:
            read_image(str(path))
        assert caught.value.finding.rule == "BHS-X002"


def test_output_paths_put_the_meta_last() -> None:
    assert output_paths("legacy-b", "vm") == ["vm", "vm.kern", "vm.meta"]
    assert output_paths("r2", "vm.bhyve") == ["vm.bhyve"]
    with pytest.raises(ValueError, match="no writer"):
        output_paths("r9", "x")
    assert os.sep not in output_paths("r1", "x")[0]


def test_a_temporary_is_read_under_the_name_it_will_have(tmp_path: Path) -> None:
    """Findings about a written temporary name the output the user asked for, while the
    memory still points at the file really read."""
    entry = next(e for e in READABLE if e["format"] == "r2")
    image = read_image(str(corpus_root() / entry["path"]))
    temp = str(tmp_path / ".out.bhyve.bhyvesnap-0000.tmp")
    write_image(image, [temp])
    again = read_image_files("r2", [temp], "out.bhyve")
    assert again.path == "out.bhyve"
    assert again.files == (temp,)
    assert isinstance(again.memory, FileRange)
    assert again.memory.path == temp
    with open(temp, "r+b") as handle:
        handle.truncate(8192)
    with pytest.raises(ImageError) as caught:
        read_image_files("r2", [temp], "out.bhyve")
    assert caught.value.finding.file == "out.bhyve"
