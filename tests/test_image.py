"""The image model: file ranges, page merges, derived properties."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.findings import UsageError
from migrate.image import FileRange, PageMerge, StateEntry, blob_size, memory_pieces


def test_file_range_reads_exactly_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(100)))
    assert FileRange(str(path), 10, 5).read() == bytes(range(10, 15))


def test_truncated_file_range_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    with pytest.raises(UsageError) as caught:
        FileRange(str(path), 4, 20).read()
    assert (caught.value.finding.rule, caught.value.finding.location) == ("BHS-X002", 10)


def test_missing_file_range_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        FileRange(str(tmp_path / "gone"), 0, 1).read()
    assert caught.value.finding.rule == "BHS-X002"


def test_page_merge_pieces_cover_memory_in_order(tmp_path: Path) -> None:
    # pages 1, 2, 7 and 9 come from the diff; the others from the base
    bitmap = tmp_path / "bitmap"
    bitmap.write_bytes(b"junk" + bytes([0b10000110, 0b10]))
    merge = PageMerge(FileRange("base", 100, 10 * 4096), FileRange("diff", 50, 4 * 4096),
                      FileRange(str(bitmap), 4, 2), 4096, 10)
    pieces = list(merge.pieces())
    assert [(offset, r.path, r.offset, r.size) for offset, r in pieces] == [
        (0, "base", 100, 4096),
        (4096, "diff", 50, 8192),
        (12288, "base", 100 + 12288, 16384),
        (28672, "diff", 50 + 8192, 4096),
        (32768, "base", 100 + 32768, 4096),
        (36864, "diff", 50 + 12288, 4096),
    ]
    assert sum(r.size for _, r in pieces) == merge.size == 40960


def test_page_merge_ignores_bitmap_padding_bits(tmp_path: Path) -> None:
    bitmap = tmp_path / "bitmap"
    bitmap.write_bytes(bytes([0b11111000]))
    merge = PageMerge(FileRange("b", 0, 3 * 4096), FileRange("d", 0, 0),
                      FileRange(str(bitmap), 0, 1), 4096, 3)
    assert [r.path for _, r in merge.pieces()] == ["b"]


def test_plain_memory_is_one_piece() -> None:
    memory = FileRange("m", 0, 8192)
    assert list(memory_pieces(memory)) == [(0, memory)]


def test_state_entry_sizes_without_reading(tmp_path: Path) -> None:
    entry = StateEntry("vm", "fbsd14", FileRange(str(tmp_path / "absent"), 0, 123))
    assert entry.size == blob_size(entry.blob) == 123
    assert StateEntry("vm", "fbsd14", b"abc").read() == b"abc"
