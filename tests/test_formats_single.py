"""r1 / r2 reader and canonical writer (FORMAT.md section 3)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

import pytest
from single_factory import (
    DEVICES,
    KERNEL,
    allocated_bytes,
    build,
    build_diff,
    config_text,
    craft,
    craft_r1,
    file_bytes,
    flip_byte,
    memory_file,
    model,
    r1_header,
    section_entry,
    state_nvlist,
)

from migrate.findings import ImageError, NotInterpretedError
from migrate.formats import read_image
from migrate.formats.single import read_single, write_single
from migrate.ident import mainstream_ident
from migrate.image import Compat, FileRange, Producer
from migrate.nvlist import NvList, NvPair, NvType, pack
from migrate.validation import validate


def rule_of(path: Path) -> tuple[str, int | str | None]:
    with pytest.raises(ImageError) as caught:
        read_single(str(path))
    return caught.value.finding.rule, caught.value.finding.location


# ------------------------------------------------------------------ valid images


@pytest.mark.parametrize("image_format", ["r1", "r2"])
def test_round_trip_is_byte_identical(tmp_path: Path, image_format: str) -> None:
    first = build(tmp_path, image_format, producer=Producer("bhyve", "15.0-CURRENT",
                                                            "2026-01-02T03:04:05Z"))
    image = read_single(str(first))
    second = tmp_path / "second.bhyve"
    write_single(image, str(second))
    assert file_bytes(first) == file_bytes(second)
    third = tmp_path / "third.bhyve"
    write_single(read_single(str(second)), str(third))
    assert file_bytes(second) == file_bytes(third)


def test_canonical_layout_r2(tmp_path: Path) -> None:
    path = build(tmp_path, "r2", memory_size=1 << 20)
    image = read_single(str(path))
    assert [s.name for s in image.sections] == ["config", "kernel", "devices", "memory"]
    assert all(s.offset % 4096 == 0 for s in image.sections)
    assert image.header_area == 4096
    assert image.sections[0].offset == 4096
    memory = image.section("memory")
    assert memory is not None
    assert memory.size == 1 << 20
    assert path.stat().st_size == memory.offset + memory.size
    # every section's checksum is the sha256 of its bytes, computed independently here
    raw = file_bytes(path)
    for section in image.sections:
        digest = hashlib.sha256(raw[section.offset:section.offset + section.size]).hexdigest()
        assert section.checksum == f"sha256:{digest}"
    assert image.compat == Compat(mainstream_ident("2.0"))
    assert [e.name for e in image.kernel] == list(KERNEL)
    assert [e.name for e in image.devices] == list(DEVICES)
    assert image.generation == "fbsd14"


def test_r1_layout_and_entries(tmp_path: Path) -> None:
    path = build(tmp_path, "r1")
    image = read_single(str(path))
    assert image.format == "r1"
    assert image.ident == "BHYVE CHECKPOINT IMAGE 1.0"
    assert image.header_area == 4096
    assert all(s.checksum is None for s in image.sections)
    source = model(tmp_path, "r1")
    assert [e.read() for e in image.kernel] == [e.read() for e in source.kernel]
    assert file_bytes(path)[:26] == b"BHYVE CHECKPOINT IMAGE 1.0"


def test_memory_holes_are_kept(tmp_path: Path) -> None:
    size = 64 << 20
    path = build(tmp_path, "r1", memory_size=size)
    assert path.stat().st_size > size
    assert allocated_bytes(path) < 4 << 20  # the zero tail of guest memory stayed a hole


def test_memory_bytes_are_copied_exactly(tmp_path: Path) -> None:
    path = build(tmp_path, "r2", memory_size=1 << 20)
    image = read_single(str(path))
    assert isinstance(image.memory, FileRange)
    assert image.memory.read() == file_bytes(tmp_path / "guest.mem")


def test_unknown_sections_are_carried_over(tmp_path: Path) -> None:
    notes = 16384 + (1 << 20)
    path = craft_r1(tmp_path / "x.bhyve", overrides={"zz-notes": section_entry(notes, 5, "text")})
    # craft_r1 sizes the file to the end of memory; extend it over the extra section
    with open(path, "r+b") as handle:
        handle.seek(notes)
        handle.write(b"hello")
    image = read_single(str(path))
    assert [e.name for e in image.extra_sections] == ["zz-notes"]
    assert any(f.rule == "BHS-S018" for f in image.findings)
    out = tmp_path / "out.bhyve"
    write_single(image, str(out))
    again = read_single(str(out))
    assert again.extra_sections[0].data.read() == b"hello"


def test_reader_reads_only_header_and_small_sections(tmp_path: Path) -> None:
    memory = tmp_path / "big.mem"
    with open(memory, "wb") as handle:
        handle.truncate(4 << 30)
    path = build(tmp_path, "r2", memory_size=4 << 30, memory=memory,
                 compat=Compat(mainstream_ident("2.0")))
    read_single(str(path))  # warm caches (schemas, facts)

    def rchar() -> int:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar")

    before = rchar()
    image = read_image(str(path))
    assert rchar() - before < 1 << 20
    assert image.memory.size == 4 << 30


# ------------------------------------------------------------------ one test per rule


def test_s001_file_shorter_than_prefix(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"BHYVE CHECKPOINT IMAGE 1.0")
    assert rule_of(path) == ("BHS-S001", 26)


@pytest.mark.parametrize(("ident", "location"), [
    (b"BHYVE CHECKPOINT IMAGE 1.0\x01", 26),
    (b"BHYVE CHECKPOINT IMAGE 1.0\0\0x", 28),
    (b"NOSPACE", 0),
    (b"BHYVE CHECKPOINT IMAGE one", 0),
    (b"", 0),
    (b"A" * 64, 63),
])
def test_s002_malformed_ident(tmp_path: Path, ident: bytes, location: int) -> None:
    path = craft_r1(tmp_path / "i.bhyve", ident=ident)
    assert rule_of(path) == ("BHS-S002", location)


def test_s003_nvlist_size_past_end(tmp_path: Path) -> None:
    path = craft(tmp_path / "s.bhyve", b"BHYVE CHECKPOINT IMAGE 1.0", b"", {}, 100,
                 nvlist_size=2**32 - 1)
    assert rule_of(path) == ("BHS-S003", 64)


def test_s004_r1_top_level_pair_that_is_not_a_section(tmp_path: Path) -> None:
    path = tmp_path / "t.bhyve"
    craft_r1(path)
    raw = bytearray(file_bytes(path))
    header_size = struct.unpack_from("<I", raw, 64)[0]
    entries = [NvPair(n, NvType.NVLIST, section_entry(o, 1, t)) for n, o, t in (
        ("config", 4096, "text"), ("kernel", 8192, "nvlist"), ("devices", 12288, "nvlist"),
        ("memory", 16384, "binary"))]
    header = pack(NvList(0, (*entries, NvPair("version", NvType.NUMBER, 1))))
    assert len(header) < 4000
    assert header_size > 0
    craft(path, b"BHYVE CHECKPOINT IMAGE 1.0", header, {}, 20480)
    assert rule_of(path) == ("BHS-S004", "/version")


def test_s004_r2_without_compat(tmp_path: Path) -> None:
    sections = NvList(0, tuple(NvPair(n, NvType.NVLIST, section_entry(o, 1, t)) for n, o, t in (
        ("config", 4096, "text"), ("kernel", 8192, "nvlist"), ("devices", 12288, "nvlist"),
        ("memory", 16384, "binary"))))
    header = pack(NvList.of(("sections", NvType.NVLIST, sections)))
    path = craft(tmp_path / "c.bhyve", b"BHYVE CHECKPOINT IMAGE 2.0", header, {}, 20480)
    assert rule_of(path) == ("BHS-S004", "/")


def test_s005_r1_header_larger_than_4k(tmp_path: Path) -> None:
    big = {f"extra-{i:04d}": section_entry(1 << 20, 0, "binary") for i in range(80)}
    header = r1_header(big)
    assert 68 + len(header) > 4096
    path = craft(tmp_path / "h.bhyve", b"BHYVE CHECKPOINT IMAGE 1.0", header, {}, 2 << 20)
    assert rule_of(path) == ("BHS-S005", 64)  # the size is checked before the sections
    sections = {n: section_entry(o, 1, t) for n, o, t in (
        ("config", 8192, "text"), ("kernel", 8193, "nvlist"), ("devices", 8194, "nvlist"),
        ("memory", 8195, "binary"))}
    path = craft(tmp_path / "h2.bhyve", b"BHYVE CHECKPOINT IMAGE 1.0",
                 r1_header({**sections, **big}), {}, 2 << 20)
    assert rule_of(path) == ("BHS-S005", 64)


def test_s006_section_inside_header(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "o.bhyve",
                    overrides={"config": section_entry(2048, 10, "text")})
    assert rule_of(path) == ("BHS-S006", "/config/offset")


def test_s007_section_past_end_of_file(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "e.bhyve",
                    overrides={"memory": section_entry(16384, 2**63, "binary")})
    assert rule_of(path) == ("BHS-S007", "/memory/size")


def test_s008_overlapping_sections(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "v.bhyve",
                    overrides={"devices": section_entry(8200, 100, "nvlist")})
    assert rule_of(path) == ("BHS-S008", "/devices/offset")


def test_s009_missing_mainstream_section_r2(tmp_path: Path) -> None:
    image = read_single(str(build(tmp_path, "r2")))
    entries = [NvPair(s.name, NvType.NVLIST, section_entry(s.offset, s.size, s.type))
               for s in image.sections if s.name != "devices"]
    header = pack(NvList.of(("sections", NvType.NVLIST, NvList(0, tuple(entries))),
                            ("compat", NvType.NVLIST, NvList.of(
                                ("min_reader", NvType.STRING, mainstream_ident("2.0"))))))
    raw = file_bytes(tmp_path / "image.bhyve")
    path = tmp_path / "m.bhyve"
    path.write_bytes(raw)
    craft(path, raw[:64].rstrip(b"\0"), header, {}, len(raw))
    with open(path, "r+b") as handle:  # restore the sections' bytes after the header
        handle.seek(4096)
        handle.write(raw[4096:])
    assert rule_of(path) == ("BHS-S009", "/sections/devices")


def test_s009_missing_section_r1(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "d.bhyve", drop=["devices"])
    assert rule_of(path) == ("BHS-S009", "/devices")


def test_s010_wrong_section_type(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "k.bhyve", overrides={"kernel": section_entry(8192, 10, "binary")})
    assert rule_of(path) == ("BHS-S010", "/kernel/type")


def test_s011_nonzero_padding_is_a_warning(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "p.bhyve", extra_body={4000: b"\x01"})
    image = read_single(str(path))
    warnings = [f for f in image.findings if f.rule == "BHS-S011"]
    assert [(w.severity.value, w.location) for w in warnings] == [("warning", 4000)]
    assert validate(str(path)).valid


def test_s012_r1_entry_not_binary(tmp_path: Path) -> None:
    kernel = pack(NvList.of(("vm", NvType.STRING, "oops")))
    path = craft_r1(tmp_path / "b.bhyve", kernel=kernel)
    assert rule_of(path) == ("BHS-S012", "/kernel/vm")


def test_s012_r2_entry_without_layout(tmp_path: Path) -> None:
    image = read_single(str(build(tmp_path, "r2")))
    kernel = image.section("kernel")
    assert kernel is not None
    bad = pack(NvList.of(("vm", NvType.NVLIST, NvList.of(("data", NvType.BINARY, b"x")))))
    raw = bytearray(file_bytes(tmp_path / "image.bhyve"))
    raw[kernel.offset:kernel.offset + len(bad)] = bad
    path = tmp_path / "l.bhyve"
    path.write_bytes(bytes(raw))
    # the header still claims the old size, so re-craft the header with the new one
    sections = [NvPair(s.name, NvType.NVLIST, section_entry(
        s.offset, len(bad) if s.name == "kernel" else s.size, s.type)) for s in image.sections]
    header = pack(NvList.of(("sections", NvType.NVLIST, NvList(0, tuple(sections))),
                            ("compat", NvType.NVLIST, NvList.of(
                                ("min_reader", NvType.STRING, mainstream_ident("2.0"))))))
    craft(path, bytes(raw[:64]).rstrip(b"\0"), header, {}, len(raw))
    with open(path, "r+b") as handle:
        handle.seek(4096)
        handle.write(raw[4096:])
    assert rule_of(path) == ("BHS-S012", "/kernel/vm/layout")


def test_s013_memory_size_differs_from_config(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "z.bhyve", memory_size=2 << 20, config=config_text(1 << 20))
    assert rule_of(path) == ("BHS-S013", "/memory/size")


def test_s014_checksum_mismatch_with_verify(tmp_path: Path) -> None:
    path = build(tmp_path, "r2", memory_size=1 << 20)
    image = read_single(str(path))
    memory = image.section("memory")
    assert memory is not None
    flip_byte(path, memory.offset + 100, 0x01)
    assert validate(str(path)).valid  # not verified without --verify
    report = validate(str(path), verify=True)
    assert not report.valid
    assert [(f.rule, f.location) for f in report.findings] == [
        ("BHS-S014", "/sections/memory/checksum")]


def test_s015_unknown_checksum_algorithm_is_a_warning(tmp_path: Path) -> None:
    image = read_single(str(build(tmp_path, "r2")))
    sections = [NvPair(s.name, NvType.NVLIST, section_entry(
        s.offset, s.size, s.type, checksum="blake9:00ff")) for s in image.sections]
    header = pack(NvList.of(("sections", NvType.NVLIST, NvList(0, tuple(sections))),
                            ("compat", NvType.NVLIST, NvList.of(
                                ("min_reader", NvType.STRING, mainstream_ident("2.0"))))))
    raw = file_bytes(tmp_path / "image.bhyve")
    path = craft(tmp_path / "u.bhyve", raw[:64].rstrip(b"\0"), header, {}, len(raw))
    with open(path, "r+b") as handle:
        handle.seek(4096)
        handle.write(raw[4096:])
    report = validate(str(path), verify=True)
    assert report.valid
    assert {f.rule for f in report.findings} == {"BHS-S015"}


def test_s016_min_reader_not_mainstream(tmp_path: Path) -> None:
    path = build(tmp_path, "r2", compat=Compat("OTHER THING 2.0"))
    assert rule_of(path) == ("BHS-S016", "/compat/min_reader")


def test_s017_malformed_diff_pages(tmp_path: Path) -> None:
    memory_size = 256 * 4096
    payload = struct.pack("<QQ", 4096, 256) + bytes([0b101]) + bytes(31) + b"\x11" * 4096
    image = read_single(str(build(tmp_path, "r2", memory_size=memory_size)))
    mem = tmp_path / "diff.bin"
    mem.write_bytes(payload)
    base = {"base": "base.bhyve", "base_checksum": "sha256:" + "0" * 64}
    sections = []
    for s in image.sections:
        if s.name == "memory":
            sections.append(NvPair("memory", NvType.NVLIST, section_entry(
                s.offset, len(payload), "diff-pages", **base)))
        else:
            sections.append(NvPair(s.name, NvType.NVLIST, section_entry(s.offset, s.size, s.type)))
    header = pack(NvList.of(("sections", NvType.NVLIST, NvList(0, tuple(sections))),
                            ("compat", NvType.NVLIST, NvList.of(
                                ("min_reader", NvType.STRING, mainstream_ident("2.1")),
                                ("features", NvType.STRING_ARRAY, ("diff-pages",))))))
    raw = file_bytes(tmp_path / "image.bhyve")
    memory = image.section("memory")
    assert memory is not None
    path = craft(tmp_path / "dp.bhyve", b"BHYVE CHECKPOINT IMAGE 2.1", header,
                 {4096: raw[4096:memory.offset], memory.offset: payload},
                 memory.offset + len(payload))
    # the bitmap announces 2 pages but only one is stored
    assert rule_of(path) == ("BHS-S017", "/sections/memory/size")
    good = payload + b"\x22" * 4096
    path = craft(tmp_path / "dp2.bhyve", b"BHYVE CHECKPOINT IMAGE 2.1", header.replace(
        struct.pack("<Q", len(payload)), struct.pack("<Q", len(good))),
        {4096: raw[4096:memory.offset], memory.offset: good}, memory.offset + len(good))
    parsed = read_single(str(path))
    assert parsed.memory_type == "diff-pages"
    assert parsed.compat == Compat(mainstream_ident("2.1"), ("diff-pages",))


def test_s018_unknown_section_is_info(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "n.bhyve", overrides={"notes": section_entry(16384, 0, "text")})
    image = read_single(str(path))
    assert [(f.rule, f.severity.value) for f in image.findings] == [("BHS-S018", "info")]


def test_p001_foreign_producer(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "f.bhyve", ident=b"ACME VM SNAPSHOT 3.1")
    with pytest.raises(NotInterpretedError) as caught:
        read_single(str(path))
    assert caught.value.finding.rule == "BHS-P001"
    assert caught.value.ident == "ACME VM SNAPSHOT 3.1"


@pytest.mark.parametrize("version", ["3.0", "1.1", "1.00"])
def test_p002_unknown_mainstream_version(tmp_path: Path, version: str) -> None:
    path = craft_r1(tmp_path / "v.bhyve", ident=f"BHYVE CHECKPOINT IMAGE {version}".encode())
    with pytest.raises(NotInterpretedError) as caught:
        read_single(str(path))
    assert caught.value.finding.rule == "BHS-P002"


def test_header_nvlist_garbage_is_located_in_the_file(tmp_path: Path) -> None:
    path = craft(tmp_path / "g.bhyve", b"BHYVE CHECKPOINT IMAGE 1.0", b"\x6d" + bytes(30), {},
                 8192)
    assert rule_of(path) == ("BHS-N002", 68)


def test_header_nvlist_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.bhyve"
    with open(path, "wb") as handle:
        handle.write(b"BHYVE CHECKPOINT IMAGE 2.0".ljust(64, b"\0") + struct.pack("<I", 65 << 20))
        handle.truncate(66 << 20)
    assert rule_of(path) == ("BHS-N015", 64)


def test_kernel_nvlist_garbage_is_located_at_its_section(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "kg.bhyve", kernel=b"\x6c" + bytes(18) + b"\x00" * 5)
    rule, location = rule_of(path)
    assert rule.startswith("BHS-N")
    assert isinstance(location, int)
    assert location >= 8192


def test_config_not_utf8(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "u8.bhyve", extra_body={4096 + 5: b"\xff"})
    assert rule_of(path) == ("BHS-C001", 4096 + 5)


def test_config_missing_key(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "ck.bhyve", config="name=vm\ncpus=1\n")
    assert rule_of(path)[0] == "BHS-C002"


def test_memory_file_is_needed_for_writing(tmp_path: Path) -> None:
    memory_file(tmp_path / "m", 1 << 20)
    image = model(tmp_path, "r1", memory_size=1 << 20, memory=tmp_path / "m")
    write_single(image, str(tmp_path / "ok.bhyve"))
    assert read_single(str(tmp_path / "ok.bhyve")).memory.size == 1 << 20


def test_state_nvlist_helper_matches_reader(tmp_path: Path) -> None:
    data = state_nvlist(["vm"], r2=True)
    assert data[0] == 0x6C
    assert read_single(str(craft_r1(tmp_path / "s.bhyve"))).kernel[0].read() == b"vhpet" * 4


@pytest.mark.parametrize(("name", "limit"), [("config", 16 << 20), ("kernel", 64 << 20)])
def test_s019_oversized_small_section_is_refused_unread(
        tmp_path: Path, name: str, limit: int) -> None:
    offset = 16384 + (1 << 20)  # after the memory section, so nothing overlaps
    kind = {"config": "text", "kernel": "nvlist"}[name]
    path = craft_r1(tmp_path / "big.bhyve",
                    overrides={name: section_entry(offset, limit + 1, kind)})
    with open(path, "r+b") as handle:  # a sparse file large enough for the claim
        handle.truncate(offset + limit + 1)
    assert rule_of(path) == ("BHS-S019", offset)


@pytest.mark.parametrize(("compat", "location"), [
    (Compat(mainstream_ident("2.0")), "/compat/features"),
    (Compat(mainstream_ident("2.0"), ("diff-pages",)), "/compat/min_reader"),
])
def test_s016_diff_pages_must_be_declared(tmp_path: Path, compat: Compat, location: str) -> None:
    """A 2.0 reader would restore diff pages as raw memory: the image must say it needs 2.1."""
    _, diff = build_diff(tmp_path, {0: b"x"}, compat=compat)
    assert rule_of(diff) == ("BHS-S016", location)


def test_s010_r1_cannot_hold_diff_pages(tmp_path: Path) -> None:
    path = craft_r1(tmp_path / "r1diff.bhyve",
                    overrides={"memory": section_entry(16384, 1 << 20, "diff-pages")})
    assert rule_of(path) == ("BHS-S010", "/memory/type")


def test_a_failed_write_does_not_wait_for_the_background_hash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory hash runs beside the copy; when the copy fails, the hash is told to stop
    instead of reading the rest of the memory."""
    import threading

    from migrate import storage

    started = threading.Event()
    chunks: list[int] = []

    class SlowProgress(storage.Progress):
        """Counts hashed chunks and makes each take 10 ms."""

        def advance(self, n: int) -> None:
            started.set()
            chunks.append(n)
            threading.Event().wait(0.01)

    real = storage._hash_into

    def slow_hash(*args: Any, **kwargs: Any) -> None:
        kwargs["progress"] = SlowProgress(1 << 40, "test")
        real(*args, **kwargs)

    def failing_copy(*args: Any, **kwargs: Any) -> None:
        started.wait(5)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage, "_hash_into", slow_hash)
    monkeypatch.setattr(storage, "copy_memory", failing_copy)
    memory = tmp_path / "big.mem"
    with open(memory, "wb") as handle:  # 512 MiB of data would take 50 s at 10 ms a chunk
        handle.truncate(512 << 20)
    image = model(tmp_path, "r2", 512 << 20, memory=memory)
    with pytest.raises(OSError, match="No space"):
        write_single(image, str(tmp_path / "out.bhyve"))
    assert 0 < len(chunks) < 50
